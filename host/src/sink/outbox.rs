//! The durable outbox: generated mail is queued in the state store in the same transaction
//! that marks its message processed, then handed to a `Transport`; only the transport's
//! acceptance marks it sent. Transient failures stay queued for a later flush (also after a
//! restart), permanent ones are kept as failed and reported — never dropped.

use std::future::Future;

use crate::config::RetryPolicy;
use crate::state::{OutboxEntry, OutboxStatus, StateError, Store};

/// Why a transport did not take a message. Callers decide on `is_transient`.
pub type SendError = crate::model::failure::Failure;

/// Something that accepts complete messages with their envelope.
pub trait Transport {
    /// Hand over `raw`; `at_end` is called when all of it but the final step has gone out
    /// (for SMTP: before the end-of-data dot), so that a crash from then on can be told
    /// apart from one before (`state::sent_log`).
    fn send_raw(
        &self,
        entry: &OutboxEntry,
        raw: &[u8],
        at_end: &(dyn Fn() + Sync),
    ) -> impl Future<Output = Result<(), SendError>> + Send;
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct FlushReport {
    pub sent: Vec<String>,
    pub deferred: Vec<(String, String)>,
    pub failed: Vec<(String, String)>,
}

impl FlushReport {
    /// Add what another flush did.
    pub fn absorb(&mut self, from: FlushReport) {
        self.sent.extend(from.sent);
        self.deferred.extend(from.deferred);
        self.failed.extend(from.failed);
    }
}

/// Try to send every queued entry that is due and belongs to a message whose key starts
/// with `only` (an account sends its own mail through its own server). Each entry is
/// claimed first: with a shared store, another process may be sending it or have sent it.
pub async fn flush(
    store: &Store,
    transport: &impl Transport,
    now_ms: u64,
    retry: &RetryPolicy,
    only: &str,
) -> Result<FlushReport, StateError> {
    let mut report = FlushReport::default();
    let started = std::time::Instant::now();
    let budget = std::time::Duration::from_secs(retry.flush_seconds.max(1));
    for listed in store.outbox_pending()? {
        if !listed.message_key.starts_with(only) {
            continue;
        }
        if started.elapsed() >= budget {
            report.deferred.push((
                listed.id.clone(),
                format!(
                    "not tried: this flush used its {} s (flush_seconds)",
                    budget.as_secs()
                ),
            ));
            continue;
        }
        if !retry.is_due(listed.next_attempt_ms, now_ms) {
            report
                .deferred
                .push((listed.id.clone(), "waiting for its next attempt".into()));
            continue;
        }
        let Some(entry) = store.outbox_claim(&listed.id)? else {
            continue; // sent or being sent by another process
        };
        let outcome = attempt(store, transport, entry, now_ms, retry, &mut report).await;
        store.outbox_release(&listed.id)?;
        outcome?;
    }
    Ok(report)
}

/// One delivery attempt of a claimed entry, recorded in the store and the report.
async fn attempt(
    store: &Store,
    transport: &impl Transport,
    mut entry: OutboxEntry,
    now_ms: u64,
    retry: &RetryPolicy,
    report: &mut FlushReport,
) -> Result<(), StateError> {
    let Some(raw) = store.outbox_raw(&entry.id)? else {
        entry.status = OutboxStatus::Failed;
        entry.last_error = Some("message bytes missing from the store".into());
        store.outbox_update(&entry)?;
        report
            .failed
            .push((entry.id.clone(), "message bytes missing".into()));
        return Ok(());
    };
    if store.outbox_accepted(&entry.id) {
        // Accepted earlier in this run; only its durable mark failed: commit it again.
        entry.status = OutboxStatus::Sent;
        store.outbox_record_attempt(&entry)?;
        report.sent.push(entry.id.clone());
        return Ok(());
    }
    entry.attempts += 1;
    let sending = entry.clone();
    let at_end = || store.outbox_sending(&sending);
    match transport.send_raw(&entry, &raw, &at_end).await {
        Ok(()) => {
            entry.status = OutboxStatus::Sent;
            entry.last_error = None;
            report.sent.push(entry.id.clone());
        }
        Err(e) if e.is_transient() => {
            let seed = entry
                .id
                .bytes()
                .fold(now_ms, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
            entry.next_attempt_ms = now_ms + retry.backoff_ms(entry.attempts, seed);
            entry.last_error = Some(e.message.clone());
            report.deferred.push((entry.id.clone(), e.message));
        }
        Err(e) => {
            entry.status = OutboxStatus::Failed;
            entry.last_error = Some(e.message.clone());
            report.failed.push((entry.id.clone(), e.message));
        }
    }
    store.outbox_record_attempt(&entry)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// An in-memory transport that fails as told.
    struct Scripted {
        answers: Mutex<Vec<Result<(), SendError>>>,
        sent: Mutex<Vec<String>>,
    }

    impl Transport for Scripted {
        async fn send_raw(
            &self,
            entry: &OutboxEntry,
            _raw: &[u8],
            at_end: &(dyn Fn() + Sync),
        ) -> Result<(), SendError> {
            at_end();
            let answer = self.answers.lock().unwrap().remove(0);
            if answer.is_ok() {
                self.sent.lock().unwrap().push(entry.id.clone());
            }
            answer
        }
    }

    fn queue(store: &Store, id: &str) {
        store
            .commit_message(&crate::state::MessageCommit {
                message_key: format!("m-{id}"),
                summary: "{}".into(),
                outbox: vec![(
                    OutboxEntry::new(id, "m", "p", "", vec!["a@b.c".into()], 1),
                    b"x".to_vec(),
                )],
                durable: true,
                ..Default::default()
            })
            .unwrap();
    }

    #[tokio::test]
    async fn transient_failures_back_off_and_permanent_ones_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        queue(&store, "a");
        queue(&store, "b");
        let t = Scripted {
            answers: Mutex::new(vec![
                Err(SendError::transient("421 try later")),
                Err(SendError::permanent("550 no such user")),
                Ok(()),
            ]),
            sent: Mutex::new(vec![]),
        };
        let p = RetryPolicy::default();
        let r = flush(&store, &t, 1000, &p, "").await.unwrap();
        assert_eq!(r.deferred.len(), 1);
        assert_eq!(r.failed.len(), 1);
        // Not due yet: nothing is tried.
        let r = flush(&store, &t, 2000, &p, "").await.unwrap();
        assert!(r.sent.is_empty() && r.deferred.len() == 1);
        // After the backoff it goes out, once.
        let r = flush(&store, &t, 1000 + 37_501, &p, "").await.unwrap();
        assert_eq!(r.sent.len(), 1);
        assert!(flush(&store, &t, u64::MAX / 2, &p, "")
            .await
            .unwrap()
            .sent
            .is_empty());
        let all = store.outbox_all().unwrap();
        let failed: Vec<_> = all
            .iter()
            .filter(|e| e.status == OutboxStatus::Failed)
            .collect();
        assert_eq!(
            failed.len(),
            1,
            "the permanent failure is kept, not dropped"
        );
        assert_eq!(failed[0].last_error.as_deref(), Some("550 no such user"));
    }

    /// The wall clock jumps back a day after a transient failure: the entry waits its
    /// backoff, not the day; forward a week: it is simply due.
    #[tokio::test]
    async fn a_clock_that_jumps_back_does_not_stretch_a_backoff() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        queue(&store, "a");
        let t = Scripted {
            answers: Mutex::new(vec![Err(SendError::transient("421 try later")), Ok(())]),
            sent: Mutex::new(vec![]),
        };
        let p = RetryPolicy::default();
        let now = 1_800_000_000_000;
        let r = flush(&store, &t, now, &p, "").await.unwrap();
        assert_eq!(r.deferred.len(), 1);
        // A moment later by the monotonic clock, a day earlier by the wall clock.
        let r = flush(&store, &t, now - 86_400_000, &p, "").await.unwrap();
        assert_eq!(r.sent, vec!["a".to_string()], "{r:?}");

        assert!(p.is_due(now + 7 * 86_400_000, now + 7 * 86_400_000 + 1));
        assert!(!p.is_due(now + 30_000, now), "a real backoff is kept");
        assert!(!p.is_due(now + 3_600_000, now), "up to max_retry_seconds");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff_ms(1, 0), 30_000);
        assert_eq!(p.backoff_ms(2, 0), 60_000);
        assert_eq!(p.backoff_ms(30, 0), 3_600_000);
        assert!(p.backoff_ms(1, 7_000) < 40_000);
    }
}
