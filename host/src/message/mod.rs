//! A message travelling through the pipeline: its raw bytes (rewritten in place by header
//! actions), the mailbox it came from and its flags. Parsing into the plugin's view lives in
//! `view`, byte-level header editing in `rewrite`, RFC 2047/5322 encoding helpers in `encode`.

pub mod address;
pub mod encode;
pub mod rewrite;
pub mod view;

/// One message as the host holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Email {
    /// The RFC 5322 bytes, as received or as rewritten by plugins.
    pub raw: Vec<u8>,
    /// The mailbox it came from, e.g. "INBOX".
    pub mailbox: String,
    /// IMAP system flags ("\\Seen") and keywords ("$Label1"), no duplicates, in order.
    pub flags: Vec<String>,
}

impl Email {
    pub fn new(raw: Vec<u8>, mailbox: impl Into<String>, flags: Vec<String>) -> Email {
        let mut email = Email {
            raw,
            mailbox: mailbox.into(),
            flags: Vec::new(),
        };
        email.add_flags(&flags);
        email
    }

    pub fn add_flags(&mut self, flags: &[String]) {
        for f in flags {
            if !self.flags.iter().any(|x| x.eq_ignore_ascii_case(f)) {
                self.flags.push(f.clone());
            }
        }
    }

    pub fn remove_flags(&mut self, flags: &[String]) {
        self.flags
            .retain(|x| !flags.iter().any(|f| f.eq_ignore_ascii_case(x)));
    }

    /// Header fields, decoded (see `view::decoded_headers`).
    pub fn headers(&self) -> Vec<(String, String)> {
        view::decoded_headers(&self.raw)
    }

    /// The first value of each of `names` (decoded), in one scan of the header block: no
    /// MIME parsing, only the matching fields are decoded.
    pub fn first_values<const N: usize>(&self, names: [&str; N]) -> [Option<String>; N] {
        let block = rewrite::HeaderBlock::parse(&self.raw);
        names.map(|n| block.values(n).next().map(view::decode_value))
    }

    /// First value of a header, decoded, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<String> {
        rewrite::HeaderBlock::parse(&self.raw)
            .values(name)
            .next()
            .map(view::decode_value)
    }
}
