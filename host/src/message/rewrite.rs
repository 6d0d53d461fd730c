//! Byte-level editing of a message's header block for set-header / add-header /
//! remove-header / set-subject. Everything not touched is kept byte for byte (the body, the
//! other fields, their folding and the message's own line endings), so a rewrite never
//! corrupts what the plugin did not ask to change.

use super::encode::crlf;
use super::header;

/// The header block split into fields, and the untouched rest. This is the one definition of
/// where a message's header block ends and which fields it has: the plugin's view
/// (`message::view`), the loop guard and every rewrite read it from here.
///
/// The rules: the block ends at the first line that holds nothing but whitespace (`CRLF`,
/// `LF`, a bare `CR` before the line end, spaces); a field starts with a name of printable
/// ASCII and a colon; a line starting with space or tab continues the field before it; any
/// other line inside the block ("stray") stays with the field before it, or, before the first
/// field, in a preamble that is kept but never read as a field. A message without a single
/// field has no header block: it is all body.
pub struct HeaderBlock<'a> {
    /// Stray lines before the first field, verbatim.
    preamble: &'a [u8],
    /// Each field's complete bytes: name, colon, folded value and its line ending.
    fields: Vec<&'a [u8]>,
    added: Vec<(usize, Vec<u8>)>,
    removed: Vec<bool>,
    /// Separator line and body, verbatim (empty when the message has no body).
    rest: &'a [u8],
    /// Whether the message had a header block at all.
    has_headers: bool,
    eol: &'static str,
}

impl<'a> HeaderBlock<'a> {
    pub fn parse(raw: &'a [u8]) -> HeaderBlock<'a> {
        // The message's own line ending, as its first line has it (no scan of the body).
        let eol = match memchr::memchr(b'\n', raw) {
            Some(i) if i == 0 || raw[i - 1] != b'\r' => "\n",
            _ => "\r\n",
        };
        let mut fields: Vec<&[u8]> = Vec::new();
        let mut preamble_end = 0;
        let mut pos = 0;
        while pos < raw.len() {
            let line_end = memchr::memchr(b'\n', &raw[pos..])
                .map(|i| pos + i + 1)
                .unwrap_or(raw.len());
            let line = &raw[pos..line_end];
            if line.iter().all(u8::is_ascii_whitespace) {
                break;
            }
            let continuation = matches!(line.first(), Some(b' ' | b'\t'));
            if is_field_start(line) && !continuation {
                fields.push(line);
            } else if let Some(last) = fields.last_mut() {
                // A continuation, or a stray line kept with the field before it.
                let start = last.as_ptr() as usize - raw.as_ptr() as usize;
                *last = &raw[start..line_end];
            } else {
                preamble_end = line_end;
            }
            pos = line_end;
        }
        if fields.is_empty() {
            // Not a header block at all: the whole message is body.
            return HeaderBlock {
                preamble: &[],
                fields,
                added: Vec::new(),
                removed: Vec::new(),
                rest: raw,
                has_headers: false,
                eol,
            };
        }
        let removed = vec![false; fields.len()];
        HeaderBlock {
            preamble: &raw[..preamble_end],
            fields,
            added: Vec::new(),
            removed,
            rest: &raw[pos..],
            has_headers: true,
            eol,
        }
    }

    /// The fields as (name, raw value) in order: the name without trailing whitespace, the
    /// value still folded and encoded, with its line ending.
    pub fn fields(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + '_ {
        self.fields.iter().map(|f| {
            let colon = memchr::memchr(b':', f).unwrap_or(0);
            (trim_ascii_end(&f[..colon]), &f[colon + 1..])
        })
    }

    /// Whether the message has a header block (at least one field).
    pub fn has_fields(&self) -> bool {
        self.has_headers
    }

    /// The stray lines before the first field, verbatim.
    pub fn preamble(&self) -> &'a [u8] {
        self.preamble
    }

    /// Each field's complete bytes (name, colon, folded value, stray lines kept with it, line
    /// endings), in order.
    pub fn raw_fields(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.fields.iter().copied()
    }

    /// The separator line and the body, verbatim.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// The field names in order (lossy UTF-8; names are ASCII by definition).
    pub fn names(&self) -> Vec<String> {
        self.fields()
            .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
            .collect()
    }

    /// The body: everything after the separator line (the whole message when it has no
    /// header block; empty when there is no separator).
    pub fn body(&self) -> &'a [u8] {
        if !self.has_headers {
            return self.rest;
        }
        match memchr::memchr(b'\n', self.rest) {
            Some(i) => &self.rest[i + 1..],
            None => &[],
        }
    }

    /// The raw (still folded and encoded) values of the fields called `name`, in order.
    pub fn values<'n>(&'n self, name: &'n str) -> impl Iterator<Item = &'a [u8]> + 'n {
        self.fields.iter().filter_map(move |f| {
            let colon = memchr::memchr(b':', f)?;
            trim_ascii_end(&f[..colon])
                .eq_ignore_ascii_case(name.as_bytes())
                .then(|| &f[colon + 1..])
        })
    }

    fn name_of(field: &[u8]) -> &[u8] {
        let colon = field.iter().position(|&b| b == b':').unwrap_or(0);
        trim_ascii_end(&field[..colon])
    }

    fn encode_field(&self, name: &str, value: &str) -> Vec<u8> {
        header::line(name, &header::unstructured(value), self.eol).into_bytes()
    }

    /// Drop the stray lines before the first field: mail we send must start with a field,
    /// or a receiving server would read everything after such a line as body.
    pub fn drop_preamble(&mut self) {
        self.preamble = &[];
    }

    /// Remove every field called `name` (case-insensitive).
    pub fn remove(&mut self, name: &str) {
        for (i, f) in self.fields.iter().enumerate() {
            if Self::name_of(f).eq_ignore_ascii_case(name.as_bytes()) {
                self.removed[i] = true;
            }
        }
        self.added
            .retain(|(_, f)| !Self::name_of(f).eq_ignore_ascii_case(name.as_bytes()));
    }

    /// Append a field at the end of the header block.
    pub fn add(&mut self, name: &str, value: &str) {
        let field = self.encode_field(name, value);
        self.added.push((self.fields.len(), field));
    }

    /// Prepend a field (trace-like headers such as Resent-* go on top).
    pub fn prepend(&mut self, name: &str, value: &str) {
        let field = self.encode_field(name, value);
        self.added.insert(0, (0, field));
    }

    /// Replace every field called `name` by one, at the place of the first (or at the end).
    pub fn set(&mut self, name: &str, value: &str) {
        let first = self.fields.iter().enumerate().position(|(i, f)| {
            !self.removed[i] && Self::name_of(f).eq_ignore_ascii_case(name.as_bytes())
        });
        self.remove(name);
        let field = self.encode_field(name, value);
        match first {
            Some(i) => self.added.push((i, field)),
            None => self.added.push((self.fields.len(), field)),
        }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        // The exact size (plus room for the line endings added below): one allocation, and
        // the body is copied once.
        let size = self.preamble.len()
            + self.fields.iter().map(|f| f.len()).sum::<usize>()
            + self.added.iter().map(|(_, f)| f.len()).sum::<usize>()
            + self.rest.len()
            + 2 * (self.fields.len() + 2);
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(self.preamble);
        for i in 0..=self.fields.len() {
            for (at, f) in &self.added {
                if *at == i {
                    out.extend_from_slice(f);
                }
            }
            if i < self.fields.len() && !self.removed[i] {
                out.extend_from_slice(self.fields[i]);
                if !self.fields[i].ends_with(b"\n") {
                    out.extend_from_slice(self.eol.as_bytes());
                }
            }
        }
        if !self.has_headers && !out.is_empty() {
            out.extend_from_slice(self.eol.as_bytes());
        }
        if self.has_headers && self.rest.is_empty() {
            out.extend_from_slice(self.eol.as_bytes());
        }
        out.extend_from_slice(self.rest);
        out
    }
}

fn is_field_start(line: &[u8]) -> bool {
    match memchr::memchr(b':', line) {
        Some(colon) if colon > 0 => {
            let name = trim_ascii_end(&line[..colon]);
            !name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b))
        }
        _ => false,
    }
}

fn trim_ascii_end(s: &[u8]) -> &[u8] {
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &s[..end]
}

/// Apply one edit and return the new bytes.
pub fn edit(raw: &[u8], f: impl FnOnce(&mut HeaderBlock)) -> Vec<u8> {
    let mut block = HeaderBlock::parse(raw);
    f(&mut block);
    block.into_bytes()
}

/// A whole message with CRLF line ends (see `encode::crlf`), its header block written so that any
/// reader splits it into exactly the fields `rewrite::HeaderBlock` sees: a bare CR or a NUL
/// inside it becomes a space (there it is no line break: turning it into one would start a
/// new field), and a stray line that belongs to the field before it is indented, so it can
/// never read as a field of its own on the wire (e.g. `X\0: y` once its NUL is a space).
pub fn crlf_message(data: &[u8]) -> Vec<u8> {
    let block = HeaderBlock::parse(data);
    if !block.has_fields() {
        return crlf(data);
    }
    let clean = |line: &[u8], out: &mut Vec<u8>| {
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        out.extend(
            content
                .iter()
                .map(|&b| if b == b'\r' || b == 0 { b' ' } else { b }),
        );
        out.extend_from_slice(b"\r\n");
    };
    let mut out = Vec::with_capacity(data.len() + 64);
    for line in block.preamble().split_inclusive(|&b| b == b'\n') {
        clean(line, &mut out);
    }
    for field in block.raw_fields() {
        for (i, line) in field.split_inclusive(|&b| b == b'\n').enumerate() {
            if i > 0 {
                // A continuation that is only white space once cleaned would end the header
                // block for a reader: it carries nothing, so it is left out.
                let blank = line.iter().all(|&b| b == 0 || b.is_ascii_whitespace());
                if blank {
                    continue;
                }
                if !matches!(line.first(), Some(b' ' | b'\t')) {
                    out.push(b' ');
                }
            }
            clean(line, &mut out);
        }
    }
    // The separator as a true empty line: one of white space only ends the block for us, but
    // a reader on the wire would take it for folding and read on into the body.
    out.extend_from_slice(b"\r\n");
    out.extend(crlf(block.body()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_cr_in_the_header_block_never_starts_a_field() {
        let out = crlf_message(b"Subject: a\rBcc: x@y.z\nTo: b\n\nbody\rline\n");
        assert_eq!(
            out,
            b"Subject: a Bcc: x@y.z\r\nTo: b\r\n\r\nbody\r\nline\r\n".to_vec()
        );
    }

    #[test]
    fn the_separator_is_an_empty_line_on_the_wire() {
        assert_eq!(
            crlf_message(b"A: 1\n \r\nB: 2\n"),
            b"A: 1\r\n\r\nB: 2\r\n".to_vec()
        );
        assert_eq!(crlf_message(b"A: 1"), b"A: 1\r\n\r\n".to_vec());
    }

    #[test]
    fn a_stray_line_stays_part_of_its_field_on_the_wire() {
        let out = crlf_message(b"A: 1\r\nMIME-Version\0\0: 1.0\r\nB: 2\r\n\r\nbody");
        assert_eq!(
            out,
            b"A: 1\r\n MIME-Version  : 1.0\r\nB: 2\r\n\r\nbody".to_vec()
        );
        let fields = HeaderBlock::parse(&out).names();
        assert_eq!(fields, ["A", "B"]);
        let nul_line = crlf_message(b"A: 1\r\n\0\0\0\r\nB: 2\r\n\r\nbody");
        assert_eq!(nul_line, b"A: 1\r\nB: 2\r\n\r\nbody".to_vec());
    }

    const MSG: &[u8] =
        b"From: a@b.c\r\nSubject: old\r\nX-Tag: 1\r\n folded\r\nX-Tag: 2\r\n\r\nbody\r\n";

    #[test]
    fn set_replaces_all_in_place_and_keeps_the_rest() {
        let out = edit(MSG, |h| h.set("x-tag", "new"));
        assert_eq!(
            out,
            b"From: a@b.c\r\nSubject: old\r\nx-tag: new\r\n\r\nbody\r\n".to_vec()
        );
    }

    #[test]
    fn add_and_remove() {
        let out = edit(MSG, |h| {
            h.remove("X-TAG");
            h.add("X-New", "v");
        });
        assert_eq!(
            out,
            b"From: a@b.c\r\nSubject: old\r\nX-New: v\r\n\r\nbody\r\n".to_vec()
        );
    }

    #[test]
    fn untouched_message_is_identical() {
        assert_eq!(edit(MSG, |_| {}), MSG.to_vec());
        let lf = b"A: 1\nB: 2\n\nbody";
        assert_eq!(edit(lf, |_| {}), lf.to_vec());
    }

    #[test]
    fn lf_messages_get_lf_and_non_ascii_is_encoded() {
        let out = edit(b"A: 1\n\nbody", |h| h.set("Subject", "Grüße"));
        assert_eq!(
            out,
            b"A: 1\nSubject: =?UTF-8?B?R3LDvMOfZQ==?=\n\nbody".to_vec()
        );
    }

    #[test]
    fn headerless_message_gets_a_header_block() {
        let out = edit(b"just text\r\n", |h| h.add("X-A", "1"));
        assert_eq!(out, b"X-A: 1\r\n\r\njust text\r\n".to_vec());
    }
}
