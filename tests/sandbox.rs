//! Plugins that misbehave on purpose are contained: the host stays up, the plugin's whole
//! result is discarded and reported with its name, later plugins still run, and the message
//! is neither lost nor half-modified.

mod common;

use common::*;
use mailpipe::config::PluginLimits;
use mailpipe::pipeline::PluginStatus;
use mailpipe::plugin::CallFailure;
use serde_json::json;
use std::time::Instant;

fn tagger() -> mailpipe::config::PluginConfig {
    plugin(
        "tagger",
        "subject-tagger",
        json!({"tag": "[EXT]", "when_from_not": ["*@example.com"]}),
    )
}

/// Run `bad` then the tagger on message 1; return the bad plugin's failure.
async fn contained(
    bad: mailpipe::config::PluginConfig,
) -> (CallFailure, mailpipe::pipeline::Decision) {
    let name = bad.name.clone();
    let t = TestPipeline::new(vec![bad, tagger()]).await;
    let orig = sample(1);
    let d = t.run(&orig, "m1").await;
    let failure = match status(&d, &name) {
        PluginStatus::Failed { error: f } => f,
        s => panic!("{name} was not contained: {s:?}"),
    };
    // The later plugin ran and its change is there; nothing of the bad plugin's is.
    assert!(matches!(status(&d, "tagger"), PluginStatus::Applied { .. }));
    assert_eq!(
        d.email.header("Subject").as_deref(),
        Some("[EXT] Lunch on Friday?")
    );
    assert_eq!(folders(&d), ["INBOX"], "the message is kept");
    assert!(d.outgoing.is_empty());
    assert!(d.kv.is_empty());
    assert_eq!(d.failed_plugins().count(), 1);
    // And the host still works: the same pipeline runs again.
    let again = t.run(&orig, "m1-again").await;
    assert!(matches!(
        status(&again, "tagger"),
        PluginStatus::Applied { .. }
    ));
    (failure, d)
}

#[tokio::test]
async fn infinite_loop_times_out() {
    let mut p = plugin("looper", "misbehave-infinite-loop", json!({}));
    p.limits = PluginLimits {
        timeout_ms: 200,
        ..Default::default()
    };
    let started = Instant::now();
    let (f, _) = contained(p).await;
    assert_eq!(f, CallFailure::Timeout(200));
    assert!(
        started.elapsed().as_secs() < 10,
        "the deadline interrupts the loop"
    );
}

#[tokio::test]
async fn huge_allocation_hits_the_memory_limit() {
    let (f, _) = contained(plugin("hog", "misbehave-huge-alloc", json!({}))).await;
    assert_eq!(f, CallFailure::OutOfMemory(64));
}

#[tokio::test]
async fn a_trap_is_reported() {
    let (f, d) = contained(plugin("trap", "misbehave-trap", json!({}))).await;
    // The panic's own words and place, not wasmtime's backtrace of mangled symbols.
    assert_eq!(
        f,
        CallFailure::Trap(
            "panicked at plugins/misbehaving/trap/src/lib.rs:18:9: misbehave-trap: deliberate panic"
                .into()
        )
    );
    // ...said once: the stderr it came from is not repeated as a log line.
    let report = d.reports.iter().find(|r| r.plugin == "trap").unwrap();
    assert!(
        report.logs.iter().all(|l| !l.text.contains("panicked")),
        "{:?}",
        report.logs
    );
}

#[tokio::test]
async fn too_many_actions_are_refused() {
    let (f, _) = contained(plugin("many", "misbehave-many-actions", json!({}))).await;
    assert_eq!(
        f,
        CallFailure::TooManyActions {
            count: 10_000,
            limit: 100
        }
    );
}

#[tokio::test]
async fn crlf_in_a_header_value_voids_the_whole_result() {
    // The plugin sets a subject first, then adds the bad header: neither is applied.
    let (f, d) = contained(plugin("crlf", "misbehave-crlf-header", json!({}))).await;
    assert!(
        matches!(&f, CallFailure::InvalidAction { reason, .. } if reason.contains("CR")),
        "{f:?}"
    );
    assert!(!d.email.raw.windows(4).any(|w| w == b"Bcc:"));
}

#[tokio::test]
async fn forwarding_anywhere_is_refused() {
    let (f, _) = contained(plugin("fwd", "misbehave-forward-anywhere", json!({}))).await;
    assert!(
        matches!(&f, CallFailure::InvalidAction { reason, .. } if reason.contains("not allowed")),
        "{f:?}"
    );
}

#[tokio::test]
async fn state_writes_of_a_failed_call_are_dropped() {
    let (f, _) = contained(plugin("kv", "misbehave-kv-then-fail", json!({}))).await;
    assert_eq!(f, CallFailure::Returned("boom".into()));
}

#[tokio::test]
async fn a_file_that_is_not_a_component_does_not_load() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.wasm");
    std::fs::write(&bogus, b"\0asm\x01\0\0\0garbage").unwrap();
    let mut p = plugin("bogus", "subject-tagger", json!({}));
    p.path = bogus.clone();
    let runtime = mailpipe::plugin::PluginRuntime::new(64, None).unwrap();
    let err = runtime.load(&p, None).await.err().expect("must not load");
    let text = err.to_string();
    assert!(
        text.contains("bogus") && text.contains("is a core WebAssembly module, not a component"),
        "{text}"
    );
    std::fs::write(&bogus, b"hello\n").unwrap();
    let text = runtime.load(&p, None).await.err().unwrap().to_string();
    assert!(text.contains("is not a WebAssembly file"), "{text}");
    assert!(!text.contains("0x"), "no byte dumps: {text}");
}

#[tokio::test]
async fn a_memory_limit_below_what_the_plugin_needs_says_how_much() {
    let mut p = tagger();
    p.limits.memory_mb = 1;
    let runtime = mailpipe::plugin::PluginRuntime::new(1, None).unwrap();
    let text = runtime.load(&p, None).await.err().unwrap().to_string();
    assert!(
        text.contains("needs at least") && text.contains("limit of 1 MiB: raise memory_mb"),
        "{text}"
    );
}

#[tokio::test]
async fn uncommitted_state_does_not_carry_over_between_messages() {
    // The vacation plugin keeps per-sender memory only through the host KV store; with no
    // commit between the two calls, the second call (on the same, reused instance) must see
    // no trace of the first call's buffered writes.
    let p = plugin(
        "vacation",
        "auto-responder",
        json!({"addresses": ["alice@example.com"], "body": "away"}),
    );
    let t = TestPipeline::new(vec![p]).await;
    let a = t.run(&sample(1), "a").await;
    let b = t.run(&sample(1), "b").await;
    assert_eq!(a.outgoing.len(), 1);
    assert_eq!(b.outgoing.len(), 1, "uncommitted state does not carry over");
}

fn with_subject(subject: &str) -> mailpipe::message::Email {
    let raw = format!(
        "From: Bob <bob@example.org>\r\nTo: alice@example.com\r\nSubject: {subject}\r\nMessage-ID: <{subject}@example.org>\r\n\r\nHi\r\n"
    );
    mailpipe::message::Email::new(raw.into_bytes(), "INBOX", vec![])
}

/// What instance reuse means, shown with a plugin that keeps data in a global: a warm
/// instance carries it from message to message, a trap replaces the instance (it is never
/// entered again), and `fresh_instance = true` starts every message from scratch.
#[tokio::test]
async fn warm_instances_are_replaced_after_a_trap_and_optional() {
    let t = TestPipeline::new(vec![plugin("mem", "misbehave-remembers", json!({}))]).await;
    let seen = |d: &mailpipe::pipeline::Decision| d.email.header("X-Seen-Before");
    let d1 = t.run(&with_subject("one"), "k1").await;
    assert_eq!(seen(&d1).as_deref(), Some("0"));
    let d2 = t.run(&with_subject("two"), "k2").await;
    assert_eq!(
        seen(&d2).as_deref(),
        Some("1"),
        "the warm instance served again"
    );
    assert_eq!(d2.email.header("X-Last-Subject").as_deref(), Some("one"));
    let bad = t.run(&with_subject("please trap"), "k3").await;
    assert!(matches!(
        status(&bad, "mem"),
        PluginStatus::Failed {
            error: CallFailure::Trap(_)
        }
    ));
    assert_eq!(bad.email.header("X-Seen-Before"), None, "nothing applied");
    let d4 = t.run(&with_subject("four"), "k4").await;
    assert_eq!(
        seen(&d4).as_deref(),
        Some("0"),
        "a new instance after the trap"
    );
    assert_eq!(d4.email.header("X-Last-Subject"), None);

    let mut fresh = plugin("mem", "misbehave-remembers", json!({}));
    fresh.fresh_instance = true;
    let t = TestPipeline::new(vec![fresh]).await;
    for (i, s) in ["a", "b", "c"].iter().enumerate() {
        let d = t.run(&with_subject(s), &format!("f{i}")).await;
        assert_eq!(seen(&d).as_deref(), Some("0"), "message {s}");
        assert_eq!(d.email.header("X-Last-Subject"), None);
    }
}
