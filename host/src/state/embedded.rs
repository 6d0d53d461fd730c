//! The embedded state backend (the default): one redb file under the state directory. Every
//! message's effects are committed in one transaction, so a crash leaves either all of them
//! or none. One process at a time (redb locks the file). See docs/STATE.md.
//! (Named for what it is rather than `redb.rs`, which would shadow the crate of that name.)

use super::scripts::{ScriptSet, ScriptStore};
use super::{
    explain_key, first_seen_key, namespace_marker, pruned_summary, random_secret,
    summary_message_id, KvUsage, KvWrite, MailboxProgress, MessageCommit, MessageLog, OutboxEntry,
    OutboxQueue, OutboxStatus, Ownership, PluginFailure, PluginKv, StateError, StoredPlan, UidMark,
    PRUNE_EVERY_MS, SCHEMA_VERSION,
};

use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// Non-durable message commits are written together, this many per transaction: a redb
/// transaction costs ~130 µs whatever its size, more than deciding a message.
const BATCH: usize = 100;
/// redb's page cache (its default is 1 GiB, which lets memory grow with the state file).
/// 2 MiB: with 8 MiB, a 10k-message backfill peaked 30 % above a 1k one (redb 4 fills the
/// cache further than redb 2 did); with 2 MiB, 14 %, and the commit costs the same (the
/// pages it misses come from the operating system's file cache).
const CACHE_BYTES: usize = 2 << 20;

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("plugin_kv");
const PROCESSED: TableDefinition<&str, &str> = TableDefinition::new("processed");
const OUTBOX: TableDefinition<&str, &str> = TableDefinition::new("outbox");
const OUTBOX_RAW: TableDefinition<&str, &[u8]> = TableDefinition::new("outbox_raw");
/// "account/mailbox" -> (UIDVALIDITY, highest UID whose decision is committed).
const CHECKPOINTS: TableDefinition<&str, (u32, u32)> = TableDefinition::new("checkpoints");
/// Message key -> IMAP actions decided but not yet confirmed done (re-applied after a crash).
const PENDING: TableDefinition<&str, &str> = TableDefinition::new("pending_actions");
/// Message key -> a plan given up after repeated refusals (JSON, with its last error), kept
/// for the user to see.
const FAILED_PLANS: TableDefinition<&str, &str> = TableDefinition::new("failed_actions");
/// Messages a plugin failed on: message key -> {plugin: fingerprint}.
const PLUGIN_FAILED: TableDefinition<&str, &str> = TableDefinition::new("plugin_failed");
/// Message-ID -> processed messages, for `mailpipe explain`: "<id>\0message key" -> ().
const EXPLAIN_INDEX: TableDefinition<&str, ()> = TableDefinition::new("explain_index");
/// Values of this installation: "secret" (32 random bytes that key our markers), "schema"
/// (the record layout, `SCHEMA_VERSION`), "pruned_at" (when explanations were last pruned).
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Each account's Sieve scripts (`scripts::ScriptSet` as JSON), by account name. A table an
/// older mailpipe does not know and never opens: no new layout version.
const SIEVE_SCRIPTS: TableDefinition<&str, &str> = TableDefinition::new("sieve_scripts");

/// Build the Message-ID index of every processed record (the upgrade to layout 2).
fn index_explanations(txn: &WriteTransaction) -> Result<(), StateError> {
    let processed = txn.open_table(PROCESSED)?;
    let mut index = txn.open_table(EXPLAIN_INDEX)?;
    for item in processed.iter()? {
        let (key, summary) = item?;
        if let Some(id) = summary_message_id(summary.value()) {
            index.insert(explain_key(&id, key.value()).as_str(), ())?;
        }
    }
    Ok(())
}

/// Upgrade a state file written by mailpipe 0.1 with redb 2 (file format 2) to the format
/// redb 4 reads (3), in place, after keeping a copy beside it (`state.redb.format2`): redb 3
/// and later no longer open format 2 and only redb 2.6 can upgrade it.
fn upgrade_file_format(path: &Path) -> Result<(), StateError> {
    let failed = |message: String| StateError::Upgrade {
        path: path.display().to_string(),
        message,
    };
    let backup = path.with_extension("redb.format2");
    std::fs::copy(path, &backup)
        .map_err(|e| failed(format!("cannot keep a copy in {}: {e}", backup.display())))?;
    let mut old = redb2::Database::create(path).map_err(|e| failed(e.to_string()))?;
    old.upgrade().map_err(|e| failed(e.to_string()))?;
    drop(old);
    tracing::info!(
        path = %path.display(),
        backup = %backup.display(),
        "state store upgraded from file format 2 (mailpipe 0.1, redb 2) to 3"
    );
    Ok(())
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StateError {
            fn from(e: $t) -> Self { StateError::Db(Box::new(e.into())) }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// The redb file and what is not written into it yet.
pub struct EmbeddedStore {
    db: Database,
    /// Non-durable commits not written yet. They are written, in order, by the next write
    /// of any kind (in the same transaction) or when `BATCH` have piled up; until then the
    /// hot reads (KV, processed, checkpoints) look here first, so batching changes nothing
    /// a caller can see, except that a crash loses them, as it loses any non-durable commit.
    /// The lock is held from the start of every write transaction until it has committed,
    /// and a commit leaves the batch only then: a reader finds each commit either here or
    /// in the database, never in neither (read-your-writes across tasks).
    batch: Mutex<Vec<MessageCommit>>,
    /// What each plugin keeps in its key-value state (keys, bytes of keys + values),
    /// including expired entries not purged yet and commits still in the batch.
    kv_usage: Mutex<HashMap<String, KvUsage>>,
    /// This installation's secret (see `Store::keyed_hash`).
    secret: [u8; 32],
    /// The file, named in the errors of writes (a full disk says where).
    path: String,
}

fn kv_key(plugin: &str, key: &str) -> String {
    format!("{plugin}\u{0}{key}")
}

impl EmbeddedStore {
    pub fn open(dir: &Path) -> Result<EmbeddedStore, StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let path = dir.join("state.redb");
        let open_err = |e: redb::DatabaseError| StateError::Open {
            path: path.display().to_string(),
            source: Box::new(e.into()),
        };
        // A bounded page cache keeps memory flat however many messages were processed.
        let create = || {
            Database::builder()
                .set_cache_size(CACHE_BYTES)
                .create(&path)
        };
        let db = match create() {
            Err(redb::DatabaseError::UpgradeRequired(2)) => {
                upgrade_file_format(&path)?;
                create().map_err(open_err)?
            }
            other => other.map_err(open_err)?,
        };
        let txn = db.begin_write()?;
        txn.open_table(KV)?;
        txn.open_table(PROCESSED)?;
        txn.open_table(OUTBOX)?;
        txn.open_table(OUTBOX_RAW)?;
        txn.open_table(CHECKPOINTS)?;
        txn.open_table(PENDING)?;
        txn.open_table(FAILED_PLANS)?;
        txn.open_table(PLUGIN_FAILED)?;
        txn.open_table(EXPLAIN_INDEX)?;
        let secret = {
            let mut meta = txn.open_table(META)?;
            let schema = meta
                .get("schema")?
                .and_then(|v| <[u8; 4]>::try_from(v.value()).ok())
                .map(u32::from_be_bytes);
            match schema {
                Some(v) if v > SCHEMA_VERSION => {
                    return Err(StateError::Newer {
                        path: path.display().to_string(),
                        found: v,
                    })
                }
                Some(v) if v == SCHEMA_VERSION => {}
                older => {
                    if older.unwrap_or(1) < 2 {
                        index_explanations(&txn)?;
                    }
                    meta.insert("schema", SCHEMA_VERSION.to_be_bytes().as_slice())?;
                }
            }
            let existing = meta.get("secret")?.map(|v| v.value().to_vec());
            match existing.and_then(|v| <[u8; 32]>::try_from(v).ok()) {
                Some(s) => s,
                None => {
                    let s = random_secret().map_err(|source| StateError::Io {
                        path: "/dev/urandom".into(),
                        source,
                    })?;
                    meta.insert("secret", s.as_slice())?;
                    s
                }
            }
        };
        txn.commit()?;
        // Usage is counted once at open, then kept up to date by every commit.
        let mut usage: HashMap<String, KvUsage> = HashMap::new();
        {
            let txn = db.begin_read()?;
            for item in txn.open_table(KV)?.iter()? {
                let (k, v) = item?;
                let k = k.value();
                let plugin = k.split('\0').next().unwrap_or_default();
                let u = usage.entry(plugin.to_string()).or_default();
                u.keys += 1;
                u.bytes += entry_size(k, v.value());
            }
        }
        Ok(EmbeddedStore {
            db,
            batch: Mutex::new(Vec::new()),
            kv_usage: Mutex::new(usage),
            secret,
            path: path.display().to_string(),
        })
    }

    fn batch(&self) -> MutexGuard<'_, Vec<MessageCommit>> {
        self.batch.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `f` in one write transaction that first writes the pending batch (so every write
    /// keeps the order of the commits before it and makes them as durable as itself), then
    /// commit. The batch lock is held throughout, and the batch is emptied only once the
    /// transaction has committed (see `Store::batch`).
    fn write<T>(
        &self,
        durable: bool,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        let mut batch = self.batch();
        let written = (|| {
            let mut txn = self.db.begin_write()?;
            if !durable {
                txn.set_durability(redb::Durability::None)?;
            }
            if !batch.is_empty() {
                write_commits(&txn, &batch.iter().collect::<Vec<_>>())?;
            }
            let out = f(&txn)?;
            txn.commit()?;
            Ok(out)
        })();
        match written {
            Ok(out) => {
                batch.clear();
                Ok(out)
            }
            Err(StateError::Db(source)) => Err(StateError::Write {
                path: self.path.clone(),
                source,
            }),
            Err(e) => Err(e),
        }
    }

    /// Write the pending batch now, without waiting for the disk.
    fn write_batch(&self) -> Result<(), StateError> {
        if self.batch().is_empty() {
            return Ok(());
        }
        self.write(false, |_| Ok(()))
    }

    /// Count a commit's KV writes into the usage totals (before it is written).
    fn count_kv(&self, writes: &[KvWrite]) -> Result<(), StateError> {
        for w in writes {
            let old = self.kv_entry_size(&w.plugin, &w.key)?;
            let new = w
                .value
                .as_ref()
                .map(|(v, _)| (w.key.len() + v.len()) as u64);
            let mut usage = self.kv_usage.lock().unwrap_or_else(|e| e.into_inner());
            let u = usage.entry(w.plugin.clone()).or_default();
            u.keys = (u.keys + new.is_some() as u64).saturating_sub(old.is_some() as u64);
            u.bytes = (u.bytes + new.unwrap_or(0)).saturating_sub(old.unwrap_or(0));
        }
        Ok(())
    }

    fn under(
        &self,
        table: TableDefinition<&str, &str>,
        prefix: &str,
    ) -> Result<Vec<(String, String)>, StateError> {
        self.write_batch()?;
        let txn = self.db.begin_read()?;
        let table = match txn.open_table(table) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for item in table.range(prefix..)? {
            let (k, v) = item?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_string(), v.value().to_string()));
        }
        Ok(out)
    }
}

impl PluginKv for EmbeddedStore {
    fn secret(&self) -> [u8; 32] {
        self.secret
    }

    /// What `plugin` keeps in its key-value state now.
    fn kv_usage(&self, plugin: &str) -> KvUsage {
        self.kv_usage
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(plugin)
            .copied()
            .unwrap_or_default()
    }

    /// The stored size (key + value bytes) of a plugin's entry, expired or not; None when
    /// there is none. Sees the batch like `kv_get`.
    fn kv_entry_size(&self, plugin: &str, key: &str) -> Result<Option<u64>, StateError> {
        let pending = self.batch().iter().rev().find_map(|c| {
            c.kv.iter()
                .rev()
                .find(|w| w.plugin == plugin && w.key == key)
                .map(|w| w.value.as_ref().map(|(v, _)| (key.len() + v.len()) as u64))
        });
        if let Some(size) = pending {
            return Ok(size);
        }
        let txn = self.db.begin_read()?;
        let table = txn.open_table(KV)?;
        let k = kv_key(plugin, key);
        Ok(table.get(k.as_str())?.map(|v| entry_size(&k, v.value())))
    }

    /// A plugin's value for `key`, unless it has expired.
    fn kv_get(&self, plugin: &str, key: &str, now_ms: u64) -> Result<Option<Vec<u8>>, StateError> {
        let pending = self.batch().iter().rev().find_map(|c| {
            c.kv.iter()
                .rev()
                .find(|w| w.plugin == plugin && w.key == key)
                .map(|w| w.value.clone())
        });
        if let Some(value) = pending {
            return Ok(
                value.and_then(|(v, expires)| (expires == 0 || expires > now_ms).then_some(v))
            );
        }
        let txn = self.db.begin_read()?;
        let table = txn.open_table(KV)?;
        let Some(v) = table.get(kv_key(plugin, key).as_str())? else {
            return Ok(None);
        };
        let bytes = v.value();
        if bytes.len() < 8 {
            return Err(StateError::Corrupt(format!("kv {plugin}/{key}")));
        }
        let expires = u64::from_be_bytes(bytes[..8].try_into().unwrap());
        if expires != 0 && expires <= now_ms {
            return Ok(None);
        }
        Ok(Some(bytes[8..].to_vec()))
    }

    /// Drop expired key-value entries; returns how many.
    fn kv_purge_expired(&self, now_ms: u64) -> Result<usize, StateError> {
        let mut freed: HashMap<String, KvUsage> = HashMap::new();
        let n = self.write(true, |txn| {
            let mut table = txn.open_table(KV)?;
            let before = table.len()?;
            table.retain(|k, v| {
                let expires = v
                    .get(..8)
                    .map_or(0, |b| u64::from_be_bytes(b.try_into().unwrap()));
                let keep = expires == 0 || expires > now_ms;
                if !keep {
                    let plugin = k.split('\0').next().unwrap_or_default();
                    let f = freed.entry(plugin.to_string()).or_default();
                    f.keys += 1;
                    f.bytes += entry_size(k, v);
                }
                keep
            })?;
            Ok((before - table.len()?) as usize)
        })?;
        let mut usage = self.kv_usage.lock().unwrap_or_else(|e| e.into_inner());
        for (plugin, f) in freed {
            let u = usage.entry(plugin).or_default();
            u.keys = u.keys.saturating_sub(f.keys);
            u.bytes = u.bytes.saturating_sub(f.bytes);
        }
        Ok(n)
    }

    fn kv_copy_into_namespace(&self, plugin: &str, namespace: &str) -> Result<usize, StateError> {
        let marker = namespace_marker(namespace);
        let mut added = KvUsage::default();
        let copied = self.write(true, |txn| {
            let mut meta = txn.open_table(META)?;
            if meta.get(marker.as_str())?.is_some() {
                return Ok(0);
            }
            let mut table = txn.open_table(KV)?;
            let from = kv_key(plugin, "");
            let mut entries = Vec::new();
            for item in table.range(from.as_str()..)? {
                let (k, v) = item?;
                let Some(key) = k.value().strip_prefix(from.as_str()) else {
                    break;
                };
                entries.push((key.to_string(), v.value().to_vec()));
            }
            let mut n = 0;
            for (key, value) in entries {
                let to = kv_key(namespace, &key);
                if table.get(to.as_str())?.is_none() {
                    table.insert(to.as_str(), value.as_slice())?;
                    added.keys += 1;
                    added.bytes += entry_size(&to, &value);
                    n += 1;
                }
            }
            meta.insert(marker.as_str(), [1u8].as_slice())?;
            Ok(n)
        })?;
        let mut usage = self.kv_usage.lock().unwrap_or_else(|e| e.into_inner());
        let u = usage.entry(namespace.to_string()).or_default();
        u.keys += added.keys;
        u.bytes += added.bytes;
        Ok(copied)
    }
}

impl MessageLog for EmbeddedStore {
    fn is_processed(&self, message_key: &str) -> Result<bool, StateError> {
        if self.batch().iter().any(|c| {
            c.message_key == message_key || c.also_processed.iter().any(|k| k == message_key)
        }) {
            return Ok(true);
        }
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(PROCESSED)?.get(message_key)?.is_some())
    }

    fn processed_summary(&self, message_key: &str) -> Result<Option<String>, StateError> {
        self.write_batch()?;
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PROCESSED)?;
        Ok(table.get(message_key)?.map(|v| v.value().to_string()))
    }

    /// Commit one message's effects: plugin state, queued outgoing mail, processed mark.
    /// Outbox entries whose id is already present are left as they are (never re-queued),
    /// which is what makes re-processing after a crash send nothing twice.
    fn commit_message(&self, commit: &MessageCommit) -> Result<(), StateError> {
        self.count_kv(&commit.kv)?;
        if !commit.durable {
            let full = {
                let mut batch = self.batch();
                batch.push(commit.clone());
                batch.len() >= BATCH
            };
            return if full { self.write_batch() } else { Ok(()) };
        }
        self.write(true, |txn| write_commits(txn, &[commit]))
    }

    /// Make every earlier non-durable commit durable now.
    fn sync(&self) -> Result<(), StateError> {
        self.write(true, |_| Ok(()))
    }

    /// Processed messages with Message-ID `message_id` (with <>): (key, summary), through the
    /// index, for `mailpipe explain`.
    fn processed_with_message_id(
        &self,
        message_id: &str,
    ) -> Result<Vec<(String, String)>, StateError> {
        self.write_batch()?;
        let txn = self.db.begin_read()?;
        let index = txn.open_table(EXPLAIN_INDEX)?;
        let processed = txn.open_table(PROCESSED)?;
        let prefix = explain_key(message_id, "");
        let mut out = Vec::new();
        for item in index.range(prefix.as_str()..)? {
            let (k, _) = item?;
            let Some(key) = k.value().strip_prefix(prefix.as_str()) else {
                break;
            };
            if let Some(summary) = processed.get(key)? {
                out.push((key.to_string(), summary.value().to_string()));
            }
        }
        Ok(out)
    }

    /// Forget what plugins decided for messages processed before `before_ms` (the processed
    /// mark stays: they are never processed again), at most once a day. Returns how many
    /// records were pruned.
    fn prune_explanations(&self, now_ms: u64, before_ms: u64) -> Result<usize, StateError> {
        self.write_batch()?;
        let last = {
            let txn = self.db.begin_read()?;
            let meta = txn.open_table(META)?;
            meta.get("pruned_at")?
                .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
                .map_or(0, u64::from_be_bytes)
        };
        if now_ms.saturating_sub(last) < PRUNE_EVERY_MS {
            return Ok(0);
        }
        let mut pruned = 0;
        self.write(true, |txn| {
            let mut processed = txn.open_table(PROCESSED)?;
            let mut index = txn.open_table(EXPLAIN_INDEX)?;
            let mut old = Vec::new();
            for item in processed.iter()? {
                let (key, summary) = item?;
                if let Some((pruned, id)) = pruned_summary(summary.value(), before_ms) {
                    old.push((key.value().to_string(), pruned, id));
                }
            }
            for (key, summary, id) in &old {
                processed.insert(key.as_str(), summary.as_str())?;
                if let Some(id) = id {
                    index.remove(explain_key(id, key).as_str())?;
                }
            }
            pruned = old.len();
            txn.open_table(META)?
                .insert("pruned_at", now_ms.to_be_bytes().as_slice())?;
            Ok(())
        })?;
        Ok(pruned)
    }

    fn seen_at(&self, what: &str) -> Result<Option<u64>, StateError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let at = meta
            .get(first_seen_key(what).as_str())?
            .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
            .map(u64::from_be_bytes);
        Ok(at)
    }

    fn first_seen(&self, what: &str, now_ms: u64) -> Result<u64, StateError> {
        let key = first_seen_key(what);
        fn recorded(
            meta: &impl redb::ReadableTable<&'static str, &'static [u8]>,
            key: &str,
        ) -> Result<Option<u64>, StateError> {
            Ok(meta
                .get(key)?
                .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
                .map(u64::from_be_bytes))
        }
        {
            let txn = self.db.begin_read()?;
            if let Some(at) = recorded(&txn.open_table(META)?, &key)? {
                return Ok(at);
            }
        }
        self.write(true, |txn| {
            let mut meta = txn.open_table(META)?;
            if let Some(at) = recorded(&meta, &key)? {
                return Ok(at);
            }
            meta.insert(key.as_str(), now_ms.to_be_bytes().as_slice())?;
            Ok(now_ms)
        })
    }

    /// How many messages are recorded as processed.
    fn processed_count(&self) -> Result<u64, StateError> {
        self.write_batch()?;
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(PROCESSED)?.len()?)
    }
}

/// A checkpoint as the CHECKPOINTS table keeps it: (UIDVALIDITY, last UID).
fn mark((validity, uid): (u32, u32)) -> UidMark {
    UidMark { validity, uid }
}

impl MailboxProgress for EmbeddedStore {
    fn checkpoint(&self, mailbox: &str) -> Result<Option<UidMark>, StateError> {
        let pending = self.batch().iter().rev().find_map(|c| {
            c.checkpoint
                .as_ref()
                .filter(|(m, _)| m == mailbox)
                .map(|(_, at)| *at)
        });
        if pending.is_some() {
            return Ok(pending);
        }
        let txn = self.db.begin_read()?;
        Ok(txn
            .open_table(CHECKPOINTS)?
            .get(mailbox)?
            .map(|v| mark(v.value())))
    }

    /// Every mailbox checkpoint, by mailbox key.
    fn checkpoints(&self) -> Result<Vec<(String, UidMark)>, StateError> {
        self.write_batch()?;
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CHECKPOINTS)?;
        let mut out = Vec::new();
        for item in table.iter()? {
            let (k, v) = item?;
            out.push((k.value().to_string(), mark(v.value())));
        }
        Ok(out)
    }

    fn set_checkpoint(&self, mailbox: &str, at: UidMark) -> Result<(), StateError> {
        self.write(true, |txn| {
            txn.open_table(CHECKPOINTS)?
                .insert(mailbox, (at.validity, at.uid))?;
            Ok(())
        })
    }

    /// Pending mailbox actions whose message key starts with `prefix`.
    fn pending(&self, prefix: &str) -> Result<Vec<StoredPlan>, StateError> {
        Ok(StoredPlan::all(self.under(PENDING, prefix)?))
    }

    /// Replace a pending plan (after an attempt that changed it).
    fn update_pending(&self, key: &str, plan: &str) -> Result<(), StateError> {
        self.write(true, |txn| {
            txn.open_table(PENDING)?.insert(key, plan)?;
            Ok(())
        })
    }

    /// Stop trying a pending plan: it moves to the failed actions, kept for the user.
    fn give_up_pending(&self, key: &str, plan: &str) -> Result<(), StateError> {
        self.write(true, |txn| {
            txn.open_table(PENDING)?.remove(key)?;
            txn.open_table(FAILED_PLANS)?.insert(key, plan)?;
            Ok(())
        })
    }

    /// Messages whose actions were given up (`give_up_pending`), under `prefix`.
    fn failed_under(&self, prefix: &str) -> Result<Vec<StoredPlan>, StateError> {
        Ok(StoredPlan::all(self.under(FAILED_PLANS, prefix)?))
    }

    /// Messages a plugin failed on, under `prefix`.
    fn plugin_failed_under(&self, prefix: &str) -> Result<Vec<PluginFailure>, StateError> {
        Ok(PluginFailure::all(self.under(PLUGIN_FAILED, prefix)?))
    }

    /// Forget that these messages were processed and failed (actions given up, or a plugin
    /// failed), so they are decided again.
    fn forget_failed(&self, keys: &[String]) -> Result<(), StateError> {
        self.write(true, |txn| {
            let mut failed = txn.open_table(FAILED_PLANS)?;
            let mut plugin_failed = txn.open_table(PLUGIN_FAILED)?;
            let mut processed = txn.open_table(PROCESSED)?;
            for k in keys {
                failed.remove(k.as_str())?;
                plugin_failed.remove(k.as_str())?;
                processed.remove(k.as_str())?;
            }
            Ok(())
        })
    }

    fn finish_pending(&self, keys: &[String]) -> Result<(), StateError> {
        self.write(true, |txn| {
            let mut table = txn.open_table(PENDING)?;
            for k in keys {
                table.remove(k.as_str())?;
            }
            Ok(())
        })
    }
}

/// One process alone owns every account: the defaults.
impl Ownership for EmbeddedStore {}

impl ScriptStore for EmbeddedStore {
    fn scripts_load(&self, account: &str) -> Result<ScriptSet, StateError> {
        let txn = self.db.begin_read()?;
        let table = match txn.open_table(SIEVE_SCRIPTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(ScriptSet::default()),
            Err(e) => return Err(e.into()),
        };
        match table.get(account)? {
            None => Ok(ScriptSet::default()),
            Some(v) => serde_json::from_str(v.value())
                .map_err(|_| StateError::Corrupt(format!("sieve_scripts {account}"))),
        }
    }

    fn scripts_version(&self, account: &str) -> Result<u64, StateError> {
        /// Only the version: the scripts' text is skipped, not copied.
        #[derive(serde::Deserialize)]
        struct Version {
            version: u64,
        }
        let txn = self.db.begin_read()?;
        let table = match txn.open_table(SIEVE_SCRIPTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        match table.get(account)? {
            None => Ok(0),
            Some(v) => serde_json::from_str::<Version>(v.value())
                .map(|v| v.version)
                .map_err(|_| StateError::Corrupt(format!("sieve_scripts {account}"))),
        }
    }

    fn scripts_replace(
        &self,
        account: &str,
        expected: u64,
        set: &ScriptSet,
    ) -> Result<bool, StateError> {
        let json = serde_json::to_string(set).map_err(|e| StateError::Corrupt(e.to_string()))?;
        self.write(true, |txn| {
            let mut table = txn.open_table(SIEVE_SCRIPTS)?;
            let stored = match table.get(account)? {
                None => 0,
                Some(v) => {
                    serde_json::from_str::<ScriptSet>(v.value())
                        .map_err(|_| StateError::Corrupt(format!("sieve_scripts {account}")))?
                        .version
                }
            };
            if stored != expected {
                return Ok(false);
            }
            table.insert(account, json.as_str())?;
            Ok(true)
        })
    }
}

impl OutboxQueue for EmbeddedStore {
    /// Outbox entries not yet delivered (queued or failed transiently), oldest first.
    fn outbox_pending(&self) -> Result<Vec<OutboxEntry>, StateError> {
        self.write_batch()?;
        let txn = self.db.begin_read()?;
        let table = txn.open_table(OUTBOX)?;
        let mut out = Vec::new();
        for item in table.iter()? {
            let (_, v) = item?;
            let entry = OutboxEntry::from_json(v.value())?;
            if entry.status == OutboxStatus::Queued && !entry.held {
                out.push(entry);
            }
        }
        out.sort_by_key(|e| e.queued_at_ms);
        Ok(out)
    }

    fn outbox_all(&self) -> Result<Vec<OutboxEntry>, StateError> {
        self.write_batch()?;
        let txn = self.db.begin_read()?;
        let table = txn.open_table(OUTBOX)?;
        let mut out = Vec::new();
        for item in table.iter()? {
            out.push(OutboxEntry::from_json(item?.1.value())?);
        }
        Ok(out)
    }

    fn outbox_raw(&self, id: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.write_batch()?;
        let txn = self.db.begin_read()?;
        let table = txn.open_table(OUTBOX_RAW)?;
        Ok(table.get(id)?.map(|v| v.value().to_vec()))
    }

    /// One outbox entry by id.
    fn outbox_entry(&self, id: &str) -> Result<Option<OutboxEntry>, StateError> {
        self.write_batch()?;
        let txn = self.db.begin_read()?;
        let table = txn.open_table(OUTBOX)?;
        table
            .get(id)?
            .map(|v| OutboxEntry::from_json(v.value()))
            .transpose()
    }

    /// Give a held entry its complete message and release it for sending.
    fn outbox_complete(&self, entry: &OutboxEntry, raw: &[u8]) -> Result<(), StateError> {
        let mut entry = entry.clone();
        entry.held = false;
        self.write(true, |txn| {
            txn.open_table(OUTBOX)?
                .insert(entry.id.as_str(), entry.to_json().as_str())?;
            txn.open_table(OUTBOX_RAW)?.insert(entry.id.as_str(), raw)?;
            Ok(())
        })
    }

    /// Record the result of a delivery attempt.
    fn outbox_update(&self, entry: &OutboxEntry) -> Result<(), StateError> {
        self.write(true, |txn| {
            let mut table = txn.open_table(OUTBOX)?;
            table.insert(entry.id.as_str(), entry.to_json().as_str())?;
            if entry.status == OutboxStatus::Sent {
                txn.open_table(OUTBOX_RAW)?.remove(entry.id.as_str())?;
            }
            Ok(())
        })
    }
}

/// Write messages' effects into `txn`, in order, opening each table once. Of several
/// checkpoints of one mailbox only the last is written (each supersedes the one before).
fn write_commits(txn: &WriteTransaction, commits: &[&MessageCommit]) -> Result<(), StateError> {
    let mut kv = txn.open_table(KV)?;
    let mut outbox = txn.open_table(OUTBOX)?;
    let mut raw_table = txn.open_table(OUTBOX_RAW)?;
    let mut processed = txn.open_table(PROCESSED)?;
    let mut checkpoints = txn.open_table(CHECKPOINTS)?;
    let mut pending = txn.open_table(PENDING)?;
    let mut plugin_failed = txn.open_table(PLUGIN_FAILED)?;
    let mut index = txn.open_table(EXPLAIN_INDEX)?;
    for (i, commit) in commits.iter().enumerate() {
        for w in &commit.kv {
            let k = kv_key(&w.plugin, &w.key);
            match &w.value {
                Some((value, expires)) => {
                    let mut v = expires.to_be_bytes().to_vec();
                    v.extend_from_slice(value);
                    kv.insert(k.as_str(), v.as_slice())?;
                }
                None => {
                    kv.remove(k.as_str())?;
                }
            }
        }
        for (entry, raw) in &commit.outbox {
            if outbox.get(entry.id.as_str())?.is_some() {
                continue;
            }
            outbox.insert(entry.id.as_str(), entry.to_json().as_str())?;
            raw_table.insert(entry.id.as_str(), raw.as_slice())?;
        }
        processed.insert(commit.message_key.as_str(), commit.summary.as_str())?;
        for k in &commit.also_processed {
            processed.insert(k.as_str(), commit.summary.as_str())?;
        }
        if let Some(id) = &commit.message_id {
            for k in std::iter::once(&commit.message_key).chain(&commit.also_processed) {
                index.insert(explain_key(id, k).as_str(), ())?;
            }
        }
        if let Some((mailbox, at)) = &commit.checkpoint {
            let superseded = commits[i + 1..]
                .iter()
                .any(|later| later.checkpoint.as_ref().is_some_and(|(m, _)| m == mailbox));
            if !superseded {
                checkpoints.insert(mailbox.as_str(), (at.validity, at.uid))?;
            }
        }
        if let Some(plan) = &commit.pending {
            pending.insert(commit.message_key.as_str(), plan.as_str())?;
        }
        if let Some(failed) = &commit.plugin_failed {
            plugin_failed.insert(commit.message_key.as_str(), failed.as_str())?;
        }
    }
    Ok(())
}

/// Bytes an entry of the KV table counts for: the plugin's key and value (not our prefix
/// and expiry stamp).
fn entry_size(stored_key: &str, stored_value: &[u8]) -> u64 {
    let key = stored_key.split_once('\0').map_or(stored_key, |(_, k)| k);
    (key.len() + stored_value.len().saturating_sub(8)) as u64
}

impl Drop for EmbeddedStore {
    /// Commits still in the batch are written and synced on a clean exit.
    fn drop(&mut self) {
        if !self.batch().is_empty() {
            let _ = self.sync();
        }
    }
}

/// What only the file has: its format and layout upgrades.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::commit_of;
    use crate::state::Store;

    #[test]
    fn a_store_of_mailpipe_0_1_is_upgraded_in_place_with_a_copy_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let secret = [7u8; 32];
        {
            // What mailpipe 0.1 wrote: redb 2.6, file format 2 (its default).
            let db = redb2::Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut t = txn
                    .open_table(redb2::TableDefinition::<&str, &str>::new("processed"))
                    .unwrap();
                t.insert("acct/INBOX/1/7", "{\"folders\":[\"INBOX\"]}")
                    .unwrap();
                let mut meta = txn
                    .open_table(redb2::TableDefinition::<&str, &[u8]>::new("meta"))
                    .unwrap();
                meta.insert("secret", secret.as_slice()).unwrap();
            }
            txn.commit().unwrap();
        }
        let before = std::fs::read(&path).unwrap();
        // redb 4 alone refuses it.
        assert!(matches!(
            Database::create(&path),
            Err(redb::DatabaseError::UpgradeRequired(2))
        ));
        let store = Store::open(dir.path()).unwrap();
        assert!(store.is_processed("acct/INBOX/1/7").unwrap());
        // The marker secret is the same, so loop markers of old replies still match.
        assert_eq!(store.secret(), secret);
        assert_eq!(
            std::fs::read(dir.path().join("state.redb.format2")).unwrap(),
            before,
            "the copy is the file as it was"
        );
        drop(store);
        // Opened again: no second upgrade, no new copy needed.
        std::fs::remove_file(dir.path().join("state.redb.format2")).unwrap();
        let again = Store::open(dir.path()).unwrap();
        assert!(again.is_processed("acct/INBOX/1/7").unwrap());
        assert!(!dir.path().join("state.redb.format2").exists());
    }

    #[test]
    fn a_store_of_layout_1_gets_its_message_id_index_built() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        {
            // As mailpipe 0.1 left it: processed records, no index, layout 1.
            let db = Database::create(dir.path().join("state.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            txn.delete_table(EXPLAIN_INDEX).unwrap();
            let c = commit_of("a/INBOX/1/1", "<old@y>", 1);
            txn.open_table(PROCESSED)
                .unwrap()
                .insert(c.message_key.as_str(), c.summary.as_str())
                .unwrap();
            txn.open_table(META)
                .unwrap()
                .insert("schema", 1u32.to_be_bytes().as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        let found = s.processed_with_message_id("<old@y>").unwrap();
        assert_eq!(found.len(), 1, "built from the processed records");
    }

    #[test]
    fn a_store_with_a_newer_record_layout_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        {
            let db = Database::create(dir.path().join("state.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert("schema", (SCHEMA_VERSION + 1).to_be_bytes().as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        let err = Store::open(dir.path()).err().unwrap().to_string();
        assert!(err.contains("written by a newer mailpipe"), "{err}");
    }
}
