//! Fault injection for the once-only tests (test builds only, `test-hooks`): with
//! `MAILPIPE_FAULT_ABORT_AT=<point>`, the process dies at that point as a kill -9 would, so a
//! test can land exactly in a window a random kill hits only now and then. Points:
//! `stored`, `committed` (on the embedded store not yet durable; with an IMAP target, durable
//! and before any APPEND), `durable` (a delivery, `run/deliver.rs`), `appended` (an IMAP
//! target's copies stored, their plan not yet finished), `synced` (an offline batch made durable, before its copies are settled,
//! `run/offline.rs`).

/// Die here when the test asked for this point; nothing in a release build.
pub(crate) fn fault(_at: &str) {
    #[cfg(feature = "test-hooks")]
    if std::env::var("MAILPIPE_FAULT_ABORT_AT").is_ok_and(|v| v == _at) {
        eprintln!("fault injected by MAILPIPE_FAULT_ABORT_AT={_at}");
        std::process::abort();
    }
}
