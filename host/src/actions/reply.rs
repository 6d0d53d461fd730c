//! Builds the complete reply the host sends for a `reply` action: threading headers from the
//! original (In-Reply-To, References, "Re:" subject), the RFC 3834 Auto-Submitted marker,
//! our loop marker, and a text (or text + html) MIME body.

use super::{domain_of, LOOP_HEADER};
use crate::config::Identity;
use crate::message::encode::{self, base64_lines, rfc5322_date};
use crate::message::Email;
use crate::plugin::bindings::Reply;

/// Where automatic responses go: the Return-Path address, else From (RFC 3834 section 4;
/// Reply-To is for human replies).
pub fn response_address(email: &Email) -> Option<String> {
    let [return_path, from] = email.first_values(["Return-Path", "From"]);
    response_address_of(return_path, from)
}

/// `response_address` from the message's first Return-Path and From values.
pub fn response_address_of(return_path: Option<String>, from: Option<String>) -> Option<String> {
    if let Some(rp) = return_path {
        let addr = rp
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .trim()
            .to_string();
        return (!addr.is_empty()).then_some(addr);
    }
    let from = from?;
    let addr = match (from.rfind('<'), from.rfind('>')) {
        (Some(a), Some(b)) if a < b => &from[a + 1..b],
        _ => from.as_str(),
    };
    let addr = addr.trim();
    (!addr.is_empty()).then(|| addr.to_string())
}

pub fn compose(
    original: &Email,
    reply: &Reply,
    to: &str,
    identity: &Identity,
    id: &str,
    now_ms: i64,
) -> Vec<u8> {
    let orig_subject = original.header("Subject").unwrap_or_default();
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
        ("Subject".to_string(), encode::header_value(&subject)),
        ("Date".to_string(), rfc5322_date(now_ms)),
        (
            "Message-ID".to_string(),
            format!("<mailpipe.{id}@{}>", domain_of(&identity.address)),
        ),
    ];
    if let Some(parent) = original
        .header("Message-ID")
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
    {
        let parent = if parent.starts_with('<') {
            parent
        } else {
            format!("<{parent}>")
        };
        let refs = original.header("References").unwrap_or_default();
        let refs = format!("{} {parent}", refs.trim()).trim().to_string();
        h.push(("In-Reply-To".into(), parent));
        h.push(("References".into(), refs));
    }
    h.push(("Auto-Submitted".into(), "auto-replied".into()));
    h.push((LOOP_HEADER.into(), identity.address.clone()));
    for extra in &reply.headers {
        h.push((extra.name.clone(), encode::header_value(&extra.value)));
    }
    h.push(("MIME-Version".into(), "1.0".into()));
    let body = match &reply.html {
        None => text_part("text/plain", &reply.text),
        Some(html) => {
            let boundary = format!("=_mailpipe_{id}");
            format!(
                "Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\n{}\r\n--{boundary}\r\n{}\r\n--{boundary}--\r\n",
                text_part("text/plain", &reply.text),
                text_part("text/html", html)
            )
        }
    };
    let mut out = String::new();
    for (name, value) in h {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&body);
    out.into_bytes()
}

/// One MIME part's headers and body: 7bit when it is plain short-lined ASCII, else base64.
pub fn text_part(content_type: &str, text: &str) -> String {
    let text = text.replace("\r\n", "\n").replace('\n', "\r\n");
    if text.is_ascii() && text.split("\r\n").all(|l| l.len() <= 998) {
        format!("Content-Type: {content_type}; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n{text}\r\n")
    } else {
        format!(
            "Content-Type: {content_type}; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
            base64_lines(text.as_bytes())
        )
    }
}
