//! The embedded, crash-safe state store: plugin key-value state with expiry, the outbox of
//! generated mail, the log of processed messages, and (for IMAP) mailbox checkpoints.
//! One redb file under the state directory; every message's effects on it are committed in
//! one transaction, so a crash leaves either all of them or none. See docs/STATE.md.

mod outbox;

pub use outbox::{OutboxEntry, OutboxStatus};

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// Non-durable message commits are written together, this many per transaction: a redb
/// transaction costs ~130 µs whatever its size, more than deciding a message.
const BATCH: usize = 100;
/// redb's page cache (its default is 1 GiB, which lets memory grow with the state file).
const CACHE_BYTES: usize = 8 << 20;

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("plugin_kv");
const PROCESSED: TableDefinition<&str, &str> = TableDefinition::new("processed");
const OUTBOX: TableDefinition<&str, &str> = TableDefinition::new("outbox");
const OUTBOX_RAW: TableDefinition<&str, &[u8]> = TableDefinition::new("outbox_raw");
/// "account/mailbox" -> (UIDVALIDITY, highest UID whose decision is committed).
const CHECKPOINTS: TableDefinition<&str, (u32, u32)> = TableDefinition::new("checkpoints");
/// Message key -> IMAP actions decided but not yet confirmed done (re-applied after a crash).
const PENDING: TableDefinition<&str, &str> = TableDefinition::new("pending_actions");

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state store {path}: {source}")]
    Open {
        path: String,
        source: Box<redb::Error>,
    },
    #[error("state store: {0}")]
    Db(Box<redb::Error>),
    #[error("state store: cannot create {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("state store: corrupt record {0}")]
    Corrupt(String),
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
    redb::CommitError
);

/// A pending change to one plugin's key-value state.
#[derive(Debug, Clone, PartialEq)]
pub struct KvWrite {
    pub plugin: String,
    pub key: String,
    /// `None` deletes; `Some((value, expires_at_ms))`, 0 = never expires.
    pub value: Option<(Vec<u8>, u64)>,
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
    /// Advance an IMAP mailbox checkpoint: (mailbox key, UIDVALIDITY, UID).
    pub checkpoint: Option<(String, u32, u32)>,
    /// Mailbox actions still to carry out (JSON), kept until `finish_pending`.
    pub pending: Option<String>,
    /// `false`: commit without waiting for the disk; made durable by the next durable
    /// commit (a crash in between loses both, consistently). Used inside a batch whose
    /// effects happen only after its last, durable commit.
    pub durable: bool,
}

pub struct Store {
    db: Database,
    /// Non-durable commits not written yet. They are written, in order, by the next write
    /// of any kind (in the same transaction) or when `BATCH` have piled up; until then the
    /// hot reads (KV, processed, checkpoints) look here first, so batching changes nothing
    /// a caller can see, except that a crash loses them, as it loses any non-durable commit.
    batch: Mutex<Vec<MessageCommit>>,
}

fn kv_key(plugin: &str, key: &str) -> String {
    format!("{plugin}\u{0}{key}")
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store, StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let path = dir.join("state.redb");
        // A bounded page cache keeps memory flat however many messages were processed.
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| StateError::Open {
                path: path.display().to_string(),
                source: Box::new(e.into()),
            })?;
        let txn = db.begin_write()?;
        txn.open_table(KV)?;
        txn.open_table(PROCESSED)?;
        txn.open_table(OUTBOX)?;
        txn.open_table(OUTBOX_RAW)?;
        txn.open_table(CHECKPOINTS)?;
        txn.open_table(PENDING)?;
        txn.commit()?;
        Ok(Store {
            db,
            batch: Mutex::new(Vec::new()),
        })
    }

    fn batch(&self) -> MutexGuard<'_, Vec<MessageCommit>> {
        self.batch.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A write transaction that first writes the pending batch, so every write keeps the
    /// order of the commits before it and makes them as durable as itself.
    fn begin_write(&self) -> Result<WriteTransaction, StateError> {
        let txn = self.db.begin_write()?;
        let batch = std::mem::take(&mut *self.batch());
        if !batch.is_empty() {
            write_commits(&txn, &batch.iter().collect::<Vec<_>>())?;
        }
        Ok(txn)
    }

    /// Write the pending batch now, without waiting for the disk.
    fn write_batch(&self) -> Result<(), StateError> {
        if self.batch().is_empty() {
            return Ok(());
        }
        let mut txn = self.begin_write()?;
        txn.set_durability(redb::Durability::None);
        txn.commit()?;
        Ok(())
    }

    /// A plugin's value for `key`, unless it has expired.
    pub fn kv_get(
        &self,
        plugin: &str,
        key: &str,
        now_ms: u64,
    ) -> Result<Option<Vec<u8>>, StateError> {
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
    pub fn kv_purge_expired(&self, now_ms: u64) -> Result<usize, StateError> {
        let txn = self.begin_write()?;
        let n = {
            let mut table = txn.open_table(KV)?;
            let before = table.len()?;
            table.retain(|_, v| {
                let expires = v
                    .get(..8)
                    .map_or(0, |b| u64::from_be_bytes(b.try_into().unwrap()));
                expires == 0 || expires > now_ms
            })?;
            (before - table.len()?) as usize
        };
        txn.commit()?;
        Ok(n)
    }

    pub fn is_processed(&self, message_key: &str) -> Result<bool, StateError> {
        if self.batch().iter().any(|c| {
            c.message_key == message_key || c.also_processed.iter().any(|k| k == message_key)
        }) {
            return Ok(true);
        }
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(PROCESSED)?.get(message_key)?.is_some())
    }

    pub fn processed_summary(&self, message_key: &str) -> Result<Option<String>, StateError> {
        self.write_batch()?;
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PROCESSED)?;
        Ok(table.get(message_key)?.map(|v| v.value().to_string()))
    }

    /// Commit one message's effects: plugin state, queued outgoing mail, processed mark.
    /// Outbox entries whose id is already present are left as they are (never re-queued),
    /// which is what makes re-processing after a crash send nothing twice.
    pub fn commit_message(&self, commit: &MessageCommit) -> Result<(), StateError> {
        if !commit.durable {
            let full = {
                let mut batch = self.batch();
                batch.push(commit.clone());
                batch.len() >= BATCH
            };
            return if full { self.write_batch() } else { Ok(()) };
        }
        let txn = self.begin_write()?;
        write_commits(&txn, &[commit])?;
        txn.commit()?;
        Ok(())
    }

    /// Make every earlier non-durable commit durable now.
    pub fn sync(&self) -> Result<(), StateError> {
        self.begin_write()?.commit()?;
        Ok(())
    }

    pub fn checkpoint(&self, mailbox: &str) -> Result<Option<(u32, u32)>, StateError> {
        let pending = self.batch().iter().rev().find_map(|c| {
            c.checkpoint
                .as_ref()
                .filter(|(m, _, _)| m == mailbox)
                .map(|(_, v, uid)| (*v, *uid))
        });
        if pending.is_some() {
            return Ok(pending);
        }
        let txn = self.db.begin_read()?;
        Ok(txn
            .open_table(CHECKPOINTS)?
            .get(mailbox)?
            .map(|v| v.value()))
    }

    pub fn set_checkpoint(&self, mailbox: &str, validity: u32, uid: u32) -> Result<(), StateError> {
        let txn = self.begin_write()?;
        txn.open_table(CHECKPOINTS)?
            .insert(mailbox, (validity, uid))?;
        txn.commit()?;
        Ok(())
    }

    /// Pending mailbox actions whose message key starts with `prefix`.
    pub fn pending(&self, prefix: &str) -> Result<Vec<(String, String)>, StateError> {
        self.write_batch()?;
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PENDING)?;
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

    pub fn finish_pending(&self, keys: &[String]) -> Result<(), StateError> {
        let txn = self.begin_write()?;
        {
            let mut table = txn.open_table(PENDING)?;
            for k in keys {
                table.remove(k.as_str())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Outbox entries not yet delivered (queued or failed transiently), oldest first.
    pub fn outbox_pending(&self) -> Result<Vec<OutboxEntry>, StateError> {
        self.write_batch()?;
        let txn = self.db.begin_read()?;
        let table = txn.open_table(OUTBOX)?;
        let mut out = Vec::new();
        for item in table.iter()? {
            let (_, v) = item?;
            let entry = OutboxEntry::from_json(v.value())?;
            if entry.status == OutboxStatus::Queued {
                out.push(entry);
            }
        }
        out.sort_by_key(|e| e.queued_at_ms);
        Ok(out)
    }

    /// When the earliest queued entry may be tried again (ms since the epoch).
    pub fn outbox_next_due(&self) -> Result<Option<u64>, StateError> {
        Ok(self
            .outbox_pending()?
            .iter()
            .map(|e| e.next_attempt_ms)
            .min())
    }

    pub fn outbox_all(&self) -> Result<Vec<OutboxEntry>, StateError> {
        self.write_batch()?;
        let txn = self.db.begin_read()?;
        let table = txn.open_table(OUTBOX)?;
        let mut out = Vec::new();
        for item in table.iter()? {
            out.push(OutboxEntry::from_json(item?.1.value())?);
        }
        Ok(out)
    }

    pub fn outbox_raw(&self, id: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.write_batch()?;
        let txn = self.db.begin_read()?;
        let table = txn.open_table(OUTBOX_RAW)?;
        Ok(table.get(id)?.map(|v| v.value().to_vec()))
    }

    /// Record the result of a delivery attempt.
    pub fn outbox_update(&self, entry: &OutboxEntry) -> Result<(), StateError> {
        let txn = self.begin_write()?;
        {
            let mut table = txn.open_table(OUTBOX)?;
            table.insert(entry.id.as_str(), entry.to_json().as_str())?;
            if entry.status == OutboxStatus::Sent {
                txn.open_table(OUTBOX_RAW)?.remove(entry.id.as_str())?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

/// Write one message's effects into `txn`.
/// Write messages' effects into `txn`, in order, opening each table once. Of several
/// checkpoints of one mailbox only the last is written (each supersedes the one before).
fn write_commits(txn: &WriteTransaction, commits: &[&MessageCommit]) -> Result<(), StateError> {
    let mut kv = txn.open_table(KV)?;
    let mut outbox = txn.open_table(OUTBOX)?;
    let mut raw_table = txn.open_table(OUTBOX_RAW)?;
    let mut processed = txn.open_table(PROCESSED)?;
    let mut checkpoints = txn.open_table(CHECKPOINTS)?;
    let mut pending = txn.open_table(PENDING)?;
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
        if let Some((mailbox, validity, uid)) = &commit.checkpoint {
            let superseded = commits[i + 1..].iter().any(|later| {
                later
                    .checkpoint
                    .as_ref()
                    .is_some_and(|(m, _, _)| m == mailbox)
            });
            if !superseded {
                checkpoints.insert(mailbox.as_str(), (*validity, *uid))?;
            }
        }
        if let Some(plan) = &commit.pending {
            pending.insert(commit.message_key.as_str(), plan.as_str())?;
        }
    }
    Ok(())
}

impl Drop for Store {
    /// Commits still in the batch are written and synced on a clean exit.
    fn drop(&mut self) {
        if !self.batch().is_empty() {
            let _ = self.begin_write().and_then(|t| Ok(t.commit()?));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_expires_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.commit_message(&MessageCommit {
                message_key: "m1".into(),
                summary: "{}".into(),
                kv: vec![
                    KvWrite {
                        plugin: "p".into(),
                        key: "a".into(),
                        value: Some((b"1".to_vec(), 0)),
                    },
                    KvWrite {
                        plugin: "p".into(),
                        key: "b".into(),
                        value: Some((b"2".to_vec(), 1000)),
                    },
                ],
                outbox: vec![],
                durable: true,
                ..Default::default()
            })
            .unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert!(s.is_processed("m1").unwrap());
        assert!(!s.is_processed("m2").unwrap());
        assert_eq!(s.kv_get("p", "a", 5000).unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.kv_get("p", "b", 999).unwrap(), Some(b"2".to_vec()));
        assert_eq!(s.kv_get("p", "b", 1000).unwrap(), None);
        assert_eq!(
            s.kv_get("other", "a", 0).unwrap(),
            None,
            "keys are per plugin"
        );
        assert_eq!(s.kv_purge_expired(1000).unwrap(), 1);
    }

    #[test]
    fn an_outbox_id_is_queued_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let entry = OutboxEntry::new("id1", "m1", "vac", "", vec!["b@x.y".into()], 5);
        let commit = MessageCommit {
            message_key: "m1".into(),
            summary: "{}".into(),
            kv: vec![],
            outbox: vec![(entry.clone(), b"raw".to_vec())],
            durable: true,
            ..Default::default()
        };
        s.commit_message(&commit).unwrap();
        let mut sent = entry.clone();
        sent.status = OutboxStatus::Sent;
        s.outbox_update(&sent).unwrap();
        s.commit_message(&commit).unwrap();
        assert!(
            s.outbox_pending().unwrap().is_empty(),
            "a sent entry is never re-queued"
        );
        assert_eq!(s.outbox_all().unwrap().len(), 1);
    }
}
