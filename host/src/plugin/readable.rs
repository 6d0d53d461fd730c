//! A message as plugins read it: through the 0.2 contract's `message` resource, part by part,
//! and through the 0.1 contract's record, built from the same parts. Each part is parsed once,
//! on first use, and shared by every plugin that sees the same bytes (the pipeline makes a new
//! one only when a plugin changed the message). Nothing a plugin does not ask for is decoded,
//! and nothing but the part it asks for is copied into it.

use std::ops::Range;
use std::sync::OnceLock;

use super::v0_1::mailpipe::plugin::types as old;
use super::v0_1::Message;
use crate::message::rewrite::HeaderBlock;
use crate::message::view::{self, View};
use crate::message::Email;
use crate::model::message::{Address, Envelope, Header, Needs};

pub struct Readable {
    email: Email,
    /// Where each header field's name and raw value are in `email.raw` (one scan, kept).
    fields: OnceLock<Vec<(Range<usize>, Range<usize>)>>,
    /// Single parts, each made on its first read (several plugins ask for the same ones).
    subject: OnceLock<Option<String>>,
    message_id: OnceLock<Option<String>>,
    date: OnceLock<Option<i64>>,
    /// From, To, Cc, Reply-To, Sender (see `ADDRESS_FIELDS`).
    addresses: [OnceLock<Vec<Address>>; 5],
    headers: OnceLock<View>,
    full: OnceLock<View>,
    envelope: OnceLock<Envelope>,
    /// The 0.1 contract's record at the `headers` and at the `bodies` level, built once.
    record_0_1: [OnceLock<Message>; 2],
    /// Being delivered now (contract 0.4's `stage`), not read from where it was delivered.
    at_delivery: bool,
}

impl Readable {
    pub fn new(email: Email) -> Readable {
        Readable {
            email,
            fields: OnceLock::new(),
            subject: OnceLock::new(),
            message_id: OnceLock::new(),
            date: OnceLock::new(),
            addresses: Default::default(),
            headers: OnceLock::new(),
            full: OnceLock::new(),
            envelope: OnceLock::new(),
            record_0_1: Default::default(),
            at_delivery: false,
        }
    }

    /// The message as being delivered now (`model::key::at_delivery`).
    pub fn at_delivery(mut self, yes: bool) -> Readable {
        self.at_delivery = yes;
        self
    }

    /// Whether the message is being delivered now.
    pub fn is_at_delivery(&self) -> bool {
        self.at_delivery
    }

    pub fn email(&self) -> &Email {
        &self.email
    }

    /// The parts of the message down to `needs`: the header fields only, or also the bodies
    /// and attachments (`bodies` and `raw`).
    pub fn view(&self, needs: Needs) -> &View {
        match needs {
            Needs::Headers => match self.full.get() {
                Some(full) => full,
                None => self
                    .headers
                    .get_or_init(|| view::to_view(&self.email, Needs::Headers)),
            },
            Needs::Bodies | Needs::Raw => self
                .full
                .get_or_init(|| view::to_view(&self.email, Needs::Bodies)),
        }
    }

    /// The header fields as (name, raw value), found once.
    fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        let raw = &self.email.raw[..];
        self.fields
            .get_or_init(|| {
                let at = |part: &[u8]| {
                    let start = part.as_ptr() as usize - raw.as_ptr() as usize;
                    start..start + part.len()
                };
                HeaderBlock::parse(raw)
                    .fields()
                    .map(|(name, value)| (at(name), at(value)))
                    .collect()
            })
            .iter()
            .map(move |(name, value)| (&raw[name.clone()], &raw[value.clone()]))
    }

    /// The raw values of the fields called `name` (any case), in message order.
    fn raw_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s [u8]> + 's {
        self.fields()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The values of the fields called `name` (any case), decoded, in message order: only
    /// those fields are decoded.
    pub fn header_all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = String> + 's {
        self.raw_values(name).map(view::decode_value)
    }

    /// Every header field, decoded, in order (as in `View::headers`).
    pub fn headers(&self) -> Vec<Header> {
        self.fields()
            .map(|(name, value)| Header {
                name: String::from_utf8_lossy(name).into_owned(),
                value: view::decode_value(value),
            })
            .collect()
    }

    /// One part of the message from the first field called `name` that yields one; the same
    /// rule as `view::convert`, which makes all of them at once.
    fn first_part<T>(&self, name: &str, part: impl Fn(&[u8]) -> Option<T>) -> Option<T> {
        self.raw_values(name).find_map(part)
    }

    pub fn subject(&self) -> Option<String> {
        self.subject
            .get_or_init(|| self.first_part("Subject", |v| Some(view::decode_value(v))))
            .clone()
    }

    pub fn message_id(&self) -> Option<String> {
        self.message_id
            .get_or_init(|| self.first_part("Message-ID", view::message_id))
            .clone()
    }

    pub fn date(&self) -> Option<i64> {
        *self
            .date
            .get_or_init(|| self.first_part("Date", view::date))
    }

    /// The addresses of the first field called `name` (one of `ADDRESS_FIELDS`) that has any.
    pub fn addresses(&self, name: &str) -> Vec<Address> {
        let parse = || {
            self.first_part(name, |v| Some(view::addresses(v)).filter(|a| !a.is_empty()))
                .unwrap_or_default()
        };
        match ADDRESS_FIELDS
            .iter()
            .position(|f| f.eq_ignore_ascii_case(name))
        {
            Some(i) => self.addresses[i].get_or_init(parse).clone(),
            None => parse(),
        }
    }

    /// The decoded bytes of attachment `index` (as numbered in `View::attachments`).
    pub fn attachment_content(&self, index: u32) -> Option<Vec<u8>> {
        view::attachment_content(&self.email, index as usize)
    }

    /// What the delivering server recorded of the envelope: Return-Path, then Delivered-To
    /// (the newest first, as each delivery prepends one) and X-Original-To.
    pub fn envelope(&self) -> &Envelope {
        self.envelope.get_or_init(|| {
            envelope_of(
                self.raw_values("Return-Path"),
                self.raw_values("Delivered-To")
                    .chain(self.raw_values("X-Original-To")),
            )
        })
    }
}

/// The address fields whose parts are kept once read.
const ADDRESS_FIELDS: [&str; 5] = ["From", "To", "Cc", "Reply-To", "Sender"];

/// The envelope from the raw values of Return-Path and of the delivery fields, in order.
fn envelope_of<'a>(
    mut return_path: impl Iterator<Item = &'a [u8]>,
    delivered_to: impl Iterator<Item = &'a [u8]>,
) -> Envelope {
    let bare = |value: &[u8]| {
        let text = view::decode_value(value);
        let text = text.trim();
        let text = text.strip_prefix('<').unwrap_or(text);
        let text = text.strip_suffix('>').unwrap_or(text);
        text.trim().to_string()
    };
    let return_path = return_path.next().map(bare);
    let mut recipients: Vec<String> = Vec::new();
    for value in delivered_to {
        let address = bare(value);
        if !address.is_empty() && !recipients.iter().any(|r| r.eq_ignore_ascii_case(&address)) {
            recipients.push(address);
        }
    }
    Envelope {
        return_path,
        recipients,
    }
}

/// The 0.1 contract's record of a message, built from the same parts.
impl Readable {
    /// The record a 0.1 plugin with `needs` gets for `message` (built once per level).
    pub fn record_0_1(&self, needs: Needs) -> &Message {
        let level = usize::from(needs != Needs::Headers);
        self.record_0_1[level].get_or_init(|| {
            let v = self.view(needs);
            let address = |a: &Address| old::Address {
                name: a.name.clone(),
                address: a.address.clone(),
            };
            Message {
                message_id: v.message_id.clone(),
                date: v.date,
                from: v.from.iter().map(address).collect(),
                sender: v.sender.as_ref().map(address),
                reply_to: v.reply_to.iter().map(address).collect(),
                to: v.to.iter().map(address).collect(),
                cc: v.cc.iter().map(address).collect(),
                subject: v.subject.clone(),
                headers: v.headers.iter().map(header).collect(),
                text_body: v.text_body.clone(),
                html_body: v.html_body.clone(),
                attachments: v
                    .attachments
                    .iter()
                    .map(|a| old::Attachment {
                        filename: a.filename.clone(),
                        content_type: a.content_type.clone(),
                        size: a.size,
                    })
                    .collect(),
                size: v.size,
                mailbox: v.mailbox.clone(),
                flags: v.flags.clone(),
            }
        })
    }
}

fn header(h: &Header) -> old::Header {
    old::Header {
        name: h.name.clone(),
        value: h.value.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every part read alone is what the whole view says, also for repeated, empty and
    /// broken fields.
    #[test]
    fn single_parts_are_the_parts_of_the_whole_view() {
        for raw in [
            &b"From: \r\nFrom: Bob <bob@example.org>\r\nTo: a@b.c, C <c@d.e>\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n\
               Subject: second\r\nMessage-ID: garbage\r\nMessage-ID: <x@y>\r\nDate: soon\r\n\
               Date: Mon, 30 Nov 2026 10:00:00 +0000\r\nSender: s@e.f\r\nReply-To: r@g.h\r\n\r\nbody\r\n"[..],
            b"",
            b"no header block\r\n",
            b"Subject: only\r\n",
            b"cc: lower@case.example\r\n\r\n",
        ] {
            let m = readable(raw);
            let v = view::to_view(m.email(), Needs::Headers);
            assert_eq!(m.subject(), v.subject);
            assert_eq!(m.message_id(), v.message_id);
            assert_eq!(m.date(), v.date);
            let same = |a: &[Address], b: &[Address]| {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|(x, y)| x.name == y.name && x.address == y.address)
            };
            assert!(same(&m.addresses("From"), &v.from));
            assert!(same(&m.addresses("To"), &v.to));
            assert!(same(&m.addresses("Cc"), &v.cc));
            assert!(same(&m.addresses("Reply-To"), &v.reply_to));
            assert!(same(
                &m.addresses("Sender").into_iter().take(1).collect::<Vec<_>>(),
                &v.sender.into_iter().collect::<Vec<_>>()
            ));
            let headers = m.headers();
            assert_eq!(headers.len(), v.headers.len());
            for (a, b) in headers.iter().zip(&v.headers) {
                assert_eq!((&a.name, &a.value), (&b.name, &b.value));
            }
        }
        let m = readable(
            b"From: \r\nFrom: Bob <bob@example.org>\r\nSubject: one\r\nSubject: two\r\n\r\n",
        );
        assert_eq!(m.addresses("From")[0].address, "bob@example.org");
        assert_eq!(m.subject().as_deref(), Some("one"));
    }

    fn readable(raw: &[u8]) -> Readable {
        Readable::new(Email::new(raw.to_vec(), "INBOX", vec![]))
    }

    #[test]
    fn the_envelope_comes_from_the_fields_of_the_delivering_server() {
        let m = readable(
            b"Return-Path: <bounce+x@lists.example.org>\r\nDelivered-To: bob@example.com\r\n\
              Delivered-To: team@example.com\r\nX-Original-To: Team@example.com\r\n\
              From: a@b.c\r\n\r\nhi\r\n",
        );
        let e = m.envelope();
        assert_eq!(e.return_path.as_deref(), Some("bounce+x@lists.example.org"));
        assert_eq!(e.recipients, ["bob@example.com", "team@example.com"]);
        let bounce = readable(b"Return-Path: <>\r\nFrom: MAILER-DAEMON@b.c\r\n\r\n");
        assert_eq!(bounce.envelope().return_path.as_deref(), Some(""));
        assert!(bounce.envelope().recipients.is_empty());
        let unknown = readable(b"From: a@b.c\r\n\r\n");
        assert_eq!(unknown.envelope().return_path, None);
    }

    #[test]
    fn headers_are_read_without_bodies_and_bodies_on_demand() {
        let m = readable(
            b"From: a@b.c\r\nX-Tag: one\r\nx-tag: two\r\nContent-Type: text/plain\r\n\r\nbody text\r\n",
        );
        assert_eq!(m.header_all("X-TAG").collect::<Vec<_>>(), ["one", "two"]);
        assert!(m.headers.get().is_none(), "no view made for a header");
        assert!(m.full.get().is_none(), "no body parsed for a header");
        assert_eq!(m.view(Needs::Headers).text_body, None);
        assert_eq!(
            m.view(Needs::Bodies).text_body.as_deref().map(str::trim),
            Some("body text")
        );
        // Once the bodies are parsed, the header level reads from them too.
        assert!(m.view(Needs::Headers).text_body.is_some());
    }

    #[test]
    fn attachments_are_read_by_index() {
        let m = readable(b"From: a@b.c\r\nContent-Type: multipart/mixed; boundary=X\r\n\r\n--X\r\nContent-Type: text/plain\r\n\r\nhello\r\n--X\r\nContent-Type: application/octet-stream; name=d.bin\r\nContent-Disposition: attachment; filename=d.bin\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC/w==\r\n--X--\r\n");
        assert_eq!(m.view(Needs::Bodies).attachments.len(), 1);
        assert_eq!(m.attachment_content(0), Some(vec![0, 1, 2, 255]));
        assert_eq!(m.attachment_content(1), None);
    }
}
