//! What the host does with a plugin's decisions, one file per kind of effect, sieve-rs style:
//! checks (`validate`, `recipients`, `loop_guard`, `since`) and builders of outgoing mail (`reply`,
//! `forward`, `notify`). None of these do I/O; the pipeline collects, the sinks act.

pub mod forward;
pub mod loop_guard;
pub mod notify;
pub mod recipients;
pub mod reply;
pub mod since;
pub mod validate;

use sha2::{Digest, Sha256};

/// The loop marker every generated message carries; mail that has it is never answered or
/// forwarded again.
pub const LOOP_HEADER: &str = "X-Mailpipe-Loop";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutgoingKind {
    Reply,
    Redirect,
    ForwardAttachment,
    Notify,
}

impl OutgoingKind {
    pub fn label(&self) -> &'static str {
        match self {
            OutgoingKind::Reply => "reply",
            OutgoingKind::Redirect => "redirect",
            OutgoingKind::ForwardAttachment => "forward (attached)",
            OutgoingKind::Notify => "notification",
        }
    }
}

/// A complete outgoing message as the host would send it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Outgoing {
    /// Stable id derived from (message, plugin, action index): the idempotency key.
    pub id: String,
    pub plugin: String,
    pub kind: OutgoingKind,
    /// Envelope sender; empty is the null reverse-path `<>`.
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    #[serde(serialize_with = "as_text")]
    pub raw: Vec<u8>,
    /// For forwards: how to build them again from the complete original.
    #[serde(skip)]
    pub forward: Option<crate::model::decision::ForwardSpec>,
}

fn as_text<S: serde::Serializer>(raw: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(raw))
}

/// Deterministic id of the outgoing message a given action produces.
pub fn outgoing_id(message_key: &str, plugin: &str, action_index: usize) -> String {
    let mut h = Sha256::new();
    h.update(message_key.as_bytes());
    h.update([0]);
    h.update(plugin.as_bytes());
    h.update([0]);
    h.update(action_index.to_be_bytes());
    hex::encode(&h.finalize()[..16])
}

/// The domain part of an address, for Message-IDs.
pub fn domain_of(addr: &str) -> &str {
    addr.rsplit_once('@').map_or("localhost", |(_, d)| d)
}
