//! Behaviour of the interpreter, one file per extension, on messages written inline. The
//! `Fake` input reads a raw message the simple way (no RFC 2047 decoding): these tests are
//! about the language; the differential suite (tests/sieve_differential.rs) compares whole
//! decisions with Pigeonhole on real messages.

mod core;
mod extensions;
mod vacation;

use std::collections::HashSet;

use crate::{compile, run, Input, Options, Outcome, Settings};

pub struct Fake {
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub now_ms: i64,
    pub seen: HashSet<String>,
    pub folders: Vec<String>,
}

impl Fake {
    pub fn new(raw: &str) -> Self {
        let raw = raw.replace("\r\n", "\n");
        let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some(last) = headers.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
            } else if let Some((n, v)) = line.split_once(':') {
                headers.push((n.to_string(), v.trim().to_string()));
            }
        }
        Fake {
            headers,
            body: body.to_string(),
            from: Some("sender@example.org".into()),
            to: Some("me@example.com".into()),
            now_ms: 1_765_000_000_000,
            seen: HashSet::new(),
            folders: vec!["INBOX".into()],
        }
    }
}

impl Input for Fake {
    fn headers(&mut self) -> Vec<(String, String)> {
        self.headers.clone()
    }
    fn envelope_from(&mut self) -> Option<String> {
        self.from.clone()
    }
    fn envelope_to(&mut self) -> Option<String> {
        self.to.clone()
    }
    fn size(&mut self) -> u64 {
        (self
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum::<usize>()
            + 2
            + self.body.len()) as u64
    }
    fn body_text(&mut self) -> Vec<String> {
        vec![self.body.clone()]
    }
    fn body_raw(&mut self) -> String {
        self.body.clone()
    }
    fn body_parts(&mut self) -> Vec<(String, String)> {
        vec![("text/plain".into(), self.body.clone())]
    }
    fn mailbox_exists(&mut self, name: &str) -> bool {
        self.folders.iter().any(|f| f == name)
    }
    fn now_ms(&mut self) -> i64 {
        self.now_ms
    }
    fn duplicate_seen(&mut self, key: &str) -> bool {
        self.seen.contains(key)
    }
    fn environment(&mut self, item: &str) -> Option<String> {
        (item == "name").then(|| "mailpipe".to_string())
    }
}

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
