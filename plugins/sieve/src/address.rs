//! Why this file exists: the `address` and `envelope` tests look at the addresses *inside* a
//! header value (RFC 5322 section 3.4: display names, angle brackets, groups, comments) and at
//! parts of one (`:localpart`, `:domain`, and RFC 5233's `:user` / `:detail`).

use crate::script::AddressPart;

/// The addr-specs in a header value, in order. Group names and display names are dropped; an
/// element with no `@` is kept as written (a "local part" only, as in `undisclosed-recipients`).
pub fn parse_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut angle: Option<String> = None;
    let mut chars = value.chars().peekable();
    let mut depth = 0usize; // comment nesting
    let flush = |cur: &mut String, angle: &mut Option<String>, out: &mut Vec<String>| {
        let a = match angle.take() {
            Some(a) => a,
            // White space outside quotes is not part of an address (quoted spaces were
            // stood in for by \u{1}).
            None => cur
                .split_whitespace()
                .collect::<Vec<_>>()
                .join("")
                .replace('\u{1}', " "),
        };
        // A source route ("@a,@b:user@x") is not part of the address.
        let a = match a.strip_prefix('@').and(a.find(':')) {
            Some(i) => a[i + 1..].to_string(),
            None => a,
        };
        if !a.is_empty() {
            out.push(a);
        }
        cur.clear();
    };
    while let Some(c) = chars.next() {
        if depth > 0 {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                '\\' => {
                    chars.next();
                }
                _ => {}
            }
            continue;
        }
        match c {
            '(' => depth = 1,
            '"' => {
                // A quoted string: part of a display name or a quoted local part.
                let mut q = String::from('"');
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                q.push(n)
                            }
                        }
                        '"' => break,
                        ' ' => q.push('\u{1}'),
                        c => q.push(c),
                    }
                }
                q.push('"');
                cur.push_str(&q);
            }
            '<' => {
                let mut a = String::new();
                for c in chars.by_ref() {
                    if c == '>' {
                        break;
                    }
                    if !c.is_whitespace() {
                        a.push(c);
                    }
                }
                angle = Some(a);
            }
            ':' if angle.is_none() && !cur.contains('@') => cur.clear(), // group name
            ',' | ';' => flush(&mut cur, &mut angle, &mut out),
            c => cur.push(c),
        }
    }
    flush(&mut cur, &mut angle, &mut out);
    out.into_iter()
        .map(|a| {
            // A quoted local part loses its quotes when it needs none (a dot-atom), as
            // Pigeonhole normalises it; `"john..doe"@x` keeps them.
            match a.rsplit_once('@') {
                Some((l, d)) if l.starts_with('"') && l.ends_with('"') && l.len() >= 2 => {
                    let inner = &l[1..l.len() - 1];
                    if is_dot_atom(inner) {
                        format!("{inner}@{d}")
                    } else {
                        a
                    }
                }
                _ => a,
            }
        })
        .collect()
}

/// RFC 5322 dot-atom: atoms of atext separated by single dots.
fn is_dot_atom(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|atom| {
            !atom.is_empty()
                && atom.chars().all(|c| {
                    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
                })
        })
}

/// The part of `addr` a test compares, or None when it has no such part (`:detail` of an
/// address without a "+").
pub fn part(addr: &str, part: AddressPart) -> Option<String> {
    let (local, domain) = match addr.rsplit_once('@') {
        Some((l, d)) => (l, Some(d)),
        None => (addr, None),
    };
    // A quoted local part is compared without its quotes ("john..doe"@x: john..doe).
    let local = match local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        Some(inner) => inner,
        None => local,
    };
    match part {
        AddressPart::All => Some(addr.to_string()),
        AddressPart::LocalPart => Some(local.to_string()),
        AddressPart::Domain => domain.map(str::to_string),
        AddressPart::User => Some(local.split_once('+').map_or(local, |(u, _)| u).to_string()),
        AddressPart::Detail => local.split_once('+').map(|(_, d)| d.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        assert_eq!(
            parse_list("\"Doe, John\" <john@example.com>, jane@example.org (Jane)"),
            vec!["john@example.com", "jane@example.org"]
        );
        assert_eq!(
            parse_list("friends: a@x.org, B <b@y.org>;, c@z.org"),
            vec!["a@x.org", "b@y.org", "c@z.org"]
        );
        assert_eq!(parse_list("<@route,@r2:u@h.org>"), vec!["u@h.org"]);
        assert!(parse_list("undisclosed-recipients:;").is_empty());
        assert_eq!(parse_list("\"a b\"@x.org"), vec!["\"a b\"@x.org"]);
        assert_eq!(parse_list("\"ab\"@x.org"), vec!["ab@x.org"]);
        assert_eq!(
            parse_list("\"john..doe\"@x.org"),
            vec!["\"john..doe\"@x.org"]
        );
    }

    #[test]
    fn parts() {
        assert_eq!(part("me+lists@x.org", AddressPart::User).unwrap(), "me");
        assert_eq!(
            part("me+lists@x.org", AddressPart::Detail).unwrap(),
            "lists"
        );
        assert_eq!(part("me@x.org", AddressPart::Detail), None);
        assert_eq!(part("me+@x.org", AddressPart::Detail).unwrap(), "");
        assert_eq!(part("me@X.org", AddressPart::Domain).unwrap(), "X.org");
    }
}
