//! Message keys: the stable identity of a message across runs, what the state store keys
//! every record by. IMAP: "imap:ACCOUNT/MAILBOX/UIDVALIDITY/UID"; offline:
//! "offline:/source/folder/NAME". The account or source a key belongs to is read here and
//! nowhere else.

/// The key prefix of every record of an IMAP account's messages ("imap:ACCOUNT/").
pub fn imap_key_prefix(account: &str) -> String {
    format!("imap:{account}/")
}

/// The account a message key belongs to (IMAP keys are "imap:ACCOUNT/MAILBOX/VALIDITY/UID";
/// account names never hold '/'); None for offline messages, which no account owns.
pub fn account_of_key(message_key: &str) -> Option<&str> {
    message_key.strip_prefix("imap:")?.split('/').next()
}

/// The source name of an IMAP account (what `source_of_key` gives for its messages).
pub fn imap_source(account: &str) -> String {
    format!("imap:{account}")
}

/// The mail source a message key belongs to, for the "enabled" bound: the IMAP account
/// ("imap:ACCOUNT"), or the offline source folder ("offline:/path").
pub fn source_of_key(message_key: &str) -> &str {
    if let Some(account) = account_of_key(message_key) {
        return &message_key[..("imap:".len() + account.len())];
    }
    message_key.rsplit_once('/').map_or(message_key, |(s, _)| s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_account() {
        let k = format!("{}INBOX/7/42", imap_key_prefix("alice"));
        assert_eq!(account_of_key(&k), Some("alice"));
        assert_eq!(account_of_key("rewritten:abc"), None);
        assert_eq!(account_of_key("offline:/x/y"), None);
    }

    #[test]
    fn the_source_is_the_account_or_the_folder() {
        assert_eq!(source_of_key("imap:work/INBOX/7/42"), "imap:work");
        assert_eq!(
            source_of_key("offline:/home/a/Maildir/1700.M1"),
            "offline:/home/a/Maildir"
        );
    }
}
