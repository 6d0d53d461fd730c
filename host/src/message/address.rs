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

/// Case-insensitive glob match with `*` (any run) and `?` (one character).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
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
        assert!(glob_match("*", ""));
    }
}
