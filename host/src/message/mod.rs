//! A message travelling through the pipeline: its raw bytes (rewritten in place by header
//! actions), the mailbox it came from and its flags. Parsing into the plugin's view lives in
//! `view`, reading it part by part (shared by the plugins) in `readable`, byte-level header editing in `rewrite`, RFC 2047/5322 encoding helpers in `encode`.

pub mod encode;
pub mod header;
pub mod rewrite;
pub mod view;

/// One message as the host holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Email {
    /// The RFC 5322 bytes, as received or as rewritten by plugins. Shared, not copied, by
    /// every clone of the message (the pipeline's working copy, what the plugins read, the
    /// decision): a rewrite makes new bytes, it never changes these.
    pub raw: bytes::Bytes,
    /// The mailbox it came from, e.g. "INBOX".
    pub mailbox: String,
    /// IMAP system flags ("\\Seen") and keywords ("$Label1"), no duplicates, in order.
    pub flags: Vec<String>,
    /// When it arrived in the mailbox (ms since the epoch): IMAP's INTERNALDATE, a file's
    /// modification time offline; None when unknown. No automatic mail is sent about mail
    /// that arrived before a plugin was enabled (`actions::since`).
    pub arrived_ms: Option<u64>,
}

/// Whether `raw` looks like a message at all rather than a binary file: at most 1 in 20 of
/// its first 4 KiB are control bytes other than tab, line ends and form feed. Malformed mail
/// (no header, a NUL here and there, 8-bit text) passes; an executable or an image does not.
/// What `mailpipe test` asks before deciding on a file.
pub fn looks_like_message(raw: &[u8]) -> bool {
    let head = &raw[..raw.len().min(4096)];
    let control = head
        .iter()
        .filter(|&&b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c)) || b == 0x7f)
        .count();
    control * 20 <= head.len()
}

impl Email {
    pub fn new(
        raw: impl Into<bytes::Bytes>,
        mailbox: impl Into<String>,
        flags: Vec<String>,
    ) -> Email {
        let mut email = Email {
            raw: raw.into(),
            mailbox: mailbox.into(),
            flags: Vec::new(),
            arrived_ms: None,
        };
        email.add_flags(&flags);
        email
    }

    /// The same message, known to have arrived at `arrived_ms`.
    pub fn arrived_at(mut self, arrived_ms: Option<u64>) -> Email {
        self.arrived_ms = arrived_ms;
        self
    }

    /// Add flags not present yet (compared ASCII case-insensitively); linear in the
    /// number of flags.
    pub fn add_flags(&mut self, flags: &[String]) {
        let mut seen: std::collections::HashSet<String> =
            self.flags.iter().map(|f| f.to_ascii_lowercase()).collect();
        for f in flags {
            if seen.insert(f.to_ascii_lowercase()) {
                self.flags.push(f.clone());
            }
        }
    }

    pub fn remove_flags(&mut self, flags: &[String]) {
        let gone: std::collections::HashSet<String> =
            flags.iter().map(|f| f.to_ascii_lowercase()).collect();
        self.flags
            .retain(|x| !gone.contains(&x.to_ascii_lowercase()));
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

    /// The first value of each of `names` as it is in the message (still encoded and
    /// folded; invalid UTF-8 replaced), in one scan of the header block.
    pub fn first_raw_values<const N: usize>(&self, names: [&str; N]) -> [Option<String>; N] {
        let block = rewrite::HeaderBlock::parse(&self.raw);
        names.map(|n| {
            block
                .values(n)
                .next()
                .map(|v| String::from_utf8_lossy(v).into_owned())
        })
    }

    /// When the mailbox's own server took the message in, in ms since the epoch: the date of
    /// the topmost Received field (the one that server wrote; anyone may have written those
    /// below it). None without one, or with a date that cannot be read.
    pub fn received_at(&self) -> Option<u64> {
        let [value] = self.first_raw_values(["Received"]);
        let value = value?;
        let (_, date) = value.rsplit_once(';')?;
        let date = date.split_whitespace().collect::<Vec<_>>().join(" ");
        let seconds = mail_parser::DateTime::parse_rfc822(&date)?.to_timestamp();
        u64::try_from(seconds).ok()?.checked_mul(1000)
    }

    /// First value of a header, decoded, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<String> {
        rewrite::HeaderBlock::parse(&self.raw)
            .values(name)
            .next()
            .map(view::decode_value)
    }
}
