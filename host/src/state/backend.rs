//! What a state backend keeps, in the groups its records form: a plugin's key-value state,
//! the log of processed messages, each IMAP mailbox's progress and pending plans, the queue
//! of generated mail, who owns which account, and each account's Sieve scripts
//! (`scripts::ScriptStore`). `Backend` is all of them; both backends
//! (`embedded`, `postgres`) implement each group and pass the one behaviour suite
//! (`state/tests.rs`).

use super::scripts::ScriptStore;
use super::{
    KvUsage, MessageCommit, OutboxEntry, OutboxStatus, PluginFailure, StateError, StoredPlan,
    UidMark,
};

/// A plugin's key-value state (with expiry and quotas) and the installation's secret.
pub trait PluginKv {
    /// This installation's secret (32 random bytes made once, kept in the store).
    fn secret(&self) -> [u8; 32];
    /// What `plugin` keeps in its key-value state now.
    fn kv_usage(&self, plugin: &str) -> KvUsage;
    /// The stored size (key + value bytes) of a plugin's entry, expired or not.
    fn kv_entry_size(&self, plugin: &str, key: &str) -> Result<Option<u64>, StateError>;
    /// A plugin's value for `key`, unless it has expired.
    fn kv_get(&self, plugin: &str, key: &str, now_ms: u64) -> Result<Option<Vec<u8>>, StateError>;
    /// Drop expired key-value entries; returns how many.
    fn kv_purge_expired(&self, now_ms: u64) -> Result<usize, StateError>;
    /// Give the namespace `namespace` a copy of the entries `plugin` keeps in its own one
    /// (what it stored before namespaces were per account), once: the first call copies and
    /// records it, later ones do nothing. Returns how many entries were copied.
    fn kv_copy_into_namespace(&self, plugin: &str, namespace: &str) -> Result<usize, StateError>;
}

/// What was processed: each message's commit (plugin state, queued mail, the processed mark), what plugins decided (`mailpipe explain`), and when things were first seen.
pub trait MessageLog {
    /// The time `what` was first seen: `now_ms`, recorded durably, the first time it is asked
    /// for; what was recorded then, ever after (e.g. since when a plugin answers an account's
    /// mail, `actions::since`).
    fn first_seen(&self, what: &str, now_ms: u64) -> Result<u64, StateError>;
    /// The time `what` was first seen, if it was (recording nothing).
    fn seen_at(&self, what: &str) -> Result<Option<u64>, StateError>;
    fn is_processed(&self, message_key: &str) -> Result<bool, StateError>;
    fn processed_summary(&self, message_key: &str) -> Result<Option<String>, StateError>;
    /// Commit one message's effects: plugin state, queued outgoing mail, processed mark.
    /// Outbox entries whose id is already present are left as they are (never re-queued),
    /// which is what makes re-processing after a crash send nothing twice.
    fn commit_message(&self, commit: &MessageCommit) -> Result<(), StateError>;
    /// Make every earlier non-durable commit durable now.
    fn sync(&self) -> Result<(), StateError>;
    /// Processed messages with Message-ID `message_id` (with <>): (key, summary).
    fn processed_with_message_id(
        &self,
        message_id: &str,
    ) -> Result<Vec<(String, String)>, StateError>;
    /// Forget what plugins decided for messages processed before `before_ms` (the processed
    /// mark stays), at most once a day. Returns how many records were pruned.
    fn prune_explanations(&self, now_ms: u64, before_ms: u64) -> Result<usize, StateError>;
    /// How many messages are recorded as processed.
    fn processed_count(&self) -> Result<u64, StateError>;
}

/// Where each IMAP mailbox stands (checkpoints) and the plans of server actions still to carry out, refused, or given up.
pub trait MailboxProgress {
    /// Where `mailbox` (a mailbox key, "ACCOUNT/MAILBOX") stands.
    fn checkpoint(&self, mailbox: &str) -> Result<Option<UidMark>, StateError>;
    /// Every mailbox checkpoint, by mailbox key.
    fn checkpoints(&self) -> Result<Vec<(String, UidMark)>, StateError>;
    fn set_checkpoint(&self, mailbox: &str, at: UidMark) -> Result<(), StateError>;
    /// Pending mailbox actions whose message key starts with `prefix`.
    fn pending(&self, prefix: &str) -> Result<Vec<StoredPlan>, StateError>;
    /// Replace a pending plan (after an attempt that changed it).
    fn update_pending(&self, key: &str, plan: &str) -> Result<(), StateError>;
    /// Stop trying a pending plan: it moves to the failed actions, kept for the user.
    fn give_up_pending(&self, key: &str, plan: &str) -> Result<(), StateError>;
    /// Messages whose actions were given up, under `prefix`.
    fn failed_under(&self, prefix: &str) -> Result<Vec<StoredPlan>, StateError>;
    /// Messages a plugin failed on, under `prefix`.
    fn plugin_failed_under(&self, prefix: &str) -> Result<Vec<PluginFailure>, StateError>;
    /// Forget that these messages were processed and failed, so they are decided again.
    fn forget_failed(&self, keys: &[String]) -> Result<(), StateError>;
    fn finish_pending(&self, keys: &[String]) -> Result<(), StateError>;
}

/// The queue of generated mail: entries, their messages, and who is sending one.
pub trait OutboxQueue {
    /// Outbox entries not yet delivered (queued or failed transiently), oldest first.
    fn outbox_pending(&self) -> Result<Vec<OutboxEntry>, StateError>;
    fn outbox_all(&self) -> Result<Vec<OutboxEntry>, StateError>;
    fn outbox_raw(&self, id: &str) -> Result<Option<Vec<u8>>, StateError>;
    /// One outbox entry by id.
    fn outbox_entry(&self, id: &str) -> Result<Option<OutboxEntry>, StateError>;
    /// Give a held entry its complete message and release it for sending.
    fn outbox_complete(&self, entry: &OutboxEntry, raw: &[u8]) -> Result<(), StateError>;
    /// Record the result of a delivery attempt.
    fn outbox_update(&self, entry: &OutboxEntry) -> Result<(), StateError>;
    /// Take a queued entry to send it: its current record if it is still queued and no other
    /// process is sending it, held until `outbox_release`. One process needs no more than a
    /// fresh read; a shared store also locks it for this process.
    fn outbox_claim(&self, id: &str) -> Result<Option<OutboxEntry>, StateError> {
        Ok(self
            .outbox_entry(id)?
            .filter(|e| e.status == OutboxStatus::Queued && !e.held))
    }
    fn outbox_release(&self, _id: &str) -> Result<(), StateError> {
        Ok(())
    }
}

/// Which process works on which account when several share the store (`lease`).
pub trait Ownership {
    /// Accounts are owned by one process at a time (see `lease`). Alone, this one owns all.
    fn claim_account(&self, _account: &str) -> Result<bool, StateError> {
        Ok(true)
    }
    fn release_account(&self, _account: &str) -> Result<(), StateError> {
        Ok(())
    }
    /// Deliveries to `account` are decided one at a time by every process sharing the store
    /// (a decision reads plugin state that the one before it may have written): take the
    /// turn if no other process has it. Alone, the process's own lock (`run::deliver`) is
    /// the turn.
    fn try_delivery_turn(&self, _account: &str) -> Result<bool, StateError> {
        Ok(true)
    }
    fn end_delivery_turn(&self, _account: &str) -> Result<(), StateError> {
        Ok(())
    }
    /// Whether this process still owns `account`, asked of the store itself.
    fn owns_account(&self, _account: &str) -> Result<bool, StateError> {
        Ok(true)
    }
    /// The accounts this process believes it owns; a shared store empties it when its
    /// session ends (every lock went with it).
    fn owned_accounts(&self) -> Vec<String> {
        Vec::new()
    }
    /// The rows of the accounts table (id, account file text), for `[accounts] table`.
    fn account_rows(&self) -> Result<Vec<(String, String)>, StateError> {
        Ok(Vec::new())
    }
    /// How many accounts are owned now, by all processes sharing this store.
    fn accounts_owned(&self) -> Result<usize, StateError> {
        Ok(self.owned_accounts().len())
    }
    /// How many processes share this store now (this one included).
    fn processes(&self) -> Result<usize, StateError> {
        Ok(1)
    }
    /// Whether other processes may share this store (accounts then need owning).
    fn is_shared(&self) -> bool {
        false
    }
}

/// A state backend: every group of records, the same semantics in each implementation.
pub trait Backend:
    PluginKv + MessageLog + MailboxProgress + OutboxQueue + Ownership + ScriptStore + Send + Sync
{
}

impl<
        T: PluginKv
            + MessageLog
            + MailboxProgress
            + OutboxQueue
            + Ownership
            + ScriptStore
            + Send
            + Sync,
    > Backend for T
{
}
