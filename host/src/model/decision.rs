//! What a plugin may decide about a message: the actions of the plugin contract, in the
//! host's own types (each contract version's bindings convert into them at the plugin edge),
//! where the message goes once decided (`Delivery`), and the levels of a plugin's log lines.

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
    Stop,
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
