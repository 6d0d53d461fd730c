//! Who a plugin may send mail to: its `allow_send_to` patterns from the config. `$sender` is
//! the sender of the message being processed (the only default, for auto-responders);
//! anything else is a glob such as `*@example.com`. Addresses are compared the way mail
//! compares them (`message::address::canonical`), never with Unicode case folding.

use crate::config::RecipientPattern;
use crate::model::address::{glob_match, same_address, validate_addr_spec};

/// Check that `rcpt` is a valid address that `patterns` allow, given the message's sender.
pub fn check_allowed(
    patterns: &[RecipientPattern],
    rcpt: &str,
    sender: Option<&str>,
) -> Result<(), String> {
    validate_addr_spec(rcpt).map_err(|e| e.to_string())?;
    let allowed = patterns.iter().any(|p| match p {
        RecipientPattern::Sender => sender.is_some_and(|s| same_address(s, rcpt)),
        RecipientPattern::Glob(g) => glob_match(g, rcpt),
    });
    if allowed {
        Ok(())
    } else {
        Err(format!(
            "recipient {rcpt} is not allowed by this plugin's allow_send_to"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_and_globs() {
        let p = vec![
            RecipientPattern::Sender,
            RecipientPattern::parse("*@example.com").unwrap(),
        ];
        assert!(check_allowed(&p, "bob@example.org", Some("Bob@example.org")).is_ok());
        assert!(check_allowed(&p, "x@example.com", None).is_ok());
        assert!(check_allowed(&p, "x@evil.example.net", Some("bob@example.org")).is_err());
        assert!(check_allowed(&p, "x@example.com\r\nBcc: y@z", None).is_err());
        assert!(RecipientPattern::parse("nobody").is_err());
    }

    #[test]
    fn look_alike_recipients_are_refused() {
        let p = vec![RecipientPattern::parse("kate@example.com").unwrap()];
        assert!(check_allowed(&p, "KATE@example.COM", None).is_ok());
        assert!(check_allowed(&p, "\u{212A}ate@example.com", None).is_err());
        let s = vec![RecipientPattern::Sender];
        assert!(check_allowed(&s, "\u{212A}ate@example.com", Some("kate@example.com")).is_err());
    }
}
