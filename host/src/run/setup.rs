//! What every job starts from: the plugins loaded and the pipeline built from a config
//! (with the plugins' own verdicts on their configuration), the state store opened and kept
//! tidy, the options of a run and what it reports.

use std::path::Path;
use std::sync::Arc;

use crate::clock::now_ms;
use crate::config::{Config, PluginConfig};
use crate::pipeline::Pipeline;
use crate::plugin::{CacheUse, Clock, LoadedPlugin, PluginRuntime};
use crate::report;
use crate::sink::outbox::FlushReport;
use crate::state::Store;

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
        account_scripts: Default::default(),
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
            report::needs_name(l.needs()),
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
            needs = report::needs_name(p.needs()),
            load_ms = p.load_time.as_millis() as u64,
            "plugin loaded"
        );
    }
}

/// The state store for a run, with what has expired cleared out first: plugin state past its
/// TTL (it counts against the plugins' limits until purged) and, once a day, what plugins
/// decided for messages older than `[state] explain_days`.
pub fn open_store(config: &Config) -> anyhow::Result<Arc<Store>> {
    use anyhow::Context as _;
    let store = Store::open_config(&config.state, &config.state_dir).with_context(|| {
        format!(
            "cannot open the state store in {} (is another mailpipe, e.g. a daemon, using it? \
             the embedded store serves one process at a time)",
            config.state_dir.display()
        )
    })?;
    let store = Arc::new(store);
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

/// The key `mailpipe test` uses for a message file: its content hash.
pub fn test_message_key(path: &Path, raw: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!(
        "test:{}:{}",
        path.display(),
        hex::encode(&Sha256::digest(raw)[..8])
    )
}
