// Property: the address checks never panic; an address validate_addr_spec accepts holds no
// control character, whitespace or one of <>()[],;:\" and has the form local@domain;
// check_allowed never accepts an address validate_addr_spec rejects, never accepts with no
// patterns, does not depend on the ASCII case of the address, and a valid address with a
// canonical form is allowed by "$sender" when it is the sender and by "*@*";
// RecipientPattern::parse only yields "$sender" or a glob with an @ and no control/space.
// Input: strings separated by 0xFF (never part of UTF-8): address, sender, patterns...
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailpipe::actions::recipients::check_allowed;
use mailpipe::config::RecipientPattern;
use mailpipe::model::address::{canonical, glob_match, validate_addr_spec};

fn has_forbidden(s: &str) -> bool {
    s.chars()
        .any(|c| c.is_control() || c.is_whitespace() || "<>()[],;:\\\"".contains(c))
}

fuzz_target!(|data: &[u8]| {
    let parts: Vec<String> = data
        .split(|&b| b == 0xFF)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    let addr = parts[0].as_str();
    let sender = parts.get(1).map(String::as_str);
    let raw_patterns = parts.get(2..).unwrap_or_default();

    let valid = validate_addr_spec(addr).is_ok();
    if valid {
        assert!(!has_forbidden(addr), "validate_addr_spec accepted {addr:?}");
        assert!(
            addr.len() <= 254,
            "validate_addr_spec accepted {} bytes",
            addr.len()
        );
        let (local, domain) = addr.rsplit_once('@').expect("accepted address without @");
        assert!(!local.is_empty() && !domain.is_empty(), "accepted {addr:?}");
    }
    if let Some(s) = sender {
        let _ = validate_addr_spec(s);
    }

    let mut patterns = Vec::new();
    for p in raw_patterns {
        match RecipientPattern::parse(p) {
            Ok(RecipientPattern::Sender) => assert_eq!(p, "$sender"),
            Ok(RecipientPattern::Glob(g)) => {
                assert_eq!(&g, p);
                assert!(
                    g.contains('@') && !g.chars().any(|c| c.is_control() || c.is_whitespace()),
                    "RecipientPattern::parse accepted {g:?}"
                );
                let _ = glob_match(&g, addr);
                patterns.push(RecipientPattern::Glob(g));
            }
            Err(_) => assert_ne!(p, "$sender"),
        }
    }
    patterns.push(RecipientPattern::Sender);

    let allowed = check_allowed(&patterns, addr, sender).is_ok();
    if allowed {
        assert!(
            valid,
            "check_allowed accepted {addr:?}, which validate_addr_spec rejects"
        );
    }
    assert!(
        check_allowed(&[], addr, sender).is_err(),
        "accepted with no patterns"
    );
    let upper = addr.to_ascii_uppercase();
    assert_eq!(
        check_allowed(&patterns, &upper, sender).is_ok(),
        allowed,
        "check_allowed differs for {addr:?} and {upper:?}"
    );

    let comparable = valid && canonical(addr).is_some();
    if comparable {
        assert!(
            check_allowed(&[RecipientPattern::Sender], addr, Some(addr)).is_ok(),
            "{addr:?} is not allowed as its own sender"
        );
        let any = RecipientPattern::parse("*@*").unwrap();
        assert!(
            check_allowed(&[any], addr, None).is_ok(),
            "*@* does not allow {addr:?}"
        );
        assert!(glob_match("*", addr), "'*' does not match {addr:?}");
        if !addr.contains(['*', '?']) {
            assert!(glob_match(addr, addr), "{addr:?} does not match itself");
        }
    }
    if let Some(s) = sender {
        let _ = glob_match(s, addr);
        let _ = glob_match(addr, s);
        let _ = canonical(s);
    }
});
