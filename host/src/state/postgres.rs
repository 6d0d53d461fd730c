//! The shared state backend: the same records as the embedded store, in a PostgreSQL schema
//! that many mailpipe processes use at once (`[state] backend = "postgres"`).
//!
//! - One transaction per message commit, as in the embedded store; a non-durable commit is
//!   `synchronous_commit = off` (made durable by the next durable one, in WAL order).
//! - Migrations are built in (`MIGRATIONS`), applied under a transaction-level advisory lock
//!   so that processes starting together do not race; a schema from a newer mailpipe is
//!   refused.
//! - Each process talks to the server through one session on a thread of its own (the
//!   synchronous client brings its own runtime, which must not run inside ours). The session
//!   holds this process's account locks (see `lease`); it is kept alive by a heartbeat, and
//!   the server ends it after `lease` of silence. When it ends, every lock went with it:
//!   `owned` is emptied and the daemon stops those accounts' workers; the next call opens a
//!   new session, which owns nothing until it claims again.

use std::collections::HashSet;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postgres::{Client, NoTls};

use super::lease::{lock_key, LockKind};
use super::scripts::{ScriptSet, ScriptStore};
use super::{
    first_seen_key, namespace_marker, pruned_summary, random_secret, KvUsage, MailboxProgress,
    MessageCommit, MessageLog, OutboxEntry, OutboxQueue, OutboxStatus, Ownership, PluginFailure,
    PluginKv, StateError, StoredPlan, UidMark, PRUNE_EVERY_MS, SCHEMA_VERSION,
};
use crate::config::PgSettings;
use crate::model::key::fenced_account_of_key;

/// The schema's layout, one statement list per version, applied in order.
const MIGRATIONS: &[&str] = &[
    // 1: every record of the embedded store's layout 2.
    "CREATE TABLE meta (key text PRIMARY KEY, value bytea NOT NULL);
     CREATE TABLE kv (plugin text NOT NULL, key text NOT NULL, value bytea NOT NULL,
                      expires_ms bigint NOT NULL, PRIMARY KEY (plugin, key));
     CREATE TABLE processed (key text PRIMARY KEY, summary text NOT NULL, message_id text);
     CREATE INDEX processed_message_id ON processed (message_id) WHERE message_id IS NOT NULL;
     CREATE TABLE outbox (id text PRIMARY KEY, entry text NOT NULL, raw bytea,
                          status text NOT NULL, held boolean NOT NULL,
                          queued_at_ms bigint NOT NULL);
     CREATE INDEX outbox_queued ON outbox (queued_at_ms) WHERE status = 'queued';
     CREATE TABLE checkpoints (mailbox text PRIMARY KEY, validity bigint NOT NULL,
                               uid bigint NOT NULL);
     CREATE TABLE pending_actions (key text PRIMARY KEY, plan text NOT NULL);
     CREATE TABLE failed_actions (key text PRIMARY KEY, plan text NOT NULL);
     CREATE TABLE plugin_failed (key text PRIMARY KEY, failed text NOT NULL);",
    // 2: accounts kept in the database (`[accounts] table = true`): the text of an account
    // file per row.
    "CREATE TABLE accounts (id text PRIMARY KEY, config text NOT NULL,
                            changed_at timestamptz NOT NULL DEFAULT now());",
    // 3: each account's Sieve scripts (`scripts::ScriptSet` as JSON), replaced whole when
    // its version is still the one read.
    "CREATE TABLE sieve_scripts (account text PRIMARY KEY, version bigint NOT NULL,
                                 scripts text NOT NULL);",
];

type Job = Box<dyn FnOnce(&mut Session) + Send>;

pub struct PgStore {
    jobs: Mutex<mpsc::Sender<Job>>,
    secret: [u8; 32],
    schema: String,
    /// Accounts whose lock this process's current session holds.
    owned: Arc<Mutex<HashSet<String>>>,
}

/// The one session of this process, on its own thread.
struct Session {
    settings: PgSettings,
    password: Option<String>,
    client: Option<Client>,
    owned: Arc<Mutex<HashSet<String>>>,
}

fn pg_err(e: postgres::Error) -> StateError {
    // The server's own message (with its detail) tells more than the client's summary.
    let text = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => {
            // The client's errors keep their cause (a refused certificate, a refused
            // connection) one level down.
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                text = format!("{text}: {c}");
                cause = c.source();
            }
            text
        }
    };
    StateError::Postgres(text)
}

impl Session {
    fn client(&mut self) -> Result<&mut Client, StateError> {
        if self.client.as_ref().is_some_and(|c| c.is_closed()) {
            self.lost("the connection closed");
        }
        if self.client.is_none() {
            self.client = Some(self.connect()?);
        }
        Ok(self.client.as_mut().expect("just connected"))
    }

    fn connect(&self) -> Result<Client, StateError> {
        let mut cfg: postgres::Config = self
            .settings
            .url
            .parse()
            .map_err(|e| StateError::Postgres(format!("url: {e}")))?;
        if let Some(p) = &self.password {
            cfg.password(p);
        }
        cfg.application_name(&application_name(&self.settings.schema))
            .connect_timeout(Duration::from_secs(10))
            .keepalives(true)
            .keepalives_idle(self.settings.lease.max(Duration::from_secs(1)));
        let mut client = if self.settings.tls {
            let tls = crate::net::tls::client(self.settings.ca_file.as_deref(), None)
                .map_err(|e| StateError::Postgres(e.to_string()))?;
            cfg.ssl_mode(postgres::config::SslMode::Require);
            let connector = tokio_postgres_rustls::MakeRustlsConnect::new((*tls.config).clone());
            cfg.connect(connector).map_err(pg_err)?
        } else {
            cfg.connect(NoTls).map_err(pg_err)?
        };
        let ms = self.settings.lease.as_millis().max(1000);
        client
            .batch_execute(&format!(
                "SET idle_session_timeout = {ms}; SET idle_in_transaction_session_timeout = {ms};
                 SET search_path TO {}",
                self.settings.schema
            ))
            .map_err(pg_err)?;
        Ok(client)
    }

    /// The session is gone, and every lock it held with it.
    fn lost(&mut self, why: &str) {
        self.client = None;
        let mut owned = self.owned.lock().unwrap_or_else(|e| e.into_inner());
        if !owned.is_empty() {
            tracing::warn!(
                accounts = owned.len(),
                "the state store's session ended ({why}): its accounts are no longer owned by this process"
            );
        }
        owned.clear();
    }

    /// Keep the session from being ended for silence.
    fn heartbeat(&mut self) {
        if let Some(c) = self.client.as_mut() {
            if let Err(e) = c.simple_query("SELECT 1") {
                self.lost(&e.to_string());
            }
        }
    }
}

/// The name each process's session carries: how processes of one installation count each
/// other (`processes`).
fn application_name(schema: &str) -> String {
    format!("mailpipe/{schema}")
}

impl PgStore {
    pub fn open(settings: &PgSettings) -> Result<PgStore, StateError> {
        let password = match &settings.password {
            Some(source) => {
                // The source may be a command (async); this runs before any session exists.
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| StateError::Postgres(e.to_string()))?;
                let source = source.clone();
                let got = std::thread::spawn(move || rt.block_on(source.resolve()))
                    .join()
                    .map_err(|_| StateError::Postgres("reading the password failed".into()))?;
                Some(
                    got.map_err(|e| StateError::Postgres(format!("password: {e}")))?
                        .expose()
                        .to_string(),
                )
            }
            None => None,
        };
        let owned = Arc::new(Mutex::new(HashSet::new()));
        let mut session = Session {
            settings: settings.clone(),
            password,
            client: None,
            owned: owned.clone(),
        };
        // The first session is opened on the thread too (by the migration below).
        let (tx, rx) = mpsc::channel::<Job>();
        let heartbeat = (settings.lease / 4).max(Duration::from_millis(250));
        std::thread::Builder::new()
            .name("mailpipe-state".into())
            .spawn(move || loop {
                match rx.recv_timeout(heartbeat) {
                    Ok(job) => job(&mut session),
                    Err(mpsc::RecvTimeoutError::Timeout) => session.heartbeat(),
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            })
            .map_err(|e| StateError::Postgres(e.to_string()))?;
        let mut store = PgStore {
            jobs: Mutex::new(tx),
            secret: [0; 32],
            schema: settings.schema.clone(),
            owned,
        };
        store.migrate(&settings.url)?;
        store.secret = store.load_secret()?;
        Ok(store)
    }

    /// Run `f` on the session's thread and wait for it. A failed statement on a closed
    /// connection ends the session (and its ownership); the next call opens a new one.
    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StateError> + Send + 'static,
    ) -> Result<T, StateError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |s: &mut Session| {
            let out = match s.client() {
                Ok(c) => f(c),
                Err(e) => Err(e),
            };
            if out.is_err() && s.client.as_ref().is_some_and(|c| c.is_closed()) {
                s.lost("the connection closed");
            }
            let _ = tx.send(out);
        });
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(job)
            .map_err(|_| StateError::Postgres("the state store's thread has ended".into()))?;
        rx.recv()
            .map_err(|_| StateError::Postgres("the state store's thread has ended".into()))?
    }

    fn migrate(&self, url: &str) -> Result<(), StateError> {
        let schema = self.schema.clone();
        let where_ = format!("{} (schema {schema})", redacted(url));
        let key = lock_key(LockKind::Migrations, &schema, "");
        self.call(move |c| {
            let mut t = c.transaction().map_err(pg_err)?;
            t.execute("SELECT pg_advisory_xact_lock($1)", &[&key])
                .map_err(pg_err)?;
            t.batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {schema};
                 CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
                     version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            ))
            .map_err(pg_err)?;
            let have: i32 = t
                .query_one(
                    "SELECT coalesce(max(version), 0) FROM schema_migrations",
                    &[],
                )
                .map_err(pg_err)?
                .get(0);
            if have as usize > MIGRATIONS.len() {
                return Err(StateError::Newer {
                    path: where_,
                    found: have as u32,
                });
            }
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(have as usize) {
                t.batch_execute(sql).map_err(pg_err)?;
                let v = i as i32 + 1;
                t.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[&v])
                    .map_err(pg_err)?;
                tracing::info!(version = v, "state store (PostgreSQL): migrated");
            }
            t.commit().map_err(pg_err)
        })
    }

    fn load_secret(&self) -> Result<[u8; 32], StateError> {
        let fresh = random_secret().map_err(|source| StateError::Io {
            path: "/dev/urandom".into(),
            source,
        })?;
        let layout = SCHEMA_VERSION.to_be_bytes().to_vec();
        let v: Vec<u8> = self.call(move |c| {
            c.execute(
                "INSERT INTO meta (key, value) VALUES ('secret', $1), ('schema', $2)
                 ON CONFLICT (key) DO NOTHING",
                &[&fresh.as_slice(), &layout],
            )
            .map_err(pg_err)?;
            Ok(
                c.query_one("SELECT value FROM meta WHERE key = 'secret'", &[])
                    .map_err(pg_err)?
                    .get(0),
            )
        })?;
        <[u8; 32]>::try_from(v).map_err(|_| StateError::Corrupt("meta secret".into()))
    }

    /// Rows of (text, text) from a query with one text parameter.
    fn pairs(&self, sql: &'static str, arg: String) -> Result<Vec<(String, String)>, StateError> {
        self.call(move |c| {
            Ok(c.query(sql, &[&arg])
                .map_err(pg_err)?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect())
        })
    }

    fn outbox_entries(&self, sql: &'static str) -> Result<Vec<OutboxEntry>, StateError> {
        let texts: Vec<String> = self.call(move |c| {
            Ok(c.query(sql, &[])
                .map_err(pg_err)?
                .iter()
                .map(|r| r.get(0))
                .collect())
        })?;
        texts.iter().map(|t| OutboxEntry::from_json(t)).collect()
    }

    fn lock(&self, key: i64) -> Result<bool, StateError> {
        self.call(move |c| {
            Ok(c.query_one("SELECT pg_try_advisory_lock($1)", &[&key])
                .map_err(pg_err)?
                .get(0))
        })
    }

    fn unlock(&self, key: i64) -> Result<(), StateError> {
        self.call(move |c| {
            c.execute("SELECT pg_advisory_unlock($1)", &[&key])
                .map_err(pg_err)?;
            Ok(())
        })
    }
}

/// Whether the session runs `t`'s statements holds the advisory lock `key` (a bigint lock
/// shows in pg_locks as classid = high half, objid = low half, objsubid = 1).
const HOLDS_LOCK: &str = "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'
     AND pid = pg_backend_pid() AND granted AND objsubid = 1
     AND classid::bigint = $1 AND objid::bigint = $2)";

fn lock_halves(key: i64) -> (i64, i64) {
    let k = key as u64;
    ((k >> 32) as i64, (k & 0xffff_ffff) as i64)
}

/// A URL without its password, for messages.
fn redacted(url: &str) -> String {
    match url.parse::<postgres::Config>() {
        Ok(c) => {
            let hosts: Vec<String> = c
                .get_hosts()
                .iter()
                .map(|h| match h {
                    postgres::config::Host::Tcp(h) => h.clone(),
                    postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .collect();
            format!(
                "postgres {} database {}",
                hosts.join(","),
                c.get_dbname().unwrap_or("(default)")
            )
        }
        Err(_) => "postgres (unparsable url)".into(),
    }
}

fn ms(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

fn status_text(s: OutboxStatus) -> &'static str {
    match s {
        OutboxStatus::Queued => "queued",
        OutboxStatus::Sent => "sent",
        OutboxStatus::Failed => "failed",
    }
}

impl PluginKv for PgStore {
    fn secret(&self) -> [u8; 32] {
        self.secret
    }

    fn kv_usage(&self, plugin: &str) -> KvUsage {
        let plugin = plugin.to_string();
        self.call(move |c| {
            let r = c
                .query_one(
                    "SELECT count(*), coalesce(sum(length(key) + length(value)), 0)::bigint
                     FROM kv WHERE plugin = $1",
                    &[&plugin],
                )
                .map_err(pg_err)?;
            Ok(KvUsage {
                keys: r.get::<_, i64>(0) as u64,
                bytes: r.get::<_, i64>(1) as u64,
            })
        })
        .unwrap_or_else(|e| {
            tracing::warn!("{e}");
            KvUsage::default()
        })
    }

    fn kv_entry_size(&self, plugin: &str, key: &str) -> Result<Option<u64>, StateError> {
        let (plugin, key) = (plugin.to_string(), key.to_string());
        self.call(move |c| {
            Ok(c.query_opt(
                "SELECT (length(key) + length(value))::bigint FROM kv WHERE plugin = $1 AND key = $2",
                &[&plugin, &key],
            )
            .map_err(pg_err)?
            .map(|r| r.get::<_, i64>(0) as u64))
        })
    }

    fn kv_get(&self, plugin: &str, key: &str, now_ms: u64) -> Result<Option<Vec<u8>>, StateError> {
        let (plugin, key, now) = (plugin.to_string(), key.to_string(), ms(now_ms));
        self.call(move |c| {
            Ok(c.query_opt(
                "SELECT value FROM kv WHERE plugin = $1 AND key = $2
                 AND (expires_ms = 0 OR expires_ms > $3)",
                &[&plugin, &key, &now],
            )
            .map_err(pg_err)?
            .map(|r| r.get(0)))
        })
    }

    fn kv_purge_expired(&self, now_ms: u64) -> Result<usize, StateError> {
        let now = ms(now_ms);
        self.call(move |c| {
            Ok(c.execute(
                "DELETE FROM kv WHERE expires_ms <> 0 AND expires_ms <= $1",
                &[&now],
            )
            .map_err(pg_err)? as usize)
        })
    }

    fn kv_copy_into_namespace(&self, plugin: &str, namespace: &str) -> Result<usize, StateError> {
        let (plugin, namespace) = (plugin.to_string(), namespace.to_string());
        let marker = namespace_marker(&namespace);
        self.call(move |c| {
            let mut t = c.transaction().map_err(pg_err)?;
            let first = t
                .execute(
                    "INSERT INTO meta (key, value) VALUES ($1, '\\x01') ON CONFLICT (key) DO NOTHING",
                    &[&marker],
                )
                .map_err(pg_err)?;
            if first == 0 {
                return Ok(0);
            }
            let n = t
                .execute(
                    "INSERT INTO kv (plugin, key, value, expires_ms)
                     SELECT $2, key, value, expires_ms FROM kv WHERE plugin = $1
                     ON CONFLICT (plugin, key) DO NOTHING",
                    &[&plugin, &namespace],
                )
                .map_err(pg_err)?;
            t.commit().map_err(pg_err)?;
            Ok(n as usize)
        })
    }
}

impl MessageLog for PgStore {
    fn seen_at(&self, what: &str) -> Result<Option<u64>, StateError> {
        let key = first_seen_key(what);
        self.call(move |c| {
            let row = c
                .query_opt("SELECT value FROM meta WHERE key = $1", &[&key])
                .map_err(pg_err)?;
            row.map(|r| {
                let v: Vec<u8> = r.get(0);
                <[u8; 8]>::try_from(v.as_slice())
                    .map(u64::from_be_bytes)
                    .map_err(|_| StateError::Corrupt(format!("meta {key}")))
            })
            .transpose()
        })
    }

    fn first_seen(&self, what: &str, now_ms: u64) -> Result<u64, StateError> {
        let key = first_seen_key(what);
        self.call(move |c| {
            // The first writer wins; everyone reads what it wrote.
            c.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, &now_ms.to_be_bytes().as_slice()],
            )
            .map_err(pg_err)?;
            let v: Vec<u8> = c
                .query_one("SELECT value FROM meta WHERE key = $1", &[&key])
                .map_err(pg_err)?
                .get(0);
            <[u8; 8]>::try_from(v.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| StateError::Corrupt(format!("meta {key}")))
        })
    }

    fn is_processed(&self, message_key: &str) -> Result<bool, StateError> {
        let key = message_key.to_string();
        self.call(move |c| {
            Ok(
                c.query_opt("SELECT 1 FROM processed WHERE key = $1", &[&key])
                    .map_err(pg_err)?
                    .is_some(),
            )
        })
    }

    fn processed_summary(&self, message_key: &str) -> Result<Option<String>, StateError> {
        let key = message_key.to_string();
        self.call(move |c| {
            Ok(
                c.query_opt("SELECT summary FROM processed WHERE key = $1", &[&key])
                    .map_err(pg_err)?
                    .map(|r| r.get(0)),
            )
        })
    }

    fn commit_message(&self, commit: &MessageCommit) -> Result<(), StateError> {
        let commit = commit.clone();
        let fence = fenced_account_of_key(&commit.message_key)
            .map(|a| (a.to_string(), lock_key(LockKind::Account, &self.schema, a)));
        self.call(move |c| {
            let mut t = c.transaction().map_err(pg_err)?;
            if let Some((account, key)) = fence {
                let (hi, lo) = lock_halves(key);
                let holds: bool = t.query_one(HOLDS_LOCK, &[&hi, &lo]).map_err(pg_err)?.get(0);
                if !holds {
                    return Err(StateError::NotOwner { account });
                }
            }
            if !commit.durable {
                t.batch_execute("SET LOCAL synchronous_commit = off")
                    .map_err(pg_err)?;
            }
            for w in &commit.kv {
                match &w.value {
                    Some((value, expires)) => t.execute(
                        "INSERT INTO kv (plugin, key, value, expires_ms) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (plugin, key)
                         DO UPDATE SET value = excluded.value, expires_ms = excluded.expires_ms",
                        &[&w.plugin, &w.key, value, &ms(*expires)],
                    ),
                    None => t.execute(
                        "DELETE FROM kv WHERE plugin = $1 AND key = $2",
                        &[&w.plugin, &w.key],
                    ),
                }
                .map_err(pg_err)?;
            }
            for (entry, raw) in &commit.outbox {
                t.execute(
                    "INSERT INTO outbox (id, entry, raw, status, held, queued_at_ms)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                    &[
                        &entry.id,
                        &entry.to_json(),
                        raw,
                        &status_text(entry.status),
                        &entry.held,
                        &ms(entry.queued_at_ms),
                    ],
                )
                .map_err(pg_err)?;
            }
            for k in std::iter::once(&commit.message_key).chain(&commit.also_processed) {
                t.execute(
                    "INSERT INTO processed (key, summary, message_id) VALUES ($1, $2, $3)
                     ON CONFLICT (key)
                     DO UPDATE SET summary = excluded.summary, message_id = excluded.message_id",
                    &[k, &commit.summary, &commit.message_id],
                )
                .map_err(pg_err)?;
            }
            if let Some((mailbox, at)) = &commit.checkpoint {
                upsert_checkpoint(&mut t, mailbox, *at)?;
            }
            if let Some(plan) = &commit.pending {
                t.execute(
                    "INSERT INTO pending_actions (key, plan) VALUES ($1, $2)
                     ON CONFLICT (key) DO UPDATE SET plan = excluded.plan",
                    &[&commit.message_key, plan],
                )
                .map_err(pg_err)?;
            }
            if let Some(failed) = &commit.plugin_failed {
                t.execute(
                    "INSERT INTO plugin_failed (key, failed) VALUES ($1, $2)
                     ON CONFLICT (key) DO UPDATE SET failed = excluded.failed",
                    &[&commit.message_key, failed],
                )
                .map_err(pg_err)?;
            }
            t.commit().map_err(pg_err)
        })
    }

    fn sync(&self) -> Result<(), StateError> {
        // A durable commit flushes the WAL up to it, earlier asynchronous commits included.
        self.call(|c| {
            let mut t = c.transaction().map_err(pg_err)?;
            t.execute("SELECT txid_current()", &[]).map_err(pg_err)?;
            t.commit().map_err(pg_err)
        })
    }

    fn processed_with_message_id(
        &self,
        message_id: &str,
    ) -> Result<Vec<(String, String)>, StateError> {
        self.pairs(
            "SELECT key, summary FROM processed WHERE message_id = $1 ORDER BY key",
            message_id.to_string(),
        )
    }

    fn prune_explanations(&self, now_ms: u64, before_ms: u64) -> Result<usize, StateError> {
        self.call(move |c| {
            let mut t = c.transaction().map_err(pg_err)?;
            // One process prunes at a time; the others find it done.
            let last = t
                .query_opt(
                    "SELECT value FROM meta WHERE key = 'pruned_at' FOR UPDATE",
                    &[],
                )
                .map_err(pg_err)?
                .and_then(|r| <[u8; 8]>::try_from(r.get::<_, Vec<u8>>(0)).ok())
                .map_or(0, u64::from_be_bytes);
            if now_ms.saturating_sub(last) < PRUNE_EVERY_MS {
                return Ok(0);
            }
            let rows = t
                .query(
                    "SELECT key, summary FROM processed WHERE message_id IS NOT NULL",
                    &[],
                )
                .map_err(pg_err)?;
            let mut pruned = 0;
            for r in rows {
                let (key, summary): (String, String) = (r.get(0), r.get(1));
                if let Some((new, _)) = pruned_summary(&summary, before_ms) {
                    t.execute(
                        "UPDATE processed SET summary = $2, message_id = NULL WHERE key = $1",
                        &[&key, &new],
                    )
                    .map_err(pg_err)?;
                    pruned += 1;
                }
            }
            t.execute(
                "INSERT INTO meta (key, value) VALUES ('pruned_at', $1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&now_ms.to_be_bytes().as_slice()],
            )
            .map_err(pg_err)?;
            t.commit().map_err(pg_err)?;
            Ok(pruned)
        })
    }

    fn processed_count(&self) -> Result<u64, StateError> {
        self.call(|c| {
            Ok(c.query_one("SELECT count(*) FROM processed", &[])
                .map_err(pg_err)?
                .get::<_, i64>(0) as u64)
        })
    }
}

impl MailboxProgress for PgStore {
    fn checkpoint(&self, mailbox: &str) -> Result<Option<UidMark>, StateError> {
        let mailbox = mailbox.to_string();
        self.call(move |c| {
            Ok(c.query_opt(
                "SELECT validity, uid FROM checkpoints WHERE mailbox = $1",
                &[&mailbox],
            )
            .map_err(pg_err)?
            .map(|r| UidMark {
                validity: r.get::<_, i64>(0) as u32,
                uid: r.get::<_, i64>(1) as u32,
            }))
        })
    }

    fn checkpoints(&self) -> Result<Vec<(String, UidMark)>, StateError> {
        self.call(|c| {
            Ok(c.query(
                "SELECT mailbox, validity, uid FROM checkpoints ORDER BY mailbox",
                &[],
            )
            .map_err(pg_err)?
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    UidMark {
                        validity: r.get::<_, i64>(1) as u32,
                        uid: r.get::<_, i64>(2) as u32,
                    },
                )
            })
            .collect())
        })
    }

    fn set_checkpoint(&self, mailbox: &str, at: UidMark) -> Result<(), StateError> {
        let mailbox = mailbox.to_string();
        self.call(move |c| {
            let mut t = c.transaction().map_err(pg_err)?;
            upsert_checkpoint(&mut t, &mailbox, at)?;
            t.commit().map_err(pg_err)
        })
    }

    fn pending(&self, prefix: &str) -> Result<Vec<StoredPlan>, StateError> {
        Ok(StoredPlan::all(self.pairs(
            "SELECT key, plan FROM pending_actions WHERE starts_with(key, $1) ORDER BY key",
            prefix.to_string(),
        )?))
    }

    fn update_pending(&self, key: &str, plan: &str) -> Result<(), StateError> {
        let (key, plan) = (key.to_string(), plan.to_string());
        self.call(move |c| {
            c.execute(
                "INSERT INTO pending_actions (key, plan) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET plan = excluded.plan",
                &[&key, &plan],
            )
            .map_err(pg_err)?;
            Ok(())
        })
    }

    fn give_up_pending(&self, key: &str, plan: &str) -> Result<(), StateError> {
        let (key, plan) = (key.to_string(), plan.to_string());
        self.call(move |c| {
            let mut t = c.transaction().map_err(pg_err)?;
            t.execute("DELETE FROM pending_actions WHERE key = $1", &[&key])
                .map_err(pg_err)?;
            t.execute(
                "INSERT INTO failed_actions (key, plan) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET plan = excluded.plan",
                &[&key, &plan],
            )
            .map_err(pg_err)?;
            t.commit().map_err(pg_err)
        })
    }

    fn failed_under(&self, prefix: &str) -> Result<Vec<StoredPlan>, StateError> {
        Ok(StoredPlan::all(self.pairs(
            "SELECT key, plan FROM failed_actions WHERE starts_with(key, $1) ORDER BY key",
            prefix.to_string(),
        )?))
    }

    fn plugin_failed_under(&self, prefix: &str) -> Result<Vec<PluginFailure>, StateError> {
        Ok(PluginFailure::all(self.pairs(
            "SELECT key, failed FROM plugin_failed WHERE starts_with(key, $1) ORDER BY key",
            prefix.to_string(),
        )?))
    }

    fn forget_failed(&self, keys: &[String]) -> Result<(), StateError> {
        let keys = keys.to_vec();
        self.call(move |c| {
            let mut t = c.transaction().map_err(pg_err)?;
            for table in ["failed_actions", "plugin_failed", "processed"] {
                t.execute(
                    &format!("DELETE FROM {table} WHERE key = ANY($1)"),
                    &[&keys],
                )
                .map_err(pg_err)?;
            }
            t.commit().map_err(pg_err)
        })
    }

    fn finish_pending(&self, keys: &[String]) -> Result<(), StateError> {
        let keys = keys.to_vec();
        self.call(move |c| {
            c.execute("DELETE FROM pending_actions WHERE key = ANY($1)", &[&keys])
                .map_err(pg_err)?;
            Ok(())
        })
    }
}

impl OutboxQueue for PgStore {
    fn outbox_pending(&self) -> Result<Vec<OutboxEntry>, StateError> {
        self.outbox_entries(
            "SELECT entry FROM outbox WHERE status = 'queued' AND NOT held
             ORDER BY queued_at_ms, id",
        )
    }

    fn outbox_all(&self) -> Result<Vec<OutboxEntry>, StateError> {
        self.outbox_entries("SELECT entry FROM outbox ORDER BY id")
    }

    fn outbox_raw(&self, id: &str) -> Result<Option<Vec<u8>>, StateError> {
        let id = id.to_string();
        self.call(move |c| {
            Ok(c.query_opt("SELECT raw FROM outbox WHERE id = $1", &[&id])
                .map_err(pg_err)?
                .and_then(|r| r.get::<_, Option<Vec<u8>>>(0)))
        })
    }

    fn outbox_entry(&self, id: &str) -> Result<Option<OutboxEntry>, StateError> {
        let id = id.to_string();
        let text: Option<String> = self.call(move |c| {
            Ok(
                c.query_opt("SELECT entry FROM outbox WHERE id = $1", &[&id])
                    .map_err(pg_err)?
                    .map(|r| r.get(0)),
            )
        })?;
        text.map(|t| OutboxEntry::from_json(&t)).transpose()
    }

    fn outbox_complete(&self, entry: &OutboxEntry, raw: &[u8]) -> Result<(), StateError> {
        let mut entry = entry.clone();
        entry.held = false;
        let raw = raw.to_vec();
        self.call(move |c| {
            c.execute(
                "UPDATE outbox SET entry = $2, raw = $3, held = false WHERE id = $1",
                &[&entry.id, &entry.to_json(), &raw],
            )
            .map_err(pg_err)?;
            Ok(())
        })
    }

    fn outbox_update(&self, entry: &OutboxEntry) -> Result<(), StateError> {
        // Not fenced: what a delivery attempt did is true whoever records it, and recording
        // a send is what keeps the other processes from sending it again.
        let entry = entry.clone();
        self.call(move |c| {
            c.execute(
                "UPDATE outbox SET entry = $2, status = $3, held = $4,
                        raw = CASE WHEN $3 = 'sent' THEN NULL ELSE raw END
                 WHERE id = $1",
                &[
                    &entry.id,
                    &entry.to_json(),
                    &status_text(entry.status),
                    &entry.held,
                ],
            )
            .map_err(pg_err)?;
            Ok(())
        })
    }

    fn outbox_claim(&self, id: &str) -> Result<Option<OutboxEntry>, StateError> {
        let key = lock_key(LockKind::OutboxEntry, &self.schema, id);
        if !self.lock(key)? {
            return Ok(None); // another process is sending it
        }
        // Read after locking: another process may have sent it since it was listed.
        let entry = self
            .outbox_entry(id)?
            .filter(|e| e.status == OutboxStatus::Queued && !e.held);
        if entry.is_none() {
            self.unlock(key)?;
        }
        Ok(entry)
    }

    fn outbox_release(&self, id: &str) -> Result<(), StateError> {
        self.unlock(lock_key(LockKind::OutboxEntry, &self.schema, id))
    }
}

impl ScriptStore for PgStore {
    fn scripts_load(&self, account: &str) -> Result<ScriptSet, StateError> {
        let account = account.to_string();
        self.call(move |c| {
            let row = c
                .query_opt(
                    "SELECT scripts FROM sieve_scripts WHERE account = $1",
                    &[&account],
                )
                .map_err(pg_err)?;
            match row {
                None => Ok(ScriptSet::default()),
                Some(r) => serde_json::from_str(r.get::<_, &str>(0))
                    .map_err(|_| StateError::Corrupt(format!("sieve_scripts {account}"))),
            }
        })
    }

    fn scripts_version(&self, account: &str) -> Result<u64, StateError> {
        let account = account.to_string();
        self.call(move |c| {
            let row = c
                .query_opt(
                    "SELECT version FROM sieve_scripts WHERE account = $1",
                    &[&account],
                )
                .map_err(pg_err)?;
            Ok(row.map_or(0, |r| r.get::<_, i64>(0) as u64))
        })
    }

    fn scripts_replace(
        &self,
        account: &str,
        expected: u64,
        set: &ScriptSet,
    ) -> Result<bool, StateError> {
        let account = account.to_string();
        let json = serde_json::to_string(set).map_err(|e| StateError::Corrupt(e.to_string()))?;
        let (expected, version) = (expected as i64, set.version as i64);
        self.call(move |c| {
            let n = if expected == 0 {
                c.execute(
                    "INSERT INTO sieve_scripts (account, version, scripts) VALUES ($1, $2, $3)
                     ON CONFLICT (account) DO NOTHING",
                    &[&account, &version, &json],
                )
            } else {
                c.execute(
                    "UPDATE sieve_scripts SET version = $2, scripts = $3
                     WHERE account = $1 AND version = $4",
                    &[&account, &version, &json, &expected],
                )
            }
            .map_err(pg_err)?;
            Ok(n == 1)
        })
    }
}

impl Ownership for PgStore {
    fn claim_account(&self, account: &str) -> Result<bool, StateError> {
        if self.owned().contains(account) {
            return Ok(true);
        }
        let key = lock_key(LockKind::Account, &self.schema, account);
        let got = self.lock(key)?;
        if got {
            self.owned().insert(account.to_string());
        }
        Ok(got)
    }

    fn release_account(&self, account: &str) -> Result<(), StateError> {
        if self.owned().remove(account) {
            self.unlock(lock_key(LockKind::Account, &self.schema, account))?;
        }
        Ok(())
    }

    fn try_delivery_turn(&self, account: &str) -> Result<bool, StateError> {
        self.lock(lock_key(LockKind::Delivery, &self.schema, account))
    }

    fn end_delivery_turn(&self, account: &str) -> Result<(), StateError> {
        self.unlock(lock_key(LockKind::Delivery, &self.schema, account))
    }

    fn owns_account(&self, account: &str) -> Result<bool, StateError> {
        if !self.owned().contains(account) {
            return Ok(false);
        }
        let (hi, lo) = lock_halves(lock_key(LockKind::Account, &self.schema, account));
        self.call(move |c| Ok(c.query_one(HOLDS_LOCK, &[&hi, &lo]).map_err(pg_err)?.get(0)))
    }

    fn owned_accounts(&self) -> Vec<String> {
        self.owned().iter().cloned().collect()
    }

    fn account_rows(&self) -> Result<Vec<(String, String)>, StateError> {
        self.call(|c| {
            Ok(c.query("SELECT id, config FROM accounts ORDER BY id", &[])
                .map_err(pg_err)?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect())
        })
    }

    fn accounts_owned(&self) -> Result<usize, StateError> {
        let name = application_name(&self.schema);
        let kind = LockKind::Account as i64;
        self.call(move |c| {
            Ok(c.query_one(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                   AND a.application_name = $1 AND (l.classid::bigint >> 24) = $2",
                &[&name, &kind],
            )
            .map_err(pg_err)?
            .get::<_, i64>(0) as usize)
        })
    }

    fn processes(&self) -> Result<usize, StateError> {
        let name = application_name(&self.schema);
        self.call(move |c| {
            Ok(c.query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&name],
            )
            .map_err(pg_err)?
            .get::<_, i64>(0) as usize)
        })
    }

    fn is_shared(&self) -> bool {
        true
    }
}

impl PgStore {
    fn owned(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.owned.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn upsert_checkpoint(
    t: &mut postgres::Transaction<'_>,
    mailbox: &str,
    at: UidMark,
) -> Result<(), StateError> {
    t.execute(
        "INSERT INTO checkpoints (mailbox, validity, uid) VALUES ($1, $2, $3)
         ON CONFLICT (mailbox) DO UPDATE SET validity = excluded.validity, uid = excluded.uid",
        &[&mailbox, &(at.validity as i64), &(at.uid as i64)],
    )
    .map_err(pg_err)?;
    Ok(())
}
