//! Group commit for deliveries on the embedded store: each delivery commits its decision
//! without waiting for the disk, then waits here until its stored copy and that commit are
//! durable. One of the waiting deliveries (the leader) syncs the stored copies of every
//! delivery waiting (`MailStore::make_durable`: per file, or one `syncfs`), then the state
//! store (`Store::sync`), in that order, so that a durable processed mark never outlives its
//! copy; then all of them are answered. Deliveries to one account still decide one after the
//! other (a turn ends after the commit, not after the sync), so the speed gained is the
//! fsyncs shared, not an order given up. A crash before the sync loses only deliveries not
//! answered yet: the mail server sends them again, and they are decided again onto the same
//! file names.

use std::sync::{Arc, Mutex};

use crate::sink::mailstore::{Delivered, MailStore};
use crate::state::Store;

/// Deliveries waiting to be made durable together.
#[derive(Default)]
pub struct GroupCommit {
    state: Mutex<State>,
    done: tokio::sync::Notify,
}

#[derive(Default)]
struct State {
    /// Stored copies waiting for the next sync, with their mail store.
    waiting: Vec<(Arc<MailStore>, Vec<Delivered>)>,
    /// The round the waiting deliveries belong to.
    next: u64,
    /// Every round below this one is over.
    over: u64,
    /// The rounds that failed last, and why.
    failed: std::collections::VecDeque<(u64, String)>,
    /// A leader is syncing.
    syncing: bool,
}

impl GroupCommit {
    /// Return once `stored` (copies whose decisions were committed without waiting for the
    /// disk) and every commit made before are durable; with None, only the commits.
    pub async fn durable(
        &self,
        store: &Arc<Store>,
        stored: Option<(Arc<MailStore>, Vec<Delivered>)>,
    ) -> Result<(), String> {
        let round = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.waiting.extend(stored);
            s.next
        };
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let lead = {
                let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if s.over > round {
                    return match s.failed.iter().find(|(r, _)| *r == round) {
                        Some((_, why)) => Err(why.clone()),
                        None => Ok(()),
                    };
                }
                if s.syncing {
                    None
                } else {
                    s.syncing = true;
                    let this = s.next;
                    s.next += 1;
                    Some((this, std::mem::take(&mut s.waiting)))
                }
            };
            let Some((this, batch)) = lead else {
                notified.await;
                continue;
            };
            let store = store.clone();
            let result = tokio::task::spawn_blocking(move || sync(&store, &batch))
                .await
                .unwrap_or_else(|e| Err(format!("the sync failed: {e}")));
            {
                let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                s.syncing = false;
                s.over = this + 1;
                if let Err(why) = &result {
                    if s.failed.len() == 64 {
                        s.failed.pop_front();
                    }
                    s.failed.push_back((this, why.clone()));
                }
            }
            self.done.notify_waiters();
            // The leader's own round is the one it synced (it joined before it began).
            return result;
        }
    }
}

/// The copies first (each mail store's at once), then the state store.
fn sync(store: &Store, batch: &[(Arc<MailStore>, Vec<Delivered>)]) -> Result<(), String> {
    let mut by_store: Vec<(&Arc<MailStore>, Vec<Delivered>)> = Vec::new();
    for (mailstore, delivered) in batch {
        match by_store.iter_mut().find(|(m, _)| Arc::ptr_eq(m, mailstore)) {
            Some((_, all)) => all.extend(delivered.iter().cloned()),
            None => by_store.push((mailstore, delivered.clone())),
        }
    }
    for (mailstore, delivered) in by_store {
        mailstore
            .make_durable(&delivered)
            .map_err(|e| e.to_string())?;
    }
    store.sync().map_err(|e| format!("the state store: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_waiter_returns_once_a_sync_after_it_joined_is_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let group = Arc::new(GroupCommit::default());
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (g, s) = (group.clone(), store.clone());
            tasks.push(tokio::spawn(async move { g.durable(&s, None).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let s = group.state.lock().unwrap();
        assert!(!s.syncing);
        assert!(s.over >= 1 && s.over <= 50, "rounds: {}", s.over);
        assert!(s.waiting.is_empty());
    }
}
