//! Logging in to IMAP and SMTP servers: with a password (LOGIN / PLAIN) or with an OAuth2
//! bearer token (XOAUTH2 / OAUTHBEARER, `sasl`), whose tokens `oauth2` provides. The
//! protocols call `credential` and frame the SASL bytes themselves.

pub mod oauth2;
pub mod sasl;

use std::sync::{Arc, Mutex};

pub use oauth2::AuthError;

/// The SASL exchange of an OAuth2 mechanism for async-imap: the initial response to the
/// server's first (empty) challenge; to an error challenge, the abort response, keeping the
/// server's reason for the error message.
pub struct BearerExchange {
    mechanism: crate::model::credentials::Auth,
    initial: Option<Vec<u8>>,
    /// The server's error challenge, decoded, when it sent one.
    pub error: Arc<Mutex<Option<String>>>,
}

impl BearerExchange {
    pub fn new(mechanism: crate::model::credentials::Auth, initial: Vec<u8>) -> BearerExchange {
        BearerExchange {
            mechanism,
            initial: Some(initial),
            error: Arc::default(),
        }
    }
}

impl async_imap::Authenticator for BearerExchange {
    type Response = Vec<u8>;

    fn process(&mut self, challenge: &[u8]) -> Vec<u8> {
        match self.initial.take() {
            Some(first) => first,
            None => {
                *self.error.lock().expect("not poisoned") = Some(sasl::describe_error(challenge));
                sasl::abort_response(self.mechanism).to_vec()
            }
        }
    }
}
