//! The accounts of a config as jobs: every account (of the config and of its accounts
//! directory), a worker for each with the pipeline its plugin overrides call for, one pass
//! over all of them (`run --once`), and `check --connect`'s probe of each server.

use std::sync::Arc;
use tokio::sync::watch;

pub use super::roster::{account_rows, all_accounts, Pipelines};
use super::setup::{log_plugins, open_store, RunOptions, RunSummary};
use crate::config::{AccountConfig, Config};
use crate::pipeline::Pipeline;
use crate::run::imap::AccountWorker;
use crate::sink::smtp::SmtpSink;
use crate::source::imap::pacer::Pacer;
use crate::state::Store;

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
    let imap = account.imap.clone().ok_or_else(|| {
        anyhow::anyhow!(
            "account {}: no [account.imap]: it is only delivered to",
            account.name
        )
    })?;
    Ok(AccountWorker {
        imap,
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

/// File descriptors an account holds all the time: its IMAP connection. SMTP connections
/// (while sending) and password commands are brief; a tenth more is kept for them.
const FDS_PER_ACCOUNT: u64 = 1;

/// The process's own: state store, plugin cache, logs, metrics listener, ...
const FDS_BASE: u64 = 64;

/// Raise the soft limit on open files to the hard one, and say so clearly when even that is
/// too low for `accounts` (rather than failing connections one by one later).
pub fn raise_fd_limit(accounts: usize) {
    let held = FDS_PER_ACCOUNT * accounts as u64;
    let need = FDS_BASE + held + held / 10;
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

/// An account's worker, whichever protocol its mailbox speaks.
pub enum Worker {
    Imap(Box<AccountWorker>),
    Pop3(Box<crate::run::pop3::Pop3Job>),
}

impl Worker {
    pub fn account(&self) -> &AccountConfig {
        match self {
            Worker::Imap(w) => &w.account,
            Worker::Pop3(j) => &j.account,
        }
    }

    /// Run until stopped (see `AccountWorker::watch`, `Pop3Job::watch`).
    pub async fn watch(&self) {
        match self {
            Worker::Imap(w) => w.watch().await,
            Worker::Pop3(j) => j.watch().await,
        }
    }
}

/// One worker per account (of the config and of its accounts directory), sharing the state
/// store, the plugin engine and a login pacer.
pub async fn account_workers(
    config: &Config,
    opts: &RunOptions,
) -> anyhow::Result<Vec<AccountWorker>> {
    account_workers_in(config, opts, open_store(config)?).await
}

async fn account_workers_in(
    config: &Config,
    opts: &RunOptions,
    store: Arc<Store>,
) -> anyhow::Result<Vec<AccountWorker>> {
    let mut accounts = all_accounts(config, &account_rows(config, &store)?);
    // Accounts only delivered to (`mailpipe deliver`) have no IMAP server to read.
    accounts.retain(|a| a.imap.is_some());
    raise_fd_limit(accounts.len());
    let mut pipelines = Pipelines::new(config, store.clone()).await?;
    log_plugins(pipelines.base());
    let pacer = Arc::new(crate::source::imap::pacer::Pacer::new(
        config.accounts_settings.connects_per_second,
    ));
    let mut workers = Vec::new();
    for account in accounts {
        // A shared store: only the accounts no other process is working on.
        if !store.claim_account(&account.name)? {
            tracing::info!(account = %account.name, "owned by another process sharing the state store: left to it");
            continue;
        }
        let pipeline = pipelines.for_account(&account).await?;
        workers.push(
            worker(
                config,
                opts,
                account,
                pipeline,
                store.clone(),
                None,
                Some(pacer.clone()),
            )
            .await?,
        );
    }
    Ok(workers)
}

/// The POP3 accounts of `config` this process may read (all of them, or on a shared store
/// those it claims), with the delivery steps they share.
async fn pop3_jobs(
    config: &Config,
    opts: &RunOptions,
    store: &Arc<Store>,
) -> anyhow::Result<Vec<crate::run::pop3::Pop3Job>> {
    let mut accounts = all_accounts(config, &account_rows(config, store)?);
    accounts.retain(|a| a.pop3.is_some());
    if accounts.is_empty() {
        return Ok(Vec::new());
    }
    if opts.dry_run {
        for a in &accounts {
            tracing::warn!(account = %a.name, "a dry run does not read POP3 mailboxes (fetching is not without effect on them); left out");
        }
        return Ok(Vec::new());
    }
    let deliverer = Arc::new(crate::run::deliver::Deliverer::new(config, store.clone()).await?);
    let mut jobs = Vec::new();
    for account in accounts {
        if !store.claim_account(&account.name)? {
            tracing::info!(account = %account.name, "owned by another process sharing the state store: left to it");
            continue;
        }
        jobs.push(crate::run::pop3::Pop3Job::new(
            account,
            deliverer.clone(),
            None,
        )?);
    }
    Ok(jobs)
}

/// `--once` over every account, concurrently. Errors are reported per account.
pub async fn run_accounts_once(config: &Config, opts: &RunOptions) -> anyhow::Result<RunSummary> {
    let store = open_store(config)?;
    let workers = account_workers_in(config, opts, store.clone()).await?;
    let pop3 = pop3_jobs(config, opts, &store).await?;
    let (results, pop3_results) = futures::future::join(
        futures::future::join_all(workers.iter().map(|w| w.once())),
        futures::future::join_all(pop3.iter().map(|j| j.pass())),
    )
    .await;
    let mut summary = RunSummary::default();
    let mut failed = Vec::new();
    for (j, r) in pop3.iter().zip(pop3_results) {
        match r {
            Ok(r) => {
                summary.processed += r.processed;
                summary.skipped += r.skipped;
            }
            Err(e) => failed.push(format!("account {}: {e}", j.account.name)),
        }
    }
    for (w, r) in workers.iter().zip(results) {
        match r {
            Ok(r) => {
                summary.processed += r.processed;
                summary.skipped += r.skipped;
                summary.plugin_failures += r.plugin_failures;
                summary.store_failures += r.given_up;
                summary.retrying += r.retrying;
                summary.outbox.absorb(r.outbox);
                let t = r.timings;
                tracing::debug!(
                    account = %w.account.name,
                    fetch_s = t.fetch.as_secs_f64(),
                    decide_s = t.decide.as_secs_f64(),
                    sync_s = t.sync.as_secs_f64(),
                    apply_s = t.apply.as_secs_f64(),
                    waiting_s = t.waiting_for_decisions.as_secs_f64(),
                    "time per stage (overlapping)"
                );
            }
            Err(e) => failed.push(format!("account {}: {e}", w.account.name)),
        }
    }
    if !failed.is_empty() {
        anyhow::bail!("{}", failed.join("; "));
    }
    Ok(summary)
}

/// How a server is logged in to, for `check --connect`.
fn login_name(server: &crate::config::ServerConfig) -> String {
    let user = server.username.as_deref().unwrap_or("");
    match server.auth {
        crate::model::credentials::Auth::Password if user.is_empty() => "no login".into(),
        crate::model::credentials::Auth::Password => format!("password login as {user}"),
        other => format!("{} as {user}", crate::net::auth::sasl::name(other)),
    }
}

/// Folder names of the config that this server cannot hold or does not have: the account's
/// mailboxes (which must exist) and every `folder` / `mailbox` value in the plugins' own
/// tables (which must be representable; plugins may create them).
fn folder_problems(
    config: &Config,
    account: &crate::config::AccountConfig,
    ns: &crate::source::imap::namespace::Namespace,
    folders: &std::collections::HashSet<String>,
) -> (Vec<String>, Vec<String>) {
    let mut problems = Vec::new();
    let mut resolved = Vec::new();
    let mut resolve = |name: &str, whose: &str| match ns.to_server(name) {
        Ok(server) => {
            resolved.push(format!("{name:?} -> {server:?}"));
            Ok(())
        }
        Err(e) if whose.is_empty() => Err(e),
        Err(e) => Err(format!("{whose}: {e}")),
    };
    for m in &account.mailboxes {
        if let Err(e) = resolve(m, "") {
            problems.push(e);
        } else if !m.eq_ignore_ascii_case("INBOX") && !folders.contains(&ns.canonical(m)) {
            problems.push(format!("mailbox {m:?} does not exist on the server"));
        }
    }
    for p in &config.plugins {
        let mut names = Vec::new();
        folder_values(&p.config, &mut names);
        for name in names {
            if let Err(e) = resolve(&name, &format!("plugin {}", p.name)) {
                problems.push(e);
            }
        }
    }
    (problems, resolved)
}

/// String values under keys named `folder` or `mailbox`, at any depth.
fn folder_values(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match v {
                    serde_json::Value::String(s) if k == "folder" || k == "mailbox" => {
                        out.push(s.clone())
                    }
                    other => folder_values(other, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| folder_values(i, out)),
        _ => {}
    }
}

/// Log in to every account's servers (`mailpipe check --connect`); `rows`: the accounts
/// table's.
pub async fn probe_accounts(
    config: &Config,
    rows: &[(String, String)],
) -> Vec<(String, Result<String, String>)> {
    let mut out = Vec::new();
    for a in &all_accounts(config, rows) {
        let result = async {
            use crate::source::imap::connect;
            let mut what = String::new();
            if let Some(p) = &a.pop3 {
                let mut session = crate::source::pop3::Session::connect(&p.server, a.timeout)
                    .await
                    .map_err(|e| e.to_string())?;
                let listed = session.list().await.map_err(|e| e.to_string())?;
                let _ = session.quit().await;
                let ids = listed.iter().filter(|l| l.uid.is_some()).count();
                let idents = match (listed.len(), ids) {
                    (0, _) => "no message to tell whether it gives unique ids".to_string(),
                    (n, i) if i == n => "unique ids (UIDL) for all".to_string(),
                    (_, 0) if p.keep => {
                        "NO unique ids (UIDL): keep = true cannot work, set keep = false"
                            .to_string()
                    }
                    (_, 0) => "no unique ids (UIDL): messages are known by their bytes".to_string(),
                    (n, i) => format!("unique ids for {i} of {n}"),
                };
                what = format!(
                    "POP3 {}:{} ok ({}; {} message(s), {idents}; {}, into {})",
                    p.server.host,
                    p.server.port,
                    login_name(&p.server),
                    listed.len(),
                    if p.keep {
                        "kept on the server"
                    } else {
                        "each deleted once stored"
                    },
                    a.deliver.as_ref().map_or("?".into(), |d| d.describe()),
                );
            }
            if a.imap.is_none() && a.pop3.is_none() {
                what = match &a.deliver {
                    Some(d) => format!("delivered to only, into {}", d.describe()),
                    None => "no IMAP server".to_string(),
                };
            }
            if let Some(imap) = &a.imap {
                let mut session = connect::with_deadline(
                    a.timeout,
                    connect::connect_with(imap, a.max_message_bytes),
                )
                .await
                .map_err(|e| e.to_string())?;
                let server =
                    connect::with_deadline(a.timeout, crate::source::imap::discover(&mut session))
                        .await
                        .map_err(|e| e.to_string());
                let ns = session.get_ref().state().namespace.clone();
                let _ = tokio::time::timeout(a.timeout, session.logout()).await;
                let (_, folders) = server?;
                let (problems, resolved) = folder_problems(config, a, &ns, &folders);
                let layout = format!(
                    "folders as {}{}",
                    if ns.prefix.is_empty() {
                        "top-level names".to_string()
                    } else {
                        format!("{:?}+name", ns.prefix)
                    },
                    ns.delim
                        .map(|d| format!(" with {d:?} between levels"))
                        .unwrap_or_default()
                );
                if !problems.is_empty() {
                    return Err(format!(
                        "IMAP {}:{} ({layout}): {}",
                        imap.host,
                        imap.port,
                        problems.join("; ")
                    ));
                }
                let pinned = imap
                    .ca_file
                    .as_deref()
                    .filter(|f| crate::net::tls::pinned_by_ca_file(f))
                    .map(|f| format!(", certificate pinned: the one in {}", f.display()))
                    .unwrap_or_default();
                what = format!(
                    "IMAP {}:{} ok ({}, {layout}{pinned}; folders: {})",
                    imap.host,
                    imap.port,
                    login_name(imap),
                    resolved.join(", ")
                );
            }
            // The IMAP server delivered mail is APPENDed to: its login.
            if let Some(crate::config::DeliverTarget::Imap(server)) = &a.deliver {
                let mut session = connect::with_deadline(
                    a.timeout,
                    connect::connect_with(server, a.max_message_bytes),
                )
                .await
                .map_err(|e| format!("the IMAP server delivered mail goes to: {e}"))?;
                let _ = tokio::time::timeout(a.timeout, session.logout()).await;
                what += &format!(
                    "{}IMAP target {}:{} ok ({})",
                    if what.is_empty() { "" } else { "; " },
                    server.host,
                    server.port,
                    login_name(server)
                );
            }
            if let Some(smtp) = &a.smtp {
                let sink = SmtpSink::new(smtp, crate::actions::domain_of(&a.address))
                    .await
                    .map(|s| s.with_timeout(a.timeout))
                    .map_err(|e| e.to_string())?;
                sink.probe()
                    .await
                    .map_err(|e| format!("SMTP {}:{}: {e}", smtp.host, smtp.port))?;
                what += &format!(
                    "{}SMTP {}:{} ok ({})",
                    if what.is_empty() { "" } else { ", " },
                    smtp.host,
                    smtp.port,
                    login_name(smtp)
                );
            }
            Ok(what)
        }
        .await;
        out.push((a.name.clone(), result));
    }
    out
}
