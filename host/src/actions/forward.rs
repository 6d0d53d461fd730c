//! Builds forwarded mail: a redirect resends the original bytes with Resent-* headers on top
//! (RFC 5322 section 3.6.6); attachment mode wraps the original as message/rfc822 in a new
//! message. Both carry `Auto-Submitted: auto-generated` and our loop marker.

use super::{domain_of, LOOP_HEADER};
use crate::config::Identity;
use crate::message::encode::{self, rfc5322_date};
use crate::message::header;
use crate::message::rewrite;
use crate::message::Email;
use crate::model::decision::ForwardSpec;

impl ForwardSpec {
    /// The complete forward of `original`, CRLF throughout as SMTP wants it.
    pub fn build(&self, original: &Email) -> Vec<u8> {
        let identity = Identity {
            address: self.from_address.clone(),
            name: self.from_name.clone(),
        };
        let raw = if self.attach {
            as_attachment(
                original,
                &self.to,
                self.note.as_deref(),
                &identity,
                &self.id,
                self.now_ms,
            )
        } else {
            redirect(original, &self.to, &identity, &self.id, self.now_ms)
        };
        rewrite::crlf_message(&raw)
    }
}

pub fn redirect(
    original: &Email,
    to: &[String],
    identity: &Identity,
    id: &str,
    now_ms: i64,
) -> Vec<u8> {
    let recipients = to
        .iter()
        .map(|a| format!("<{a}>"))
        .collect::<Vec<_>>()
        .join(", ");
    rewrite::edit(&original.raw, |h| {
        h.drop_preamble();
        h.remove("Auto-Submitted");
        // Prepending in reverse order leaves them in the usual order on top.
        h.prepend(LOOP_HEADER, &identity.address);
        h.prepend("Auto-Submitted", "auto-generated");
        h.prepend(
            "Resent-Message-ID",
            &format!("<mailpipe.{id}@{}>", domain_of(&identity.address)),
        );
        h.prepend("Resent-To", &recipients);
        h.prepend("Resent-Date", &rfc5322_date(now_ms));
        h.prepend("Resent-From", &format!("<{}>", identity.address));
    })
}

pub fn as_attachment(
    original: &Email,
    to: &[String],
    note: Option<&str>,
    identity: &Identity,
    id: &str,
    now_ms: i64,
) -> Vec<u8> {
    let subject = format!(
        "Fwd: {}",
        crate::model::text::clean_text(&original.header("Subject").unwrap_or_default())
    );
    let original_wire = rewrite::crlf_message(&original.raw);
    let boundary = encode::boundary(id, &[&original_wire, note.unwrap_or_default().as_bytes()]);
    let cte = if original.raw.is_ascii() {
        "7bit"
    } else {
        "8bit"
    };
    let mut out = String::new();
    for (name, value) in [
        (
            "From",
            encode::mailbox(identity.name.as_deref(), &identity.address),
        ),
        (
            "To",
            to.iter()
                .map(|a| format!("<{a}>"))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("Subject", header::unstructured(&subject)),
        ("Date", rfc5322_date(now_ms)),
        (
            "Message-ID",
            format!("<mailpipe.{id}@{}>", domain_of(&identity.address)),
        ),
        ("Auto-Submitted", "auto-generated".into()),
        (LOOP_HEADER, identity.address.clone()),
        ("MIME-Version", "1.0".into()),
        (
            "Content-Type",
            format!("multipart/mixed; boundary=\"{boundary}\""),
        ),
    ] {
        out.push_str(&header::line(name, &value, "\r\n"));
    }
    out.push_str(&format!(
        "\r\n--{boundary}\r\n{}\r\n--{boundary}\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment\r\nContent-Transfer-Encoding: {cte}\r\n\r\n",
        super::reply::text_part("text/plain", note.unwrap_or("Forwarded message attached."))
    ));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&original_wire);
    if !original.raw.ends_with(b"\n") {
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    bytes
}
