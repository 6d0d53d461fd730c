//! The daemon (`mailpipe run` with accounts): one worker per account, all sharing the state
//! store, the plugin engine and a login pacer, kept in step with the config while it runs.
//! - SIGHUP reloads the whole config: a config with an error is reported and the running one
//!   kept; a good one replaces it once every account is between passes (nothing cut off).
//! - The accounts directory (`[accounts] dir`) is looked at again every `rescan_seconds` and
//!   on SIGHUP: an added file starts its account, a removed one stops it, a changed one
//!   restarts it once its old worker is between passes; the other accounts are not touched.
//! - Accounts whose files override plugin keys get a pipeline of their own, one per distinct
//!   set of overrides, built when first needed.

use std::collections::HashMap;
use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::watch;

use crate::config::{AccountConfig, Config};
use crate::pipeline::Pipeline;
use crate::plugin::Clock;
use crate::runner::{self, RunOptions};
use crate::sink::smtp::SmtpSink;
use crate::source::imap::pacer::Pacer;
use crate::source::imap::AccountWorker;
use crate::state::Store;

/// Every account of `config`: those of its file, then those of its accounts directory. A
/// directory file that cannot be used is logged (file, line, what is wrong) and left out.
pub fn all_accounts(config: &Config) -> Vec<(AccountConfig, Option<String>)> {
    let mut accounts: Vec<(AccountConfig, Option<String>)> =
        config.accounts.iter().map(|a| (a.clone(), None)).collect();
    if let Some(dir) = &config.accounts_settings.dir {
        let plugins: Vec<String> = config.plugins.iter().map(|p| p.name.clone()).collect();
        let taken: Vec<String> = config.accounts.iter().map(|a| a.name.clone()).collect();
        let (files, errors) = crate::config::load_dir(dir, &config.state_dir, &plugins, &taken);
        for e in errors {
            tracing::error!("{e}; this account is left out until the file is fixed");
        }
        accounts.extend(files.into_iter().map(|f| (f.account, Some(f.text))));
    }
    accounts
}

/// The pipelines of a config: the config's own, and one per distinct set of per-account
/// plugin overrides.
pub struct Pipelines {
    config: Config,
    store: Arc<Store>,
    base: Arc<Pipeline>,
    overridden: HashMap<String, Arc<Pipeline>>,
}

impl Pipelines {
    pub async fn new(config: &Config, store: Arc<Store>) -> anyhow::Result<Pipelines> {
        let base =
            Arc::new(runner::build_pipeline(config, Some(store.clone()), Clock::System).await?);
        Ok(Pipelines {
            config: config.clone(),
            store,
            base,
            overridden: HashMap::new(),
        })
    }

    pub fn base(&self) -> &Arc<Pipeline> {
        &self.base
    }

    /// The pipeline for `account`: the shared one, or one with its plugin keys put in (an
    /// error when a plugin rejects the result: that account cannot run).
    pub async fn for_account(&mut self, account: &AccountConfig) -> anyhow::Result<Arc<Pipeline>> {
        if account.plugin_overrides.is_empty() {
            return Ok(self.base.clone());
        }
        let key = serde_json::to_string(&account.plugin_overrides)?;
        if let Some(p) = self.overridden.get(&key) {
            return Ok(p.clone());
        }
        let mut config = self.config.clone();
        for p in &mut config.plugins {
            if let Some(over) = account.plugin_overrides.get(&p.name) {
                p.config = crate::config::merged(&p.config, over);
            }
        }
        let pipeline = runner::build_pipeline(&config, Some(self.store.clone()), Clock::System)
            .await
            .map_err(|e| anyhow::anyhow!("account {}: its plugin keys: {e:#}", account.name))?;
        let pipeline = Arc::new(pipeline);
        self.overridden.insert(key, pipeline.clone());
        Ok(pipeline)
    }
}

/// One account's worker, ready to run.
pub async fn worker(
    config: &Config,
    opts: &RunOptions,
    account: AccountConfig,
    pipeline: Arc<Pipeline>,
    store: Arc<Store>,
    reload: Option<watch::Receiver<u64>>,
    pacer: Option<Arc<Pacer>>,
) -> anyhow::Result<AccountWorker> {
    let smtp = match &account.smtp {
        Some(s) => Some(
            SmtpSink::new(s, crate::actions::domain_of(&account.address))
                .await?
                .with_timeout(account.timeout),
        ),
        None => None,
    };
    Ok(AccountWorker {
        account,
        pipeline,
        store,
        smtp,
        retry: config.retry,
        dry_run: opts.dry_run,
        json: opts.json,
        retry_failed: opts.retry_failed,
        retried: Default::default(),
        reload,
        pacer,
    })
}

/// A running account: its file's text (None for an account of the main config) and the
/// switch that ends its worker at its next wait for mail.
struct Running {
    text: Option<String>,
    stop: watch::Sender<u64>,
    /// Started again with this once the worker has ended (its file changed).
    then: Option<(AccountConfig, Option<String>)>,
}

/// Watch every account until SIGINT or SIGTERM (see the module's comment for reloads).
pub async fn watch_accounts(config: &Config, opts: &RunOptions) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut config = config.clone();
    loop {
        let accounts = all_accounts(&config);
        raise_fd_limit(accounts.len());
        let store = runner::open_store(&config)?;
        let mut pipelines = Pipelines::new(&config, store.clone()).await?;
        runner::log_plugins(pipelines.base());
        let pacer = Arc::new(Pacer::new(config.accounts_settings.connects_per_second));
        let mut running: HashMap<String, Running> = HashMap::new();
        let mut tasks = FuturesUnordered::new();
        let mut start = Vec::from_iter(accounts);
        let mut rescan = tokio::time::interval(config.accounts_settings.rescan);
        rescan.tick().await;
        let mut maintenance = tokio::time::interval_at(
            tokio::time::Instant::now() + runner::MAINTENANCE_EVERY,
            runner::MAINTENANCE_EVERY,
        );
        let mut next: Option<Config> = None;
        loop {
            // Start what is due: new accounts, and changed ones whose old worker has ended.
            for (account, text) in start.drain(..) {
                if next.is_some() {
                    break;
                }
                let name = account.name.clone();
                let pipeline = match pipelines.for_account(&account).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!("{e:#}; this account is left out until it is fixed");
                        continue;
                    }
                };
                let (stop, stopped) = watch::channel(0u64);
                let w = match worker(
                    &config,
                    opts,
                    account,
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
                        continue;
                    }
                };
                running.insert(
                    name.clone(),
                    Running {
                        text,
                        stop,
                        then: None,
                    },
                );
                tasks.push(async move {
                    w.watch().await;
                    name
                });
            }
            if tasks.is_empty() && next.is_some() {
                break;
            }
            tokio::select! {
                Some(name) = tasks.next() => {
                    if let Some(r) = running.remove(&name) {
                        if let Some(again) = r.then {
                            start.push(again);
                        } else if next.is_none() {
                            tracing::info!(account = %name, "stopped (its account file is gone)");
                        }
                    }
                }
                _ = rescan.tick(), if config.accounts_settings.dir.is_some() && next.is_none() => {
                    start.extend(changes(&config, &mut running));
                }
                _ = maintenance.tick() => {
                    if let Err(e) = runner::maintain(&store, &config) {
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
                _ = hup.recv() => match Config::load(&config.file) {
                    Ok(c) => {
                        tracing::info!(signal = "SIGHUP", file = %config.file.display(), "reloading the config once every account is waiting for mail");
                        next = Some(c);
                        start.clear();
                        for r in running.values_mut() {
                            r.then = None;
                            r.stop.send_modify(|v| *v += 1);
                        }
                    }
                    Err(e) => tracing::error!(signal = "SIGHUP", "the config has an error; the running one is kept: {e}"),
                },
            }
        }
        // The old workers, their pipelines and the state store are closed here.
        drop(pipelines);
        drop(store);
        match next {
            Some(c) => config = c,
            None => return Ok(()),
        }
    }
}

/// What changed in the accounts directory since `running` was started: stops the workers of
/// removed and changed files (a changed one is started again when its worker has ended) and
/// returns the accounts to start now.
fn changes(
    config: &Config,
    running: &mut HashMap<String, Running>,
) -> Vec<(AccountConfig, Option<String>)> {
    let now = all_accounts(config);
    let mut start = Vec::new();
    for (name, r) in running.iter_mut() {
        let from_dir = r.text.is_some();
        let still = now.iter().find(|(a, _)| a.name == *name);
        match still {
            None if from_dir => {
                tracing::info!(account = %name, "account file removed: stopping once it is waiting for mail");
                r.then = None;
                r.stop.send_modify(|v| *v += 1);
            }
            Some((a, text)) if from_dir && *text != r.text && r.then.is_none() => {
                tracing::info!(account = %name, "account file changed: restarting once it is waiting for mail");
                r.then = Some((a.clone(), text.clone()));
                r.stop.send_modify(|v| *v += 1);
            }
            _ => {}
        }
    }
    for (a, text) in now {
        if !running.contains_key(&a.name) {
            tracing::info!(account = %a.name, "account file added: starting");
            start.push((a, text));
        }
    }
    start
}

/// File descriptors an account needs at most at once: its IMAP connection, an SMTP
/// connection while sending, and a spare for a password or token command.
const FDS_PER_ACCOUNT: u64 = 3;
/// The process's own: state store, plugin cache, logs, metrics listener, ...
const FDS_BASE: u64 = 64;

/// Raise the soft limit on open files to the hard one, and say so clearly when even that is
/// too low for `accounts` (rather than failing connections one by one later).
pub fn raise_fd_limit(accounts: usize) {
    let need = FDS_BASE + FDS_PER_ACCOUNT * accounts as u64;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    if lim.rlim_cur < lim.rlim_max && lim.rlim_cur < need {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            tracing::debug!(
                from = lim.rlim_cur,
                to = lim.rlim_max,
                "raised the open-file limit"
            );
            lim.rlim_cur = lim.rlim_max;
        }
    }
    if lim.rlim_cur < need {
        tracing::warn!(
            accounts,
            limit = lim.rlim_cur,
            needed = need,
            "{accounts} accounts need up to {need} open files, but this process may open only {}: raise the limit (ulimit -n, or LimitNOFILE= in the systemd unit) or some accounts will fail to connect",
            lim.rlim_cur
        );
    }
}
