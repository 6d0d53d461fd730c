//! Behaviour of the interpreter, one file per extension, on messages written inline. The
//! `Fake` input (`testing::TextMessage`) reads a raw message the simple way (no RFC 2047
//! decoding): these tests are about the language; the differential suite
//! (tests/sieve_differential.rs) compares whole decisions with Pigeonhole on real messages.

mod core;
mod extensions;
mod mime;
mod vacation;

pub use crate::testing::TextMessage as Fake;
use crate::{compile, run, Options, Outcome, Settings};

pub const MSG: &str = "From: Alice <alice@example.org>\nTo: me+lists@example.com, Bob <bob@example.net>\nCc: carol@example.com\nSubject: [rust-users] Hello World\nDate: Wed, 28 Oct 2009 14:15:07 +0100\nMessage-ID: <abc@example.org>\nX-Spam-Score: 7.5\nList-Id: Rust users <rust-users.lists.example.org>\n\nHello there,\nthis is the body.\n";

/// Runs `script` on `raw` with default settings; panics on a compile error.
pub fn outcome(script: &str, raw: &str) -> Outcome {
    outcome_with(script, &mut Fake::new(raw), &Settings::default())
}

pub fn outcome_with(script: &str, input: &mut Fake, settings: &Settings) -> Outcome {
    let s = compile(script, &Options::default()).unwrap_or_else(|e| panic!("{e}\n{script}"));
    run(&s, input, settings).unwrap_or_else(|e| panic!("run-time error: {e}"))
}

/// The folders stored into (None = keep), in order.
pub fn folders(o: &Outcome) -> Vec<String> {
    o.stores
        .iter()
        .map(|s| s.folder.clone().unwrap_or_else(|| "<keep>".into()))
        .collect()
}

/// Whether `script` (with the given requires) takes the `if` branch on MSG.
pub fn holds(requires: &str, test: &str) -> bool {
    let script = format!("require [\"fileinto\"{requires}];\nif {test} {{ fileinto \"yes\"; }}");
    folders(&outcome(&script, MSG)) == ["yes"]
}
