//! The daemon (`mailpipe run` with accounts): one worker per account, all sharing the state
//! store, the plugin engine and a login pacer, kept in step with the config while it runs.
//! - SIGHUP reloads the whole config: a config with an error is reported and the running one
//!   kept; a good one replaces it once every account is between passes (nothing cut off).
//! - The accounts directory (`[accounts] dir`) is looked at again every `rescan_seconds` and
//!   on SIGHUP: an added file starts its account, a removed one stops it, a changed one
//!   restarts it once its old worker is between passes; the other accounts are not touched.
//! - Accounts whose files override plugin keys get a pipeline of their own, one per distinct
//!   set of overrides, built when first needed.
//! - With a shared state store (PostgreSQL), several daemons serve the same accounts: each
//!   runs only the accounts it owns (`state::lease`), claims waiting ones up to its fair share
//!   every few seconds (so a dead process's accounts are taken over and a new process gets
//!   its part), and hands back what is above its share. An account is released only after
//!   its worker has ended, so two processes never work on one account at once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::watch;

use super::accounts::{raise_fd_limit, worker, Pipelines};
use super::setup::{self, RunOptions};
use crate::config::{AccountConfig, Config};
use crate::run::accounts::Worker;
use crate::run::deliver::Deliverer;
use crate::run::pop3::Pop3Job;
use crate::source::imap::pacer::Pacer;
use crate::state::Store;

/// A running account: its file and the file's text (None for an account of the main config)
/// and the switch that ends its worker at its next wait for mail.
struct Running {
    account: AccountConfig,
    file: Option<PathBuf>,
    text: Option<String>,
    stop: watch::Sender<u64>,
    /// Started again with this once the worker has ended (its file changed).
    then: Option<Start>,
    /// Shared store: stopping to give the account back (ownership lost, or above this
    /// process's share); it waits for an owner again once the worker has ended.
    handing_back: bool,
    /// Its file was removed: it ends for good.
    removed: bool,
}

/// The accounts of one config's run: those running, those due to start, those waiting for
/// an owner (shared store), and what was read of the accounts directory.
#[derive(Default)]
struct Accounts {
    dir: DirState,
    running: HashMap<String, Running>,
    start: Vec<Start>,
    /// Shared store: accounts configured here that another process owns (or none yet).
    waiting: BTreeMap<String, Start>,
    waited: HashSet<String>,
    /// The delivery steps LMTP and the POP3 accounts share (each account's turn among them).
    deliverer: Option<Arc<Deliverer>>,
}

/// Watch every account until SIGINT or SIGTERM (see the module's comment for reloads).
pub async fn watch_accounts(config: &Config, opts: &RunOptions) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut config = config.clone();
    loop {
        let store = setup::open_store(&config)?;
        // The ManageSieve server edits the scripts in this store; a reload starts it anew.
        let on_login: crate::serve::managesieve::LoginHook = Arc::new(|ok| {
            crate::telemetry::metrics::inc(
                "mailpipe_managesieve_logins_total",
                "ManageSieve login attempts, by result (ok, failed)",
                &[("result", if ok { "ok" } else { "failed" })],
                1.0,
            )
        });
        let managesieve = crate::serve::managesieve::listen::start(
            &config,
            store.clone(),
            login_accounts(&config, &store),
            Some(on_login),
        )
        .await?;
        let mut accounts = Accounts::new(&config, &store);
        // Mail at delivery time and from POP3 mailboxes share the delivery steps (and each
        // account's turn); a reload starts them anew too.
        if config.lmtp.is_some() || accounts.start.iter().any(|s| s.account.pop3.is_some()) {
            accounts.deliverer = Some(Arc::new(Deliverer::new(&config, store.clone()).await?));
        }
        let lmtp = match &accounts.deliverer {
            Some(d) => super::lmtp::start(&config, d.clone()).await?,
            None => None,
        };
        raise_fd_limit(accounts.start.len());
        // The first claim waits one round, so that processes started together see each
        // other before they take their shares.
        let every = ownership_every(&config);
        let mut ownership = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let mut pipelines = Pipelines::new(&config, store.clone()).await?;
        setup::log_plugins(pipelines.base());
        let pacer = Arc::new(Pacer::new(config.accounts_settings.connects_per_second));
        let mut tasks = FuturesUnordered::new();
        let mut rescan = tokio::time::interval(config.accounts_settings.rescan);
        rescan.tick().await;
        let mut maintenance = tokio::time::interval_at(
            tokio::time::Instant::now() + setup::MAINTENANCE_EVERY,
            setup::MAINTENANCE_EVERY,
        );
        let mut next: Option<Config> = None;
        loop {
            // Start what is due: new accounts, and changed ones whose old worker has ended.
            for due in std::mem::take(&mut accounts.start) {
                if next.is_some() {
                    break;
                }
                let started = accounts
                    .start_one(due, &config, opts, &store, &mut pipelines, &pacer)
                    .await;
                let Some((name, w)) = started else {
                    continue;
                };
                let fut = async move {
                    w.watch().await;
                    name
                };
                tasks.push(fut);
            }
            if tasks.is_empty() && next.is_some() {
                break;
            }
            tokio::select! {
                Some(name) = tasks.next() => accounts.ended(name, &store, next.is_some()),
                _ = rescan.tick(), if (config.accounts_settings.dir.is_some() || config.accounts_settings.table) && next.is_none() => {
                    let rows = table_rows(&config, &store);
                    accounts.start.extend(changes(&config, &mut accounts.dir, &mut accounts.running, rows));
                    // A waiting account whose file (or row) is gone waits no more.
                    accounts.waiting.retain(|_, s| s.file.as_ref().is_none_or(|f| accounts.dir.seen.contains_key(f)));
                }
                _ = ownership.tick(), if store.is_shared() && next.is_none() => {
                    accounts.start.extend(rebalance(&store, &mut accounts.running, &mut accounts.waiting, &mut accounts.waited));
                }
                _ = maintenance.tick() => {
                    if let Err(e) = setup::maintain(&store, &config) {
                        tracing::warn!("clearing out expired state failed: {e:#}");
                    }
                }
                _ = tokio::signal::ctrl_c() => {
                    tracing::info!(signal = "SIGINT", "interrupted; stopping");
                    return Ok(());
                }
                _ = term.recv() => {
                    tracing::info!(signal = "SIGTERM", "terminated; stopping");
                    return Ok(());
                }
                _ = hup.recv() => reload(&config, &mut next, &mut accounts),
            }
        }
        // The old workers, their pipelines and the state store are closed here.
        // A shared store: give every account back before the store closes, so that none
        // stays locked by a session something still holds.
        for name in store.owned_accounts() {
            if let Err(e) = store.release_account(&name) {
                tracing::warn!(account = %name, "{e}");
            }
        }
        drop(pipelines);
        // Its sessions hold the store too: ended before the store closes.
        if let Some(m) = managesieve {
            m.stop().await;
        }
        if let Some(l) = lmtp {
            l.stop().await;
        }
        drop(store);
        match next {
            Some(c) => config = c,
            None => return Ok(()),
        }
    }
}

impl Accounts {
    /// The accounts of `config` to start: the main file's, then the directory's (and the
    /// accounts table's).
    fn new(config: &Config, store: &Store) -> Accounts {
        // The main file's accounts, then the directory's (read through `changes`, which
        // remembers each file's stamp so that later looks read only what changed).
        let mut accounts = Accounts {
            start: config
                .accounts
                .iter()
                .map(|a| Start {
                    account: a.clone(),
                    file: None,
                    text: None,
                })
                .collect(),
            ..Accounts::default()
        };
        accounts.start.extend(changes(
            config,
            &mut accounts.dir,
            &mut accounts.running,
            table_rows(config, store),
        ));
        accounts
    }

    /// Start an account's worker: the worker to watch, with the account's name. None when
    /// the account waits for an owner (shared store), or cannot start (logged).
    async fn start_one(
        &mut self,
        due: Start,
        config: &Config,
        opts: &RunOptions,
        store: &Arc<Store>,
        pipelines: &mut Pipelines,
        pacer: &Arc<Pacer>,
    ) -> Option<(String, Worker)> {
        let Start {
            account,
            file,
            text,
        } = due;
        let name = account.name.clone();
        if account.imap.is_none() && account.pop3.is_none() {
            tracing::info!(account = %name, "no [account.imap]: only delivered to (mailpipe deliver), no IMAP worker");
            return None;
        }
        if store.is_shared() && !store.owned_accounts().contains(&name) {
            // Claimed (or not) by `rebalance`, with the others.
            self.waiting.insert(
                name,
                Start {
                    account,
                    file,
                    text,
                },
            );
            return None;
        }
        let pipeline = match pipelines.for_account(&account).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("{e:#}; this account is left out until it is fixed");
                let _ = store.release_account(&name);
                return None;
            }
        };
        let (stop, stopped) = watch::channel(0u64);
        if account.pop3.is_some() {
            let job = async {
                let d = match &self.deliverer {
                    Some(d) => d.clone(),
                    None => self
                        .deliverer
                        .insert(Arc::new(Deliverer::new(config, store.clone()).await?))
                        .clone(),
                };
                Pop3Job::new(account.clone(), d, Some(stopped))
            };
            return match job.await {
                Ok(job) => {
                    self.started(&name, account, file, text, stop);
                    Some((name, Worker::Pop3(Box::new(job))))
                }
                Err(e) => {
                    tracing::error!(account = %name, "cannot start: {e:#}");
                    let _ = store.release_account(&name);
                    None
                }
            };
        }
        let w = match worker(
            config,
            opts,
            account.clone(),
            pipeline,
            store.clone(),
            Some(stopped),
            Some(pacer.clone()),
        )
        .await
        {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(account = %name, "cannot start: {e:#}");
                let _ = store.release_account(&name);
                return None;
            }
        };
        self.started(&name, account, file, text, stop);
        Some((name, Worker::Imap(Box::new(w))))
    }

    /// A worker was started for `name`: it runs until `stop` is signalled.
    fn started(
        &mut self,
        name: &str,
        account: AccountConfig,
        file: Option<std::path::PathBuf>,
        text: Option<String>,
        stop: watch::Sender<u64>,
    ) {
        self.running.insert(
            name.to_string(),
            Running {
                account,
                file,
                text,
                stop,
                then: None,
                handing_back: false,
                removed: false,
            },
        );
    }

    /// An account's worker has ended: start it again with its changed file, or release it
    /// (to wait for an owner again on a shared store, or for good).
    fn ended(&mut self, name: String, store: &Store, reloading: bool) {
        if let Some(r) = self.running.remove(&name) {
            if let Some(again) = r.then {
                self.start.push(again);
            } else {
                if let Err(e) = store.release_account(&name) {
                    tracing::warn!(account = %name, "{e}");
                }
                // Handed back, or ended by itself (a fenced commit): it waits
                // for an owner again, maybe this process.
                if store.is_shared() && !r.removed && !reloading {
                    tracing::info!(account = %name, "handed back: another process may own it now");
                    self.waiting.insert(
                        name,
                        Start {
                            account: r.account,
                            file: r.file,
                            text: r.text,
                        },
                    );
                } else if !reloading {
                    tracing::info!(account = %name, "stopped (its account file is gone)");
                    // A file that wanted this name may have it now.
                    self.dir.retry_clashes();
                }
            }
        }
    }
}

/// SIGHUP: read the config again. A good one is kept in `next` and every worker is asked to
/// stop at its next wait for mail; one with an error is reported, the running one kept.
fn reload(config: &Config, next: &mut Option<Config>, accounts: &mut Accounts) {
    match Config::load(&config.file) {
        Ok(c) => {
            tracing::info!(signal = "SIGHUP", file = %config.file.display(), "reloading the config once every account is waiting for mail");
            *next = Some(c);
            accounts.start.clear();
            for r in accounts.running.values_mut() {
                r.then = None;
                r.stop.send_modify(|v| *v += 1);
            }
        }
        Err(e) => tracing::error!(
            signal = "SIGHUP",
            "the config has an error; the running one is kept: {e}"
        ),
    }
}

/// How often a daemon on a shared store looks at its accounts' ownership: a quarter of the
/// lease (a dead process's accounts are taken over within about a lease and a quarter).
fn ownership_every(config: &Config) -> std::time::Duration {
    match &config.state {
        crate::config::StateSettings::Postgres(pg) => (pg.lease / 4).clamp(
            std::time::Duration::from_millis(500),
            std::time::Duration::from_secs(5),
        ),
        crate::config::StateSettings::Embedded => std::time::Duration::from_secs(3600),
    }
}

/// Shared store: stop the accounts whose lock went with an ended session, hand back those
/// above this process's fair share (they are released when their workers have ended), and
/// claim waiting accounts up to it. An account that nobody claimed for a whole round (its
/// share belongs to a process that is paused, or still starting) is claimed above the share,
/// so no account waits for long; the excess is handed back once every account has an owner.
/// `waited` carries the accounts left waiting from one round to the next. Returns the
/// accounts claimed, to start.
fn rebalance(
    store: &Store,
    running: &mut HashMap<String, Running>,
    waiting: &mut BTreeMap<String, Start>,
    waited: &mut HashSet<String>,
) -> Vec<Start> {
    let owned: HashSet<String> = store.owned_accounts().into_iter().collect();
    for (name, r) in running.iter_mut() {
        if !owned.contains(name) && !r.handing_back && r.then.is_none() {
            tracing::warn!(account = %name, "no longer owned by this process (its session with the state store ended): stopping it");
            r.handing_back = true;
            r.stop.send_modify(|v| *v += 1);
        }
    }
    let counts = store
        .processes()
        .and_then(|p| Ok((p, store.accounts_owned()?)));
    let (processes, owned_by_all) = match counts {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("cannot count the processes sharing the state store: {e}");
            return Vec::new();
        }
    };
    let total = running.len() + waiting.len();
    let share = crate::state::lease::fair_share(total, processes);
    let mut keeping: Vec<String> = running
        .iter()
        .filter(|(_, r)| !r.handing_back)
        .map(|(n, _)| n.clone())
        .collect();
    if keeping.len() > share {
        if owned_by_all < total {
            // Some accounts have no owner: keep what this process has.
            return Vec::new();
        }
        keeping.sort_by_key(|n| order_key(n));
        for name in keeping.drain(share..) {
            if let Some(r) = running.get_mut(&name) {
                tracing::info!(account = %name, processes, share, "above this process's share: handing it back once it is waiting for mail");
                r.handing_back = true;
                r.stop.send_modify(|v| *v += 1);
            }
        }
        return Vec::new();
    }
    let mut room = share - keeping.len();
    let mut candidates: Vec<String> = waiting.keys().cloned().collect();
    candidates.sort_by_key(|n| order_key(n));
    let mut claimed = Vec::new();
    for name in candidates {
        let orphan = waited.contains(&name);
        if room == 0 && !orphan {
            continue;
        }
        match store.claim_account(&name) {
            Ok(true) => {
                if room == 0 {
                    tracing::info!(account = %name, processes, share, "owned by nobody for a round: owned by this process now, above its share");
                } else {
                    tracing::info!(account = %name, processes, share, "owned by this process now: starting");
                    room -= 1;
                }
                claimed.extend(waiting.remove(&name));
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(account = %name, "cannot claim: {e}");
                break;
            }
        }
    }
    // Accounts still waiting and owned by nobody now are orphans next round; one that
    // another process owns is not.
    *waited = if owned_by_all + claimed.len() < total {
        waiting.keys().cloned().collect()
    } else {
        HashSet::new()
    };
    claimed
}

/// This process's order of account names: each process tries the waiting accounts in an
/// order of its own (and hands back in it), so processes claiming at once rarely collide.
fn order_key(name: &str) -> u64 {
    use std::hash::BuildHasher;
    static SEED: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    SEED.get_or_init(Default::default).hash_one(name)
}

/// An account to start: from the main file (no `file`) or from its file in the directory.
struct Start {
    account: AccountConfig,
    file: Option<PathBuf>,
    text: Option<String>,
}

/// A file's modified time and size: what tells a rescan that it must be read again.
type Stamp = (SystemTime, u64);

/// What the daemon last read of the accounts directory: each file's stamp, good or broken,
/// so a look every few seconds at thousands of files reads none that did not change.
#[derive(Default)]
struct DirState {
    seen: HashMap<PathBuf, Stamp>,
    /// Files left out because their account name was taken: read again once an account
    /// stops (logged again only if still refused).
    clashes: HashSet<PathBuf>,
    /// Whether the directory was looked at before (the first look starts everything quietly).
    looked: bool,
}

impl DirState {
    fn retry_clashes(&mut self) {
        for f in self.clashes.drain() {
            self.seen.remove(&f);
        }
    }
}

/// The rows of the accounts table as files: path (`table_row_path`) -> (id, text); None when
/// there is no table or it cannot be read now (its accounts then stay as they are).
fn table_rows(config: &Config, store: &Store) -> Option<BTreeMap<PathBuf, (String, String)>> {
    if !config.accounts_settings.table {
        return None;
    }
    let dir = config.file.parent().unwrap_or(Path::new("."));
    match store.account_rows() {
        Ok(rows) => Some(
            rows.into_iter()
                .map(|(id, text)| (crate::config::table_row_path(dir, &id), (id, text)))
                .collect(),
        ),
        Err(e) => {
            tracing::warn!(
                "cannot read the accounts table now; its accounts stay as they are: {e}"
            );
            None
        }
    }
}

/// The accounts whose users may log in to the ManageSieve server: the main file's, the
/// accounts directory's and the accounts table's, read when asked (not only those this
/// process runs: with a shared store, another process may run the account).
fn login_accounts(
    config: &Config,
    store: &Arc<Store>,
) -> crate::serve::managesieve::imap_login::AccountLookup {
    let (config, store) = (config.clone(), store.clone());
    Arc::new(move || {
        let rows: Vec<(String, String)> = table_rows(&config, &store)
            .map(|r| r.into_values().collect())
            .unwrap_or_default();
        let (files, _) = config.account_files_and_rows(&rows);
        config
            .accounts
            .iter()
            .cloned()
            .chain(files.into_iter().map(|f| f.account))
            .collect()
    })
}

/// Whether `path` names a row of the accounts table (`config::table_row_path`).
fn is_table_row(config: &Config, path: &Path) -> bool {
    config.accounts_settings.table
        && path.parent() == Some(config.file.parent().unwrap_or(Path::new(".")))
        && path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("accounts-table:"))
}

/// A row's stamp: its text's hash (a row has no modified time of its own).
fn row_stamp(text: &str) -> Stamp {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    let h = BuildHasherDefault::<DefaultHasher>::default().hash_one(text);
    (
        SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(h >> 8),
        text.len() as u64,
    )
}

/// The account files of `dir` (`*.toml`, not hidden) with their stamps, in name order.
fn listing(dir: &Path) -> BTreeMap<PathBuf, Stamp> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .filter(|e| crate::config::is_account_file(&e.path()))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((e.path(), (m.modified().ok()?, m.len())))
        })
        .collect()
}

/// What changed in the accounts directory since the last look: stops the workers of removed
/// files, marks those of changed files to start again (with the new file) once they have
/// ended, and returns the accounts of new files to start now. A file that cannot be used is
/// logged once per change; an account whose file turned bad keeps running as it was.
fn changes(
    config: &Config,
    dir: &mut DirState,
    running: &mut HashMap<String, Running>,
    rows: Option<BTreeMap<PathBuf, (String, String)>>,
) -> Vec<Start> {
    let mut now = match &config.accounts_settings.dir {
        Some(path) => listing(path),
        None => BTreeMap::new(),
    };
    match &rows {
        Some(rows) => now.extend(
            rows.iter()
                .map(|(p, (_, text))| (p.clone(), row_stamp(text))),
        ),
        // The table could not be read: its rows count as unchanged.
        None => now.extend(
            dir.seen
                .iter()
                .filter(|(p, _)| is_table_row(config, p))
                .map(|(p, s)| (p.clone(), *s)),
        ),
    }
    let first = !std::mem::replace(&mut dir.looked, true);
    for (name, r) in running.iter_mut() {
        if r.file.as_ref().is_some_and(|f| !now.contains_key(f)) {
            tracing::info!(account = %name, "account file removed: stopping once it is waiting for mail");
            // Stopping for good (also when a change was waiting to be started); no longer
            // tied to a file, so a file that comes back with this name waits for the end.
            r.file = None;
            r.text = None;
            r.then = None;
            r.removed = true;
            r.stop.send_modify(|v| *v += 1);
        }
    }
    dir.seen.retain(|p, _| now.contains_key(p));
    dir.clashes.retain(|p| now.contains_key(p));
    let main: Vec<&str> = config.accounts.iter().map(|a| a.name.as_str()).collect();
    let mut claimed: HashSet<String> = HashSet::new();
    let mut start = Vec::new();
    for (file, stamp) in now {
        if dir.seen.get(&file) == Some(&stamp) {
            continue;
        }
        dir.seen.insert(file.clone(), stamp);
        let of_file = running
            .iter()
            .find(|(_, r)| r.file.as_ref() == Some(&file))
            .map(|(n, _)| n.clone());
        let read = match rows.as_ref().and_then(|r| r.get(&file)) {
            Some((id, text)) => config.account_row(id, text),
            None => config.account_file(&file),
        };
        let f = match read {
            Ok(f) => f,
            Err(e) if of_file.is_some() => {
                tracing::error!("{e}; the account keeps running as it was until the file is fixed");
                continue;
            }
            Err(e) => {
                tracing::error!("{e}; this account is left out until the file is fixed");
                continue;
            }
        };
        let name = f.account.name.clone();
        let next = Start {
            account: f.account,
            file: Some(file.clone()),
            text: Some(f.text),
        };
        // The account of a removed file that is still stopping: this one follows it (unless
        // another file already does).
        let main_file = main.contains(&name.as_str());
        let follows = |r: &&mut Running| {
            r.file.is_none()
                && !main_file
                && r.then
                    .as_ref()
                    .is_none_or(|t| t.file.as_ref() == Some(&file))
        };
        if let Some(r) = running.get_mut(&name).filter(follows) {
            if claimed.insert(name.clone()) {
                r.then = Some(next);
                continue;
            }
        }
        let elsewhere = running
            .get(&name)
            .is_some_and(|r| r.file.as_ref() != Some(&file));
        if main_file || elsewhere || !claimed.insert(name.clone()) {
            tracing::error!(
                "{}:1: `account.name`: account name {name:?} is already used by another account; this file is left out",
                file.display()
            );
            dir.clashes.insert(file);
            continue;
        }
        match of_file.and_then(|n| running.get_mut(&n).map(|r| (n, r))) {
            Some((_, r)) if r.text == next.text => {} // touched, not changed
            Some((old, r)) => {
                tracing::info!(account = %old, "account file changed: restarting once it is waiting for mail");
                r.then = Some(next);
                r.stop.send_modify(|v| *v += 1);
            }
            None => {
                if !first {
                    tracing::info!(account = %name, "account file added: starting");
                }
                start.push(next);
            }
        }
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(name: &str, address: &str) -> String {
        format!(
            "[account]\nname = \"{name}\"\naddress = \"{address}\"\n[account.imap]\nhost = \"127.0.0.1\"\ntls = \"none\"\nusername = \"{name}\"\npassword_env = \"PW\"\n"
        )
    }

    fn running(s: &Start) -> (Running, watch::Receiver<u64>) {
        let (stop, stopped) = watch::channel(0);
        let r = Running {
            account: s.account.clone(),
            file: s.file.clone(),
            text: s.text.clone(),
            stop,
            then: None,
            handing_back: false,
            removed: false,
        };
        (r, stopped)
    }

    /// The directory's life while accounts run: a change waits for the old worker, a removal
    /// cancels a waiting change, a file that comes back under a stopping account's name
    /// follows it, and a file refused for its name is read again once an account stopped.
    #[test]
    fn directory_changes_start_restart_and_stop_accounts() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("accounts.d");
        std::fs::create_dir(&dir).unwrap();
        let file = tmp.path().join("mailpipe.toml");
        let text = format!(
            "[state]\ndir = {:?}\n[accounts]\ndir = \"accounts.d\"\n",
            tmp.path().join("state")
        );
        let config = Config::parse(&file, &text).unwrap();
        let (mut state, mut live) = (DirState::default(), HashMap::new());
        std::fs::write(dir.join("a.toml"), account("a", "a@example.com")).unwrap();
        let started = changes(&config, &mut state, &mut live, None);
        assert_eq!(started.len(), 1);
        let (r, mut stopped) = running(&started[0]);
        live.insert("a".to_string(), r);
        assert!(
            changes(&config, &mut state, &mut live, None).is_empty(),
            "nothing changed"
        );

        // Changed: restarted with the new file once the old worker ends.
        std::fs::write(dir.join("a.toml"), account("a", "a2@example.com")).unwrap();
        assert!(changes(&config, &mut state, &mut live, None).is_empty());
        assert!(stopped.has_changed().unwrap());
        stopped.mark_unchanged();
        let then = live["a"].then.as_ref().expect("waits for the old worker");
        assert_eq!(then.account.address, "a2@example.com");

        // Removed before that: the waiting change is dropped, the account stops.
        std::fs::remove_file(dir.join("a.toml")).unwrap();
        assert!(changes(&config, &mut state, &mut live, None).is_empty());
        assert!(live["a"].then.is_none() && live["a"].file.is_none());
        assert!(stopped.has_changed().unwrap());

        // Back under another file name while still stopping: it follows the old worker.
        std::fs::write(dir.join("b.toml"), account("a", "a3@example.com")).unwrap();
        assert!(changes(&config, &mut state, &mut live, None).is_empty());
        let then = live["a"]
            .then
            .as_ref()
            .expect("follows the stopping account");
        assert_eq!(then.file.as_deref(), Some(dir.join("b.toml").as_path()));

        // A second file with the same name is refused, and read again after a stop.
        std::fs::write(dir.join("c.toml"), account("a", "a4@example.com")).unwrap();
        assert!(changes(&config, &mut state, &mut live, None).is_empty());
        assert!(state.clashes.contains(&dir.join("c.toml")));
        live.remove("a");
        state.retry_clashes();
        std::fs::remove_file(dir.join("b.toml")).unwrap();
        let started = changes(&config, &mut state, &mut live, None);
        assert_eq!(started.len(), 1, "c.toml is read again and starts");
        assert_eq!(started[0].account.address, "a4@example.com");
    }
}
