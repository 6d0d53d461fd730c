//! The one choke point every header line written into an outgoing or rewritten message passes
//! through, whatever its origin (the host, a plugin, or text taken from an inbound message):
//! no CR, LF or NUL ever reaches a header except as the folding the encoder itself writes;
//! unstructured text is cleaned and re-encoded (RFC 2047); msg-id fields are rebuilt from
//! syntactically valid msg-ids only. Builders (`actions::reply`, `actions::forward`) and the
//! rewriter (`message::rewrite`) write fields only through `line`.

use super::encode;
use crate::model::text::clean_text;

/// Most msg-ids written into one References field (the newest are kept, RFC 5322 3.6.4).
pub const MAX_REFERENCES: usize = 20;
/// Longest msg-id accepted from an inbound message.
const MAX_MSG_ID: usize = 250;

/// An unstructured value (Subject, a plugin's X- field) cleaned and encoded for the wire.
pub fn unstructured(text: &str) -> String {
    encode::header_value(&clean_text(text))
}

/// Whether `id` is a syntactically valid msg-id `<left@right>` (RFC 5322 3.6.4, without the
/// obsolete forms): dot-atom text on the left, dot-atom text or a no-fold literal on the right.
pub fn is_msg_id(id: &str) -> bool {
    let Some(inner) = id.strip_prefix('<').and_then(|s| s.strip_suffix('>')) else {
        return false;
    };
    if id.len() > MAX_MSG_ID {
        return false;
    }
    let Some((left, right)) = inner.split_once('@') else {
        return false;
    };
    let atext = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&c);
    let dot_atom = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && !s.ends_with('.')
            && !s.contains("..")
            && s.bytes().all(|c| atext(c) || c == b'.')
    };
    let literal = |s: &str| {
        s.len() >= 2
            && s.starts_with('[')
            && s.ends_with(']')
            && s[1..s.len() - 1]
                .bytes()
                .all(|c| c.is_ascii_graphic() && !b"[]\\".contains(&c))
    };
    dot_atom(left) && (dot_atom(right) || literal(right))
}

/// The valid msg-ids in an inbound field value (Message-ID, In-Reply-To, References), in
/// order; anything else (comments, junk, injected text) is dropped.
pub fn msg_ids(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find('<') {
        let after = &rest[start..];
        let Some(end) = after.find('>') else { break };
        let candidate = &after[..=end];
        if is_msg_id(candidate) {
            out.push(candidate.to_string());
        }
        rest = &after[end + 1..];
    }
    out
}

/// The msg-id of a Message-ID value: its first valid `<id>`, or the whole value when a sender
/// left out the angle brackets and it is valid with them.
pub fn first_msg_id(value: &str) -> Option<String> {
    msg_ids(value).into_iter().next().or_else(|| {
        let bracketed = format!("<{}>", value.trim());
        is_msg_id(&bracketed).then_some(bracketed)
    })
}

/// A whole field, `Name: value` plus `eol`. `value` must already be in wire form (from
/// `unstructured`, an encoder, or host-built structured text); as a last line of defence any
/// CR, LF or NUL in it that is not the encoder's own folding (`CRLF` + space) becomes a space,
/// and a name that is not a valid field name loses its invalid bytes.
pub fn line(name: &str, value: &str, eol: &str) -> String {
    let name: String = name
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != ':')
        .collect();
    let name = if name.is_empty() { "X-Invalid" } else { &name };
    let mut out = String::with_capacity(name.len() + value.len() + 4);
    out.push_str(name);
    out.push_str(": ");
    let folds: Vec<&str> = value.split("\r\n ").collect();
    for (i, part) in folds.iter().enumerate() {
        if i > 0 {
            out.push_str(eol);
            out.push(' ');
        }
        out.extend(part.chars().map(|c| match c {
            '\r' | '\n' | '\0' => ' ',
            c => c,
        }));
    }
    out.push_str(eol);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unstructured_never_carries_a_line_break() {
        for t in [
            "x\r\nBcc: v@example.net\r\n\r\nbody",
            "=?UTF-8?B?eA0KQmNjOiB2?=",
            "ü\n",
        ] {
            let v = unstructured(t);
            assert!(
                !v.replace("\r\n ", "").contains(['\r', '\n', '\0']),
                "{v:?}"
            );
        }
    }

    #[test]
    fn msg_ids_keep_only_valid_ids() {
        assert_eq!(
            msg_ids("<a@b.c> junk <x y@z> <ok.1@[1.2.3.4]>"),
            ["<a@b.c>", "<ok.1@[1.2.3.4]>"]
        );
        assert!(msg_ids("<x@y>\r\nX-Injected: 1").len() == 1);
        assert!(msg_ids("<x@y\r\nX: 1>").is_empty());
        assert!(!is_msg_id("<@b>"));
        assert!(!is_msg_id("<a@>"));
        assert!(!is_msg_id("<a..b@c>"));
    }

    #[test]
    fn line_keeps_encoder_folding_and_nothing_else() {
        assert_eq!(line("Subject", "a\r\n b", "\r\n"), "Subject: a\r\n b\r\n");
        assert_eq!(line("Subject", "a\r\nB: c", "\n"), "Subject: a  B: c\n");
        assert_eq!(line("Bad:Name\r\n", "v", "\r\n"), "BadName: v\r\n");
    }
}
