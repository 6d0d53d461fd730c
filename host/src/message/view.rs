//! Turns raw bytes into the `message` record plugins see (the WIT type), with no more work
//! than the plugin's declared `needs`: bodies and attachments are only decoded when asked for.
//! Malformed mail never fails here: whatever mail-parser cannot make sense of stays empty.

use std::sync::LazyLock;

use mail_parser::{Addr, HeaderName, HeaderValue, MessageParser, MimeHeaders};

use super::Email;
use crate::plugin::bindings::{Address, Attachment, Header, Message, Needs};

/// mail-parser set up to interpret only the fields the view is built from (and the MIME
/// fields bodies need); every other field is only delimited: its value is decoded from the
/// raw bytes by `decode_value`. Parsing e.g. Received fields was the biggest cost per message.
static PARSER: LazyLock<MessageParser> = LazyLock::new(|| {
    MessageParser::new()
        .with_minimal_headers()
        .header_address(HeaderName::Sender)
        .header_id(HeaderName::MessageId)
        .default_header_ignore()
});

/// Build the plugin's view of `email`.
pub fn to_wit(email: &Email, needs: Needs) -> Message {
    convert(parse(&email.raw, needs).as_ref(), email, needs)
}

/// Parse `raw` as far as the view for `needs` requires: only the header block unless bodies
/// are needed (MIME parts are decoded eagerly, which is most of the cost for attachments).
/// None: not a message mail-parser can read.
pub fn parse(raw: &[u8], needs: Needs) -> Option<mail_parser::Message<'_>> {
    match needs {
        Needs::Headers => PARSER.parse_headers(raw),
        Needs::Bodies | Needs::Raw => PARSER.parse(raw),
    }
}

/// The view of `email` from its parsed form (see `parse`).
pub fn convert(parsed: Option<&mail_parser::Message>, email: &Email, needs: Needs) -> Message {
    let mut view = Message {
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
    let Some(parsed) = parsed else {
        return view;
    };
    view.message_id = parsed.message_id().map(str::to_string);
    view.date = parsed.date().map(|d| d.to_timestamp());
    view.from = addresses(parsed.from());
    view.sender = addresses(parsed.sender()).into_iter().next();
    view.reply_to = addresses(parsed.reply_to());
    view.to = addresses(parsed.to());
    view.cc = addresses(parsed.cc());
    view.subject = parsed.subject().map(str::to_string);
    view.headers = decoded_headers_of(parsed, &email.raw)
        .into_iter()
        .map(|(name, value)| Header { name, value })
        .collect();
    if needs != Needs::Headers {
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
                size: part.len() as u64,
            })
            .collect();
    }
    view
}

fn addresses(value: Option<&mail_parser::Address>) -> Vec<Address> {
    let convert = |a: &Addr| {
        a.address.as_ref().map(|addr| Address {
            name: a.name.as_ref().map(|n| n.to_string()),
            address: addr.to_string(),
        })
    };
    match value {
        Some(mail_parser::Address::List(list)) => list.iter().filter_map(convert).collect(),
        Some(mail_parser::Address::Group(groups)) => groups
            .iter()
            .flat_map(|g| g.addresses.iter().filter_map(convert))
            .collect(),
        None => Vec::new(),
    }
}

/// Every header field in order as (name, decoded unfolded value).
pub fn decoded_headers(raw: &[u8]) -> Vec<(String, String)> {
    match PARSER.parse_headers(raw) {
        Some(parsed) => decoded_headers_of(&parsed, raw),
        None => Vec::new(),
    }
}

fn decoded_headers_of(parsed: &mail_parser::Message, raw: &[u8]) -> Vec<(String, String)> {
    parsed
        .headers()
        .iter()
        .map(|h| {
            let start = (h.offset_start as usize).min(raw.len());
            let end = (h.offset_end as usize).clamp(start, raw.len());
            (h.name.as_str().to_string(), decode_value(&raw[start..end]))
        })
        .collect()
}

/// Unfold and decode RFC 2047 encoded words of one raw header value.
pub(crate) fn decode_value(raw: &[u8]) -> String {
    // Most values are plain one-line UTF-8: no parser needed for them.
    if !raw.windows(2).any(|w| w == b"=?") && !raw[..raw.len().saturating_sub(2)].contains(&b'\n') {
        if let Ok(text) = std::str::from_utf8(raw) {
            return text.trim().to_string();
        }
    }
    let mut bytes = raw.to_vec();
    if !bytes.ends_with(b"\n") {
        bytes.push(b'\n');
    }
    match mail_parser::parsers::MessageStream::new(&bytes).parse_unstructured() {
        HeaderValue::Text(t) => t.trim().to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(raw: &[u8]) -> Email {
        Email::new(raw.to_vec(), "INBOX", vec!["\\Seen".into()])
    }

    #[test]
    fn headers_are_decoded_in_order() {
        let raw = b"From: =?ISO-8859-1?Q?Bj=F6rn?= <bjorn@example.org>\r\nTo: a@example.com\r\nSubject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n folded\r\n\r\nHi\r\n";
        let v = to_wit(&email(raw), Needs::Headers);
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
        let v = to_wit(&email(raw), Needs::Bodies);
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
            let slow = match mail_parser::parsers::MessageStream::new(&bytes).parse_unstructured() {
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
            let v = to_wit(&email(raw), Needs::Bodies);
            assert_eq!(v.size, raw.len() as u64);
            assert!(v.from.is_empty());
        }
    }
}
