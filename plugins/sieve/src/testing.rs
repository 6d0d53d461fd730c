//! Why this file exists: an `Input` over a message written as text, for the interpreter's own
//! tests and the fuzz target: headers split and unfolded the simple way (no RFC 2047
//! decoding), a fixed envelope, clock and folder list, a set of "seen" duplicate keys. Not a
//! message parser for real mail: the plugin reads real mail through the host.

use std::collections::HashSet;

use crate::Input;

pub struct TextMessage {
    /// The message as given (line ends as they were).
    pub raw: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub now_ms: i64,
    pub seen: HashSet<String>,
    pub folders: Vec<String>,
    /// Being delivered now (`reject` can refuse it).
    pub at_delivery: bool,
}

impl TextMessage {
    pub fn new(given: &str) -> Self {
        let raw = given.replace("\r\n", "\n");
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
        TextMessage {
            raw: given.to_string(),
            headers,
            body: body.to_string(),
            from: Some("sender@example.org".into()),
            to: Some("me@example.com".into()),
            now_ms: 1_765_000_000_000,
            seen: HashSet::new(),
            folders: vec!["INBOX".into()],
            at_delivery: false,
        }
    }
}

impl Input for TextMessage {
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
    fn raw_message(&mut self) -> Vec<u8> {
        self.raw.as_bytes().to_vec()
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
    fn at_delivery(&mut self) -> bool {
        self.at_delivery
    }
}
