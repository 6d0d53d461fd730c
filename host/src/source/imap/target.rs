//! Delivered mail stored on an IMAP server (`[account.deliver.imap]`) instead of in a
//! Maildir: what `mailpipe deliver`, LMTP and POP3 (getmail's use: a POP3 box read into an
//! IMAP account) store with APPEND.
//!
//! APPEND is not idempotent: a connection lost after the server stored a copy but before it
//! said so leaves no way to know. So every copy carries a marker field derived from the
//! delivery key (`MARKER_HEADER`), the plan (folders, flags, the bytes) is committed before the
//! first APPEND (`run::deliver`), and an attempt that resumes a plan looks for the marker in
//! each folder before it appends there again. The marker is the one a rewritten copy carries
//! (`X-Mailpipe-Rewritten`), committed as processed the same way: an IMAP account reading
//! that server skips the copies instead of deciding them again.

use serde::{Deserialize, Serialize};

use super::apply::{append, create_folder, has_copy};
use super::connect::{connect_with, ImapError, ImapSession};
use crate::config::ServerConfig;
use crate::message::rewrite::crlf_message;

/// The field each stored copy carries: a keyed hash of the delivery key.
pub const MARKER_HEADER: &str = super::REWRITTEN_HEADER;

/// What one delivery stores: every copy, as committed before the first APPEND.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppendPlan {
    /// (folder, create when missing); the first is where the message was delivered to.
    pub folders: Vec<(String, bool)>,
    pub flags: Vec<String>,
    /// The marker's value (`MARKER_HEADER`).
    pub marker: String,
    /// The message as stored: CRLF line ends, the marker field first (base64 in the JSON).
    #[serde(with = "b64")]
    pub raw: Vec<u8>,
}

impl AppendPlan {
    /// The plan for `raw` into `folders` with `flags`, marked with `marker` (hex).
    pub fn new(
        raw: &[u8],
        folders: Vec<(String, bool)>,
        flags: Vec<String>,
        marker: String,
    ) -> Self {
        let mut marked = format!("{MARKER_HEADER}: {marker}\r\n").into_bytes();
        marked.extend_from_slice(&crlf_message(raw));
        AppendPlan {
            folders,
            flags,
            marker,
            raw: marked,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a plan serialises")
    }

    pub fn from_json(text: &str) -> Option<AppendPlan> {
        serde_json::from_str(text).ok()
    }
}

/// An account's IMAP server for delivered mail, with one session kept between deliveries.
pub struct ImapAppend {
    server: ServerConfig,
    max_message: u64,
    session: tokio::sync::Mutex<Option<ImapSession>>,
}

impl ImapAppend {
    pub fn new(server: ServerConfig, max_message: u64) -> ImapAppend {
        ImapAppend {
            server,
            max_message,
            session: tokio::sync::Mutex::new(None),
        }
    }

    /// Store every copy `plan` asks for; `resumed`: an earlier attempt may have stored some,
    /// so each folder is searched for the marker first. A folder that does not exist and may
    /// not be created (or cannot be) gets no copy; the message then goes to INBOX, as the
    /// Maildir store keeps it in its own mailbox. The folders stored into.
    pub async fn store(&self, plan: &AppendPlan, resumed: bool) -> Result<Vec<String>, ImapError> {
        let mut guard = self.session.lock().await;
        if guard.is_none() {
            *guard = Some(connect_with(&self.server, self.max_message).await?);
        }
        let session = guard.as_mut().expect("connected above");
        let result = store_all(session, plan, resumed).await;
        if result.is_err() {
            // The session may be in any state: the next delivery connects again.
            if let Some(mut s) = guard.take() {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), s.logout()).await;
            }
        }
        result
    }
}

async fn store_all(
    session: &mut ImapSession,
    plan: &AppendPlan,
    resumed: bool,
) -> Result<Vec<String>, ImapError> {
    let flags = format!("({})", plan.flags.join(" "));
    let mut stored: Vec<String> = Vec::new();
    let mut missing: Vec<String> = Vec::new();
    for (folder, create) in &plan.folders {
        if resumed && has_copy(session, folder, &plan.marker).await? {
            stored.push(folder.clone());
            continue;
        }
        match append(session, folder, &flags, None, &plan.raw).await {
            Ok(()) => stored.push(folder.clone()),
            Err(ImapError::Refused { .. }) if *create => {
                // Most likely missing: create it ("already exists" from a concurrent client
                // is fine) and try once more.
                match create_folder(session, folder).await {
                    Ok(()) => {}
                    Err(ImapError::Refused { message, .. }) => {
                        tracing::warn!("IMAP target: CREATE {folder:?} refused: {message}");
                        missing.push(folder.clone());
                        continue;
                    }
                    Err(e) => return Err(e),
                }
                append(session, folder, &flags, None, &plan.raw).await?;
                stored.push(folder.clone());
            }
            Err(ImapError::Refused { message, .. }) => {
                tracing::warn!("IMAP target: APPEND to {folder:?} refused: {message}");
                missing.push(folder.clone());
            }
            Err(e) => return Err(e),
        }
    }
    if stored.is_empty() && !missing.is_empty() {
        // Nowhere it was meant to go: INBOX rather than nowhere.
        let inbox = "INBOX".to_string();
        if !(resumed && has_copy(session, &inbox, &plan.marker).await?) {
            append(session, &inbox, &flags, None, &plan.raw).await?;
        }
        stored.push(inbox);
    }
    Ok(stored)
}

/// Bytes as base64 text in JSON.
mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_marks_the_message_and_survives_its_json() {
        let plan = AppendPlan::new(
            b"From: a@example.org\nSubject: x\n\nbody\n",
            vec![("INBOX".into(), false), ("Lists/rust".into(), true)],
            vec!["\\Seen".into()],
            "00ff".into(),
        );
        assert!(plan
            .raw
            .starts_with(b"X-Mailpipe-Rewritten: 00ff\r\nFrom: a@example.org\r\n"));
        assert!(plan.raw.ends_with(b"\r\n\r\nbody\r\n"));
        assert_eq!(AppendPlan::from_json(&plan.to_json()), Some(plan));
        assert_eq!(AppendPlan::from_json("{"), None);
    }
}
