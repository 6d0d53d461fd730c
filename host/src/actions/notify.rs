//! Builds the notification the host sends for a `notify` action (contract 0.3; Sieve's
//! enotify with mailto, RFC 5435/5436): a new, short text message about the triggering one,
//! from the account's identity, marked `Auto-Submitted: auto-notified` (RFC 5436 section 2.7)
//! and with our loop marker, so that nothing answers it and it is never notified about again.
//! It carries none of the original's threading fields: it is not a reply.

use super::{domain_of, reply::text_part, LOOP_HEADER};
use crate::config::Identity;
use crate::message::encode::{self, rfc5322_date};
use crate::message::header;
use crate::message::Email;
use crate::model::decision::Notification;

pub fn compose(
    original: &Email,
    n: &Notification,
    identity: &Identity,
    id: &str,
    now_ms: i64,
) -> Vec<u8> {
    let subject = match &n.subject {
        Some(s) => s.clone(),
        None => format!(
            "New mail: {}",
            crate::model::text::clean_text(&original.header("Subject").unwrap_or_default())
        ),
    };
    let to: Vec<String> = n.to.iter().map(|a| format!("<{a}>")).collect();
    let mut h = vec![
        (
            "From".to_string(),
            encode::mailbox(identity.name.as_deref(), &identity.address),
        ),
        ("To".to_string(), to.join(", ")),
        ("Subject".to_string(), header::unstructured(&subject)),
        ("Date".to_string(), rfc5322_date(now_ms)),
        (
            "Message-ID".to_string(),
            format!("<mailpipe.{id}@{}>", domain_of(&identity.address)),
        ),
        ("Auto-Submitted".to_string(), "auto-notified".to_string()),
        (LOOP_HEADER.to_string(), identity.address.clone()),
    ];
    for extra in &n.headers {
        h.push((extra.name.clone(), header::unstructured(&extra.value)));
    }
    h.push(("MIME-Version".into(), "1.0".into()));
    let mut out = String::new();
    for (name, value) in h {
        out.push_str(&header::line(&name, &value, "\r\n"));
    }
    out.push_str(&text_part("text/plain", &n.text));
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::message::Header;

    #[test]
    fn a_notification_is_a_new_marked_message_with_no_threading() {
        let original = Email::new(
            b"From: boss@example.org\r\nSubject: =?UTF-8?Q?Budget_=E2=82=AC?=\r\nMessage-ID: <b1@x>\r\n\r\nHi\r\n".to_vec(),
            "INBOX",
            vec![],
        );
        let identity = Identity {
            name: Some("Alice".into()),
            address: "alice@example.test".into(),
        };
        let n = Notification {
            to: vec!["pager@example.test".into(), "me@example.test".into()],
            subject: None,
            text: "From boss: Budget\nline 2".into(),
            headers: vec![Header {
                name: "Importance".into(),
                value: "high".into(),
            }],
        };
        let raw = String::from_utf8(compose(&original, &n, &identity, "abc", 0)).unwrap();
        assert!(
            raw.contains("To: <pager@example.test>, <me@example.test>\r\n"),
            "{raw}"
        );
        assert!(raw.contains("Subject: =?UTF-8?"), "encoded: {raw}");
        assert!(raw.contains("Auto-Submitted: auto-notified\r\n"), "{raw}");
        assert!(
            raw.contains("X-Mailpipe-Loop: alice@example.test\r\n"),
            "{raw}"
        );
        assert!(raw.contains("Importance: high\r\n"), "{raw}");
        assert!(
            raw.contains("Message-ID: <mailpipe.abc@example.test>\r\n"),
            "{raw}"
        );
        assert!(
            !raw.contains("In-Reply-To") && !raw.contains("References"),
            "{raw}"
        );
        assert!(raw.contains("\r\n\r\nFrom boss: Budget\r\nline 2"), "{raw}");
        // The parsed subject is the original's, decoded.
        let parsed = Email::new(raw.into_bytes(), "x", vec![]);
        assert_eq!(parsed.header("Subject").unwrap(), "New mail: Budget €");
    }
}
