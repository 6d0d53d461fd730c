//! What a plugin may decide about a message: the actions of the plugin contract, in the
//! host's own types (each contract version's bindings convert into them at the plugin edge),
//! where the message goes once decided (`Delivery`), and the levels of a plugin's log lines.

use serde_json::json;

use super::message::Header;

/// A folder to file or copy into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderTarget {
    pub folder: String,
    /// Create the folder when missing.
    pub create: bool,
}

/// An automatic reply to the message's sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub subject: Option<String>,
    pub text: String,
    pub html: Option<String>,
    pub headers: Vec<Header>,
}

/// How a message is forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardMode {
    /// Resent as it is, with Resent-* fields.
    Redirect,
    /// Wrapped as a message/rfc822 attachment of a new message.
    Attachment,
}

/// Forward the message to others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub to: Vec<String>,
    pub mode: ForwardMode,
    pub note: Option<String>,
}

/// A new message about this one to other addresses (contract 0.3, Sieve's enotify).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub to: Vec<String>,
    pub subject: Option<String>,
    pub text: String,
    pub headers: Vec<Header>,
}

/// One action a plugin returns; the host validates it and carries it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Keep,
    Discard,
    FileInto(FolderTarget),
    CopyInto(FolderTarget),
    AddFlags(Vec<String>),
    RemoveFlags(Vec<String>),
    SetHeader(Header),
    AddHeader(Header),
    RemoveHeader(String),
    SetSubject(String),
    Reply(Reply),
    Forward(Forward),
    Notify(Notification),
    /// At delivery only (contract 0.4): do not take the message; the reason goes to the
    /// sending server (Sieve's reject and ereject).
    Refuse(String),
    Stop,
}

impl Action {
    /// One action as JSON: `{"action": "file-into", "folder": "...", "create": true}` etc.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Action::Keep => json!({"action": "keep"}),
            Action::Discard => json!({"action": "discard"}),
            Action::Stop => json!({"action": "stop"}),
            Action::FileInto(t) => {
                json!({"action": "file-into", "folder": t.folder, "create": t.create})
            }
            Action::CopyInto(t) => {
                json!({"action": "copy-into", "folder": t.folder, "create": t.create})
            }
            Action::AddFlags(f) => json!({"action": "add-flags", "flags": f}),
            Action::RemoveFlags(f) => json!({"action": "remove-flags", "flags": f}),
            Action::SetHeader(h) => {
                json!({"action": "set-header", "name": h.name, "value": h.value})
            }
            Action::AddHeader(h) => {
                json!({"action": "add-header", "name": h.name, "value": h.value})
            }
            Action::RemoveHeader(n) => json!({"action": "remove-header", "name": n}),
            Action::SetSubject(s) => json!({"action": "set-subject", "subject": s}),
            Action::Reply(r) => json!({
                "action": "reply",
                "subject": r.subject,
                "text": r.text,
                "html": r.html,
                "headers": r.headers.iter().map(|h| json!({"name": h.name, "value": h.value})).collect::<Vec<_>>(),
            }),
            Action::Forward(f) => json!({
                "action": "forward",
                "to": f.to,
                "mode": match f.mode { ForwardMode::Redirect => "redirect", ForwardMode::Attachment => "attachment" },
                "note": f.note,
            }),
            Action::Refuse(reason) => json!({"action": "refuse", "reason": reason}),
            Action::Notify(n) => json!({
                "action": "notify",
                "to": n.to,
                "subject": n.subject,
                "text": n.text,
                "headers": n.headers.iter().map(|h| json!({"name": h.name, "value": h.value})).collect::<Vec<_>>(),
            }),
        }
    }
}

/// Actions serialise as their documented JSON form (docs/JSON.md).
impl serde::Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// Everything a forward is built from besides the original message, kept so the forward can
/// be built again from the complete original when the decision was made on its header block
/// only (an IMAP pass whose plugins all need only headers; see `run::imap::forwards`; built by `actions::forward`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ForwardSpec {
    pub id: String,
    /// Wrap the original as an attachment instead of resending it.
    pub attach: bool,
    pub to: Vec<String>,
    pub note: Option<String>,
    pub from_address: String,
    pub from_name: Option<String>,
    pub now_ms: i64,
}

/// One place a decided message is stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Delivery {
    pub folder: String,
    /// Create the folder when missing.
    pub create: bool,
}

/// The level of one line a plugin logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}
