//! Paces the IMAP logins of all accounts of one instance: at most `per_second` connections
//! are started each second, so a restart, a reload or the end of a server outage does not
//! open thousands of connections at once (a thundering herd the server may take for an
//! attack). The first few go at once; after that each waits for its slot.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A token bucket: `burst` logins may go at once, then one per `1 / per_second`; a login
/// that finds no token reserves the next one (the count goes below zero) and waits for it.
pub struct Pacer {
    per_second: f64,
    burst: f64,
    /// Tokens left (negative: reserved ahead) and when they were counted.
    state: Mutex<(f64, Instant)>,
}

impl Pacer {
    pub fn new(per_second: u32) -> Pacer {
        let per_second = f64::from(per_second.max(1));
        let burst = per_second.min(10.0);
        Pacer {
            per_second,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Wait for this login's slot; `who` is named in the debug log when it is granted (target
    /// `mailpipe::pacer`, what tests/reconnect_storm.rs counts).
    pub async fn wait_for(&self, who: &str) {
        self.wait().await;
        tracing::debug!(target: "mailpipe::pacer", account = %who, "login slot");
    }

    /// Wait for this login's slot.
    pub async fn wait(&self) {
        let delay = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let (tokens, counted) = *state;
            let tokens = (tokens + (now - counted).as_secs_f64() * self.per_second).min(self.burst);
            *state = (tokens - 1.0, now);
            if tokens >= 1.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64((1.0 - tokens) / self.per_second)
            }
        };
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sleeping never ends early, so the lower bounds are exact whatever the machine's load.
    #[tokio::test]
    async fn logins_beyond_the_burst_wait_for_their_slot() {
        let pacer = std::sync::Arc::new(Pacer::new(100));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..30 {
            let p = pacer.clone();
            tasks.push(tokio::spawn(async move {
                p.wait().await;
                Instant::now() - start
            }));
        }
        let mut at = Vec::new();
        for t in tasks {
            at.push(t.await.unwrap());
        }
        at.sort();
        // 10 at once, then one every 10 ms: the k-th (from 0) not before (k - 9) × 10 ms.
        for (k, t) in at.iter().enumerate().skip(10) {
            let earliest = Duration::from_millis(10 * (k as u64 - 9));
            assert!(*t >= earliest, "login {k} at {t:?}, before {earliest:?}");
        }
        assert!(at[29] >= Duration::from_millis(200));
    }
}
