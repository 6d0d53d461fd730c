//! Turns raw bytes into the parts of a message plugins read (`View`), with no more work than
//! asked for: bodies and attachments are only decoded at the `bodies` level.
//! The header fields come from `rewrite::HeaderBlock`, the one definition of the header block
//! that rewrites use too, so a plugin never sees a field a rewrite cannot reach, or the other
//! way round; mail-parser interprets single field values and, for bodies, the MIME structure
//! below that block. Malformed mail never fails here: what cannot be read stays empty.

use std::sync::LazyLock;

use mail_parser::{HeaderForm, HeaderValue, MessageParser};

use super::rewrite::HeaderBlock;
use super::Email;
use crate::model::message::{Address, Attachment, Header, Needs};

/// mail-parser set up for the MIME structure of bodies (the top-level fields it is given are
/// only the MIME ones, see `mime_message`).
static PARSER: LazyLock<MessageParser> = LazyLock::new(MessageParser::new);

/// The parts of a message as plugins read them (the 0.1 contract's `message` record has the
/// same fields; the 0.2 `message` resource has a method for each).
#[derive(Debug, Clone)]
pub struct View {
    pub message_id: Option<String>,
    /// The Date header as seconds since the Unix epoch, when it parses.
    pub date: Option<i64>,
    pub from: Vec<Address>,
    pub sender: Option<Address>,
    pub reply_to: Vec<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    pub subject: Option<String>,
    /// Every header field in order, decoded and unfolded.
    pub headers: Vec<Header>,
    pub text_body: Option<String>,
    pub html_body: Option<String>,
    pub attachments: Vec<Attachment>,
    pub size: u64,
    pub mailbox: String,
    pub flags: Vec<String>,
}

/// Build the plugin's view of `email` down to `needs`' level.
pub fn to_view(email: &Email, needs: Needs) -> View {
    convert(&parse(&email.raw, needs), email, needs)
}

/// The decoded bytes of attachment `index` (numbered as in `View::attachments`).
pub fn attachment_content(email: &Email, index: usize) -> Option<Vec<u8>> {
    let block = HeaderBlock::parse(&email.raw);
    let mime = mime_message(&block);
    let parsed = PARSER.parse(&mime)?;
    let part = parsed.attachments().nth(index)?;
    Some(part.decoded().into_owned())
}

/// A message split as far as the view for `needs` requires.
pub struct Parsed<'a> {
    pub block: HeaderBlock<'a>,
    /// For needs = bodies/raw: the MIME fields of the header block followed by the body,
    /// which is what mail-parser reads the bodies and attachments from.
    mime: Option<Vec<u8>>,
}

/// Split `raw` into its header block and, when bodies are needed, the MIME part.
pub fn parse(raw: &[u8], needs: Needs) -> Parsed<'_> {
    let block = HeaderBlock::parse(raw);
    let mime = (needs != Needs::Headers).then(|| mime_message(&block));
    Parsed { block, mime }
}

/// The top-level MIME fields of `block` and its body, as a message of their own.
fn mime_message(block: &HeaderBlock) -> Vec<u8> {
    let body = block.body();
    let mut out = Vec::with_capacity(body.len() + 256);
    for (name, value) in block.fields() {
        let mime = name.len() >= 8 && name[..8].eq_ignore_ascii_case(b"content-")
            || name.eq_ignore_ascii_case(b"mime-version");
        if mime {
            out.extend_from_slice(name);
            out.push(b':');
            out.extend_from_slice(value);
            if !value.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// The view of `email` from its parsed form (see `parse`).
pub fn convert(parsed: &Parsed, email: &Email, needs: Needs) -> View {
    let mut view = View {
        message_id: None,
        date: None,
        from: Vec::new(),
        sender: None,
        reply_to: Vec::new(),
        to: Vec::new(),
        cc: Vec::new(),
        subject: None,
        headers: Vec::new(),
        text_body: None,
        html_body: None,
        attachments: Vec::new(),
        size: email.raw.len() as u64,
        mailbox: email.mailbox.clone(),
        flags: email.flags.clone(),
    };
    for (name, value) in parsed.block.fields() {
        let name = String::from_utf8_lossy(name).into_owned();
        match name.to_ascii_lowercase().as_str() {
            // Each part comes from the first field of its name that yields one (the same rule
            // as `readable::Readable`'s reads of single parts).
            "subject" if view.subject.is_none() => view.subject = Some(decode_value(value)),
            "message-id" if view.message_id.is_none() => view.message_id = message_id(value),
            "date" if view.date.is_none() => view.date = date(value),
            "from" if view.from.is_empty() => view.from = addresses(value),
            "to" if view.to.is_empty() => view.to = addresses(value),
            "cc" if view.cc.is_empty() => view.cc = addresses(value),
            "reply-to" if view.reply_to.is_empty() => view.reply_to = addresses(value),
            "sender" if view.sender.is_none() => view.sender = addresses(value).into_iter().next(),
            _ => {}
        }
        view.headers.push(Header {
            name,
            value: decode_value(value),
        });
    }
    if needs != Needs::Headers {
        let Some(parsed) = parsed.mime.as_deref().and_then(|m| PARSER.parse(m)) else {
            return view;
        };
        view.text_body = parsed.body_text(0).map(|s| s.into_owned());
        view.html_body = parsed.body_html(0).map(|s| s.into_owned());
        view.attachments = parsed
            .attachments()
            .map(|part| Attachment {
                filename: part.attachment_name().map(str::to_string),
                content_type: part
                    .content_type()
                    .map(|ct| match ct.subtype() {
                        Some(sub) => format!("{}/{}", ct.ctype(), sub),
                        None => ct.ctype().to_string(),
                    })
                    .unwrap_or_else(|| "application/octet-stream".into())
                    .to_ascii_lowercase(),
                size: part.decoded_len() as u64,
            })
            .collect();
    }
    view
}

/// The first msg-id of a raw Message-ID value.
pub fn message_id(value: &[u8]) -> Option<String> {
    match HeaderForm::MessageIds.parse(value).value() {
        HeaderValue::Text(id) => Some(id.to_string()),
        HeaderValue::TextList(ids) => ids.first().map(str::to_string),
        _ => None,
    }
}

/// A raw Date value as seconds since the Unix epoch, when it parses.
pub fn date(value: &[u8]) -> Option<i64> {
    HeaderForm::Date
        .parse(value)
        .value()
        .as_datetime()
        .map(|d| d.to_timestamp())
}

/// The addresses of a raw address-list field value (display names and comments apart).
pub fn addresses(value: &[u8]) -> Vec<Address> {
    let parsed = HeaderForm::Addresses.parse(value);
    let Some(list) = parsed.value().as_address() else {
        return Vec::new();
    };
    // Mailboxes of groups are flattened in document order.
    list.mailboxes()
        .filter_map(|m| {
            m.address().map(|addr| Address {
                name: m.name().map(str::to_string),
                address: addr.to_string(),
            })
        })
        .collect()
}

/// Every header field in order as (name, decoded unfolded value).
pub fn decoded_headers(raw: &[u8]) -> Vec<(String, String)> {
    HeaderBlock::parse(raw)
        .fields()
        .map(|(n, v)| (String::from_utf8_lossy(n).into_owned(), decode_value(v)))
        .collect()
}

/// Unfold and decode RFC 2047 encoded words of one raw header value.
pub(crate) fn decode_value(raw: &[u8]) -> String {
    // Most values are plain UTF-8, on one line or folded: no parser needed for them.
    if let Some(text) = unfold_plain(raw) {
        return text;
    }
    parse_value(raw)
}

/// A value with no encoded word, no control character but folding, and only proper folds
/// (each line break followed by a space or tab), unfolded as the parser does it: the white
/// space around each fold becomes one space, a line of white space alone disappears, the rest
/// is kept. None for anything else (tests/`plain_values_unfold_as_the_parser_does`).
fn unfold_plain(raw: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(raw).ok()?;
    if memchr::memmem::find(raw, b"=?").is_some() {
        return None;
    }
    // Control characters other than tab and line breaks: one pass the compiler vectorizes.
    let odd = raw.iter().fold(false, |odd, &c| {
        odd | ((c < 0x20 && c != b'\t' && c != b'\r' && c != b'\n') || c == 0x7f)
    });
    if odd {
        return None;
    }
    let mut breaks = 0;
    for i in memchr::memchr2_iter(b'\r', b'\n', raw) {
        let proper = match raw[i] {
            b'\r' => raw.get(i + 1) == Some(&b'\n'),
            _ => matches!(raw.get(i + 1), None | Some(b' ' | b'\t')),
        };
        if !proper {
            return None;
        }
        breaks += (raw[i] == b'\n' && i + 1 < raw.len()) as usize;
    }
    if breaks == 0 {
        return Some(text.trim().to_string());
    }
    let mut out = String::with_capacity(text.len());
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let part = line.trim_matches(|c| c == ' ' || c == '\t');
        if part.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(part);
    }
    Some(out.trim().to_string())
}

/// The parser's reading of a raw value: unfolded, encoded words decoded.
fn parse_value(raw: &[u8]) -> String {
    let mut bytes = raw.to_vec();
    if !bytes.ends_with(b"\n") {
        bytes.push(b'\n');
    }
    match HeaderForm::Text.parse(&bytes).value() {
        HeaderValue::Text(t) => t.trim().to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value of up to five pieces (letters, spaces, tabs, folds of each kind, bare line
    /// breaks, non-ASCII, a no-break space), with and without a final line ending: where the
    /// quick path answers, it answers what the parser answers.
    #[test]
    fn plain_values_unfold_as_the_parser_does() {
        let pieces: [&[u8]; 10] = [
            b"a",
            b"b",
            b" ",
            b"\t",
            b"\r\n ",
            b"\r\n\t",
            b"\n ",
            "é".as_bytes(),
            b"\r\n",
            "\u{a0}".as_bytes(),
        ];
        let (mut quick, mut all) = (0, 0);
        let mut values: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..5 {
            values = values
                .iter()
                .flat_map(|v| pieces.iter().map(move |p| [v.as_slice(), p].concat()))
                .collect();
            for v in &values {
                for end in [&b""[..], b"\r\n"] {
                    let value = [v.as_slice(), end].concat();
                    if memchr::memmem::find(&value, b"\n\r\n").is_some()
                        || memchr::memmem::find(&value, b"\n\n").is_some()
                        || value.starts_with(b"\r\n")
                    {
                        continue; // an empty line ends the header block: not a value
                    }
                    all += 1;
                    if let Some(text) = unfold_plain(&value) {
                        quick += 1;
                        assert_eq!(
                            text,
                            parse_value(&value),
                            "{:?}",
                            String::from_utf8_lossy(&value)
                        );
                    }
                }
            }
        }
        assert!(quick > all / 10, "{quick} of {all} took the quick path");
    }

    fn email(raw: &[u8]) -> Email {
        Email::new(raw.to_vec(), "INBOX", vec!["\\Seen".into()])
    }

    #[test]
    fn headers_are_decoded_in_order() {
        let raw = b"From: =?ISO-8859-1?Q?Bj=F6rn?= <bjorn@example.org>\r\nTo: a@example.com\r\nSubject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n folded\r\n\r\nHi\r\n";
        let v = to_view(&email(raw), Needs::Headers);
        assert_eq!(v.subject.as_deref(), Some("Grüße folded"));
        assert_eq!(v.from[0].name.as_deref(), Some("Björn"));
        assert_eq!(v.from[0].address, "bjorn@example.org");
        let names: Vec<_> = v.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["From", "To", "Subject"]);
        assert_eq!(v.headers[2].value, "Grüße folded");
        assert_eq!(
            v.text_body, None,
            "bodies are not decoded for needs=headers"
        );
        assert_eq!(v.flags, ["\\Seen"]);
    }

    #[test]
    fn bodies_and_attachments_for_needs_bodies() {
        let raw = b"From: a@b.c\r\nContent-Type: multipart/mixed; boundary=X\r\n\r\n--X\r\nContent-Type: text/plain\r\n\r\nhello\r\n--X\r\nContent-Type: text/csv; name=r.csv\r\nContent-Disposition: attachment; filename=r.csv\r\n\r\na,b\r\n--X--\r\n";
        let v = to_view(&email(raw), Needs::Bodies);
        assert_eq!(v.text_body.as_deref().map(str::trim), Some("hello"));
        assert_eq!(v.attachments.len(), 1);
        assert_eq!(v.attachments[0].filename.as_deref(), Some("r.csv"));
        assert_eq!(v.attachments[0].content_type, "text/csv");
    }

    #[test]
    fn the_fast_path_decodes_like_mail_parser() {
        for raw in [
            &b" hello  world \r\n"[..],
            b"x\ty\r\n",
            "Grüße aus Köln\n".as_bytes(),
            b"(comment) a@b.c\r\n",
            b"<id@x> <id2@y>\r\n",
            b"\r\n",
            b"",
        ] {
            let mut bytes = raw.to_vec();
            if !bytes.ends_with(b"\n") {
                bytes.push(b'\n');
            }
            let slow = match HeaderForm::Text.parse(&bytes).value() {
                HeaderValue::Text(t) => t.trim().to_string(),
                _ => String::new(),
            };
            assert_eq!(
                decode_value(raw),
                slow,
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn garbage_and_empty_input_give_an_empty_view() {
        for raw in [&b""[..], b"\0\0\xff\xfe", b"no headers here"] {
            let v = to_view(&email(raw), Needs::Bodies);
            assert_eq!(v.size, raw.len() as u64);
            assert!(v.from.is_empty());
        }
    }
}
