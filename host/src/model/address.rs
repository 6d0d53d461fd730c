//! Address checks shared by config validation and action validation: an outgoing address must
//! be a plain addr-spec (`local@domain`) with nothing an SMTP or header injection could ride on.

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AddressError {
    #[error("address is empty")]
    Empty,
    #[error("address {0:?} is longer than 254 bytes")]
    TooLong(String),
    #[error("address {0:?} contains a control character, space or one of <>()[],;:\\\"")]
    BadCharacter(String),
    #[error("address {0:?} is not of the form local@domain")]
    NotAddrSpec(String),
}

/// Accept `local@domain` with a dot-atom-like local part and a hostname-like domain
/// (UTF-8 allowed for internationalised addresses, controls and specials not).
pub fn validate_addr_spec(addr: &str) -> Result<(), AddressError> {
    if addr.is_empty() {
        return Err(AddressError::Empty);
    }
    if addr.len() > 254 {
        return Err(AddressError::TooLong(addr.chars().take(40).collect()));
    }
    if addr
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || "<>()[],;:\\\"".contains(c))
    {
        return Err(AddressError::BadCharacter(addr.to_string()));
    }
    let (local, domain) = addr
        .rsplit_once('@')
        .ok_or_else(|| AddressError::NotAddrSpec(addr.to_string()))?;
    let domain_ok = !domain.is_empty()
        && domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.contains('@')
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    if domain_ok && local_ok {
        Ok(())
    } else {
        Err(AddressError::NotAddrSpec(addr.to_string()))
    }
}

/// An address in the form it is compared in, the way mail compares addresses: the domain
/// in ASCII (IDNA, so `bücher.example` and `xn--bcher-kva.example` are one domain) and
/// ASCII-lowercased; the local part ASCII-lowercased only. Nothing is Unicode case-folded:
/// `\u{212A}ate` (Kelvin sign) is not `kate`. None when the domain is not a valid IDNA name.
pub fn canonical(addr: &str) -> Option<String> {
    let (local, domain) = addr.rsplit_once('@')?;
    let domain = idna::domain_to_ascii(domain).ok()?;
    Some(format!(
        "{}@{}",
        local.to_ascii_lowercase(),
        domain.to_ascii_lowercase()
    ))
}

/// Whether two addresses are the same mailbox (see `canonical`).
pub fn same_address(a: &str, b: &str) -> bool {
    match (canonical(a), canonical(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Glob match of an address pattern with `*` (any run) and `?` (one character) against an
/// address, compared in `canonical` form: a wildcard-free domain in the pattern is IDNA
/// encoded, everything else is ASCII-lowercased; a `*` or `?` in the address is an ordinary
/// character.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern = match pattern.rsplit_once('@') {
        Some((local, domain)) if !domain.contains(['*', '?']) => {
            match idna::domain_to_ascii(domain) {
                Ok(d) => format!("{}@{}", local.to_ascii_lowercase(), d.to_ascii_lowercase()),
                Err(_) => return false,
            }
        }
        _ => pattern.to_ascii_lowercase(),
    };
    let Some(text) = canonical(text) else {
        return false;
    };
    wildcard(&pattern, &text)
}

/// `*`/`?` matching of `text` against `pattern`, in O(len(pattern) × len(text)) at worst.
fn wildcard(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_and_international_addresses() {
        assert_eq!(validate_addr_spec("bob@example.org"), Ok(()));
        assert_eq!(validate_addr_spec("b.o+tag@mail.example.org"), Ok(()));
        assert_eq!(validate_addr_spec("jörg@müller.example"), Ok(()));
    }

    #[test]
    fn rejects_injection_and_garbage() {
        for bad in [
            "",
            "bob",
            "bob@",
            "@example.org",
            "bob@example.org\r\nBcc: x@y.z",
            "Bob <bob@example.org>",
            "bob@exa mple.org",
            "a..b@example.org",
            "bob@-example.org",
            "bob@example..org",
        ] {
            assert!(validate_addr_spec(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn glob_matches_case_insensitively() {
        assert!(glob_match("*@example.com", "Bob@Example.COM"));
        assert!(glob_match("b?b@*", "bob@x.y"));
        assert!(!glob_match("*@example.com", "bob@example.com.evil.net"));
        assert!(!glob_match("*@example.com", "bob@example.org"));
        assert!(glob_match("*@*", "a@b"));
    }

    #[test]
    fn no_unicode_case_folding_and_idna_domains() {
        assert!(!glob_match("kate@example.com", "\u{212A}ate@example.com"));
        assert!(!same_address("kate@example.com", "\u{212A}ate@example.com"));
        assert!(same_address("Kate@EXAMPLE.com", "kate@example.com"));
        assert!(same_address(
            "bob@bücher.example",
            "bob@xn--bcher-kva.example"
        ));
        assert!(glob_match("*@BÜCHER.example", "x@xn--bcher-kva.example"));
        assert!(!glob_match("straße@x.de", "STRASSE@x.de"));
    }

    #[test]
    fn a_star_in_the_address_is_an_ordinary_character() {
        assert!(glob_match("*@example.net", "*x@example.net"));
        assert!(glob_match("*@example.net", "*@example.net"));
        assert!(!glob_match("a*@example.net", "*@example.net"));
    }
}
