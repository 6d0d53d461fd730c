//! Message keys: the stable identity of a message across runs, what the state store keys
//! every record by. IMAP: "imap:ACCOUNT/MAILBOX/UIDVALIDITY/UID"; offline:
//! "offline:/source/folder/NAME"; delivered (`mailpipe deliver`): "deliver:ACCOUNT/HASH" of
//! the envelope and bytes, so that an MTA's retry of the same delivery has the same key. The
//! account or source a key belongs to is read here and nowhere else.

/// The key prefix of every record of an IMAP account's messages ("imap:ACCOUNT/").
pub fn imap_key_prefix(account: &str) -> String {
    format!("imap:{account}/")
}

/// The account a message key belongs to (IMAP keys are "imap:ACCOUNT/MAILBOX/VALIDITY/UID",
/// delivered ones "deliver:ACCOUNT/HASH"; account names never hold '/'); None for offline
/// messages, which no account owns.
pub fn account_of_key(message_key: &str) -> Option<&str> {
    message_key
        .strip_prefix("imap:")
        .or_else(|| message_key.strip_prefix("deliver:"))
        .or_else(|| message_key.strip_prefix("pop3:"))?
        .split('/')
        .next()
}

/// The account whose owner alone may commit this key's records (a shared store's fence):
/// IMAP accounts are worked on by one process at a time; mail delivered to an account may
/// arrive through any process (every `mailpipe deliver` the MTA starts), so none is fenced.
pub fn fenced_account_of_key(message_key: &str) -> Option<&str> {
    message_key
        .strip_prefix("imap:")
        .or_else(|| message_key.strip_prefix("pop3:"))?
        .split('/')
        .next()
}

/// The source name of an account's POP3 mailbox ("pop3:ACCOUNT").
pub fn pop3_source(account: &str) -> String {
    format!("pop3:{account}")
}

/// The key of one POP3 message: its unique id (UIDL) and size, which a server that reuses
/// an id for another message (RFC 1939 allows it once the first is gone) almost never
/// repeats together; without an id (a server without UIDL, or a listing where an id repeats),
/// its bytes.
pub fn pop3_key(account: &str, uid: Option<&str>, size: u64, raw: Option<&[u8]>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    match uid {
        Some(uid) => {
            h.update(b"uidl\0");
            h.update(uid.as_bytes());
            h.update([0]);
            h.update(size.to_string().as_bytes());
        }
        None => {
            h.update(b"bytes\0");
            h.update(raw.unwrap_or_default());
        }
    }
    let digest = h.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("pop3:{account}/{hex}")
}

/// The source name of the mail delivered to an account ("deliver:ACCOUNT").
pub fn deliver_source(account: &str) -> String {
    format!("deliver:{account}")
}

/// The key of one delivery: the account, the envelope (sender, recipient) and the message's
/// bytes as the MTA handed them over. An MTA that retries a delivery it saw no answer to
/// sends the same bytes (Postfix reads them again from its queue file), so the retry has the
/// same key and finds the first attempt's record.
pub fn delivery_key(account: &str, sender: &str, recipient: &str, raw: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(sender.as_bytes());
    h.update([0]);
    h.update(recipient.trim().to_ascii_lowercase().as_bytes());
    h.update([0]);
    h.update(raw);
    let digest = h.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("deliver:{account}/{hex}")
}

/// Whether the message with this key is being delivered (`mailpipe deliver`, LMTP): the
/// sending server still waits for the answer, so the message can be refused.
pub fn at_delivery(message_key: &str) -> bool {
    message_key.starts_with("deliver:")
}

/// The source name of an IMAP account (what `source_of_key` gives for its messages).
pub fn imap_source(account: &str) -> String {
    format!("imap:{account}")
}

/// The mail source a message key belongs to, for the "enabled" bound: the IMAP account
/// ("imap:ACCOUNT"), the deliveries to an account ("deliver:ACCOUNT"), or the offline source
/// folder ("offline:/path").
pub fn source_of_key(message_key: &str) -> &str {
    if let Some(account) = account_of_key(message_key) {
        let scheme = message_key.find(':').map_or(0, |i| i + 1);
        return &message_key[..(scheme + account.len())];
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
    fn pop3_messages_belong_to_their_account_fenced_by_id_and_size_or_bytes() {
        let k = pop3_key("alice", Some("0000041f6b171a75"), 661, None);
        assert!(k.starts_with("pop3:alice/"), "{k}");
        assert_eq!(account_of_key(&k), Some("alice"));
        assert_eq!(fenced_account_of_key(&k), Some("alice"));
        assert_eq!(source_of_key(&k), pop3_source("alice"));
        assert_eq!(
            k,
            pop3_key("alice", Some("0000041f6b171a75"), 661, Some(b"x"))
        );
        // An id reused for a message of another size is another message.
        assert_ne!(k, pop3_key("alice", Some("0000041f6b171a75"), 662, None));
        assert_ne!(k, pop3_key("bob", Some("0000041f6b171a75"), 661, None));
        let by_bytes = pop3_key("alice", None, 0, Some(b"Subject: a\r\n"));
        assert_eq!(
            by_bytes,
            pop3_key("alice", None, 99, Some(b"Subject: a\r\n"))
        );
        assert_ne!(
            by_bytes,
            pop3_key("alice", None, 0, Some(b"Subject: b\r\n"))
        );
    }

    #[test]
    fn delivered_mail_belongs_to_its_account_unfenced() {
        let k = delivery_key(
            "alice",
            "bob@example.test",
            "Alice@Example.test",
            b"Subject: x\r\n",
        );
        assert!(k.starts_with("deliver:alice/"), "{k}");
        assert_eq!(account_of_key(&k), Some("alice"));
        assert_eq!(fenced_account_of_key(&k), None);
        assert_eq!(source_of_key(&k), deliver_source("alice"));
        assert_eq!(fenced_account_of_key("imap:alice/INBOX/1/2"), Some("alice"));
        // The same delivery again has the same key; another recipient, sender or byte not.
        let same = delivery_key(
            "alice",
            "bob@example.test",
            "alice@example.test",
            b"Subject: x\r\n",
        );
        assert_eq!(k, same);
        for other in [
            delivery_key(
                "alice",
                "bob@example.test",
                "al@example.test",
                b"Subject: x\r\n",
            ),
            delivery_key(
                "alice",
                "eve@example.test",
                "alice@example.test",
                b"Subject: x\r\n",
            ),
            delivery_key(
                "alice",
                "bob@example.test",
                "alice@example.test",
                b"Subject: y\r\n",
            ),
        ] {
            assert_ne!(k, other);
        }
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
