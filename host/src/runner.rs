//! Wiring for the commands: build the pipeline from a config, run the offline job (source →
//! pipeline → mail store + state + outbox, in the order that keeps every message safe across
//! a crash), and run one plugin on one message for `mailpipe test`.

use anyhow::Context;
use futures::StreamExt;
use std::path::Path;
use std::sync::Arc;

use crate::config::{Config, PluginConfig};
use crate::pipeline::{parallel, Pipeline};
use crate::plugin::{CacheUse, Clock, LoadedPlugin, PluginRuntime};
use crate::report;
use crate::sink::mailstore::{Delivered, MailStore};
use crate::sink::outbox::{self, FlushReport};
use crate::sink::outbox_dir::OutboxDir;
use crate::sink::smtp::SmtpSink;
use crate::source::maildir::MaildirSource;
use crate::state::Store;

/// Load every plugin of `plugins`; the first that fails to load stops everything (a
/// pipeline with a plugin silently missing would do the wrong thing to mail).
pub async fn load_plugins(
    runtime: &PluginRuntime,
    plugins: &[PluginConfig],
    store: Option<Arc<Store>>,
) -> anyhow::Result<Vec<LoadedPlugin>> {
    let mut loaded = Vec::new();
    for p in plugins {
        loaded.push(runtime.load(p, store.clone()).await?);
    }
    Ok(loaded)
}

/// The pipeline of `config`, refused when a plugin found problems in its configuration (so
/// no message is decided with a configuration its plugin rejects).
pub async fn build_pipeline(
    config: &Config,
    store: Option<Arc<Store>>,
    clock: Clock,
) -> anyhow::Result<Pipeline> {
    let pipeline = build_pipeline_unchecked(config, store, clock).await?;
    let problems = config_problems(config, &pipeline);
    if !problems.is_empty() {
        anyhow::bail!(
            "{}\n{}: plugins found problems in their configuration (above); `mailpipe check` lists them too",
            problems.join("\n"),
            config.file.display()
        );
    }
    Ok(pipeline)
}

/// What the plugins of `pipeline` said of their configuration, one line each, at the line
/// of the key in `config`'s file.
pub fn config_problems(config: &Config, pipeline: &Pipeline) -> Vec<String> {
    pipeline
        .plugins
        .iter()
        .flat_map(|p| {
            p.config_problems
                .iter()
                .map(|c| config.about_plugin_key(&p.name, c.key.as_deref(), &c.message))
        })
        .collect()
}

/// The pipeline of `config` with every plugin that loads, whatever it said of its
/// configuration (`mailpipe check` reports that).
pub async fn build_pipeline_unchecked(
    config: &Config,
    store: Option<Arc<Store>>,
    clock: Clock,
) -> anyhow::Result<Pipeline> {
    let max_mem = config
        .plugins
        .iter()
        .map(|p| p.limits.memory_mb)
        .max()
        .unwrap_or(64);
    let runtime = PluginRuntime::new(max_mem, Some(config.state_dir.join("compiled")))?;
    let plugins = load_plugins(&runtime, &config.plugins, store.clone()).await?;
    Ok(Pipeline {
        runtime,
        plugins,
        identity: config.identity.clone(),
        limits: config.limits,
        store,
        clock,
        enabled: Default::default(),
    })
}

pub fn describe_plugins(p: &Pipeline) -> String {
    let mut out = String::new();
    for l in &p.plugins {
        out.push_str(&format!(
            "  {:<18} {} {} needs {}, contract {}  ({} in {:.1} ms)\n",
            l.name,
            l.info.name,
            l.info.version,
            report::needs_name(l.info.needs),
            l.contract(),
            match l.cache {
                CacheUse::Cached => "loaded from cache",
                CacheUse::Compiled => "compiled",
                CacheUse::Disabled => "compiled, no cache",
            },
            l.load_time.as_secs_f64() * 1000.0
        ));
    }
    out
}

#[derive(Debug, Default)]
pub struct RunSummary {
    pub processed: usize,
    pub skipped: usize,
    pub plugin_failures: usize,
    pub unreadable: usize,
    /// Messages the mail store or server could not file as decided (kept in their own
    /// mailbox; on IMAP after `action_attempts` refusals).
    pub store_failures: usize,
    /// Messages whose refused server actions wait for another try.
    pub retrying: usize,
    pub outbox: FlushReport,
}

pub struct RunOptions {
    pub dry_run: bool,
    pub json: bool,
    /// Decide again the messages whose server actions were given up (`run --retry-failed`).
    pub retry_failed: bool,
    /// Offline: how many messages are decided at the same time (1: one after the other).
    /// The result is the same either way (see `Offline::pass`).
    pub jobs: usize,
}

/// Process every message of the offline source not processed before.
pub async fn run_offline(config: &Config, opts: &RunOptions) -> anyhow::Result<RunSummary> {
    Offline::new(config).await?.pass(opts).await
}

/// The offline source, sink and pipeline, set up once and kept for every pass of a polling
/// run (plugins are loaded and the store opened once, not at every pass).
pub struct Offline {
    config: Config,
    store: Arc<Store>,
    pipeline: Arc<Pipeline>,
    source: MaildirSource,
    mailstore: MailStore,
    transport: OutboxDir,
    maintained: std::time::Instant,
}

impl Offline {
    pub async fn new(config: &Config) -> anyhow::Result<Offline> {
        let offline = config.offline.as_ref().with_context(|| {
            format!(
                "{}: no [offline] section: nothing to read mail from",
                config.file.display()
            )
        })?;
        let store = open_store(config)?;
        let pipeline = Arc::new(build_pipeline(config, Some(store.clone()), Clock::System).await?);
        log_plugins(&pipeline);
        Ok(Offline {
            config: config.clone(),
            source: MaildirSource::new(&offline.source),
            mailstore: MailStore::new(&offline.mailstore, offline.layout),
            transport: OutboxDir::new(&offline.outbox),
            store,
            pipeline,
            maintained: std::time::Instant::now(),
        })
    }

    /// One pass over the source: every message not processed before.
    pub async fn pass(&mut self, opts: &RunOptions) -> anyhow::Result<RunSummary> {
        if self.maintained.elapsed() >= MAINTENANCE_EVERY {
            maintain(&self.store, &self.config)?;
            self.maintained = std::time::Instant::now();
        }
        let (config, store, pipeline) = (&self.config, &self.store, &self.pipeline);
        let (source, mailstore, transport) = (&self.source, &self.mailstore, &self.transport);
        let mut summary = RunSummary::default();

        // Mail queued by an earlier run that stopped before sending it goes out first.
        if !opts.dry_run {
            let flushed = outbox::flush(store, transport, now_ms(), &config.retry, "").await?;
            crate::telemetry::metrics::record_flush(store, &flushed);
            merge(&mut summary.outbox, flushed);
        }
        // The messages to decide, read as they are needed (never all at once).
        let mut unreadable = 0;
        let mut todo = Vec::new();
        for entry in source.list()? {
            if store.is_processed(&source.key(&entry))? {
                summary.skipped += 1;
            } else {
                todo.push(entry);
            }
        }
        // From now on the plugins may send mail about what arrives here; never about what
        // was there before (`actions::since`).
        if !opts.dry_run
            && pipeline.enable_for(&source.source_name())?
            && !todo.is_empty()
            && pipeline.holds_back_old_mail()
        {
            tracing::info!(
                "first run over {}: {} message(s) already there are decided and filed as the \
                 plugins say, but no reply or forward goes out about mail that arrived before \
                 now (send_about_mail_since)",
                config
                    .offline
                    .as_ref()
                    .map_or_else(String::new, |o| o.source.display().to_string()),
                todo.len()
            );
        }
        let read = todo
            .into_iter()
            .filter_map(|entry| match source.read(&entry) {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::error!("{e}; left for the next run");
                    unreadable += 1;
                    None
                }
            });
        // Up to `jobs` messages are decided at the same time, on all cores, with the result
        // of one after the other (pipeline/parallel.rs; tests/offline.rs compares both).
        let mut decided = parallel::decide_ahead(pipeline.clone(), read, opts.jobs, |m| {
            (m.email.clone(), m.key.clone())
        });
        let mut in_order = parallel::InOrder::new(opts.jobs);
        // Messages are committed without waiting for the disk and made durable together, a
        // batch at a time; their stored copies are settled and their mail sent after that.
        let mut batch = Batch::default();
        while let Some((msg, early)) = decided.next().await {
            let decision = in_order
                .settle(pipeline, &msg.email, &msg.key, early, !opts.dry_run)
                .await;
            summary.processed += 1;
            summary.plugin_failures += decision.failed_plugins().count();
            crate::telemetry::metrics::record_decision("offline", &decision);
            report::emit_logs(
                &decision,
                report::Origin {
                    account: None,
                    mailbox: &decision.email.mailbox,
                    uid: None,
                },
            );
            if opts.json {
                report::stdout(&format!(
                    "{}\n",
                    report::decision_json(&msg.label, &decision)
                ));
            } else {
                report::stdout(&report::human(&msg.label, &decision));
            }
            if opts.dry_run {
                continue;
            }
            // 1. Store the message (idempotent file names: a crash before 3. re-delivers onto
            //    the same files). 2. Commit plugin state, queued mail and the processed mark in
            //    one transaction. 3. Make the batch durable, settle its stored copies, send
            //    the queue.
            let delivered = match mailstore.deliver(&decision) {
                Ok(d) => d,
                Err(e) => {
                    // Only this message is affected: it stays in its own mailbox, the run goes on.
                    // (When even that cannot be written, the mail store itself is broken.)
                    tracing::error!(
                        "{}: {e}; kept in {} instead",
                        msg.label,
                        decision.email.mailbox
                    );
                    summary.store_failures += 1;
                    mailstore.deliver(&decision.kept_in_own_mailbox())?
                }
            };
            for d in &delivered {
                if let Some(wanted) = &d.fallback_from {
                    tracing::warn!(
                        "folder {wanted:?} does not exist (create = false); kept in {}",
                        d.folder
                    );
                }
            }
            let mut commit = commit_for(&decision, now_ms());
            commit.durable = false;
            store.commit_message(&commit)?;
            batch.add(delivered, !commit.outbox.is_empty());
            if batch.is_due() {
                self.finish(&mut batch, &mut summary).await?;
            }
        }
        self.finish(&mut batch, &mut summary).await?;
        drop(decided);
        summary.unreadable += unreadable;
        Ok(summary)
    }

    /// Make a batch durable, settle its stored copies and send what it queued.
    async fn finish(&self, batch: &mut Batch, summary: &mut RunSummary) -> anyhow::Result<()> {
        if batch.messages == 0 {
            return Ok(());
        }
        self.store.sync()?;
        self.mailstore.settle(&batch.delivered);
        if batch.queued {
            let flushed = outbox::flush(
                &self.store,
                &self.transport,
                now_ms(),
                &self.config.retry,
                "",
            )
            .await?;
            crate::telemetry::metrics::record_flush(&self.store, &flushed);
            merge(&mut summary.outbox, flushed);
        }
        *batch = Batch::default();
        Ok(())
    }
}

/// Messages stored and committed, not yet made durable (`Offline::finish`).
struct Batch {
    delivered: Vec<Delivered>,
    messages: usize,
    /// Whether one of them queued mail to send.
    queued: bool,
    started: std::time::Instant,
}

impl Default for Batch {
    fn default() -> Batch {
        Batch {
            delivered: Vec::new(),
            messages: 0,
            queued: false,
            started: std::time::Instant::now(),
        }
    }
}

impl Batch {
    /// At most this many messages, or this long, between two durable commits: what a crash
    /// makes the next run decide and store again (onto the same files, sending nothing twice).
    const MESSAGES: usize = 500;
    const TIME: std::time::Duration = std::time::Duration::from_millis(250);

    fn add(&mut self, delivered: Vec<Delivered>, queued: bool) {
        if self.messages == 0 {
            self.started = std::time::Instant::now();
        }
        self.delivered.extend(delivered);
        self.messages += 1;
        self.queued |= queued;
    }

    fn is_due(&self) -> bool {
        self.messages >= Self::MESSAGES || self.started.elapsed() >= Self::TIME
    }
}

fn merge(into: &mut FlushReport, from: FlushReport) {
    into.sent.extend(from.sent);
    into.deferred.extend(from.deferred);
    into.failed.extend(from.failed);
}

/// (Kept here for callers outside the crate; the clock lives in `clock`.)
pub use crate::clock::now_ms;
/// (Kept here for callers outside the crate; commits are built in `pipeline::commit`.)
pub use crate::pipeline::commit_for;

/// The key `mailpipe test` uses for a message file: its content hash.
pub fn test_message_key(path: &Path, raw: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!(
        "test:{}:{}",
        path.display(),
        hex::encode(&Sha256::digest(raw)[..8])
    )
}

/// One log event per loaded plugin (name, version, needs, how long loading took), whenever
/// the set of plugins differs from the one logged last: once at start and after a reload
/// that changed them, not at every pass of a polling loop (which loads them each time).
pub(crate) fn log_plugins(pipeline: &Pipeline) {
    static LOGGED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let now: Vec<String> = pipeline
        .plugins
        .iter()
        .map(|p| format!("{}:{}", p.name, p.fingerprint))
        .collect();
    let mut last = LOGGED.lock().expect("not poisoned");
    if *last == now {
        return;
    }
    *last = now;
    for p in &pipeline.plugins {
        tracing::info!(
            plugin = &*p.name,
            version = %p.info.version,
            needs = report::needs_name(p.info.needs),
            load_ms = p.load_time.as_millis() as u64,
            "plugin loaded"
        );
    }
}

/// The state store for a run, with what has expired cleared out first: plugin state past its
/// TTL (it counts against the plugins' limits until purged) and, once a day, what plugins
/// decided for messages older than `[state] explain_days`.
pub(crate) fn open_store(config: &Config) -> anyhow::Result<Arc<Store>> {
    let store = Arc::new(Store::open_config(&config.state, &config.state_dir)?);
    maintain(&store, config)?;
    Ok(store)
}

/// How often a long-running process clears out what has expired.
pub const MAINTENANCE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Clear out expired plugin state and, at most daily, decision details older than
/// `[state] explain_days`.
pub fn maintain(store: &Store, config: &Config) -> anyhow::Result<()> {
    let now = now_ms();
    store.kv_purge_expired(now)?;
    if config.explain_days > 0 {
        let keep_ms = u64::from(config.explain_days) * 24 * 3600 * 1000;
        let pruned = store.prune_explanations(now, now.saturating_sub(keep_ms))?;
        if pruned > 0 {
            tracing::info!(
                messages = pruned,
                days = config.explain_days,
                "forgot what plugins decided for messages older than explain_days"
            );
        }
    }
    Ok(())
}

/// One worker per account (of the config and of its accounts directory), sharing the state
/// store, the plugin engine and a login pacer.
pub async fn account_workers(
    config: &Config,
    opts: &RunOptions,
) -> anyhow::Result<Vec<crate::source::imap::AccountWorker>> {
    use crate::daemon;
    let store = open_store(config)?;
    let accounts = daemon::all_accounts(config, &account_rows(config, &store)?);
    daemon::raise_fd_limit(accounts.len());
    let mut pipelines = daemon::Pipelines::new(config, store.clone()).await?;
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
            daemon::worker(
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

/// `--once` over every account, concurrently. Errors are reported per account.
pub async fn run_accounts_once(config: &Config, opts: &RunOptions) -> anyhow::Result<RunSummary> {
    let workers = account_workers(config, opts).await?;
    let results = futures::future::join_all(workers.iter().map(|w| w.once())).await;
    let mut summary = RunSummary::default();
    let mut failed = Vec::new();
    for (w, r) in workers.iter().zip(results) {
        match r {
            Ok(r) => {
                summary.processed += r.processed;
                summary.skipped += r.skipped;
                summary.plugin_failures += r.plugin_failures;
                summary.store_failures += r.given_up;
                summary.retrying += r.retrying;
                merge(&mut summary.outbox, r.outbox);
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

/// The rows of the accounts table (id, text) when the config reads accounts from it.
pub fn account_rows(config: &Config, store: &Store) -> anyhow::Result<Vec<(String, String)>> {
    if !config.accounts_settings.table {
        return Ok(Vec::new());
    }
    Ok(store.account_rows()?)
}

/// Log in to every account's servers (`mailpipe check --connect`); `rows`: the accounts
/// table's.
pub async fn probe_accounts(
    config: &Config,
    rows: &[(String, String)],
) -> Vec<(String, Result<String, String>)> {
    let mut out = Vec::new();
    for a in &crate::daemon::all_accounts(config, rows) {
        let result = async {
            use crate::source::imap::connect;
            let mut session = connect::with_deadline(
                a.timeout,
                connect::connect_with(&a.imap, a.max_message_bytes),
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
                    a.imap.host,
                    a.imap.port,
                    problems.join("; ")
                ));
            }
            let pinned = a
                .imap
                .ca_file
                .as_deref()
                .filter(|f| crate::net::tls::pinned_by_ca_file(f))
                .map(|f| format!(", certificate pinned: the one in {}", f.display()))
                .unwrap_or_default();
            let mut what = format!(
                "IMAP {}:{} ok ({}, {layout}{pinned}; folders: {})",
                a.imap.host,
                a.imap.port,
                login_name(&a.imap),
                resolved.join(", ")
            );
            if let Some(smtp) = &a.smtp {
                let sink = SmtpSink::new(smtp, crate::actions::domain_of(&a.address))
                    .await
                    .map(|s| s.with_timeout(a.timeout))
                    .map_err(|e| e.to_string())?;
                sink.probe()
                    .await
                    .map_err(|e| format!("SMTP {}:{}: {e}", smtp.host, smtp.port))?;
                what += &format!(
                    ", SMTP {}:{} ok ({})",
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

impl crate::sink::mailstore::Deliverable for crate::pipeline::Decision {
    fn key(&self) -> &str {
        &self.message_key
    }
    fn email(&self) -> &crate::message::Email {
        &self.email
    }
    fn deliveries(&self) -> &[crate::model::decision::Delivery] {
        &self.deliveries
    }
    fn flags(&self) -> &[String] {
        &self.flags
    }
}
