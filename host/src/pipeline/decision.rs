//! The result of running the pipeline over one message, and the one rule that resolves
//! conflicting dispositions (Sieve's): a message is stored in every folder a plugin filed or
//! copied it into, in its own mailbox on keep or implicit keep, and only dropped when a
//! plugin discarded it and nobody kept or filed it.

use serde::Serialize;

use crate::actions::Outgoing;
use crate::message::Email;
use crate::model::decision::{Action, Delivery, FolderTarget};
use crate::plugin::{CallFailure, KvReads, LoadedPlugin, LogLine};
use crate::state::KvWrite;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum PluginStatus {
    Applied {
        actions: Vec<Action>,
        notes: Vec<String>,
    },
    Failed {
        #[serde(serialize_with = "as_display")]
        error: CallFailure,
    },
    /// Not run: an earlier plugin said stop.
    Skipped,
}

fn as_display<S: serde::Serializer>(f: &CallFailure, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&f.to_string())
}

#[derive(Debug, Clone, Serialize)]
pub struct PluginReport {
    pub plugin: String,
    pub elapsed_us: u64,
    #[serde(flatten)]
    pub status: PluginStatus,
    #[serde(skip)]
    pub logs: Vec<LogLine>,
    /// Which script an `account_sieve` plugin ran: `Sieve script "NAME" version N of
    /// account A` (docs/JSON.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
}

impl PluginReport {
    pub fn skipped(plugin: &LoadedPlugin) -> PluginReport {
        PluginReport {
            plugin: plugin.name.to_string(),
            elapsed_us: 0,
            status: PluginStatus::Skipped,
            logs: Vec::new(),
            script: None,
        }
    }
}

/// The plugin state keys written by a run of decisions, by plugin.
#[derive(Debug, Default)]
pub struct WrittenState(std::collections::HashMap<String, std::collections::HashSet<String>>);

impl WrittenState {
    pub fn add(&mut self, d: &Decision) {
        for w in &d.kv {
            self.0
                .entry(w.plugin.clone())
                .or_default()
                .insert(w.key.clone());
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub message_key: String,
    pub message_id: Option<String>,
    /// Where the message is stored; empty means it is discarded.
    pub deliveries: Vec<Delivery>,
    /// Flags of the stored copies.
    pub flags: Vec<String>,
    /// Whether plugins changed the message's bytes.
    pub rewritten: bool,
    pub outgoing: Vec<Outgoing>,
    pub reports: Vec<PluginReport>,
    pub stopped_by: Option<String>,
    /// Refused at delivery (`refuse`, contract 0.4): the sending server is told no with this
    /// reason; nothing is stored or sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<Refusal>,
    #[serde(skip)]
    pub email: Email,
    #[serde(skip)]
    pub kv: Vec<KvWrite>,
    /// Whose state each namespace of `kv` is: (plugin name, namespace).
    #[serde(skip)]
    kv_owners: Vec<(String, String)>,
    /// What each plugin call read of its stored state (plugin, reads), to validate a
    /// decision made in parallel with the messages before it (`depends_on`).
    #[serde(skip)]
    pub reads: Vec<(String, KvReads)>,
    #[serde(skip)]
    pub(super) keep: bool,
    #[serde(skip)]
    pub(super) discard: bool,
    #[serde(skip)]
    files: Vec<Delivery>,
    #[serde(skip)]
    copies: Vec<Delivery>,
}

impl Decision {
    pub(super) fn new(message_key: &str, message_id: Option<String>) -> Decision {
        Decision {
            message_key: message_key.to_string(),
            message_id,
            deliveries: Vec::new(),
            flags: Vec::new(),
            rewritten: false,
            outgoing: Vec::new(),
            reports: Vec::new(),
            stopped_by: None,
            refused: None,
            email: Email::new(Vec::new(), "", Vec::new()),
            kv: Vec::new(),
            kv_owners: Vec::new(),
            reads: Vec::new(),
            keep: false,
            discard: false,
            files: Vec::new(),
            copies: Vec::new(),
        }
    }

    /// The decision for a message whose handling failed inside the host: kept where it is,
    /// unchanged, nothing sent or remembered, the failure reported.
    pub(super) fn host_failure(message_key: &str, original: &Email, what: String) -> Decision {
        let mut d = Decision::new(message_key, None);
        d.keep = true;
        d.reports.push(PluginReport {
            plugin: "(host)".into(),
            elapsed_us: 0,
            status: PluginStatus::Failed {
                error: CallFailure::Host(crate::plugin::bounded_text(&what)),
            },
            logs: Vec::new(),
            script: None,
        });
        d.finish(original.clone(), original)
    }

    /// Whether this decision may differ from the one it would have been after `earlier`
    /// (the state writes of messages before it, decided at the same time): a plugin read a
    /// key one of them wrote, or checked its quota while one of them wrote its state.
    pub fn depends_on(&self, earlier: &WrittenState) -> bool {
        self.reads
            .iter()
            .any(|(plugin, reads)| match earlier.0.get(plugin) {
                None => false,
                Some(keys) => reads.usage || reads.keys.iter().any(|k| keys.contains(k)),
            })
    }

    pub(super) fn file_into(&mut self, t: &FolderTarget, moves: bool) {
        let list = if moves {
            &mut self.files
        } else {
            &mut self.copies
        };
        list.push(Delivery {
            folder: t.folder.clone(),
            create: t.create,
        });
    }

    /// Keep what `plugin` wrote to its state while deciding this message.
    pub(super) fn add_kv(&mut self, plugin: &str, writes: Vec<KvWrite>) {
        if let Some(w) = writes.first() {
            self.kv_owners.push((plugin.to_string(), w.plugin.clone()));
        }
        self.kv.extend(writes);
    }

    /// `plugin` refused the message (`refuse`): no later plugin runs.
    pub(super) fn refuse(&mut self, plugin: &str, reason: &str) {
        self.refused = Some(Refusal {
            plugin: plugin.to_string(),
            reason: reason.to_string(),
        });
        self.stopped_by = Some(plugin.to_string());
    }

    pub(super) fn finish(mut self, email: Email, original: &Email) -> Decision {
        if self.refused.is_some() {
            self.drop_mail_about_refused();
            self.email = email;
            return self;
        }
        let own = Delivery {
            folder: email.mailbox.clone(),
            create: false,
        };
        let implicit_keep = !self.discard && self.files.is_empty();
        let mut deliveries = Vec::new();
        if self.keep || implicit_keep {
            deliveries.push(own);
        }
        deliveries.append(&mut self.files);
        deliveries.append(&mut self.copies);
        self.deliveries = dedupe(deliveries);
        self.flags = email.flags.clone();
        // Unchanged bytes are still the original's buffer: no need to compare them.
        let same_buffer =
            email.raw.as_ptr() == original.raw.as_ptr() && email.raw.len() == original.raw.len();
        self.rewritten = !same_buffer && email.raw != original.raw;
        self.email = email;
        self
    }

    /// The same decision, but storing the message only in its own mailbox: for when the
    /// decided folders cannot be written.
    pub fn kept_in_own_mailbox(&self) -> Decision {
        let mut d = self.clone();
        d.deliveries = vec![Delivery {
            folder: d.email.mailbox.clone(),
            create: true,
        }];
        d
    }

    /// A refused message is neither stored nor answered (its sender gets the sending
    /// server's bounce). A plugin whose mail is dropped forgets it too: what it wrote to
    /// remember it (a vacation's "answered") would keep it from answering the sender's next
    /// message.
    fn drop_mail_about_refused(&mut self) {
        let dropped: std::collections::HashSet<String> =
            self.outgoing.drain(..).map(|o| o.plugin).collect();
        let namespaces: std::collections::HashSet<&String> = self
            .kv_owners
            .iter()
            .filter(|(plugin, _)| dropped.contains(plugin))
            .map(|(_, namespace)| namespace)
            .collect();
        self.kv.retain(|w| !namespaces.contains(&w.plugin));
        for r in &mut self.reports {
            if let PluginStatus::Applied { notes, .. } = &mut r.status {
                if dropped.contains(&r.plugin) {
                    notes.push(
                        "not sent: the message was refused at delivery; its state changes for this message were not kept"
                            .into(),
                    );
                }
            }
        }
        self.deliveries.clear();
    }

    /// Dropped by the plugins (a refused message is not dropped: it goes back to its sender).
    pub fn discarded(&self) -> bool {
        self.deliveries.is_empty() && self.refused.is_none()
    }

    pub fn failed_plugins(&self) -> impl Iterator<Item = &PluginReport> {
        self.reports
            .iter()
            .filter(|r| matches!(r.status, PluginStatus::Failed { .. }))
    }
}

/// Who refused a message at delivery, and the reason given to the sending server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refusal {
    pub plugin: String,
    pub reason: String,
}

impl Refusal {
    /// The reason as the text of an SMTP/LMTP reply line: one line of printable ASCII
    /// (line breaks and tabs become spaces, other characters "?"), at most 400 bytes, never
    /// empty.
    pub fn reply_text(&self) -> String {
        let mut out = String::new();
        for c in self.reason.chars() {
            let c = match c {
                ' ' | '\t' | '\r' | '\n' => ' ',
                c if c.is_ascii_graphic() => c,
                _ => '?',
            };
            if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
                continue;
            }
            if out.len() >= MAX_REPLY_TEXT {
                break;
            }
            out.push(c);
        }
        let out = out.trim_end();
        if out.is_empty() {
            "refused by the recipient's filter".to_string()
        } else {
            out.to_string()
        }
    }
}

/// The longest refusal text sent (an SMTP reply line is at most 512 bytes, RFC 5321 4.5.3.1.5).
const MAX_REPLY_TEXT: usize = 400;

fn dedupe(list: Vec<Delivery>) -> Vec<Delivery> {
    let mut out: Vec<Delivery> = Vec::new();
    for d in list {
        let same = |a: &str, b: &str| {
            a == b || (a.eq_ignore_ascii_case("INBOX") && b.eq_ignore_ascii_case("INBOX"))
        };
        match out.iter_mut().find(|x| same(&x.folder, &d.folder)) {
            Some(x) => x.create |= d.create,
            None => out.push(d),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(keep: bool, discard: bool, files: &[&str], copies: &[&str]) -> Vec<String> {
        let mut d = Decision::new("k", None);
        d.keep = keep;
        d.discard = discard;
        for f in files {
            d.file_into(
                &FolderTarget {
                    folder: f.to_string(),
                    create: true,
                },
                true,
            );
        }
        for c in copies {
            d.file_into(
                &FolderTarget {
                    folder: c.to_string(),
                    create: false,
                },
                false,
            );
        }
        let email = Email::new(b"Subject: x\r\n\r\n".to_vec(), "INBOX", vec![]);
        d.finish(email.clone(), &email)
            .deliveries
            .into_iter()
            .map(|x| x.folder)
            .collect()
    }

    #[test]
    fn implicit_keep_and_its_cancellation() {
        assert_eq!(decide(false, false, &[], &[]), ["INBOX"], "implicit keep");
        assert_eq!(
            decide(false, false, &["A"], &[]),
            ["A"],
            "file-into cancels it"
        );
        assert_eq!(
            decide(false, false, &[], &["A"]),
            ["INBOX", "A"],
            "copy-into does not"
        );
        assert_eq!(
            decide(false, true, &[], &[]),
            Vec::<String>::new(),
            "discard alone drops"
        );
    }

    #[test]
    fn a_refusal_is_one_line_of_printable_ascii() {
        let r = |reason: &str| {
            Refusal {
                plugin: "p".into(),
                reason: reason.into(),
            }
            .reply_text()
        };
        assert_eq!(
            r("No lotteries,\r\n\tthank you.\r\n"),
            "No lotteries, thank you."
        );
        assert_eq!(r("Grüße\0!"), "Gr??e?!");
        assert_eq!(r(" \r\n "), "refused by the recipient's filter");
        assert_eq!(r(&"x".repeat(5000)).len(), MAX_REPLY_TEXT);
    }

    #[test]
    fn storing_wins_over_discarding() {
        assert_eq!(decide(true, true, &[], &[]), ["INBOX"]);
        assert_eq!(decide(false, true, &["A"], &[]), ["A"]);
        assert_eq!(decide(false, true, &[], &["A"]), ["A"]);
        assert_eq!(
            decide(true, false, &["A", "B", "A"], &["inbox"]),
            ["INBOX", "A", "B"],
            "merged"
        );
    }
}
