//! The durable outbox: generated mail is queued in the state store in the same transaction
//! that marks its message processed, then handed to a `Transport`; only the transport's
//! acceptance marks it sent. Transient failures stay queued for a later flush (also after a
//! restart), permanent ones are kept as failed and reported — never dropped.

use std::future::Future;

use crate::state::{OutboxEntry, OutboxStatus, StateError, Store};

/// Why a transport did not take a message. Callers decide on `is_transient`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    pub message: String,
    pub transient: bool,
}

impl SendError {
    pub fn transient(message: impl Into<String>) -> SendError {
        SendError {
            message: message.into(),
            transient: true,
        }
    }
    pub fn permanent(message: impl Into<String>) -> SendError {
        SendError {
            message: message.into(),
            transient: false,
        }
    }
    pub fn is_transient(&self) -> bool {
        self.transient
    }
    pub fn is_permanent(&self) -> bool {
        !self.transient
    }
}

/// Something that accepts complete messages with their envelope.
pub trait Transport {
    fn send_raw(
        &self,
        entry: &OutboxEntry,
        raw: &[u8],
    ) -> impl Future<Output = Result<(), SendError>> + Send;
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct FlushReport {
    pub sent: Vec<String>,
    pub deferred: Vec<(String, String)>,
    pub failed: Vec<(String, String)>,
}

/// Try to send every queued entry once.
pub async fn flush(store: &Store, transport: &impl Transport) -> Result<FlushReport, StateError> {
    let mut report = FlushReport::default();
    for mut entry in store.outbox_pending()? {
        let Some(raw) = store.outbox_raw(&entry.id)? else {
            entry.status = OutboxStatus::Failed;
            entry.last_error = Some("message bytes missing from the store".into());
            store.outbox_update(&entry)?;
            report
                .failed
                .push((entry.id.clone(), "message bytes missing".into()));
            continue;
        };
        entry.attempts += 1;
        match transport.send_raw(&entry, &raw).await {
            Ok(()) => {
                entry.status = OutboxStatus::Sent;
                entry.last_error = None;
                report.sent.push(entry.id.clone());
            }
            Err(e) if e.is_transient() => {
                entry.last_error = Some(e.message.clone());
                report.deferred.push((entry.id.clone(), e.message));
            }
            Err(e) => {
                entry.status = OutboxStatus::Failed;
                entry.last_error = Some(e.message.clone());
                report.failed.push((entry.id.clone(), e.message));
            }
        }
        store.outbox_update(&entry)?;
    }
    Ok(report)
}
