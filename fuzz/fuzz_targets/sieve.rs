// Property: compiling any script never panics and an error points inside the script (line 1
// up to its last line, column 1 or more); a script that compiles runs on any message without
// panicking, the same way twice (the interpreter has no hidden state), and what it decides is
// coherent: a cancelled implicit keep comes with a store, a discard or a redirect; every
// redirect is a valid address; no folder name is empty.
// Input: the script, 0xFF, then a message (header lines, a blank line, a body).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailpipe_sieve::testing::TextMessage;
use mailpipe_sieve::{compile, run, Options, Settings};

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(2, |&b| b == 0xFF);
    let script = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let raw = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let compiled = match compile(&script, &Options::default()) {
        Ok(c) => c,
        Err(e) => {
            let lines = script.split('\n').count() as u32;
            assert!(e.pos.line >= 1 && e.pos.line <= lines, "{e} in {lines} lines");
            assert!(e.pos.col >= 1, "{e}");
            assert!(!e.message.is_empty());
            return;
        }
    };
    let settings = Settings::default();
    let first = run(&compiled, &mut TextMessage::new(&raw), &settings);
    let second = run(&compiled, &mut TextMessage::new(&raw), &settings);
    assert_eq!(first, second, "two runs differ");
    if let Ok(o) = first {
        if !o.implicit_keep {
            assert!(!o.stores.is_empty() || o.discarded || !o.redirects.is_empty());
        }
        for r in &o.redirects {
            assert!(mailpipe_sieve::compile::valid_address(r), "redirect to {r:?}");
        }
        for s in &o.stores {
            assert!(s.folder.as_deref() != Some(""));
        }
    }
});
