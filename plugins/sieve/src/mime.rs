//! Why this file exists: `body :content "TYPE"` (RFC 5173 section 5) tests the MIME parts of a
//! given content type, each decoded (base64, quoted-printable; UTF-8, US-ASCII and Latin-1
//! text). The host's message view offers a text body, an HTML body and attachments, not every
//! part, so the interpreter walks the raw message itself: bounded depth and part count, and a
//! malformed message gives the parts that could be read, never an error.

/// Deepest nesting of multiparts followed, and most parts returned.
const MAX_DEPTH: usize = 16;
const MAX_PARTS: usize = 256;

/// (content type "type/subtype" lowercased, decoded content) of each part, in order. A
/// multipart is not a part itself; an attached message (message/rfc822) is one (its header),
/// and its own parts follow it.
pub fn parts(raw: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    walk(raw, "text/plain", 0, &mut out);
    out
}

fn split_entity(raw: &[u8]) -> (&[u8], &[u8]) {
    for (i, w) in raw.windows(2).enumerate() {
        if w == b"\n\n" {
            return (&raw[..i + 1], &raw[i + 2..]);
        }
        if w == b"\r\n" && raw[i + 2..].starts_with(b"\r\n") {
            return (&raw[..i + 2], &raw[i + 4..]);
        }
    }
    if raw.starts_with(b"\r\n") {
        return (&[], &raw[2..]);
    }
    if raw.starts_with(b"\n") {
        return (&[], &raw[1..]);
    }
    (raw, &[])
}

/// Unfolded header fields of an entity, names lowercased.
fn fields(head: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(head);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((n, v)) = line.split_once(':') {
            out.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    out
}

/// A parameter of a structured field value (`boundary`, `charset`), unquoted.
fn param(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

fn walk(raw: &[u8], default_type: &str, depth: usize, out: &mut Vec<(String, String)>) {
    if depth > MAX_DEPTH || out.len() >= MAX_PARTS {
        return;
    }
    let (head, body) = split_entity(raw);
    let f = fields(head);
    let get = |n: &str| f.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    let ct_value = get("content-type").unwrap_or(default_type);
    let ct = ct_value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let ct = if ct.contains('/') {
        ct
    } else {
        default_type.to_string()
    };
    if let Some(sub) = ct.strip_prefix("multipart/") {
        let Some(boundary) = param(ct_value, "boundary").filter(|b| !b.is_empty()) else {
            return;
        };
        let child_default = if sub == "digest" {
            "message/rfc822"
        } else {
            "text/plain"
        };
        for part in split_multipart(body, &boundary) {
            walk(part, child_default, depth + 1, out);
        }
        return;
    }
    let cte = get("content-transfer-encoding")
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let bytes = match cte.as_str() {
        "base64" => base64(body),
        "quoted-printable" => quoted_printable(body),
        _ => body.to_vec(),
    };
    let charset = param(ct_value, "charset")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let text = match charset.as_str() {
        "iso-8859-1" | "latin1" | "iso8859-1" | "windows-1252" | "cp1252" => {
            bytes.iter().map(|b| char::from(*b)).collect()
        }
        _ => String::from_utf8_lossy(&bytes).into_owned(),
    };
    if ct == "message/rfc822" {
        // An attached message is tested by its header (RFC 5173 section 5); its body's
        // parts follow as parts of their own.
        let (inner_head, _) = split_entity(&bytes);
        out.push((ct, String::from_utf8_lossy(inner_head).into_owned()));
        walk(&bytes, "text/plain", depth + 1, out);
    } else {
        out.push((ct, text));
    }
}

/// The parts between `--boundary` lines (the preamble and the epilogue are not parts).
fn split_multipart<'a>(body: &'a [u8], boundary: &str) -> Vec<&'a [u8]> {
    let delim = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut i = 0;
    while i < body.len() {
        let end = body[i..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(body.len(), |p| i + p + 1);
        let line = &body[i..end];
        let trimmed = trim_eol(line);
        if trimmed.starts_with(delim.as_bytes()) {
            let rest = &trimmed[delim.len()..];
            if let Some(s) = start {
                // The line break before a delimiter belongs to the delimiter.
                let mut e = i;
                if e > s && body[e - 1] == b'\n' {
                    e -= 1;
                    if e > s && body[e - 1] == b'\r' {
                        e -= 1;
                    }
                }
                parts.push(&body[s..e]);
            }
            if rest.starts_with(b"--") {
                return parts;
            }
            start = Some(end);
        }
        i = end;
    }
    if let Some(s) = start {
        parts.push(&body[s..]);
    }
    parts
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let mut l = line;
    while let [rest @ .., b'\n' | b'\r' | b' ' | b'\t'] = l {
        l = rest;
    }
    l
}

fn base64(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in body {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn quoted_printable(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'=' if body.get(i + 1) == Some(&b'\n') => i += 2,
            b'=' if body.get(i + 1) == Some(&b'\r') && body.get(i + 2) == Some(&b'\n') => i += 3,
            b'=' => match (
                body.get(i + 1).and_then(|c| hex(*c)),
                body.get(i + 2).and_then(|c| hex(*c)),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                _ => {
                    out.push(b'=');
                    i += 1;
                }
            },
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_nested_parts_and_decodes_them() {
        let raw = b"From: a@b.c\r\nContent-Type: multipart/mixed; boundary=\"X\"\r\n\r\npreamble\r\n--X\r\nContent-Type: multipart/alternative; boundary=Y\r\n\r\n--Y\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 soft=\r\nbreak\r\n--Y\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n--Y--\r\n--X\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--X--\r\nepilogue\r\n";
        let p = parts(raw);
        assert_eq!(
            p,
            vec![
                ("text/plain".to_string(), "café softbreak".to_string()),
                ("text/html".to_string(), "<p>hi</p>".to_string()),
                ("image/png".to_string(), "hello".to_string()),
            ]
        );
        assert_eq!(
            parts(b"Subject: x\n\nplain body\n"),
            vec![("text/plain".into(), "plain body\n".into())]
        );
        // Hostile: no closing delimiter, no boundary, deep nesting: no panic, bounded.
        assert!(parts(b"Content-Type: multipart/mixed\r\n\r\nx").is_empty());
        let mut deep = Vec::new();
        for _ in 0..100 {
            deep.extend_from_slice(b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n");
        }
        assert!(parts(&deep).len() <= MAX_PARTS);
    }
}
