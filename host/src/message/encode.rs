//! Writing header values and dates the way RFC 5322 and RFC 2047 want them: ASCII stays as it
//! is, anything else becomes UTF-8 encoded words; dates in RFC 5322 form without a time crate.

/// Longest plain value written as it is; longer ones become folded encoded words, so no
/// header line ever passes the 998-byte limit of RFC 5322.
const MAX_PLAIN: usize = 900;

/// Encode a header value for the wire. Callers pass text cleaned by `crate::model::text::clean_text`
/// (no CR, LF or other controls); `header::line` is the last check.
pub fn header_value(value: &str) -> String {
    if value.is_ascii()
        && !value.contains("=?")
        && value.len() <= MAX_PLAIN
        && !value.bytes().any(|b| b.is_ascii_control() && b != b'\t')
    {
        return value.to_string();
    }
    // Encoded words of at most 75 characters: 12 bytes of "=?UTF-8?B??=" plus base64 of
    // up to 45 input bytes (60 characters), split on character boundaries.
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in value.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(format!("=?UTF-8?B?{}?=", base64(chunk.as_bytes())));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", base64(chunk.as_bytes())));
    }
    words.join("\r\n ")
}

/// `Name <addr>` with the name quoted or encoded as needed.
pub fn mailbox(name: Option<&str>, addr: &str) -> String {
    let name = name.map(crate::model::text::clean_text);
    match name.as_deref() {
        Some(n) if !n.is_empty() => {
            if n.is_ascii() {
                let escaped = n.replace('\\', "\\\\").replace('"', "\\\"");
                format!("\"{escaped}\" <{addr}>")
            } else {
                format!("{} <{addr}>", header_value(n))
            }
        }
        _ => format!("<{addr}>"),
    }
}

/// Text with every line ending (CRLF, bare LF, bare CR) as CRLF, as SMTP and RFC 5322 want.
pub fn crlf_text(text: &str) -> String {
    String::from_utf8(crlf(text.as_bytes())).expect("only ASCII line endings change")
}

/// Bytes with every line ending (CRLF, bare LF, bare CR) as CRLF; unchanged bytes are not
/// copied twice when the input is already clean.
pub fn crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 32);
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if data.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// A MIME boundary for generated mail that occurs in none of `parts` (RFC 2046 5.1.1: a
/// boundary inside an enclosed part would end it early, and what follows would become parts
/// of our message). Starts from `=_mailpipe_{id}` and adds a counter until it is unique.
pub fn boundary(id: &str, parts: &[&[u8]]) -> String {
    let mut n = 0u32;
    loop {
        let b = if n == 0 {
            format!("=_mailpipe_{id}")
        } else {
            format!("=_mailpipe_{id}_{n}")
        };
        let needle = format!("--{b}");
        if !parts
            .iter()
            .any(|p| memchr::memmem::find(p, needle.as_bytes()).is_some())
        {
            return b;
        }
        n += 1;
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        out.push(B64[(n >> 18) as usize & 63] as char);
        out.push(B64[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            B64[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            B64[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// Decode standard base64 (padding optional, no line breaks). None on bad input.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut bits, mut nbits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = B64.iter().position(|&x| x == c)? as u32;
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
        }
    }
    Some(out)
}

/// Base64 broken into 76-character lines, for MIME bodies.
pub fn base64_lines(data: &[u8]) -> String {
    let flat = base64(data);
    let mut out = String::with_capacity(flat.len() + flat.len() / 76 * 2 + 2);
    for line in flat.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push_str("\r\n");
    }
    out
}

/// RFC 5322 date (UTC) from milliseconds since the epoch.
pub fn rfc5322_date(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MO: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {} {} {} {:02}:{:02}:{:02} +0000",
        WD[days.rem_euclid(7) as usize],
        d,
        MO[(m - 1) as usize],
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_boundary_never_occurs_in_what_it_encloses() {
        assert_eq!(boundary("ab", &[b"hello"]), "=_mailpipe_ab");
        let forged = b"x\r\n--=_mailpipe_ab--\r\nContent-Type: text/html\r\n\r\nevil";
        let b = boundary("ab", &[b"ok", forged]);
        assert_eq!(b, "=_mailpipe_ab_1");
        assert!(!String::from_utf8_lossy(forged).contains(&format!("--{b}")));
    }

    #[test]
    fn line_endings_become_crlf() {
        assert_eq!(crlf(b"a\nb\rc\r\nd\r"), b"a\r\nb\r\nc\r\nd\r\n".to_vec());
        assert_eq!(crlf_text("x\r\r\ny"), "x\r\n\r\ny");
    }

    #[test]
    fn dates_are_rfc5322() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_795_737_600_000),
            "Fri, 27 Nov 2026 00:00:00 +0000"
        );
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
            assert_eq!(base64_decode(o).unwrap(), i.as_bytes());
        }
    }

    #[test]
    fn non_ascii_values_become_short_encoded_words() {
        let v = header_value("Grüße aus München – eine längere Betreffzeile mit Umlauten äöü");
        assert!(v.starts_with("=?UTF-8?B?"));
        assert!(v.split("\r\n ").all(|w| w.len() <= 75), "{v}");
        assert_eq!(header_value("plain"), "plain");
        let long = "word ".repeat(400);
        assert!(header_value(&long).split("\r\n ").all(|w| w.len() <= 75));
    }
}
