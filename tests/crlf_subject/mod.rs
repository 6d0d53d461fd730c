//! Shared by tests/plugins.rs and tests/polyglot.rs: the hostile message whose Subject is an
//! RFC 2047 encoded word that decodes to CR/LF and a fake header, and the checks that an
//! auto-responder's reply to it carries no injected header or body.
#![allow(dead_code)]

use mailpipe::actions::{Outgoing, OutgoingKind};
use mailpipe::message::Email;
use mailpipe::pipeline::{Decision, PluginStatus};

use crate::common::{root, status};

/// examples/malformed/07-encoded-subject-crlf-injection.eml: personal mail from
/// heidi@example.org to alice@example.com; its Subject decodes to
/// "Urlaub?\r\nBcc: victim@example.net\r\n\r\ninjected body".
pub fn message() -> Email {
    let path = root().join("examples/malformed/07-encoded-subject-crlf-injection.eml");
    Email::new(std::fs::read(path).unwrap(), "INBOX", vec![])
}

/// The reply subject an auto-responder builds from that Subject ("Auto: " + the subject made
/// header-safe by `header_safe`).
pub const SAFE_AUTO_SUBJECT: &str = "Auto: Urlaub? Bcc: victim@example.net injected body";

/// The header fields of `raw` in order, unfolded (a line starting with a blank continues the
/// field before), and the body after the first empty line.
pub fn fields_and_body(raw: &[u8]) -> (Vec<(String, String)>, String) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .expect("a header block ended by an empty line");
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        assert!(!line.contains(['\r', '\n']), "bare CR or LF in {line:?}");
        if line.starts_with([' ', '\t']) {
            fields.last_mut().expect("no continuation first").1 += line;
        } else {
            let (name, value) = line.split_once(':').expect("a field name");
            fields.push((name.to_string(), value.trim_start().to_string()));
        }
    }
    (fields, body.to_string())
}

/// `plugin` answered the hostile message with exactly one reply, and that reply is one the
/// attacker did not shape: its Subject is a single line, it has no Bcc field, and
/// "injected body" is neither a header field of its own nor in the body.
pub fn assert_one_clean_reply(d: &Decision, plugin: &str) -> Outgoing {
    assert!(
        matches!(status(d, plugin), PluginStatus::Applied { .. }),
        "{:?}",
        d.reports
    );
    assert_eq!(d.outgoing.len(), 1, "exactly one reply: {:?}", d.reports);
    let out = d.outgoing[0].clone();
    assert_eq!(out.kind, OutgoingKind::Reply);
    assert_eq!(out.rcpt_to, ["heidi@example.org"]);

    let (fields, body) = fields_and_body(&out.raw);
    let names: Vec<String> = fields.iter().map(|f| f.0.to_ascii_lowercase()).collect();
    assert!(!names.contains(&"bcc".to_string()), "{names:?}");
    assert_eq!(names.iter().filter(|n| *n == "subject").count(), 1);
    // The host's own fields after Subject are all still in the header block, so no injected
    // empty line ended it early.
    for host_field in ["date", "message-id", "auto-submitted", "x-mailpipe-loop"] {
        assert!(names.contains(&host_field.to_string()), "{names:?}");
    }
    for (name, value) in &fields {
        assert!(!value.contains(['\r', '\n']), "{name}: {value:?}");
        if !name.eq_ignore_ascii_case("subject") {
            assert!(!value.contains("injected body"), "{name}: {value:?}");
        }
    }
    assert!(
        !body.contains("injected body") && !body.contains("Bcc:"),
        "{body}"
    );

    // Decoded, the subject is the inbound one on a single line.
    let parsed = mail_parser::MessageParser::new().parse(&out.raw).unwrap();
    let subject = parsed.subject().expect("a Subject");
    assert!(!subject.contains(['\r', '\n']), "{subject:?}");
    assert!(parsed.bcc().is_none());
    out
}
