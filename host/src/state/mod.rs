//! The state store: plugin key-value state with expiry, the outbox of generated mail, the log
//! of processed messages, and (for IMAP) mailbox checkpoints and pending plans. Every
//! message's effects are committed in one transaction, so a crash leaves either all of them
//! or none. See docs/STATE.md.
//!
//! Two backends keep the same records with the same semantics behind `Backend`:
//! - `embedded` (the default): one redb file, one process;
//! - `postgres`: a PostgreSQL schema shared by many processes, which then also own accounts
//!   (`lease`) and share the outbox, each queued message sent by one of them.

mod embedded;
pub mod lease;
mod outbox;
mod postgres;
pub mod sent_log;

pub use embedded::EmbeddedStore;
pub use outbox::{OutboxEntry, OutboxStatus};
pub use postgres::PgStore;

use std::path::Path;

use crate::config::StateSettings;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state store {path}: {source}")]
    Open {
        path: String,
        source: Box<redb::Error>,
    },
    #[error("state store: {0}")]
    Db(Box<redb::Error>),
    /// A write of the embedded store failed (a full disk, say): it names the file.
    #[error("state store {path}: cannot write: {source}")]
    Write {
        path: String,
        source: Box<redb::Error>,
    },
    #[error("state store: cannot create {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("state store: corrupt record {0}")]
    Corrupt(String),
    #[error(
        "state store {path} was written by a newer mailpipe (its record layout {found}, this \
         mailpipe knows {SCHEMA_VERSION}): use that mailpipe, or another state directory"
    )]
    Newer { path: String, found: u32 },
    #[error("state store {path}: cannot upgrade its file format from redb 2: {message}")]
    Upgrade { path: String, message: String },
    /// The shared store could not be reached or refused a statement.
    #[error("state store (PostgreSQL): {0}")]
    Postgres(String),
    /// Fencing: this process no longer owns the account (its session ended, e.g. after a
    /// pause longer than the lease, and another process may have taken the account over).
    /// Nothing of the commit was written.
    #[error("account {account} is no longer owned by this process; nothing was written")]
    NotOwner { account: String },
}

impl StateError {
    /// The commit was refused because another process may own the account now: the caller
    /// must stop working on it (not retry).
    pub fn is_fenced(&self) -> bool {
        matches!(self, StateError::NotOwner { .. })
    }
}

/// The layout of our records in the store (tables and their value formats). A mailpipe
/// refuses a store with a newer layout instead of misreading it; an older one is upgraded.
/// 1: mailpipe 0.1; 2: adds `explain_index` (built from the processed records on upgrade).
pub const SCHEMA_VERSION: u32 = 2;

/// How often explanations are pruned at most.
pub(crate) const PRUNE_EVERY_MS: u64 = 24 * 3600 * 1000;

/// A pending change to one plugin's key-value state.
#[derive(Debug, Clone, PartialEq)]
pub struct KvWrite {
    pub plugin: String,
    pub key: String,
    /// `None` deletes; `Some((value, expires_at_ms))`, 0 = never expires.
    pub value: Option<(Vec<u8>, u64)>,
}

/// A mailbox key with its (UIDVALIDITY, last processed UID).
pub type Checkpoint = (String, (u32, u32));

/// Everything one processed message changes in the store, committed atomically.
#[derive(Debug, Default, Clone)]
pub struct MessageCommit {
    pub message_key: String,
    /// More keys to mark processed with the same summary (e.g. the marker of a rewritten
    /// copy we append back into a watched mailbox).
    pub also_processed: Vec<String>,
    /// Human-readable summary of what happened (JSON), for `processed` look-ups.
    pub summary: String,
    pub kv: Vec<KvWrite>,
    pub outbox: Vec<(OutboxEntry, Vec<u8>)>,
    /// Advance an IMAP mailbox checkpoint: (mailbox key, UIDVALIDITY, UID).
    pub checkpoint: Option<(String, u32, u32)>,
    /// Mailbox actions still to carry out (JSON), kept until `finish_pending`.
    pub pending: Option<String>,
    /// `false`: commit without waiting for the disk; made durable by the next durable
    /// commit (a crash in between loses both, consistently). Used inside a batch whose
    /// effects happen only after its last, durable commit.
    pub durable: bool,
    /// Plugins that failed on this message, with the fingerprint of their code and config
    /// (JSON object name -> fingerprint): the message is decided again when one changes.
    pub plugin_failed: Option<String>,
    /// The message's Message-ID (with <>), indexed for `mailpipe explain`.
    pub message_id: Option<String>,
}

/// How much one plugin keeps in its key-value state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvUsage {
    pub keys: u64,
    pub bytes: u64,
}

/// What a state backend keeps and how: the same records and the same guarantees in each.
pub trait Backend: Send + Sync {
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
    /// The time `what` was first seen: `now_ms`, recorded durably, the first time it is asked
    /// for; what was recorded then, ever after (e.g. since when a plugin answers an account's
    /// mail, `actions::since`).
    fn first_seen(&self, what: &str, now_ms: u64) -> Result<u64, StateError>;
    fn is_processed(&self, message_key: &str) -> Result<bool, StateError>;
    fn processed_summary(&self, message_key: &str) -> Result<Option<String>, StateError>;
    /// Commit one message's effects: plugin state, queued outgoing mail, processed mark.
    /// Outbox entries whose id is already present are left as they are (never re-queued),
    /// which is what makes re-processing after a crash send nothing twice.
    fn commit_message(&self, commit: &MessageCommit) -> Result<(), StateError>;
    /// Make every earlier non-durable commit durable now.
    fn sync(&self) -> Result<(), StateError>;
    fn checkpoint(&self, mailbox: &str) -> Result<Option<(u32, u32)>, StateError>;
    /// Every mailbox checkpoint: (mailbox key, (UIDVALIDITY, last UID)).
    fn checkpoints(&self) -> Result<Vec<Checkpoint>, StateError>;
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
    fn set_checkpoint(&self, mailbox: &str, validity: u32, uid: u32) -> Result<(), StateError>;
    /// Pending mailbox actions whose message key starts with `prefix`.
    fn pending(&self, prefix: &str) -> Result<Vec<(String, String)>, StateError>;
    /// Replace a pending plan (after an attempt that changed it).
    fn update_pending(&self, key: &str, plan: &str) -> Result<(), StateError>;
    /// Stop trying a pending plan: it moves to the failed actions, kept for the user.
    fn give_up_pending(&self, key: &str, plan: &str) -> Result<(), StateError>;
    /// Messages whose actions were given up, under `prefix`: (key, plan).
    fn failed_under(&self, prefix: &str) -> Result<Vec<(String, String)>, StateError>;
    /// Messages a plugin failed on, under `prefix`: (key, {plugin: fingerprint}).
    fn plugin_failed_under(&self, prefix: &str) -> Result<Vec<(String, String)>, StateError>;
    /// Forget that these messages were processed and failed, so they are decided again.
    fn forget_failed(&self, keys: &[String]) -> Result<(), StateError>;
    fn finish_pending(&self, keys: &[String]) -> Result<(), StateError>;
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
    /// Accounts are owned by one process at a time (see `lease`). Alone, this one owns all.
    fn claim_account(&self, _account: &str) -> Result<bool, StateError> {
        Ok(true)
    }
    fn release_account(&self, _account: &str) -> Result<(), StateError> {
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

/// The state store of a config: a backend behind one type. Every `Backend` method is called
/// on it directly (`store.commit_message(…)`).
pub struct Store {
    backend: Box<dyn Backend>,
    /// Where a server's acceptance is written first (`sent_log`).
    sent_log: sent_log::SentLog,
    /// Key-value namespaces known to have their copy (`kv_copy_into_namespace`).
    namespaces: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl std::ops::Deref for Store {
    type Target = dyn Backend;
    fn deref(&self) -> &Self::Target {
        self.backend.as_ref()
    }
}

impl Store {
    /// The embedded store under `dir` (created if needed); in a test build (`test-hooks`),
    /// the test PostgreSQL when `config::TEST_POSTGRES_ENV` says so.
    pub fn open(dir: &Path) -> Result<Store, StateError> {
        #[cfg(feature = "test-hooks")]
        if let Some(test) = crate::config::test_postgres_for(dir) {
            return Store::open_config(&test, dir);
        }
        Store::with(Box::new(EmbeddedStore::open(dir)?), dir)
    }

    /// The store a config names: `[state] backend`.
    pub fn open_config(settings: &StateSettings, dir: &Path) -> Result<Store, StateError> {
        match settings {
            StateSettings::Embedded => Store::with(Box::new(EmbeddedStore::open(dir)?), dir),
            StateSettings::Postgres(pg) => Store::with(Box::new(PgStore::open(pg)?), dir),
        }
    }

    /// The store over `backend`, with the sent log of the state directory `dir`: what it
    /// still holds was accepted by a server before a crash, and is marked sent now instead
    /// of being sent again.
    fn with(backend: Box<dyn Backend>, dir: &Path) -> Result<Store, StateError> {
        let (sent_log, accepted) = sent_log::SentLog::open(dir)?;
        for id in accepted {
            let Some(mut entry) = backend.outbox_entry(&id)? else {
                continue;
            };
            if entry.status == OutboxStatus::Queued {
                tracing::info!(id, message = %entry.message_key, "outbox: marked sent from the sent log (the server accepted it just before mailpipe stopped), not sent again");
                entry.status = OutboxStatus::Sent;
                entry.attempts += 1;
                entry.last_error = None;
                backend.outbox_update(&entry)?;
            }
        }
        sent_log.clear()?;
        Ok(Store {
            backend,
            sent_log,
            namespaces: Default::default(),
        })
    }

    /// Record the result of a delivery attempt; one the server accepted is written to the
    /// sent log first, so that from the moment this is called only a power loss, not the
    /// end of this process, can make it be sent again.
    pub fn outbox_record_attempt(&self, entry: &OutboxEntry) -> Result<(), StateError> {
        if entry.status != OutboxStatus::Sent {
            return self.backend.outbox_update(entry);
        }
        if let Err(e) = self.sent_log.record(&entry.id) {
            // The durable mark below still follows; only its window is wider.
            tracing::warn!(id = %entry.id, "outbox: {e}");
        }
        self.backend.outbox_update(entry)?;
        self.sent_log.settled(&entry.id)
    }

    /// Whether a server accepted `id` while its durable mark could not be committed yet
    /// (`outbox_record_attempt` failed after the acceptance): it must not be sent again.
    pub fn outbox_accepted(&self, id: &str) -> bool {
        self.sent_log.holds(id)
    }

    /// Make `namespace` ready for `plugin`'s calls: an account's namespace gets its copy of
    /// the plugin's shared entries the first time it is used (`kv_copy_into_namespace`).
    pub fn prepare_kv_namespace(&self, plugin: &str, namespace: &str) -> Result<(), StateError> {
        if plugin == namespace {
            return Ok(());
        }
        let mut known = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        if !known.contains(namespace) {
            let copied = self.backend.kv_copy_into_namespace(plugin, namespace)?;
            if copied > 0 {
                tracing::info!(plugin, namespace = %namespace.replace('\u{1}', "@"), copied, "plugin state: this account's own copy of what the plugin kept before");
            }
            known.insert(namespace.to_string());
        }
        Ok(())
    }

    /// A hash of `data` keyed with this installation's secret: markers we write into mail
    /// (e.g. on rewritten copies) cannot be forged by a sender who knows how they are made.
    pub fn keyed_hash(&self, data: &[u8]) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.backend.secret());
        h.update(data);
        h.finalize().into()
    }

    /// When the earliest queued entry may be tried again (ms since the epoch).
    pub fn outbox_next_due(&self) -> Result<Option<u64>, StateError> {
        Ok(self
            .outbox_pending()?
            .iter()
            .map(|e| e.next_attempt_ms)
            .min())
    }
}

/// The namespace of a plugin's key-value state for the mail of `account`: each account has
/// its own (a vacation reply remembered for Alice's mail does not silence Bob's), offline
/// mail (no account) uses the plugin's. The separator is a control character, which neither
/// plugin nor account names may hold.
pub fn kv_namespace(plugin: &str, account: Option<&str>) -> String {
    match account {
        Some(a) => format!("{plugin}\u{1}{a}"),
        None => plugin.to_string(),
    }
}

/// The meta key that records that `namespace` got its copy (no NUL: PostgreSQL's text
/// cannot hold one).
fn namespace_marker(namespace: &str) -> String {
    format!("kv_namespace:{namespace}")
}

/// The meta key that records when `what` was first seen (`Backend::first_seen`).
fn first_seen_key(what: &str) -> String {
    format!("first_seen:{what}")
}

/// The Message-ID recorded in a processed summary.
fn summary_message_id(summary: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(summary).ok()?;
    v["message_id"].as_str().map(str::to_string)
}

fn explain_key(message_id: &str, message_key: &str) -> String {
    format!("{message_id}\0{message_key}")
}

/// A processed summary without what plugins decided, if it is older than `before_ms` and
/// still has it: (the pruned summary, its Message-ID).
fn pruned_summary(summary: &str, before_ms: u64) -> Option<(String, Option<String>)> {
    let mut v = serde_json::from_str::<serde_json::Value>(summary).ok()?;
    let at = v["at_ms"].as_u64().unwrap_or(0);
    if at >= before_ms || v.get("plugins").is_none() {
        return None;
    }
    let id = v["message_id"].as_str().map(str::to_string);
    if let Some(o) = v.as_object_mut() {
        o.remove("plugins");
        o.insert("pruned".into(), true.into());
    }
    Some((v.to_string(), id))
}

/// 32 bytes from the operating system's random source.
fn random_secret() -> std::io::Result<[u8; 32]> {
    use std::io::Read;
    let mut s = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut s)?;
    Ok(s)
}

#[cfg(test)]
mod tests;
