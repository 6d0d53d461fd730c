//! What must happen to one message on the IMAP server, derived from its decision
//! and stored in the state store before anything is done (so a crash re-applies it instead of
//! forgetting it). Applying plans is `apply`'s job.

use serde::{Deserialize, Serialize};

use crate::message::encode::base64;
use crate::model::decision::{Delivery, ForwardSpec};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub uid: u32,
    /// The message stays in its mailbox (keep or implicit keep).
    pub keep: bool,
    /// Other folders it goes to: (UTF-8 name, create when missing).
    pub targets: Vec<(String, bool)>,
    pub flags_before: Vec<String>,
    pub flags_after: Vec<String>,
    /// Set when plugins rewrote the message: the new bytes (base64), appended to every
    /// destination, after which the original is removed.
    pub rewritten: Option<String>,
    /// `rewritten` holds only the new header block (only headers were fetched): the body
    /// is read from the original (BODY.PEEK[TEXT]) when the plan is applied.
    #[serde(default)]
    pub body_from_original: bool,
    /// The original's INTERNALDATE, kept on appended copies.
    pub internal_date: Option<String>,
    /// Forwards decided on the header block only: built again from the complete message
    /// before anything moves it (see `forwards`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwards: Vec<ForwardSpec>,
    /// Steps already carried out by an earlier attempt ("flags", "copy:FOLDER"), skipped
    /// when the plan is tried again after a refusal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub done: Vec<String>,
    /// Attempts that a server refused, the last refusal, and when to try again (ms).
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default)]
    pub next_try_ms: u64,
}

impl Plan {
    /// The plan for a message of mailbox `own` whose decision stores it in `deliveries`
    /// with `flags_after`.
    pub fn new(
        uid: u32,
        own: &str,
        deliveries: &[Delivery],
        flags_before: Vec<String>,
        flags_after: Vec<String>,
    ) -> Plan {
        let keep = deliveries.iter().any(|x| {
            x.folder == *own
                || (x.folder.eq_ignore_ascii_case("INBOX") && own.eq_ignore_ascii_case("INBOX"))
        });
        Plan {
            uid,
            keep,
            targets: deliveries
                .iter()
                .filter(|x| {
                    !(x.folder == *own
                        || (x.folder.eq_ignore_ascii_case("INBOX")
                            && own.eq_ignore_ascii_case("INBOX")))
                })
                .map(|x| (x.folder.clone(), x.create))
                .collect(),
            flags_before,
            flags_after,
            rewritten: None,
            body_from_original: false,
            internal_date: None,
            forwards: Vec::new(),
            done: Vec::new(),
            attempts: 0,
            last_error: None,
            next_try_ms: 0,
        }
    }

    /// Plugins rewrote the message into `new_raw` (only its header block when
    /// `body_from_original`): appended with the original's INTERNALDATE `internal_date`.
    pub fn rewritten(
        mut self,
        new_raw: Option<&[u8]>,
        internal_date: Option<String>,
        body_from_original: bool,
    ) -> Plan {
        self.rewritten = new_raw.map(base64);
        self.body_from_original = new_raw.is_some() && body_from_original;
        self.internal_date = internal_date;
        self
    }

    pub fn is_done(&self, step: &str) -> bool {
        self.done.iter().any(|d| d == step)
    }

    pub fn discarded(&self) -> bool {
        !self.keep && self.targets.is_empty()
    }

    /// Nothing to do on the server.
    pub fn is_noop(&self) -> bool {
        self.keep
            && self.forwards.is_empty()
            && self.targets.is_empty()
            && self.rewritten.is_none()
            && same_flags(&self.flags_before, &self.flags_after)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("plan serialises")
    }

    pub fn from_json(s: &str) -> Option<Plan> {
        serde_json::from_str(s).ok()
    }

    pub fn flags_added(&self) -> Vec<String> {
        minus(&self.flags_after, &self.flags_before)
    }

    pub fn flags_removed(&self) -> Vec<String> {
        minus(&self.flags_before, &self.flags_after)
    }
}

fn minus(a: &[String], b: &[String]) -> Vec<String> {
    a.iter()
        .filter(|x| !b.iter().any(|y| y.eq_ignore_ascii_case(x)))
        .cloned()
        .collect()
}

fn same_flags(a: &[String], b: &[String]) -> bool {
    minus(a, b).is_empty() && minus(b, a).is_empty()
}

/// Collapse UIDs into IMAP sequence sets ("1:5,7,9:12"), split so that no command line
/// gets near Dovecot's 64 KB limit.
pub fn uid_sets(uids: &[u32]) -> Vec<String> {
    const MAX_SET: usize = 16 * 1024;
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut sets = Vec::new();
    let mut current = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        let part = if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        };
        if !current.is_empty() && current.len() + part.len() + 1 > MAX_SET {
            sets.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(',');
        }
        current.push_str(&part);
        i += 1;
    }
    if !current.is_empty() {
        sets.push(current);
    }
    sets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_collapse_and_split() {
        assert_eq!(uid_sets(&[5, 1, 2, 3, 7, 9, 10, 11, 3]), ["1:3,5,7,9:11"]);
        assert!(uid_sets(&[]).is_empty());
        let every_other: Vec<u32> = (1..100_000).step_by(2).collect();
        let sets = uid_sets(&every_other);
        assert!(sets.len() > 1);
        assert!(sets.iter().all(|s| s.len() <= 16 * 1024));
        let count: usize = sets.iter().map(|s| s.split(',').count()).sum();
        assert_eq!(count, every_other.len());
    }
}
