//! What a message is made of as plugins and rules see it: addresses, header fields,
//! attachments, the envelope it came with, and how much of it a plugin needs. The host's own
//! types; the WIT bindings of each contract version convert to and from them at the plugin
//! edge (`plugin::bindings`).

/// A mailbox address with its display name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Address {
    pub name: Option<String>,
    pub address: String,
}

/// One header field, its value unfolded and decoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// One attachment's description (its bytes are read on demand).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attachment {
    pub filename: Option<String>,
    pub content_type: String,
    pub size: u64,
}

/// The SMTP envelope a message arrived with, where the source knows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope {
    pub return_path: Option<String>,
    pub recipients: Vec<String>,
}

/// How much of a message a plugin reads: the host fetches no more than the most any plugin
/// of the pipeline needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Needs {
    Headers,
    Bodies,
    Raw,
}
