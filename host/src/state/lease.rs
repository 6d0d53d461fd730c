//! Who works on which account when several processes share one store. Ownership is held
//! through PostgreSQL's own primitive, a session-level advisory lock per account: the server
//! releases it when the holder's session ends (process killed, network cut, or a pause longer
//! than the lease: each session is ended by the server after `lease` of silence,
//! `idle_session_timeout`). Every message commit checks, in its own transaction, that this
//! session still holds the lock of the message's account (fencing), so a process that was
//! paused or cut off cannot write after its account moved on.
//!
//! This file holds what the backends and the daemon agree on: the lock keys, and how many
//! accounts a process should own (`fair_share`). Which account a record belongs to is
//! `model::key`.

/// What a lock protects: one kind per namespace of names.
#[derive(Debug, Clone, Copy)]
pub enum LockKind {
    Account = 1,
    OutboxEntry = 2,
    Migrations = 3,
    /// Deliveries to one account, decided one at a time (`Ownership::try_delivery_turn`).
    Delivery = 4,
}

/// The advisory-lock key of `name`: its SHA-256, the first byte replaced by the kind, so
/// that kinds never collide and names collide with odds of 2^-56. `scope` (the schema) keeps
/// two installations in one database apart.
pub fn lock_key(kind: LockKind, scope: &str, name: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(scope.as_bytes());
    h.update([0]);
    h.update(name.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    b[0] = kind as u8;
    i64::from_be_bytes(b)
}

/// How many of `accounts` one of `processes` live processes should own: the ceiling of the
/// even split, so that together they always cover every account.
pub fn fair_share(accounts: usize, processes: usize) -> usize {
    accounts.div_ceil(processes.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_differ_by_kind_scope_and_name() {
        let a = lock_key(LockKind::Account, "s", "alice");
        assert_eq!(a, lock_key(LockKind::Account, "s", "alice"));
        assert_ne!(a, lock_key(LockKind::OutboxEntry, "s", "alice"));
        assert_ne!(a, lock_key(LockKind::Account, "t", "alice"));
        assert_ne!(a, lock_key(LockKind::Account, "s", "alicf"));
        assert_eq!(a.to_be_bytes()[0], 1);
    }

    #[test]
    fn shares_cover_every_account() {
        assert_eq!(fair_share(300, 3), 100);
        assert_eq!(fair_share(300, 2), 150);
        assert_eq!(fair_share(10, 3), 4);
        assert_eq!(fair_share(5, 0), 5);
        for (a, p) in [(7, 3), (1, 4), (0, 2), (301, 3)] {
            assert!(fair_share(a, p) * p >= a);
        }
    }
}
