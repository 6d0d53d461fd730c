//! Text made safe to put into one header field: the one rule every value taken from a
//! plugin, a config or an inbound message passes before it is written into a header or a log
//! line. (`message::header` encodes it for the wire.)

/// Longest unstructured text kept for one field (before encoding); longer text is cut.
pub const MAX_UNSTRUCTURED: usize = 2000;

/// Text made safe for one header value: every control character (CR, LF, NUL, TAB, DEL, C1)
/// becomes a space, runs of spaces collapse, ends are trimmed, and the text is cut to
/// `MAX_UNSTRUCTURED` bytes on a character boundary.
pub fn clean_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_UNSTRUCTURED));
    let mut space = false;
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if c == ' ' {
            if !space && !out.is_empty() {
                out.push(' ');
            }
            space = true;
            continue;
        }
        if out.len() + c.len_utf8() > MAX_UNSTRUCTURED {
            break;
        }
        space = false;
        out.push(c);
    }
    // Trimmed like a reader trims (any Unicode white space), so a value reads back as set.
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_text_removes_every_control_and_collapses_space() {
        assert_eq!(clean_text("  a\r\nBcc: x\0y\t\tz  "), "a Bcc: x y z");
        assert_eq!(clean_text("Grüße"), "Grüße");
        let long = "é".repeat(MAX_UNSTRUCTURED);
        let c = clean_text(&long);
        assert!(c.len() <= MAX_UNSTRUCTURED && c.chars().all(|x| x == 'é'));
    }
}
