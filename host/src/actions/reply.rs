//! Builds the complete reply the host sends for a `reply` action: threading headers from the
//! original (In-Reply-To, References, "Re:" subject), the RFC 3834 Auto-Submitted marker,
//! our loop marker, and a text (or text + html) MIME body.

use super::{domain_of, LOOP_HEADER};
use crate::config::Identity;
use crate::message::encode::{self, base64_lines, rfc5322_date};
use crate::message::header;
use crate::message::view;
use crate::message::Email;
use crate::model::decision::Reply;

/// Where automatic responses go: the Return-Path address, else From (RFC 3834 section 4;
/// Reply-To is for human replies). Parsed as addresses, so comments and display names
/// (`bob@example.org (Bob)`, `"Bob" <bob@example.org>`) are no part of it.
pub fn response_address(email: &Email) -> Option<String> {
    let [return_path, from] = email.first_raw_values(["Return-Path", "From"]);
    response_address_of(return_path, from)
}

/// `response_address` from the message's first raw Return-Path and From values.
pub fn response_address_of(return_path: Option<String>, from: Option<String>) -> Option<String> {
    let first = |raw: &str| {
        view::addresses(raw.as_bytes())
            .into_iter()
            .next()
            .map(|a| a.address.trim().to_string())
            .filter(|a| !a.is_empty())
    };
    match return_path {
        // A Return-Path is authoritative: "<>" (a bounce) has no response address.
        Some(rp) => first(&rp),
        None => first(&from?),
    }
}

pub fn compose(
    original: &Email,
    reply: &Reply,
    to: &str,
    identity: &Identity,
    id: &str,
    now_ms: i64,
) -> Vec<u8> {
    let orig_subject = original.header("Subject");
    // msg-ids are read from the raw fields: encoded words are not allowed in them (RFC 2047
    // section 5), so a "msg-id" that needs decoding is no msg-id.
    let [message_id, references] = original.first_raw_values(["Message-ID", "References"]);
    let orig_subject = crate::model::text::clean_text(&orig_subject.unwrap_or_default());
    let subject = match &reply.subject {
        Some(s) => s.clone(),
        None if orig_subject
            .get(..3)
            .is_some_and(|p| p.eq_ignore_ascii_case("re:")) =>
        {
            orig_subject
        }
        None => format!("Re: {orig_subject}"),
    };
    let mut h = vec![
        (
            "From".to_string(),
            encode::mailbox(identity.name.as_deref(), &identity.address),
        ),
        ("To".to_string(), format!("<{to}>")),
        ("Subject".to_string(), header::unstructured(&subject)),
        ("Date".to_string(), rfc5322_date(now_ms)),
        (
            "Message-ID".to_string(),
            format!("<mailpipe.{id}@{}>", domain_of(&identity.address)),
        ),
    ];
    // Threading fields are rebuilt from valid msg-ids only: whatever else the original's
    // fields decode to (comments, junk, injected lines) is dropped.
    if let Some(parent) = message_id.as_deref().and_then(header::first_msg_id) {
        let mut refs = header::msg_ids(references.as_deref().unwrap_or_default());
        refs.retain(|r| *r != parent);
        refs.push(parent.clone());
        let skip = refs.len().saturating_sub(header::MAX_REFERENCES);
        h.push(("In-Reply-To".into(), parent));
        h.push(("References".into(), refs[skip..].join(" ")));
    }
    h.push(("Auto-Submitted".into(), "auto-replied".into()));
    h.push((LOOP_HEADER.into(), identity.address.clone()));
    for extra in &reply.headers {
        h.push((extra.name.clone(), header::unstructured(&extra.value)));
    }
    h.push(("MIME-Version".into(), "1.0".into()));
    let body = match &reply.html {
        None => text_part("text/plain", &reply.text),
        Some(html) => {
            let boundary = encode::boundary(id, &[reply.text.as_bytes(), html.as_bytes()]);
            format!(
                "Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\n{}\r\n--{boundary}\r\n{}\r\n--{boundary}--\r\n",
                text_part("text/plain", &reply.text),
                text_part("text/html", html)
            )
        }
    };
    let mut out = String::new();
    for (name, value) in h {
        out.push_str(&header::line(&name, &value, "\r\n"));
    }
    out.push_str(&body);
    out.into_bytes()
}

/// One MIME part's headers and body: 7bit when it is plain short-lined ASCII, else base64.
pub fn text_part(content_type: &str, text: &str) -> String {
    let text = crate::message::encode::crlf_text(text);
    if text.is_ascii() && text.split("\r\n").all(|l| l.len() <= 998) {
        format!("Content-Type: {content_type}; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n{text}\r\n")
    } else {
        format!(
            "Content-Type: {content_type}; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
            base64_lines(text.as_bytes())
        )
    }
}
