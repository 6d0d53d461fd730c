//! Why this file exists: what a script decided about one message, as plain data. The
//! interpreter fills it; the plugin turns it into contract actions (and a test reads it). No
//! effect happens here: Sieve decides, the host acts.

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    /// The implicit keep is still in force (nothing cancelled it).
    pub implicit_keep: bool,
    /// Flags of the message under the implicit keep (imap4flags' internal variable at the end).
    pub implicit_flags: Vec<String>,
    /// Explicit stores, in order: `keep` (folder None) and `fileinto`.
    pub stores: Vec<Store>,
    pub redirects: Vec<String>,
    /// An explicit `discard` ran.
    pub discarded: bool,
    /// `reject`/`ereject` at delivery: refuse the message with this reason.
    pub reject: Option<String>,
    pub vacation: Option<VacationReply>,
    /// enotify's notifications (mailto), each once.
    pub notifications: Vec<Notification>,
    /// Changes to the header (editheader), for the host to carry out.
    pub header_edits: Vec<HeaderEdit>,
    /// Keys that `duplicate` marked as seen, with how long to remember them (seconds).
    pub duplicate_marks: Vec<(String, u64)>,
    /// Included scripts that ran, and `:once` bookkeeping.
    pub trace: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Store {
    /// None: the mailbox the message is in (`keep`).
    pub folder: Option<String>,
    pub create: bool,
    pub flags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VacationReply {
    /// The envelope sender the reply goes to.
    pub to: String,
    pub subject: String,
    pub from: Option<String>,
    pub reason: String,
    /// The reason is a MIME entity (`:mime`), not plain text.
    pub mime: bool,
    /// Identifies this vacation command: one reply per sender per period and handle.
    pub handle: String,
    pub period_seconds: u64,
}

/// One `notify` (RFC 5435) by mail (RFC 5436): a new message about this one.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub to: Vec<String>,
    /// The URI's subject, else `:message`; None: the host's default.
    pub subject: Option<String>,
    pub text: String,
    /// `:importance`: 1 high, 2 normal, 3 low.
    pub importance: u8,
    /// `:from`, which the host does not honour (it writes From itself).
    pub from: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HeaderEdit {
    /// Append a field (addheader; `last` false asks for the top, which the host does not
    /// offer: the field is appended).
    Add {
        name: String,
        value: String,
        last: bool,
    },
    /// Remove every field called `name`, then append `survivors` (the fields of that name a
    /// `deleteheader` with patterns or `:index` left in place, in order).
    Replace {
        name: String,
        survivors: Vec<String>,
    },
}
