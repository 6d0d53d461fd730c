//! The state store: plugin key-value state with expiry, the outbox of generated mail, the log
//! of processed messages, and (for IMAP) mailbox checkpoints and pending plans. Every
//! message's effects are committed in one transaction, so a crash leaves either all of them
//! or none. See docs/STATE.md.
//!
//! Two backends keep the same records with the same semantics behind `Backend` (its groups
//! of records in `backend`):
//! - `embedded` (the default): one redb file, one process;
//! - `postgres`: a PostgreSQL schema shared by many processes, which then also own accounts
//!   (`lease`) and share the outbox, each queued message sent by one of them.

mod backend;
mod embedded;
pub mod lease;
mod outbox;
mod postgres;
pub mod scripts;
pub mod sent_log;

pub use backend::{Backend, MailboxProgress, MessageLog, OutboxQueue, Ownership, PluginKv};
pub use embedded::EmbeddedStore;
pub use outbox::{OutboxEntry, OutboxStatus};
pub use postgres::PgStore;
pub use scripts::{ScriptSet, ScriptStore, SieveScript};

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

/// Where an IMAP mailbox's processing stands: its UIDVALIDITY and the last UID processed
/// (every message up to it is decided and committed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UidMark {
    pub validity: u32,
    pub uid: u32,
}

/// A plan of server actions kept for a message (JSON; its shape is `source::imap::plan`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPlan {
    pub message_key: String,
    pub plan: String,
}

impl StoredPlan {
    /// From (message key, plan) rows.
    pub(crate) fn all(rows: Vec<(String, String)>) -> Vec<StoredPlan> {
        rows.into_iter()
            .map(|(message_key, plan)| StoredPlan { message_key, plan })
            .collect()
    }
}

/// A message a plugin failed on, with the fingerprints of the code and config of the
/// plugins that failed (JSON object name -> fingerprint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginFailure {
    pub message_key: String,
    pub fingerprints: String,
}

impl PluginFailure {
    /// From (message key, fingerprints) rows.
    pub(crate) fn all(rows: Vec<(String, String)>) -> Vec<PluginFailure> {
        rows.into_iter()
            .map(|(message_key, fingerprints)| PluginFailure {
                message_key,
                fingerprints,
            })
            .collect()
    }
}

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
    /// Advance an IMAP mailbox checkpoint: (mailbox key, where it stands now).
    pub checkpoint: Option<(String, UidMark)>,
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
        let (sent_log, found) = sent_log::SentLog::open(dir)?;
        for id in found.in_doubt {
            let Some(mut entry) = backend.outbox_entry(&id)? else {
                continue;
            };
            if entry.status == OutboxStatus::Queued && entry.automatic {
                tracing::warn!(id, message = %entry.message_key, to = ?entry.rcpt_to, "outbox: mailpipe stopped while the server was taking this automatic answer; the server may have it, so it is not sent again (an answer goes out at most once)");
                entry.status = OutboxStatus::Sent;
                entry.attempts += 1;
                entry.last_error = Some(
                    "in doubt: mailpipe stopped while the server was taking it; not sent again"
                        .into(),
                );
                backend.outbox_update(&entry)?;
            }
        }
        for id in found.accepted {
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
            self.backend.outbox_update(entry)?;
            return self.sent_log.abandon(&entry.id);
        }
        if let Err(e) = self.sent_log.record(&entry.id) {
            // The durable mark below still follows; only its window is wider.
            tracing::warn!(id = %entry.id, "outbox: {e}");
        }
        self.backend.outbox_update(entry)?;
        self.sent_log.settled(&entry.id)
    }

    /// `entry` is about to be handed to a server. An automatic answer is written to the sent
    /// log first: if the process dies before the server's answer, it is not sent again.
    pub fn outbox_sending(&self, entry: &OutboxEntry) {
        if entry.automatic {
            if let Err(e) = self.sent_log.intent(&entry.id) {
                tracing::warn!(id = %entry.id, "outbox: {e}");
            }
        }
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
