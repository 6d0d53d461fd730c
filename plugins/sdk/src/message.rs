//! Why this file exists: the questions almost every plugin asks of a message (what is this
//! header, was I addressed directly, who would a reply go to) answered once, the same way.

use crate::Message;

/// The value of the first header field called `name` (case-insensitive).
pub fn header<'a>(msg: &'a Message, name: &str) -> Option<&'a str> {
    msg.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// The values of every header field called `name` (case-insensitive), in message order.
pub fn headers_all<'a>(msg: &'a Message, name: &str) -> Vec<&'a str> {
    msg.headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
        .collect()
}

/// Whether one of `addresses` appears in To or Cc (case-insensitive), i.e. the user was
/// addressed directly rather than through a list or a Bcc.
pub fn is_direct_recipient<S: AsRef<str>>(msg: &Message, addresses: &[S]) -> bool {
    msg.to.iter().chain(&msg.cc).any(|recipient| {
        addresses.iter().any(|mine| {
            recipient
                .address
                .trim()
                .eq_ignore_ascii_case(mine.as_ref().trim())
        })
    })
}

/// Where a reply goes: the first Reply-To address, else the first From address.
pub fn sender_address(msg: &Message) -> Option<&str> {
    msg.reply_to
        .first()
        .or_else(|| msg.from.first())
        .map(|a| a.address.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Address, Header};

    fn addr(a: &str) -> Address {
        Address {
            name: None,
            address: a.into(),
        }
    }

    fn msg() -> Message {
        Message {
            message_id: None,
            date: None,
            from: vec![addr("alice@example.com")],
            sender: None,
            reply_to: vec![],
            to: vec![addr("Bob@Example.com")],
            cc: vec![addr("carol@example.com")],
            subject: Some("hi".into()),
            headers: vec![
                Header {
                    name: "Received".into(),
                    value: "one".into(),
                },
                Header {
                    name: "received".into(),
                    value: "two".into(),
                },
                Header {
                    name: "List-Id".into(),
                    value: "<rust.example.org>".into(),
                },
            ],
            text_body: None,
            html_body: None,
            attachments: vec![],
            size: 0,
            mailbox: "INBOX".into(),
            flags: vec![],
        }
    }

    #[test]
    fn headers() {
        let m = msg();
        assert_eq!(header(&m, "RECEIVED"), Some("one"));
        assert_eq!(headers_all(&m, "Received"), vec!["one", "two"]);
        assert_eq!(header(&m, "list-id"), Some("<rust.example.org>"));
        assert_eq!(header(&m, "X-Missing"), None);
    }

    #[test]
    fn recipients_and_sender() {
        let mut m = msg();
        assert!(is_direct_recipient(&m, &["bob@example.com"]));
        assert!(is_direct_recipient(&m, &["CAROL@example.com".to_string()]));
        assert!(!is_direct_recipient(&m, &["alice@example.com"]));
        assert_eq!(sender_address(&m), Some("alice@example.com"));
        m.reply_to = vec![addr("replies@example.com")];
        assert_eq!(sender_address(&m), Some("replies@example.com"));
    }
}
