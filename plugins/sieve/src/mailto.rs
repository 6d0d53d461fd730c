//! Why this file exists: enotify's one notification method, `mailto:` (RFC 5436), reads its
//! URI as RFC 6068 defines it: recipients before `?` and in `to=`/`cc=` header fields,
//! `subject=` and `body=`, every part %-decoded. Other header fields in the URI are ignored
//! (RFC 5436 section 2.7 lets none of them set From, Sender, Auto-Submitted and the like; the
//! host writes those), and so are `bcc=` recipients: the host writes every recipient into
//! the notification's To field, which would show them to the others.

/// A parsed `mailto:` URI.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mailto {
    /// To and Cc recipients, in order, each once (compared without case).
    pub to: Vec<String>,
    pub subject: Option<String>,
    pub body: Option<String>,
}

/// Recipients per URI at most (Pigeonhole's default is 8).
pub const MAX_RECIPIENTS: usize = 8;

/// The URI's parts, or why it is not a usable mailto URI.
pub fn parse(uri: &str) -> Result<Mailto, String> {
    let rest = uri
        .get(..7)
        .filter(|s| s.eq_ignore_ascii_case("mailto:"))
        .map(|_| &uri[7..])
        .ok_or_else(|| format!("{uri:?} is not a mailto: URI (the only method offered)"))?;
    let (to_part, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut out = Mailto::default();
    let add = |list: &str, out: &mut Mailto| -> Result<(), String> {
        for a in list.split(',').filter(|a| !a.trim().is_empty()) {
            let a = decode(a.trim())?;
            let a = a.trim().to_string();
            if !crate::compile::valid_address(&a) {
                return Err(format!("{a:?} in {uri:?} is not a valid address"));
            }
            if !out.to.iter().any(|t| t.eq_ignore_ascii_case(&a)) {
                out.to.push(a);
            }
        }
        Ok(())
    };
    add(to_part, &mut out)?;
    for field in query.split('&').filter(|f| !f.is_empty()) {
        let (name, value) = field.split_once('=').unwrap_or((field, ""));
        let name = decode(name)?.to_ascii_lowercase();
        match name.as_str() {
            "to" | "cc" => add(value, &mut out)?,
            "subject" => out.subject = Some(decode(value)?),
            "body" => out.body = Some(decode(value)?),
            _ => {}
        }
    }
    if out.to.is_empty() {
        return Err(format!("{uri:?} names no recipient"));
    }
    if out.to.len() > MAX_RECIPIENTS {
        return Err(format!(
            "{uri:?} names {} recipients; at most {MAX_RECIPIENTS}",
            out.to.len()
        ));
    }
    Ok(out)
}

/// %-decoding (RFC 3986) into UTF-8 text.
fn decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("a bad %-escape in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_subject_and_body_decoded() {
        let m = parse("MAILTO:alm@example.com,ALM@example.com?cc=b%40example.net&subject=New%20mail%20%E2%82%AC&body=Hi%0D%0Athere&bcc=secret@example.org&from=evil@example.org").unwrap();
        assert_eq!(m.to, ["alm@example.com", "b@example.net"]);
        assert_eq!(m.subject.as_deref(), Some("New mail €"));
        assert_eq!(m.body.as_deref(), Some("Hi\r\nthere"));
    }

    #[test]
    fn unusable_uris_say_why() {
        for bad in [
            "xmpp:alm@example.com",
            "mailto:",
            "mailto:?subject=x",
            "mailto:not an address",
            "mailto:a@b.org?cc=%ZZ",
            "mailto:a@b.org?cc=%FF",
            "mailto:a@b.org,c@d.org,e@f.org,g@h.org,i@j.org,k@l.org,m@n.org,o@p.org,q@r.org",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
