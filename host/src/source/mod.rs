//! Where messages come from. Offline: a Maildir or a folder of .eml files (`maildir`),
//! read-only. (IMAP arrives as another source with the same shape: a stable key per message,
//! its bytes, mailbox and flags.)

pub mod imap;
pub mod maildir;

use crate::message::Email;

/// One message offered by a source.
pub struct SourceMessage {
    /// Stable identity across runs: what the processed-message log is keyed by.
    pub key: String,
    /// Short name for people (file name, UID).
    pub label: String,
    pub email: Email,
}
