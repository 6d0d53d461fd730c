//! Why something did not happen, said so that the caller can decide whether to try again:
//! one error type for every effect that a later attempt may or may not mend (handing mail
//! to a server, delivering a message), in the manner of lettre's `is_transient()` /
//! `is_permanent()`.

/// A failure with its text, transient (a later attempt may succeed) or permanent.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub message: String,
    pub transient: bool,
}

impl Failure {
    pub fn transient(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            transient: true,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            transient: false,
        }
    }

    /// Trying again later may succeed (a server, the store or the disk was unavailable).
    pub fn is_transient(&self) -> bool {
        self.transient
    }

    pub fn is_permanent(&self) -> bool {
        !self.transient
    }
}
