//! The record kept for every generated message from the moment it is decided until the
//! server (or the offline outbox folder) has it. Its id is derived from (message, plugin,
//! action), so deciding the same thing twice yields the same id and is sent once.

use serde::{Deserialize, Serialize};

use super::StateError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutboxStatus {
    Queued,
    Sent,
    /// Refused permanently; kept for the user to see, never retried.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub id: String,
    pub message_key: String,
    pub plugin: String,
    /// Envelope sender; empty for the null reverse-path of auto-replies (RFC 3834).
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub status: OutboxStatus,
    pub attempts: u32,
    pub queued_at_ms: u64,
    /// Not to be tried before this time (backoff after a transient failure).
    #[serde(default)]
    pub next_attempt_ms: u64,
    pub last_error: Option<String>,
    /// Not complete yet: a forward decided on the original's header block only, waiting for
    /// the body to be read when its plan is carried out (`run::imap::forwards`). Never
    /// sent while held.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
    /// An automatic answer (a reply, a notification), sent at most once: one that a crash
    /// leaves in doubt is not sent again (`sent_log`). Forwards are sent at least once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub automatic: bool,
}

impl OutboxEntry {
    pub fn new(
        id: &str,
        message_key: &str,
        plugin: &str,
        mail_from: &str,
        rcpt_to: Vec<String>,
        queued_at_ms: u64,
    ) -> OutboxEntry {
        OutboxEntry {
            id: id.into(),
            message_key: message_key.into(),
            plugin: plugin.into(),
            mail_from: mail_from.into(),
            rcpt_to,
            status: OutboxStatus::Queued,
            attempts: 0,
            queued_at_ms,
            next_attempt_ms: 0,
            last_error: None,
            held: false,
            automatic: false,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("outbox entry serialises")
    }

    pub fn from_json(s: &str) -> Result<OutboxEntry, StateError> {
        serde_json::from_str(s).map_err(|e| StateError::Corrupt(format!("outbox entry: {e}")))
    }
}
