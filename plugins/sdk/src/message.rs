//! Why this file exists: the questions almost every plugin asks of a message (what is this
//! header, was I addressed directly, who would a reply go to) answered once, the same way.
//! The answers are made from plain lists, so they are tested here without a host.

use crate::{Address, Message};

/// The value of the first header field called `name` (case-insensitive).
pub fn header(msg: &Message, name: &str) -> Option<String> {
    msg.header(name)
}

/// The values of every header field called `name` (case-insensitive), in message order.
pub fn headers_all(msg: &Message, name: &str) -> Vec<String> {
    msg.header_all(name)
}

/// Whether one of `addresses` appears in To or Cc (case-insensitive), i.e. the user was
/// addressed directly rather than through a list or a Bcc.
pub fn is_direct_recipient<S: AsRef<str>>(msg: &Message, addresses: &[S]) -> bool {
    addressed_directly(&msg.to(), &msg.cc(), addresses)
}

/// Where a reply goes: the first Reply-To address, else the first From address.
pub fn sender_address(msg: &Message) -> Option<String> {
    reply_address(&msg.reply_to(), &msg.from())
}

fn addressed_directly<S: AsRef<str>>(to: &[Address], cc: &[Address], addresses: &[S]) -> bool {
    to.iter().chain(cc).any(|recipient| {
        addresses.iter().any(|mine| {
            recipient
                .address
                .trim()
                .eq_ignore_ascii_case(mine.as_ref().trim())
        })
    })
}

fn reply_address(reply_to: &[Address], from: &[Address]) -> Option<String> {
    reply_to
        .first()
        .or_else(|| from.first())
        .map(|a| a.address.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(a: &str) -> Address {
        Address {
            name: None,
            address: a.into(),
        }
    }

    #[test]
    fn recipients_and_sender() {
        let to = [addr("Bob@Example.com")];
        let cc = [addr("carol@example.com")];
        assert!(addressed_directly(&to, &cc, &["bob@example.com"]));
        assert!(addressed_directly(
            &to,
            &cc,
            &["CAROL@example.com".to_string()]
        ));
        assert!(!addressed_directly(&to, &cc, &["alice@example.com"]));
        let from = [addr("alice@example.com")];
        assert_eq!(
            reply_address(&[], &from).as_deref(),
            Some("alice@example.com")
        );
        let reply_to = [addr("replies@example.com")];
        assert_eq!(
            reply_address(&reply_to, &from).as_deref(),
            Some("replies@example.com")
        );
    }
}
