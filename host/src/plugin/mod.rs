//! The plugin runtime: loads components (through the compiled-code cache), links the host
//! interface and a capability-less WASI, and runs `on-message` calls in limited stores.
//! Design (docs/PIPELINE.md): a plugin's instance is kept warm and serves message after
//! message (instantiation costs 40–4,000 µs, depending on the guest language, a call on a
//! warm instance a few µs); it is thrown away after any trap, timeout or memory overrun, and
//! replaced after `MAX_CALLS_PER_INSTANCE` calls. `fresh_instance = true` gives a plugin a
//! new instance from its `InstancePre` for every message instead.
//! Each supported contract version has its bindings (`bindings` for the newest, `v0_3`,
//! `v0_2`, `v0_1`);
//! `Linked` below is the one place that tells them apart.

pub mod bindings;
pub mod cache;
pub mod embedded;
pub mod engine;
pub mod guest_error;
pub mod host_api;
pub mod limits;
mod message_api;
pub mod readable;
pub mod v0_1;
pub mod v0_2;
pub mod v0_3;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::Store as WasmStore;

use crate::model::decision::Action;
use crate::model::message::Needs;
use bindings::{ConfigProblem, Plugin, PluginPre};
pub use cache::CacheUse;
use engine::PluginEngine;
pub use host_api::{CallInputs, Clock, KvReads, LogLine, PluginState};

use crate::config::{PluginConfig, PluginLimits};
use crate::plugin::readable::Readable;
use crate::state::{KvWrite, Store};

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin {plugin}: cannot read {path}: {source}")]
    Read {
        plugin: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("plugin {plugin}: cannot load {path}: {message}")]
    Load {
        plugin: String,
        path: PathBuf,
        message: String,
    },
    #[error("plugin {plugin}: info() failed: {failure}")]
    Info {
        plugin: String,
        failure: CallFailure,
    },
    #[error("plugin {plugin}: check-config() failed: {failure}")]
    CheckConfig {
        plugin: String,
        failure: CallFailure,
    },
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
}

/// Why a call produced no usable result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallFailure {
    #[error("timed out after {0} ms")]
    Timeout(u64),
    #[error("exceeded its memory limit of {0} MiB")]
    OutOfMemory(u64),
    #[error("trapped: {0}")]
    Trap(String),
    #[error("returned an error: {0}")]
    Returned(String),
    #[error("returned {count} actions, more than its limit of {limit}")]
    TooManyActions { count: usize, limit: usize },
    #[error("returned an invalid action #{index}: {reason}")]
    InvalidAction { index: usize, reason: String },
    #[error("was stopped by the host: {0}")]
    Refused(String),
    #[error(
        "could not be handled: internal error in mailpipe ({0}); the message was kept unchanged"
    )]
    Host(String),
}

/// Longest error text kept from a plugin (its returned error, a trap, its stderr tail).
pub const MAX_ERROR_TEXT: usize = 2048;

/// `text` cut to `MAX_ERROR_TEXT` bytes on a character boundary, with a note of the cut.
pub fn bounded_text(text: &str) -> String {
    if text.len() <= MAX_ERROR_TEXT {
        return text.to_string();
    }
    let mut cut = MAX_ERROR_TEXT;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… ({} more bytes)", &text[..cut], text.len() - cut)
}

/// The contract versions this host loads, oldest first.
pub const SUPPORTED_CONTRACTS: &[&str] = &["0.1.0", "0.2.0", "0.3.0", "0.4.0"];

/// A plugin's component, linked for the contract version it was built for.
enum Linked {
    V0_1(v0_1::PluginPre<PluginState>),
    V0_2(v0_2::PluginPre<PluginState>),
    V0_3(v0_3::PluginPre<PluginState>),
    V0_4(PluginPre<PluginState>),
}

/// An instance of a plugin, of the contract version it was built for.
enum Instance {
    V0_1(v0_1::Plugin),
    V0_2(v0_2::Plugin),
    V0_3(v0_3::Plugin),
    V0_4(Plugin),
}

impl Linked {
    fn version(&self) -> &'static str {
        match self {
            Linked::V0_1(_) => "0.1.0",
            Linked::V0_2(_) => "0.2.0",
            Linked::V0_3(_) => "0.3.0",
            Linked::V0_4(_) => "0.4.0",
        }
    }

    async fn instantiate(&self, store: &mut WasmStore<PluginState>) -> wasmtime::Result<Instance> {
        Ok(match self {
            Linked::V0_1(pre) => Instance::V0_1(pre.instantiate_async(store).await?),
            Linked::V0_2(pre) => Instance::V0_2(pre.instantiate_async(store).await?),
            Linked::V0_3(pre) => Instance::V0_3(pre.instantiate_async(store).await?),
            Linked::V0_4(pre) => Instance::V0_4(pre.instantiate_async(store).await?),
        })
    }
}

/// What a plugin says of itself (`info` of the contract), in the host's types.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub needs: Needs,
}

impl From<bindings::PluginInfo> for PluginInfo {
    fn from(i: bindings::PluginInfo) -> PluginInfo {
        PluginInfo {
            name: i.name,
            version: i.version,
            needs: i.needs.into(),
        }
    }
}

impl Instance {
    async fn info(&self, store: &mut WasmStore<PluginState>) -> wasmtime::Result<PluginInfo> {
        Ok(match self {
            Instance::V0_1(p) => v0_1::info(p.call_info(store).await?),
            Instance::V0_2(p) => v0_2::info(p.call_info(store).await?),
            Instance::V0_3(p) => v0_3::info(p.call_info(store).await?),
            Instance::V0_4(p) => p.call_info(store).await?,
        }
        .into())
    }

    /// The plugin's verdict on its configuration (0.1 has no way to give one).
    async fn check_config(
        &self,
        store: &mut WasmStore<PluginState>,
    ) -> wasmtime::Result<Vec<ConfigProblem>> {
        match self {
            Instance::V0_1(_) => Ok(Vec::new()),
            Instance::V0_2(p) => Ok(p
                .call_check_config(store)
                .await?
                .into_iter()
                .map(v0_2::problem)
                .collect()),
            Instance::V0_3(p) => Ok(p
                .call_check_config(store)
                .await?
                .into_iter()
                .map(v0_3::problem)
                .collect()),
            Instance::V0_4(p) => p.call_check_config(store).await,
        }
    }

    async fn on_message(
        &self,
        store: &mut WasmStore<PluginState>,
        msg: &Readable,
        needs: Needs,
    ) -> wasmtime::Result<Result<Vec<Action>, String>> {
        match self {
            Instance::V0_1(p) => Ok(p
                .call_on_message(store, msg.record_0_1(needs))
                .await?
                .map(|actions| actions.into_iter().map(v0_1::action).collect())),
            // The one message of this call, lent for its duration (`message_api`).
            Instance::V0_2(p) => {
                let handle = wasmtime::component::Resource::new_borrow(0);
                Ok(p.call_on_message(store, handle)
                    .await?
                    .map(|actions| actions.into_iter().map(v0_2::action).collect()))
            }
            Instance::V0_3(p) => {
                let handle = wasmtime::component::Resource::new_borrow(0);
                Ok(p.call_on_message(store, handle)
                    .await?
                    .map(|actions| actions.into_iter().map(v0_3::action).collect()))
            }
            Instance::V0_4(p) => {
                let handle = wasmtime::component::Resource::new_borrow(0);
                Ok(p.call_on_message(store, handle)
                    .await?
                    .map(|actions| actions.into_iter().map(Into::into).collect()))
            }
        }
    }
}

/// The outcome of one `on-message` call with its buffered effects.
pub struct CallResult {
    pub outcome: Result<Vec<Action>, CallFailure>,
    pub logs: Vec<LogLine>,
    pub kv: Vec<KvWrite>,
    /// What the call read of the plugin's stored state (also when it failed: a quota
    /// refusal depends on what was stored).
    pub reads: KvReads,
    pub elapsed: Duration,
}

/// Calls one warm instance serves before it is replaced: bounds whatever a guest piles up
/// over time (heap fragmentation, leaked WASI handles, captured output).
const MAX_CALLS_PER_INSTANCE: u32 = 1000;
/// Warm instances kept per plugin: one per message processed at the same time.
const MAX_WARM_INSTANCES: usize = 4;

/// An instantiated plugin waiting for its next message.
struct Warm {
    store: WasmStore<PluginState>,
    plugin: Instance,
    calls: u32,
}

pub struct PluginRuntime {
    engine: PluginEngine,
    linker: Linker<PluginState>,
    cache_dir: Option<PathBuf>,
}

pub struct LoadedPlugin {
    pub name: Arc<str>,
    pub info: PluginInfo,
    pub settings: PluginConfig,
    pub cache: CacheUse,
    pub load_time: Duration,
    /// What identifies this plugin's behaviour: a hash of its component and its config. A
    /// message it failed on is decided again when this changes.
    pub fingerprint: String,
    /// What the plugin found wrong with its configuration at load (`check-config`, contract
    /// 0.2 and later). `run::setup::load_plugins` refuses to run a plugin with problems.
    pub config_problems: Vec<ConfigProblem>,
    config_json: Arc<str>,
    config: Arc<serde_json::Value>,
    pre: Linked,
    warm: Mutex<Vec<Warm>>,
}

/// What identifies a plugin's behaviour: its component and its config (as JSON).
pub fn fingerprint(wasm: &[u8], config_json: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(wasm);
    h.update(config_json.as_bytes());
    hex::encode(&h.finalize()[..12])
}

impl PluginRuntime {
    /// `max_memory_mb`: the largest memory limit of the plugins that will be loaded.
    /// `cache_dir`: where compiled artifacts are kept (None: always compile).
    pub fn new(
        max_memory_mb: u64,
        cache_dir: Option<PathBuf>,
    ) -> Result<PluginRuntime, PluginError> {
        let engine = PluginEngine::new(max_memory_mb << 20)
            .map_err(|e| PluginError::Engine(e.to_string()))?;
        let mut linker = Linker::new(&engine.engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .and_then(|_| Plugin::add_to_linker::<_, HasSelf<PluginState>>(&mut linker, |s| s))
            .and_then(|_| {
                v0_3::Plugin::add_to_linker::<_, HasSelf<PluginState>>(&mut linker, |s| s)
            })
            .and_then(|_| {
                v0_2::Plugin::add_to_linker::<_, HasSelf<PluginState>>(&mut linker, |s| s)
            })
            .and_then(|_| {
                v0_1::Plugin::add_to_linker::<_, HasSelf<PluginState>>(&mut linker, |s| s)
            })
            .map_err(|e| PluginError::Engine(e.to_string()))?;
        Ok(PluginRuntime {
            engine,
            linker,
            cache_dir,
        })
    }

    pub fn pooling(&self) -> bool {
        self.engine.pooling
    }

    /// The engine and linker, for benchmarks that drive wasmtime directly.
    pub fn engine(&self) -> &wasmtime::Engine {
        &self.engine.engine
    }

    pub fn linker(&self) -> &Linker<PluginState> {
        &self.linker
    }

    /// Compile (or load from cache), link, and ask the plugin for its `info`.
    pub async fn load(
        &self,
        settings: &PluginConfig,
        store: Option<Arc<Store>>,
    ) -> Result<LoadedPlugin, PluginError> {
        let started = Instant::now();
        let plugin = settings.name.clone();
        let load_err = |message: String| PluginError::Load {
            plugin: plugin.clone(),
            path: settings.path.clone(),
            message,
        };
        let wasm = embedded::component_of(settings).map_err(|source| PluginError::Read {
            plugin: plugin.clone(),
            path: settings.path.clone(),
            source,
        })?;
        if let Some(problem) = not_a_component(&wasm) {
            return Err(load_err(problem));
        }
        let (component, cache) = {
            let _plugin = tracing::info_span!("load", plugin = %plugin).entered();
            cache::load_component(&self.engine.engine, &wasm, self.cache_dir.as_deref())
                .map_err(|e| load_err(in_plain_words(&e, &settings.limits)))?
        };
        let versions = contract_versions(&self.engine.engine, &component);
        let instance_pre = self.linker.instantiate_pre(&component).map_err(|e| {
            load_err(match &versions {
                v if !v.is_empty() && !v.iter().any(|v| SUPPORTED_CONTRACTS.contains(&v.as_str())) => format!(
                    "it is built for contract mailpipe:plugin@{}; this mailpipe supports mailpipe:plugin@{}",
                    v.join(", @"),
                    SUPPORTED_CONTRACTS.join(", @")
                ),
                _ => in_plain_words(&e, &settings.limits),
            })
        })?;
        // A component that imports nothing of the contract is taken for the oldest version.
        let pre = if versions.iter().any(|v| v == "0.4.0") {
            PluginPre::new(instance_pre).map(Linked::V0_4)
        } else if versions.iter().any(|v| v == "0.3.0") {
            v0_3::PluginPre::new(instance_pre).map(Linked::V0_3)
        } else if versions.iter().any(|v| v == "0.2.0") {
            v0_2::PluginPre::new(instance_pre).map(Linked::V0_2)
        } else {
            v0_1::PluginPre::new(instance_pre).map(Linked::V0_1)
        }
        .map_err(|e| load_err(in_plain_words(&e, &settings.limits)))?;
        let config_json: Arc<str> = settings.config.to_string().into();
        let fingerprint = fingerprint(&wasm, &config_json);
        let name: Arc<str> = plugin.clone().into();
        let mut loaded = LoadedPlugin {
            name: name.clone(),
            info: PluginInfo {
                name: String::new(),
                version: String::new(),
                needs: Needs::Headers,
            },
            settings: settings.clone(),
            cache,
            load_time: Duration::ZERO,
            fingerprint,
            config_problems: Vec::new(),
            config_json,
            config: Arc::new(settings.config.clone()),
            pre,
            warm: Mutex::new(Vec::new()),
        };
        let inputs = loaded.inputs(store.clone(), None, Clock::System, None);
        let (mut wstore, instance) = self.instantiate(&loaded, inputs).await;
        let (result, instance) = match instance {
            Ok(p) => {
                let r = with_deadline(&settings.limits, p.info(&mut wstore)).await;
                let reusable = r.is_ok().then_some(p);
                (r, reusable)
            }
            Err(e) => (Err(e), None),
        };
        let (info, _) = finish(&mut wstore, result, &settings.limits);
        loaded.info = info.map_err(|failure| PluginError::Info {
            plugin: plugin.clone(),
            failure,
        })?;
        let Some(p) = instance else {
            unreachable!("info() returned, so its instance is kept")
        };
        // Its own call with a fresh budget; what it writes to the store is dropped.
        wstore
            .data_mut()
            .begin_call(loaded.inputs(store, None, Clock::System, None));
        set_deadline(&mut wstore, &settings.limits);
        let r = with_deadline(&settings.limits, p.check_config(&mut wstore)).await;
        let reusable = r.is_ok();
        let (problems, _) = finish(&mut wstore, r, &settings.limits);
        loaded.config_problems =
            problems.map_err(|failure| PluginError::CheckConfig { plugin, failure })?;
        if reusable {
            loaded.keep_warm(wstore, p, 0);
        }
        loaded.load_time = started.elapsed();
        Ok(loaded)
    }

    /// Run `on-message` for one message, in a warm instance if the plugin has one.
    pub async fn call(
        &self,
        plugin: &LoadedPlugin,
        msg: &Arc<Readable>,
        store: Option<Arc<Store>>,
        clock: Clock,
    ) -> CallResult {
        self.call_for(plugin, msg, store, clock, None).await
    }

    /// `call` for the mail of `account`: the plugin's key-value state is that account's.
    pub async fn call_for(
        &self,
        plugin: &LoadedPlugin,
        msg: &Arc<Readable>,
        store: Option<Arc<Store>>,
        clock: Clock,
        account: Option<&str>,
    ) -> CallResult {
        let started = Instant::now();
        let inputs = plugin.inputs(store, Some(msg.clone()), clock, account);
        let (mut wstore, instance, calls) = match plugin.take_warm() {
            Some(mut w) => {
                w.store.data_mut().begin_call(inputs);
                set_deadline(&mut w.store, &plugin.settings.limits);
                (w.store, Ok(w.plugin), w.calls)
            }
            None => {
                let (s, i) = self.instantiate(plugin, inputs).await;
                (s, i, 0)
            }
        };
        // A trapped, timed-out or failed instance is never entered again.
        let (result, instance) = match instance {
            Ok(p) => {
                let r = with_deadline(
                    &plugin.settings.limits,
                    p.on_message(&mut wstore, msg, plugin.info.needs),
                )
                .await;
                let reusable = r.is_ok().then_some(p);
                (r, reusable)
            }
            Err(e) => (Err(e), None),
        };
        wstore.data_mut().end_call();
        let reads = wstore.data_mut().take_reads();
        let (result, (logs, kv)) = finish(&mut wstore, result, &plugin.settings.limits);
        if let Some(p) = instance {
            plugin.keep_warm(wstore, p, calls + 1);
        }
        let limit = plugin.settings.limits.max_actions;
        let outcome = match result {
            Ok(Ok(actions)) if actions.len() > limit => Err(CallFailure::TooManyActions {
                count: actions.len(),
                limit,
            }),
            Ok(Ok(actions)) => Ok(actions),
            Ok(Err(message)) => Err(CallFailure::Returned(bounded_text(&message))),
            Err(failure) => Err(failure),
        };
        CallResult {
            outcome,
            logs,
            kv,
            reads,
            elapsed: started.elapsed(),
        }
    }

    /// A fresh limited store for one call, with `plugin` instantiated in it.
    async fn instantiate(
        &self,
        plugin: &LoadedPlugin,
        inputs: CallInputs,
    ) -> (WasmStore<PluginState>, wasmtime::Result<Instance>) {
        let limits = plugin.settings.limits;
        let mut store = WasmStore::new(
            &self.engine.engine,
            PluginState::new(inputs, limits::PluginLimiter::new(limits.memory_mb)),
        );
        store.limiter(|s| &mut s.limits);
        set_deadline(&mut store, &limits);
        store.epoch_deadline_trap();
        let instance = with_deadline(&limits, plugin.pre.instantiate(&mut store)).await;
        // The call gets its whole budget, whatever instantiation took.
        set_deadline(&mut store, &limits);
        (store, instance)
    }
}

/// Run a guest call under its wall-clock deadline. The epoch deadline interrupts running
/// guest code; this one also ends a call that is blocked in the host (a WASI sleep or poll):
/// the call's future is dropped, which cancels it, and the instance is never used again.
async fn with_deadline<R>(
    limits: &PluginLimits,
    call: impl std::future::Future<Output = wasmtime::Result<R>>,
) -> wasmtime::Result<R> {
    match tokio::time::timeout(Duration::from_millis(limits.timeout_ms), call).await {
        Ok(r) => r,
        Err(_) => Err(wasmtime::Error::new(wasmtime::Trap::Interrupt)),
    }
}

/// Why `wasm` cannot be a component at all, said before the compiler says it in its terms.
fn not_a_component(wasm: &[u8]) -> Option<String> {
    const MAGIC: &[u8] = b"\0asm";
    const CORE_MODULE: &[u8] = &[1, 0, 0, 0];
    if !wasm.starts_with(MAGIC) {
        let text = wasm.trim_ascii_start();
        return Some(
            if text.starts_with(b"(component") || text.starts_with(b"(module") {
                "this is WebAssembly text (.wat), not a binary component: convert it with \
             `wasm-tools parse`"
                    .into()
            } else {
                "this is not a WebAssembly file (a plugin is a .wasm component built for the \
             mailpipe:plugin contract; see docs/PLUGIN-GUIDE.md)"
                    .into()
            },
        );
    }
    (wasm.get(4..8) == Some(CORE_MODULE)).then(|| {
        "this is a core WebAssembly module, not a component: build for the wasm32-wasip2 \
         target (Rust), or turn it into a component with `wasm-tools component new` and the \
         WASI reactor adapter (see docs/PLUGIN-GUIDE.md)"
            .into()
    })
}

/// A compile or link error of wasmtime's in the plugin author's terms where one is known
/// (a memory limit below what the component needs at start), else wasmtime's own text.
fn in_plain_words(e: &wasmtime::Error, limits: &PluginLimits) -> String {
    let text = format!("{e:#}");
    let needs = text
        .split("minimum byte size of ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<u64>().ok());
    match needs {
        Some(bytes) if text.contains("memory") => format!(
            "it needs at least {} MiB of memory at start, more than its limit of {} MiB: \
             raise memory_mb",
            bytes.div_ceil(1 << 20),
            limits.memory_mb
        ),
        _ => text,
    }
}

/// The versions of the mailpipe contract a component imports (e.g. "0.1.0").
fn contract_versions(
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
) -> Vec<String> {
    let mut out: Vec<String> = component
        .component_type()
        .imports(engine)
        .filter_map(|(name, _)| {
            let rest = name.strip_prefix("mailpipe:plugin/")?;
            Some(rest.split_once('@')?.1.to_string())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Give the next call its full wall-time budget, counted from now.
fn set_deadline(store: &mut WasmStore<PluginState>, limits: &PluginLimits) {
    store.set_epoch_deadline(PluginEngine::ticks_for(Duration::from_millis(
        limits.timeout_ms,
    )));
}

/// Turn a call's wasmtime result into ours and collect its buffered effects.
fn finish<R>(
    store: &mut WasmStore<PluginState>,
    result: wasmtime::Result<R>,
    limits: &PluginLimits,
) -> (Result<R, CallFailure>, (Vec<LogLine>, Vec<KvWrite>)) {
    let mut effects = store.data_mut().take_effects();
    let refusal = store.data_mut().take_refusal();
    let result = result.map_err(|e| {
        if let Some(reason) = refusal {
            // A quota of the host interface stopped the call: its reason, not the trap.
            return CallFailure::Refused(reason);
        }
        if let Some(limit) = limit_failure(&e, limits) {
            return limit;
        }
        // A guest language's runtime (Python, Rust's panic handler) prints the real reason
        // to stderr before it aborts: it goes into the failure, not a second time into logs.
        let stderr = effects
            .0
            .iter()
            .position(|l| l.text.starts_with("stderr: "))
            .map(|i| effects.0.remove(i).text["stderr: ".len()..].to_string());
        CallFailure::Trap(bounded_text(&guest_error::describe_trap(
            &e,
            stderr.as_deref(),
        )))
    });
    (result, effects)
}

impl LoadedPlugin {
    /// What the host must fetch for this plugin: what it said, or the whole message for an
    /// `account_sieve` step (an account's script is not known before its message).
    pub fn needs(&self) -> Needs {
        match self.settings.kind {
            crate::config::PluginKind::AccountSieve => Needs::Raw,
            _ => self.info.needs,
        }
    }

    fn take_warm(&self) -> Option<Warm> {
        if self.settings.fresh_instance {
            return None;
        }
        self.warm.lock().ok()?.pop()
    }

    /// Keep an instance whose last call returned normally for the next message, unless the
    /// plugin wants fresh instances or this one has served its share.
    fn keep_warm(&self, store: WasmStore<PluginState>, plugin: Instance, calls: u32) {
        if self.settings.fresh_instance
            || calls >= MAX_CALLS_PER_INSTANCE
            || store.data().worn_out()
        {
            return;
        }
        if let Ok(mut warm) = self.warm.lock() {
            if warm.len() < MAX_WARM_INSTANCES {
                warm.push(Warm {
                    store,
                    plugin,
                    calls,
                });
            }
        }
    }

    /// The contract version the plugin was built for, e.g. "0.2.0".
    pub fn contract(&self) -> &'static str {
        self.pre.version()
    }

    /// The inputs of a call; `account`: whose mail it is (its key-value namespace).
    fn inputs(
        &self,
        store: Option<Arc<Store>>,
        message: Option<Arc<Readable>>,
        clock: Clock,
        account: Option<&str>,
    ) -> CallInputs {
        let kv_namespace: Arc<str> = match account {
            None => self.name.clone(),
            Some(a) => {
                let ns = crate::state::kv_namespace(&self.name, Some(a));
                if let Some(store) = &store {
                    // On failure the namespace starts without the shared entries' copy; the
                    // store's error shows again at the message's commit.
                    if let Err(e) = store.prepare_kv_namespace(&self.name, &ns) {
                        tracing::warn!(plugin = %self.name, account = a, "{e}");
                    }
                }
                ns.into()
            }
        };
        CallInputs {
            plugin: self.name.clone(),
            kv_namespace,
            config_json: self.config_json.clone(),
            config: self.config.clone(),
            store,
            message,
            raw_for_0_1: self.info.needs == Needs::Raw,
            clock,
            limits: self.settings.limits,
        }
    }
}

/// The failures that are the sandbox's limits at work, not the guest's own fault.
fn limit_failure(e: &wasmtime::Error, limits: &PluginLimits) -> Option<CallFailure> {
    if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
        return Some(CallFailure::Timeout(limits.timeout_ms));
    }
    let text = format!("{e:#}");
    (text.contains("forcing trap when growing memory") || text.contains("memory minimum size"))
        .then_some(CallFailure::OutOfMemory(limits.memory_mb))
}
