//! Why this file exists: the host refuses any header value (reply subject, set-header,
//! add-header, set-subject) that holds CR, LF or NUL or is longer than 998 bytes, and then voids
//! the plugin's whole result for the message. Inbound text is attacker-controlled (an RFC 2047
//! encoded word can decode to "hi\r\nBcc: victim@example.net"), so a plugin that copies it into a
//! header would lose its reply or rewrite. `header_safe` turns any text into a value the host
//! accepts, the same way in every plugin (and in the JS, Python and C examples).

/// Longest value `header_safe` returns, in bytes: below the host's 998-byte limit, with room
/// for a prefix such as "Re: " or a tag added by a later plugin.
pub const HEADER_SAFE_MAX: usize = 900;

/// What a cut value ends with.
const ELLIPSIS: &str = "…";

/// Make `text` safe to use as a header value (a subject, a set-header/add-header value): every
/// control character (CR, LF, NUL, TAB, DEL, C1 controls) and every other whitespace
/// character becomes a space, runs of spaces collapse to one, the ends are trimmed, and a
/// result longer than [`HEADER_SAFE_MAX`] bytes is cut on a character boundary and ends with
/// "…" (still within the limit).
///
/// Apply it to the whole value you build (e.g. `header_safe(&format!("Re: {subject}"))`), so
/// the length limit covers your prefix too.
///
/// ```
/// use mailpipe_plugin::header_safe;
/// assert_eq!(header_safe("hi\r\nBcc: x@evil"), "hi Bcc: x@evil");
/// ```
pub fn header_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(HEADER_SAFE_MAX));
    let mut pending_space = false;
    for c in text.chars() {
        if c.is_control() || c.is_whitespace() {
            pending_space = true;
            continue;
        }
        if pending_space && !out.is_empty() {
            out.push(' ');
        }
        pending_space = false;
        out.push(c);
        if out.len() > HEADER_SAFE_MAX {
            break; // enough to know it must be cut
        }
    }
    if out.len() > HEADER_SAFE_MAX {
        let mut end = HEADER_SAFE_MAX - ELLIPSIS.len();
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.truncate(out.trim_end().len());
        out.push_str(ELLIPSIS);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{header_safe, HEADER_SAFE_MAX};

    /// What the host checks before it accepts a header value.
    fn host_accepts(value: &str) -> bool {
        !value.contains(['\r', '\n', '\0']) && value.len() <= 998
    }

    #[test]
    fn injection_becomes_one_line() {
        let v = header_safe("Urlaub?\r\nBcc: victim@example.net\r\n\r\ninjected body");
        assert_eq!(v, "Urlaub? Bcc: victim@example.net injected body");
        assert!(host_accepts(&v));
        assert_eq!(header_safe("a\nb\rc\0d"), "a b c d");
    }

    #[test]
    fn controls_and_whitespace_collapse() {
        assert_eq!(header_safe("  a \t\t b\x01\x7f\u{85}c  "), "a b c");
        assert_eq!(header_safe("x\u{2028}y\u{00a0}z"), "x y z");
        assert_eq!(header_safe("\x1b[31mred"), "[31mred");
        assert_eq!(header_safe(""), "");
        assert_eq!(header_safe(" \r\n\t\0 "), "");
    }

    #[test]
    fn ordinary_text_is_unchanged() {
        for s in [
            "Re: Lunch on Friday?",
            "Grüße aus München – Rückmeldung",
            "[EXT] 日本語の件名 🎉",
        ] {
            assert_eq!(header_safe(s), s);
        }
    }

    #[test]
    fn long_text_is_cut_on_a_char_boundary() {
        let ascii = "a".repeat(2000);
        let v = header_safe(&ascii);
        assert!(
            v.len() <= HEADER_SAFE_MAX && v.ends_with('…'),
            "{}",
            v.len()
        );
        assert_eq!(v.len(), HEADER_SAFE_MAX);

        // Multi-byte characters whichever way they straddle the limit.
        for pad in 0..4 {
            let text = format!("{}{}", "x".repeat(pad), "ü€🎉".repeat(300));
            let v = header_safe(&text);
            assert!(v.len() <= HEADER_SAFE_MAX, "{}", v.len());
            assert!(v.len() > HEADER_SAFE_MAX - 4 - "…".len(), "{}", v.len());
            assert!(v.ends_with('…'));
            assert!(text.starts_with(v.trim_end_matches('…')));
            assert!(host_accepts(&v));
        }

        // Exactly at the limit: kept whole.
        let exact = "b".repeat(HEADER_SAFE_MAX);
        assert_eq!(header_safe(&exact), exact);
        // Long runs of whitespace count once, not per character.
        let spaced = format!("a{}b", " ".repeat(5000));
        assert_eq!(header_safe(&spaced), "a b");
    }

    #[test]
    fn no_trailing_space_before_the_ellipsis() {
        let text = format!("{} tail", "c".repeat(HEADER_SAFE_MAX - 4));
        let v = header_safe(&text);
        assert_eq!(v, format!("{}…", "c".repeat(HEADER_SAFE_MAX - 4)));
    }
}
