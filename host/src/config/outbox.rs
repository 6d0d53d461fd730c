//! `[outbox]`: when queued mail is tried again after a transient failure. The policy is a
//! value; `sink::outbox` follows it.

/// When to try again after a transient failure (config `[outbox]`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    pub first_retry_seconds: u64,
    pub max_retry_seconds: u64,
    /// Time one flush of the queue may take in all; what is left waits for the next one
    /// (a slow or stalling server must not hold up filing for long).
    pub flush_seconds: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first_retry_seconds: 30,
            max_retry_seconds: 3600,
            flush_seconds: 120,
        }
    }
}

impl RetryPolicy {
    /// Both delays must be 1 s to 30 days (config `[outbox]`).
    pub fn check(&self) -> Result<(), String> {
        const MAX: u64 = 30 * 86_400;
        for (key, v) in [
            ("first_retry_seconds", self.first_retry_seconds),
            ("max_retry_seconds", self.max_retry_seconds),
            ("flush_seconds", self.flush_seconds),
        ] {
            if v == 0 || v > MAX {
                return Err(format!("{key} must be 1..={MAX}, not {v}"));
            }
        }
        Ok(())
    }

    /// Whether an entry whose next attempt was set for `next_attempt_ms` may be tried at
    /// `now_ms`. A due time further ahead than the longest delay this policy can set (its
    /// cap plus jitter) was set before the wall clock went back: it is due now, not in a day
    /// (a backoff must never outlast `max_retry_seconds` because the clock moved).
    pub fn is_due(&self, next_attempt_ms: u64, now_ms: u64) -> bool {
        let longest = self.max_retry_seconds.max(1).saturating_mul(1250);
        next_attempt_ms <= now_ms || next_attempt_ms - now_ms > longest
    }

    /// Delay before the next try after `attempts` transient failures: doubling from
    /// `first_retry_seconds` up to `max_retry_seconds`, with up to 25 % jitter so a queue
    /// does not hit a recovering server all at once.
    pub fn backoff_ms(&self, attempts: u32, jitter_seed: u64) -> u64 {
        let first = self.first_retry_seconds.max(1).saturating_mul(1000);
        let base = first
            .saturating_mul(1 << attempts.saturating_sub(1).min(16))
            .min(self.max_retry_seconds.max(1).saturating_mul(1000));
        base.saturating_add(jitter_seed % (base / 4 + 1))
    }
}
