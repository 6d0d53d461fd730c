//! Mail-loop safety, enforced by the host on every reply and forward whatever the plugin
//! did (RFC 3834): no automatic mail in answer to automatic, list or bulk mail, to bounces
//! or to role senders, and never to mail that already carries our loop marker.

use super::LOOP_HEADER;
use crate::message::Email;

/// Why automatic mail about `email` must not be sent, if it must not.
/// `automated_ok`: the plugin is allowed to forward list/bulk/auto-submitted mail
/// (`forward_automated = true`); the loop-marker and bounce checks stay.
pub fn blocker(email: &Email, sender: Option<&str>, automated_ok: bool) -> Option<String> {
    guard(email, Some(sender), automated_ok)
}

/// Why a notification about `email` must not be sent, if it must not: as `blocker`, but a
/// notification goes to the plugin's chosen addresses, never to the sender, so a missing or
/// role sender does not matter; mail marked as automatic is never notified about (RFC 5436
/// section 2.7), list and bulk mail only with `automated_ok`.
pub fn notify_blocker(email: &Email, automated_ok: bool) -> Option<String> {
    let auto = email
        .headers()
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("Auto-Submitted"))
        .find(|(_, v)| keyword(v.trim()) != "no")
        .map(|(_, v)| v.trim().to_string());
    if let Some(v) = auto {
        return Some(format!("the message is Auto-Submitted: {v}"));
    }
    guard(email, None, automated_ok)
}

/// `sender`: Some(the response address) for mail to the sender, None when the sender is
/// not a recipient.
fn guard(email: &Email, sender: Option<Option<&str>>, automated_ok: bool) -> Option<String> {
    let headers = email.headers();
    let get = |name: &'static str| {
        headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    };
    if get(LOOP_HEADER).next().is_some() {
        return Some(format!("the message carries the loop marker {LOOP_HEADER}"));
    }
    if get("Return-Path").any(|v| v == "<>" || v.is_empty()) {
        return Some("the message has a null return path (a bounce)".into());
    }
    if let Some(sender) = sender {
        let Some(sender) = sender else {
            return Some("the message has no sender address".into());
        };
        if let Some(reason) = role_sender(sender) {
            return Some(reason);
        }
    }
    if automated_ok {
        return None;
    }
    // Any Auto-Submitted value but "no" (RFC 3834; an unreadable one counts as automatic).
    if let Some(v) = get("Auto-Submitted").find(|v| keyword(v) != "no") {
        return Some(format!("the message is Auto-Submitted: {v}"));
    }
    if let Some(v) =
        get("Precedence").find(|v| ["bulk", "list", "junk"].contains(&keyword(v).as_str()))
    {
        return Some(format!("the message has Precedence: {v}"));
    }
    if let Some((n, _)) = headers.iter().find(|(n, _)| {
        n.as_bytes()
            .get(..5)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"list-"))
    }) {
        return Some(format!("the message is list mail ({n})"));
    }
    None
}

/// The first word of a structured header value, lowercased, with comments (nested, with
/// quoted pairs) and parameters (after `;`) removed: `bulk (mass mailing)` -> `bulk`,
/// `auto-replied; owner-email="x"` -> `auto-replied`.
pub fn keyword(value: &str) -> String {
    let mut out = String::new();
    let (mut depth, mut escaped) = (0usize, false);
    for c in value.chars() {
        if depth > 0 {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            continue;
        }
        match c {
            '(' => depth = 1,
            ';' => break,
            c if c.is_whitespace() => {
                if !out.is_empty() {
                    break;
                }
            }
            c => out.push(c.to_ascii_lowercase()),
        }
    }
    out
}

/// Senders that are robots or lists by name.
fn role_sender(addr: &str) -> Option<String> {
    let local = addr
        .rsplit_once('@')
        .map_or(addr, |(l, _)| l)
        .to_ascii_lowercase();
    let role = local == "mailer-daemon"
        || local == "postmaster"
        || local.ends_with("-request")
        || local.starts_with("owner-")
        || local.ends_with("-owner")
        || [
            "noreply",
            "no-reply",
            "no_reply",
            "donotreply",
            "do-not-reply",
        ]
        .iter()
        .any(|p| local.starts_with(p));
    role.then(|| format!("the sender {addr} is a robot or list address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(headers: &str) -> Email {
        Email::new(
            format!("{headers}\r\n\r\nbody\r\n").into_bytes(),
            "INBOX",
            vec![],
        )
    }

    #[test]
    fn personal_mail_may_be_answered() {
        let e = email("From: bob@example.org\r\nAuto-Submitted: no");
        assert_eq!(blocker(&e, Some("bob@example.org"), false), None);
    }

    #[test]
    fn automatic_and_list_mail_is_not() {
        for h in [
            "Auto-Submitted: auto-replied",
            "Precedence: bulk",
            "Precedence: LIST",
            "Precedence: bulk (mass mailing)",
            "Precedence: (comment) junk",
            "Auto-Submitted: auto-replied (vacation)",
            "Auto-Submitted: auto-generated; owner-email=\"a@b.c\"",
            "List-Id: <x.lists.example.org>",
            "List-Unsubscribe: <mailto:u@example.org>",
            "X-Mailpipe-Loop: alice@example.com",
            "Return-Path: <>",
        ] {
            assert!(
                blocker(&email(h), Some("bob@example.org"), false).is_some(),
                "{h}"
            );
        }
        for s in [
            "MAILER-DAEMON@x.org",
            "rust-request@x.org",
            "owner-announce@x.org",
            "noreply@x.org",
            "no-reply@x.org",
        ] {
            assert!(
                blocker(&email("Subject: x"), Some(s), false).is_some(),
                "{s}"
            );
        }
        assert!(blocker(&email("Subject: x"), None, false).is_some());
    }

    #[test]
    fn structured_values_are_parsed() {
        assert_eq!(keyword("bulk (mass mailing)"), "bulk");
        assert_eq!(keyword(" (a (nested) \\) c) List "), "list");
        assert_eq!(keyword("no (hand-written)"), "no");
        let e = email("Auto-Submitted: no (written by a person)");
        assert_eq!(blocker(&e, Some("bob@example.org"), false), None);
    }

    #[test]
    fn a_non_ascii_header_name_does_not_panic() {
        let raw = b"From: bob@example.org\r\nAbc\xff: x\r\nLis\xc3\xa9: y\r\n\r\nbody\r\n".to_vec();
        let e = Email::new(raw, "INBOX", vec![]);
        let _ = blocker(&e, Some("bob@example.org"), false);
    }

    #[test]
    fn forward_automated_keeps_the_loop_checks() {
        assert_eq!(
            blocker(&email("Precedence: list"), Some("bob@example.org"), true),
            None
        );
        assert!(blocker(
            &email("X-Mailpipe-Loop: a@b.c"),
            Some("bob@example.org"),
            true
        )
        .is_some());
    }
}
