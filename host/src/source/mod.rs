//! Where messages come from, each source speaking its protocol only: a Maildir or a folder
//! of .eml files, read-only (`maildir`); an IMAP server (`imap`: connect, discover, fetch,
//! carry out a plan on the server); a POP3 mailbox (`pop3`: list, fetch, delete). Every message a source gives has a stable key
//! (`model::key`), its bytes, mailbox and flags (`SourceMessage`; IMAP's `Fetched` adds the
//! UID and INTERNALDATE its plans need). The jobs (`run`) drive the sources through the
//! pipeline; a source never calls the pipeline, SMTP or metrics itself.

pub mod imap;
pub mod lmtp;
pub mod maildir;
pub mod pop3;

use crate::message::Email;

/// One message offered by a source.
pub struct SourceMessage {
    /// Stable identity across runs: what the processed-message log is keyed by.
    pub key: String,
    /// Short name for people (file name, UID).
    pub label: String,
    pub email: Email,
}
