//! Checks every action a plugin returns before anything is applied: folder names, flags,
//! header names and values (no CR/LF: no header injection), reply headers the host owns,
//! and recipients against the plugin's `allow_send_to`. One bad action voids the plugin's
//! whole result for that message.

use super::recipients::check_allowed;
use crate::config::PluginConfig;
use crate::model::address::validate_addr_spec;
use crate::model::decision::{Action, FolderTarget};
use crate::model::message::Header;

const MAX_HEADER_VALUE: usize = 998;
const MAX_BODY: usize = 1 << 20;
const MAX_FORWARD_RECIPIENTS: usize = 20;
/// Flags one call may add or remove, over all its actions.
pub const MAX_FLAGS_PER_CALL: usize = 100;
/// Extra header fields of one reply, and their total size.
pub const MAX_REPLY_HEADERS: usize = 20;
pub const MAX_REPLY_HEADER_BYTES: usize = 8 << 10;

/// Folder-name segments the offline mail store uses for itself (a Maildir's own
/// subdirectories and Dovecot's files): a folder called like one would nest inside or
/// collide with another folder's files.
const RESERVED_SEGMENTS: &[&str] = &["cur", "new", "tmp", "maildirfolder"];

/// Headers of a reply that only the host writes.
const HOST_OWNED: &[&str] = &[
    "from",
    "sender",
    "to",
    "cc",
    "bcc",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "auto-submitted",
    "x-mailpipe-loop",
    "mime-version",
    "return-path",
    "received",
];

/// Whether `action` can be carried out where the message is: `refuse` only while it is being
/// delivered (`at_delivery`), since after delivery no sending server waits for an answer.
pub fn at_stage(action: &Action, at_delivery: bool) -> Result<(), String> {
    match action {
        Action::Refuse(_) if !at_delivery => Err(
            "refuse is possible only while the message is being delivered (LMTP, mailpipe \
             deliver); this one was delivered before, so there is no sending server to refuse \
             it to"
                .into(),
        ),
        _ => Ok(()),
    }
}

pub fn validate(
    action: &Action,
    plugin: &PluginConfig,
    sender: Option<&str>,
) -> Result<(), String> {
    match action {
        Action::Keep | Action::Discard | Action::Stop => Ok(()),
        // Sent as one line of printable ASCII (`Refusal::reply_text`); only its size matters.
        Action::Refuse(reason) if reason.len() > MAX_BODY => Err(format!(
            "refusal reason over {MAX_BODY} bytes (fixed limit)"
        )),
        Action::Refuse(_) => Ok(()),
        Action::FileInto(t) | Action::CopyInto(t) => folder(t),
        Action::AddFlags(flags) | Action::RemoveFlags(flags) => {
            flags.iter().try_for_each(|f| flag(f))
        }
        Action::SetHeader(h) | Action::AddHeader(h) => header(h),
        Action::RemoveHeader(name) => header_name(name),
        Action::SetSubject(s) => header_value("Subject", s),
        Action::Reply(r) => {
            if let Some(s) = &r.subject {
                header_value("Subject", s)?;
            }
            if r.text.len() > MAX_BODY || r.html.as_ref().is_some_and(|h| h.len() > MAX_BODY) {
                return Err(format!("reply body over {MAX_BODY} bytes (fixed limit)"));
            }
            extra_headers("reply", &r.headers)?;
            // Replies go to the sender. A message without a usable sender address does not
            // void the plugin's result: the reply is just not sent (the pipeline says why).
            match sender.filter(|s| validate_addr_spec(s).is_ok()) {
                Some(s) => check_allowed(&plugin.allow_send_to, s, Some(s)),
                None => Ok(()),
            }
        }
        Action::Forward(f) => {
            if f.to.is_empty() || f.to.len() > MAX_FORWARD_RECIPIENTS {
                return Err(format!(
                    "forward needs 1 to {MAX_FORWARD_RECIPIENTS} recipients"
                ));
            }
            if f.note.as_ref().is_some_and(|n| n.len() > MAX_BODY) {
                return Err(format!("forward note over {MAX_BODY} bytes"));
            }
            f.to.iter()
                .try_for_each(|rcpt| check_allowed(&plugin.allow_send_to, rcpt, sender))
        }
        Action::Notify(n) => {
            if n.to.is_empty() || n.to.len() > MAX_FORWARD_RECIPIENTS {
                return Err(format!(
                    "notify needs 1 to {MAX_FORWARD_RECIPIENTS} recipients"
                ));
            }
            if let Some(s) = &n.subject {
                header_value("Subject", s)?;
            }
            if n.text.len() > MAX_BODY {
                return Err(format!(
                    "notification text over {MAX_BODY} bytes (fixed limit)"
                ));
            }
            extra_headers("notification", &n.headers)?;
            n.to.iter()
                .try_for_each(|rcpt| check_allowed(&plugin.allow_send_to, rcpt, sender))
        }
    }
}

/// The extra header fields of a message the host writes (a reply, a notification): few,
/// valid, and none of those the host writes itself.
fn extra_headers(what: &str, headers: &[Header]) -> Result<(), String> {
    let header_bytes: usize = headers.iter().map(|h| h.name.len() + h.value.len()).sum();
    if headers.len() > MAX_REPLY_HEADERS || header_bytes > MAX_REPLY_HEADER_BYTES {
        return Err(format!(
            "{what} has {} extra headers of {header_bytes} bytes; the fixed limit is {MAX_REPLY_HEADERS} headers of {MAX_REPLY_HEADER_BYTES} bytes in all",
            headers.len()
        ));
    }
    for h in headers {
        header(h)?;
        let lower = h.name.to_ascii_lowercase();
        if HOST_OWNED.contains(&lower.as_str())
            || lower.starts_with("content-")
            || lower.starts_with("resent-")
        {
            return Err(format!("{what} header {} is written by the host", h.name));
        }
    }
    Ok(())
}

/// Checks that concern a call's actions together: flags added or removed in all.
pub fn totals(actions: &[Action]) -> Result<(), String> {
    let flags: usize = actions
        .iter()
        .map(|a| match a {
            Action::AddFlags(f) | Action::RemoveFlags(f) => f.len(),
            _ => 0,
        })
        .sum();
    if flags > MAX_FLAGS_PER_CALL {
        return Err(format!(
            "{flags} flags added or removed in one call; the fixed limit is {MAX_FLAGS_PER_CALL}"
        ));
    }
    Ok(())
}

/// A folder name: "/"-separated UTF-8 segments, no control characters, no path tricks, no
/// segment named like a mail store's own files (`RESERVED_SEGMENTS`, `dovecot*`).
pub fn folder(t: &FolderTarget) -> Result<(), String> {
    let name = &t.folder;
    let bad = name.is_empty()
        || name.len() > 255
        || name
            .chars()
            .any(|c| c.is_control() || c == '\\' || c == '*' || c == '%')
        || name
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == ".." || seg.trim() != seg);
    if bad {
        return Err(format!("invalid folder name {name:?}"));
    }
    if let Some(seg) = name.split('/').find(|seg| {
        let lower = seg.to_lowercase();
        RESERVED_SEGMENTS.contains(&lower.as_str()) || lower.starts_with("dovecot")
    }) {
        return Err(format!(
            "folder name {name:?}: {seg:?} is a name mail stores use for their own files"
        ));
    }
    Ok(())
}

/// IMAP system flags (RFC 3501) or keywords (atoms).
pub fn flag(f: &str) -> Result<(), String> {
    const SYSTEM: &[&str] = &["\\seen", "\\answered", "\\flagged", "\\deleted", "\\draft"];
    let ok = if f.starts_with('\\') {
        SYSTEM.contains(&f.to_ascii_lowercase().as_str())
    } else {
        !f.is_empty()
            && f.len() <= 100
            && f.bytes()
                .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b))
    };
    if ok {
        Ok(())
    } else {
        Err(format!("invalid flag {f:?}"))
    }
}

fn header(h: &Header) -> Result<(), String> {
    header_name(&h.name)?;
    header_value(&h.name, &h.value)
}

fn header_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 76
        || !name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
    {
        return Err(format!("invalid header name {name:?}"));
    }
    Ok(())
}

fn header_value(name: &str, value: &str) -> Result<(), String> {
    if value.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
        return Err(format!("header {name} value contains CR, LF or NUL"));
    }
    if value.len() > MAX_HEADER_VALUE {
        return Err(format!(
            "header {name} value longer than {MAX_HEADER_VALUE} bytes"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(f: &str) -> FolderTarget {
        FolderTarget {
            folder: f.into(),
            create: true,
        }
    }

    #[test]
    fn folders() {
        assert!(folder(&t("Lists/rust")).is_ok());
        assert!(folder(&t("Projekte/Grüße")).is_ok());
        for bad in [
            "",
            "../etc",
            "a//b",
            "/abs",
            "a/",
            "a\r\nb",
            "a\0",
            "x/./y",
            " lead",
            "A/dovecot-keywords",
            "INBOX/cur",
            "new",
            "x/Tmp/y",
            "Dovecot.index",
        ] {
            assert!(folder(&t(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn flags() {
        assert!(flag("\\Seen").is_ok());
        assert!(flag("$Label1").is_ok());
        assert!(flag("\\Recent").is_err());
        assert!(flag("two words").is_err());
        assert!(flag("a)b").is_err());
    }

    #[test]
    fn flag_totals_are_bounded() {
        let many: Vec<String> = (0..MAX_FLAGS_PER_CALL + 1)
            .map(|i| format!("k{i}"))
            .collect();
        assert!(totals(&[Action::AddFlags(many.clone())]).is_err());
        assert!(totals(&[
            Action::AddFlags(many[..50].to_vec()),
            Action::RemoveFlags(many[..50].to_vec())
        ])
        .is_ok());
    }

    #[test]
    fn header_injection_is_refused() {
        let h = Header {
            name: "X-A".into(),
            value: "x\r\nBcc: v@example.net".into(),
        };
        assert!(header(&h).is_err());
        let h = Header {
            name: "Bad Name".into(),
            value: "x".into(),
        };
        assert!(header(&h).is_err());
    }

    #[test]
    fn refuse_only_at_delivery() {
        let refuse = Action::Refuse("no".into());
        assert!(at_stage(&refuse, true).is_ok());
        let e = at_stage(&refuse, false).unwrap_err();
        assert!(
            e.contains("only while the message is being delivered"),
            "{e}"
        );
        assert!(at_stage(&Action::Keep, false).is_ok());
    }
}
