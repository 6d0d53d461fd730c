//! Why this file exists: `body :content "TYPE"` (RFC 5173 section 5) tests the MIME parts of a
//! given content type, each decoded (base64, quoted-printable; UTF-8, US-ASCII and Latin-1
//! text), and the mime extensions (RFC 5703: `foreverypart`, `header :mime`, `extracttext`)
//! walk the parts one by one. The host's message view offers a text body, an HTML body and
//! attachments, not every part, so the interpreter walks the raw message itself: bounded depth
//! and part count, and a malformed message gives the parts that could be read, never an error.

/// Deepest nesting of multiparts followed, and most parts returned.
const MAX_DEPTH: usize = 16;
const MAX_PARTS: usize = 256;

/// One entity of a message: the message itself, a body part, or a message attached as
/// message/rfc822 (the child of its part), as RFC 2045 calls them.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// Header fields, unfolded, names lowercased, values as they are on the wire.
    pub fields: Vec<(String, String)>,
    /// "type/subtype", lowercased, with the RFC 2046 defaults filled in.
    pub content_type: String,
    /// The decoded content of a leaf part (text as text); for message/rfc822 the attached
    /// message's header (what `body :content` tests); empty for a multipart.
    pub content: String,
    /// Index one past the last entity below this one: its descendants are `i + 1..end`.
    pub end: usize,
}

impl Entity {
    /// The values of the fields called `name` (lowercase), in order.
    pub fn field<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Every entity of the message, depth first: index 0 is the message itself; the parts of a
/// multipart follow it, the attached message follows its message/rfc822 part.
pub fn entities(raw: &[u8]) -> Vec<Entity> {
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
    params(value)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn walk(raw: &[u8], default_type: &str, depth: usize, out: &mut Vec<Entity>) {
    if depth > MAX_DEPTH || out.len() >= MAX_PARTS {
        return;
    }
    let (head, body) = split_entity(raw);
    let fields = fields(head);
    let get = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let ct_value = get("content-type").unwrap_or_else(|| default_type.to_string());
    let cte = get("content-transfer-encoding")
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
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
    let me = out.len();
    out.push(Entity {
        fields,
        content_type: ct.clone(),
        content: String::new(),
        end: me + 1,
    });
    if let Some(sub) = ct.strip_prefix("multipart/") {
        if let Some(boundary) = param(&ct_value, "boundary").filter(|b| !b.is_empty()) {
            let child_default = if sub == "digest" {
                "message/rfc822"
            } else {
                "text/plain"
            };
            for part in split_multipart(body, &boundary) {
                walk(part, child_default, depth + 1, out);
            }
        }
        out[me].end = out.len();
        return;
    }
    let bytes = match cte.as_str() {
        "base64" => base64(body),
        "quoted-printable" => quoted_printable(body),
        _ => body.to_vec(),
    };
    if ct == "message/rfc822" {
        // An attached message is tested by its header (RFC 5173 section 5); it is an entity
        // of its own, with its parts below it.
        let (inner_head, _) = split_entity(&bytes);
        out[me].content = String::from_utf8_lossy(inner_head).into_owned();
        walk(&bytes, "text/plain", depth + 1, out);
    } else {
        let charset = param(&ct_value, "charset").unwrap_or_default();
        out[me].content = decode_charset(&bytes, &charset);
    }
    out[me].end = out.len();
}

/// Text in a charset as a string: UTF-8 (and US-ASCII) and Latin-1 are read; anything else
/// is read as UTF-8, with replacement characters where it is not.
fn decode_charset(bytes: &[u8], charset: &str) -> String {
    match charset.to_ascii_lowercase().as_str() {
        "iso-8859-1" | "latin1" | "iso8859-1" | "windows-1252" | "cp1252" => {
            bytes.iter().map(|b| char::from(*b)).collect()
        }
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// (type, subtype, parameters) of a Content-Type value, type and subtype lowercased; either
/// is empty when the value is malformed (no slash, more than one, an empty side).
pub fn content_type(value: &str) -> (String, String, Vec<(String, String)>) {
    let main = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let params = params(value);
    match main.split_once('/') {
        Some((t, s)) if !t.trim().is_empty() && !s.trim().is_empty() && !s.contains('/') => {
            (t.trim().to_string(), s.trim().to_string(), params)
        }
        _ => (String::new(), String::new(), params),
    }
}

/// The parameters of a structured field value (names lowercased, values unquoted).
pub fn params(value: &str) -> Vec<(String, String)> {
    value
        .split(';')
        .skip(1)
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_string(),
            ))
        })
        .collect()
}

/// RFC 2047 encoded words in a header value decoded (B and Q; UTF-8, US-ASCII, Latin-1);
/// white space between two encoded words dropped; anything malformed left as it is.
pub fn decode_words(value: &str) -> String {
    if !value.contains("=?") {
        return value.to_string();
    }
    let mut out = String::new();
    let mut rest = value;
    let mut last_was_word = false;
    while let Some(start) = rest.find("=?") {
        let (before, from) = rest.split_at(start);
        let Some(word) = encoded_word(from) else {
            out.push_str(before);
            out.push_str("=?");
            rest = &from[2..];
            last_was_word = false;
            continue;
        };
        if !(last_was_word && before.trim().is_empty()) {
            out.push_str(before);
        }
        out.push_str(&word.0);
        rest = &from[word.1..];
        last_was_word = true;
    }
    out.push_str(rest);
    out
}

/// One encoded word at the start of `s`: (its text, its length).
fn encoded_word(s: &str) -> Option<(String, usize)> {
    let inner = s.strip_prefix("=?")?;
    let (charset, inner) = inner.split_once('?')?;
    let (enc, inner) = inner.split_once('?')?;
    let end = inner.find("?=")?;
    let text = &inner[..end];
    if text.contains(' ') || charset.is_empty() {
        return None;
    }
    let bytes = match enc {
        "B" | "b" => base64(text.as_bytes()),
        "Q" | "q" => quoted_printable(text.replace('_', " ").as_bytes()),
        _ => return None,
    };
    let len = 2 + charset.len() + 1 + enc.len() + 1 + end + 2;
    let charset = charset.split('*').next().unwrap_or(charset);
    Some((decode_charset(&bytes, charset), len.min(s.len())))
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

    /// What `body :content` reads: (content type, content) of each entity but multiparts.
    fn parts(raw: &[u8]) -> Vec<(String, String)> {
        entities(raw)
            .into_iter()
            .filter(|e| !e.content_type.starts_with("multipart/"))
            .map(|e| (e.content_type, e.content))
            .collect()
    }

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
