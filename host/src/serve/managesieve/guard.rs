//! Why this file exists: password guessing is fought across sessions, not per session. A
//! client that reconnects after each failure must not get a fresh allowance, and a flood of
//! logins must not turn into a flood of logins at the accounts' IMAP servers. The guard every
//! session of a server shares:
//! - counts failed logins per peer address and per user name over a window;
//! - answers a failure no sooner than a delay that grows with those counts, measured from the
//!   start of the attempt, so that a known and an unknown user take the same time;
//! - refuses a peer with too many recent failures without checking its credentials at all
//!   (per address only: counting per user would let anyone lock a user out);
//! - lets only a few credential checks run at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Failures are forgotten after this long.
const WINDOW: Duration = Duration::from_secs(15 * 60);
/// A peer with this many failures in the window is refused without a check.
pub const MAX_FAILURES_PER_PEER: u32 = 10;
/// The delay grows up to this many times the base delay.
const MAX_FACTOR: u32 = 8;
/// Credential checks running at once at most.
const CHECKS_AT_ONCE: usize = 4;
/// Entries kept at most per map (the oldest are dropped first).
const MAX_ENTRIES: usize = 65_536;

pub struct LoginGuard {
    base: Duration,
    peers: Mutex<HashMap<IpAddr, Count>>,
    users: Mutex<HashMap<String, Count>>,
    checks: Arc<Semaphore>,
}

#[derive(Clone, Copy)]
struct Count {
    n: u32,
    since: Instant,
}

/// What the guard says before a login is checked.
pub enum Admission {
    /// Check the credentials, holding this permit; then report with `failed` if they are wrong.
    Check(OwnedSemaphorePermit),
    /// Too many failures from this peer: refuse without a check (after the delay).
    Refused,
}

impl LoginGuard {
    /// `base`: the delay of a first failure.
    pub fn new(base: Duration) -> LoginGuard {
        LoginGuard {
            base,
            peers: Mutex::new(HashMap::new()),
            users: Mutex::new(HashMap::new()),
            checks: Arc::new(Semaphore::new(CHECKS_AT_ONCE)),
        }
    }

    /// Recent failures of `peer`.
    pub fn peer_failures(&self, peer: IpAddr) -> u32 {
        current(&self.peers, &peer)
    }

    /// Whether a login from `peer` may be checked now; waits for a free check.
    pub async fn admit(&self, peer: Option<IpAddr>) -> Admission {
        if peer.is_some_and(|p| self.peer_failures(p) >= MAX_FAILURES_PER_PEER) {
            return Admission::Refused;
        }
        match self.checks.clone().acquire_owned().await {
            Ok(permit) => Admission::Check(permit),
            Err(_) => Admission::Refused,
        }
    }

    /// A failed attempt that started at `started`: counted, then answered no sooner than the
    /// delay its counts earn.
    pub async fn failed(&self, peer: Option<IpAddr>, user: &str, started: Instant) {
        let by_peer = peer.map_or(0, |p| bump(&self.peers, p));
        let by_user = bump(&self.users, user.to_ascii_lowercase());
        let factor = by_peer.max(by_user).clamp(1, MAX_FACTOR);
        let due = started + self.base * factor;
        tokio::time::sleep_until(due.into()).await;
    }
}

/// The count of `key` in the window (0 when it is older).
fn current<K: std::hash::Hash + Eq>(map: &Mutex<HashMap<K, Count>>, key: &K) -> u32 {
    let map = map.lock().unwrap_or_else(|e| e.into_inner());
    map.get(key)
        .filter(|c| c.since.elapsed() < WINDOW)
        .map_or(0, |c| c.n)
}

/// Counts one more failure of `key`; its count in the window.
fn bump<K: std::hash::Hash + Eq>(map: &Mutex<HashMap<K, Count>>, key: K) -> u32 {
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    if map.len() >= MAX_ENTRIES {
        map.retain(|_, c| c.since.elapsed() < WINDOW);
        if map.len() >= MAX_ENTRIES {
            // Still full of recent failures: forget the oldest half.
            let mut since: Vec<Instant> = map.values().map(|c| c.since).collect();
            since.sort();
            let cut = since[since.len() / 2];
            map.retain(|_, c| c.since > cut);
        }
    }
    let now = Instant::now();
    let c = map.entry(key).or_insert(Count { n: 0, since: now });
    if c.since.elapsed() >= WINDOW {
        *c = Count { n: 0, since: now };
    }
    c.n += 1;
    c.n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(ms: u64) -> LoginGuard {
        LoginGuard::new(Duration::from_millis(ms))
    }

    #[tokio::test]
    async fn failures_are_counted_across_sessions_and_slow_down_more_each_time() {
        let g = guard(20);
        let peer: IpAddr = "192.0.2.7".parse().unwrap();
        let mut took = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            g.failed(Some(peer), "alice", t).await;
            took.push(t.elapsed());
        }
        assert!(took[0] >= Duration::from_millis(20), "{took:?}");
        assert!(took[2] >= Duration::from_millis(60), "{took:?}");
        assert_eq!(g.peer_failures(peer), 3);
        // Another peer guessing the same user is slowed down by the user's count.
        let t = Instant::now();
        g.failed(Some("192.0.2.8".parse().unwrap()), "ALICE", t)
            .await;
        assert!(
            t.elapsed() >= Duration::from_millis(80),
            "{:?}",
            t.elapsed()
        );
    }

    #[tokio::test]
    async fn a_peer_with_too_many_failures_is_refused_without_a_check() {
        let g = guard(0);
        let peer: IpAddr = "192.0.2.9".parse().unwrap();
        for i in 0..MAX_FAILURES_PER_PEER {
            assert!(
                matches!(g.admit(Some(peer)).await, Admission::Check(_)),
                "attempt {i}"
            );
            g.failed(Some(peer), &format!("user{i}"), Instant::now())
                .await;
        }
        assert!(matches!(g.admit(Some(peer)).await, Admission::Refused));
        // Other peers are not affected.
        assert!(matches!(
            g.admit(Some("192.0.2.10".parse().unwrap())).await,
            Admission::Check(_)
        ));
    }

    #[tokio::test]
    async fn the_delay_counts_from_the_start_of_the_attempt() {
        let g = guard(50);
        let started = Instant::now();
        tokio::time::sleep(Duration::from_millis(40)).await;
        let t = Instant::now();
        g.failed(None, "nobody", started).await;
        // Only the rest of the 50 ms was waited: a slow check and a fast one end together.
        assert!(t.elapsed() < Duration::from_millis(40), "{:?}", t.elapsed());
        assert!(started.elapsed() >= Duration::from_millis(50));
    }
}
