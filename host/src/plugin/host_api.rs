//! What a plugin can reach: the `host` interface of the WIT contract (log, clock, its config,
//! its own key-value state; the message it decides is in `message_api`) plus a WASI context with no files, no network,
//! no environment and captured stdout/stderr. Everything a call changes is buffered here and
//! handed back to the pipeline, which commits it only when the call succeeds.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::mailpipe::plugin as wit;
use super::{v0_1, v0_2, v0_3};
use crate::config::PluginLimits;
use crate::model::decision::LogLevel;
use crate::plugin::readable::Readable;
use crate::state::{KvWrite, Store};

/// Per-call quotas of the host interface.
const MAX_LOG_LINES: usize = 100;
const MAX_LOG_LINE: usize = 4096;
const MAX_KV_KEY: usize = 512;
const MAX_KV_VALUE: usize = 64 * 1024;
const MAX_KV_WRITES: usize = 1000;
const MAX_STDIO: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub level: LogLevel,
    pub text: String,
}

/// The clock plugins see; fixed in tests so vacation expiry can be checked.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    System,
    Fixed(i64),
}

impl Clock {
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            Clock::Fixed(ms) => *ms,
        }
    }
}

/// The WASI wall clock a plugin reads (`wasi:clocks/wall-clock`): the same time as the host
/// interface's `now-ms`, so a fixed test clock (`mailpipe test --now-ms`) fixes both.
#[derive(Clone)]
struct SharedWallClock(Arc<std::sync::atomic::AtomicI64>);

impl SharedWallClock {
    /// Marks "the system clock" in the shared cell.
    const SYSTEM: i64 = i64::MIN;

    fn set(&self, clock: Clock) {
        let v = match clock {
            Clock::System => Self::SYSTEM,
            Clock::Fixed(ms) => ms,
        };
        self.0.store(v, std::sync::atomic::Ordering::Relaxed);
    }
}

impl wasmtime_wasi::HostWallClock for SharedWallClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_millis(1)
    }

    fn now(&self) -> std::time::Duration {
        let ms = match self.0.load(std::sync::atomic::Ordering::Relaxed) {
            Self::SYSTEM => Clock::System.now_ms(),
            fixed => fixed,
        };
        std::time::Duration::from_millis(ms.max(0) as u64)
    }
}

/// Inputs of one call that the host interface serves.
pub struct CallInputs {
    pub plugin: Arc<str>,
    /// Where the call's key-value state is kept (`state::kv_namespace`): the plugin's own,
    /// or, for an account's mail, the plugin's namespace for that account.
    pub kv_namespace: Arc<str>,
    pub config_json: Arc<str>,
    pub config: Arc<serde_json::Value>,
    pub store: Option<Arc<Store>>,
    /// The message of an `on-message` call (none for `info` and `check-config`).
    pub message: Option<Arc<Readable>>,
    /// A 0.1 plugin that declared `needs: raw` may read the raw bytes (`host.raw-message`).
    pub raw_for_0_1: bool,
    pub clock: Clock,
    pub limits: PluginLimits,
}

/// What one call read of its plugin's stored state: the keys (through `kv-get`, or to size a
/// write) and whether the plugin's totals were consulted (every write checks its quota).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvReads {
    pub keys: std::collections::BTreeSet<String>,
    pub usage: bool,
}

/// The store data of one plugin instance.
pub struct PluginState {
    wasi: WasiCtx,
    wall_clock: SharedWallClock,
    table: ResourceTable,
    pub(crate) limits: super::limits::PluginLimiter,
    inputs: CallInputs,
    kv: BTreeMap<String, Option<(Vec<u8>, u64)>>,
    /// Stored size of each key this call wrote, before the call (None: absent).
    kv_before: HashMap<String, Option<u64>>,
    /// Change this call's writes make to the plugin's stored keys and bytes.
    kv_delta: (i64, i64),
    /// Why the host stopped the call, when a quota did (reported instead of the trap).
    refusal: Option<String>,
    /// Expired entries were purged during this call (done at most once per call).
    purged: bool,
    /// What this call read of the stored state, to tell whether deciding it in parallel
    /// with earlier messages gave the same result as deciding it after them.
    reads: KvReads,
    logs: Vec<LogLine>,
    dropped_logs: usize,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    /// Bytes of stdout/stderr already handed back by earlier calls of this instance.
    stdio_seen: [usize; 2],
}

impl PluginState {
    pub fn new(inputs: CallInputs, limits: super::limits::PluginLimiter) -> PluginState {
        let stdout = MemoryOutputPipe::new(MAX_STDIO);
        let stderr = MemoryOutputPipe::new(MAX_STDIO);
        let wall_clock = SharedWallClock(Arc::new(Default::default()));
        wall_clock.set(inputs.clock);
        let mut builder = WasiCtx::builder();
        builder
            .wall_clock(wall_clock.clone())
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        PluginState {
            wasi: builder.build(),
            wall_clock,
            table: ResourceTable::new(),
            limits,
            inputs,
            kv: BTreeMap::new(),
            kv_before: HashMap::new(),
            kv_delta: (0, 0),
            refusal: None,
            purged: false,
            reads: KvReads::default(),
            logs: Vec::new(),
            dropped_logs: 0,
            stdout,
            stderr,
            stdio_seen: [0, 0],
        }
    }

    /// Serve the next call of a reused instance with new inputs.
    pub fn begin_call(&mut self, inputs: CallInputs) {
        self.wall_clock.set(inputs.clock);
        self.inputs = inputs;
        self.kv.clear();
        self.kv_before.clear();
        self.kv_delta = (0, 0);
        self.refusal = None;
        self.purged = false;
        self.reads = KvReads::default();
        self.logs.clear();
        self.dropped_logs = 0;
    }

    /// The message the current call decides.
    pub(crate) fn message(&self) -> Option<&Readable> {
        self.inputs.message.as_deref()
    }

    /// Let go of the message when a call is over (a warm instance waits with no message).
    pub(crate) fn end_call(&mut self) {
        self.inputs.message = None;
    }

    /// `host.raw-message` of the 0.1 contract: only for plugins that declared `needs: raw`.
    pub(crate) fn raw_for_0_1(&self) -> Vec<u8> {
        match self.message() {
            Some(m) if self.inputs.raw_for_0_1 => m.email().raw.to_vec(),
            _ => Vec::new(),
        }
    }

    /// Whether the instance should not serve more calls: its captured output nears the
    /// pipes' capacity (writes past it would fail inside the guest).
    pub fn worn_out(&self) -> bool {
        self.stdio_seen.iter().any(|&n| n > MAX_STDIO / 2)
    }

    /// Why the host refused the last call, if a quota stopped it.
    pub fn take_refusal(&mut self) -> Option<String> {
        self.refusal.take()
    }

    /// Stop the call: remember the reason for the report and trap the guest.
    fn refuse(&mut self, reason: String) -> wasmtime::Error {
        let err = wasmtime::format_err!("{reason}");
        self.refusal = Some(reason);
        err
    }

    /// What the last call read of the stored state.
    pub fn take_reads(&mut self) -> KvReads {
        std::mem::take(&mut self.reads)
    }

    /// Record a write of `key` (new stored size `size`, None for a delete) and check the
    /// plugin's totals against its limits.
    fn account_kv(&mut self, key: &str, size: Option<u64>) -> wasmtime::Result<()> {
        // The size the key had and the plugin's totals are read from the store.
        self.reads.usage = true;
        self.reads.keys.insert(key.to_string());
        if self.kv.len() >= MAX_KV_WRITES && !self.kv.contains_key(key) {
            return Err(self.refuse(format!(
                "more than {MAX_KV_WRITES} keys written or deleted in one call (fixed limit)"
            )));
        }
        let before = match self.kv_before.get(key) {
            Some(b) => *b,
            None => {
                let b = match &self.inputs.store {
                    Some(store) => store
                        .kv_entry_size(&self.inputs.kv_namespace, key)
                        .map_err(|e| wasmtime::format_err!("{e}"))?,
                    None => None,
                };
                self.kv_before.insert(key.to_string(), b);
                b
            }
        };
        let current = match self.kv.get(key) {
            Some(Some((v, _))) => Some((key.len() + v.len()) as u64),
            Some(None) => None,
            None => before,
        };
        let (dk, db) = (
            size.is_some() as i64 - current.is_some() as i64,
            size.unwrap_or(0) as i64 - current.unwrap_or(0) as i64,
        );
        let limits = self.inputs.limits;
        let totals = |st: &Self| {
            let usage = st
                .inputs
                .store
                .as_ref()
                .map(|s| s.kv_usage(&st.inputs.kv_namespace))
                .unwrap_or_default();
            (
                usage.keys as i64 + st.kv_delta.0 + dk,
                usage.bytes as i64 + st.kv_delta.1 + db,
            )
        };
        let (mut keys, mut bytes) = totals(self);
        let over = |keys: i64, bytes: i64| {
            (dk > 0 && keys > limits.kv_max_keys as i64)
                || (db > 0 && bytes > limits.kv_max_bytes as i64)
        };
        if over(keys, bytes) && !self.purged {
            // Expired entries still count until they are purged: purge, then look again.
            self.purged = true;
            self.purge_expired()?;
            (keys, bytes) = totals(self);
        }
        if dk > 0 && keys > limits.kv_max_keys as i64 {
            return Err(self.refuse(format!(
                "kv-set: the plugin's state would hold {keys} keys, over its limit kv_max_keys = {}",
                limits.kv_max_keys
            )));
        }
        if db > 0 && bytes > limits.kv_max_bytes as i64 {
            return Err(self.refuse(format!(
                "kv-set: the plugin's state would hold {bytes} bytes, over its limit kv_max_bytes = {}",
                limits.kv_max_bytes
            )));
        }
        self.kv_delta = (self.kv_delta.0 + dk, self.kv_delta.1 + db);
        Ok(())
    }

    /// Drop expired entries from the store and count this call's writes again against what
    /// is left.
    fn purge_expired(&mut self) -> wasmtime::Result<()> {
        let Some(store) = self.inputs.store.clone() else {
            return Ok(());
        };
        let now = self.inputs.clock.now_ms().max(0) as u64;
        store
            .kv_purge_expired(now)
            .map_err(|e| wasmtime::format_err!("{e}"))?;
        self.kv_delta = (0, 0);
        self.kv_before.clear();
        let plugin = self.inputs.kv_namespace.clone();
        for (key, value) in &self.kv {
            let before = store
                .kv_entry_size(&plugin, key)
                .map_err(|e| wasmtime::format_err!("{e}"))?;
            let after = value.as_ref().map(|(v, _)| (key.len() + v.len()) as u64);
            self.kv_delta.0 += after.is_some() as i64 - before.is_some() as i64;
            self.kv_delta.1 += after.unwrap_or(0) as i64 - before.unwrap_or(0) as i64;
            self.kv_before.insert(key.clone(), before);
        }
        Ok(())
    }

    /// The call's buffered effects: log lines (with captured stdout/stderr) and KV writes.
    pub fn take_effects(&mut self) -> (Vec<LogLine>, Vec<KvWrite>) {
        let mut logs = std::mem::take(&mut self.logs);
        for (i, (pipe, name)) in [(&self.stdout, "stdout"), (&self.stderr, "stderr")]
            .into_iter()
            .enumerate()
        {
            let bytes = pipe.contents();
            let new = bytes.get(self.stdio_seen[i]..).unwrap_or_default();
            self.stdio_seen[i] = bytes.len();
            if !new.is_empty() {
                logs.push(LogLine {
                    level: LogLevel::Debug,
                    text: format!("{name}: {}", String::from_utf8_lossy(new).trim_end()),
                });
            }
        }
        if self.dropped_logs > 0 {
            logs.push(LogLine {
                level: LogLevel::Warn,
                text: format!(
                    "{} more log lines dropped (limit {MAX_LOG_LINES})",
                    self.dropped_logs
                ),
            });
        }
        let plugin = self.inputs.kv_namespace.to_string();
        let kv = std::mem::take(&mut self.kv)
            .into_iter()
            .map(|(key, value)| KvWrite {
                plugin: plugin.clone(),
                key,
                value,
            })
            .collect();
        (logs, kv)
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wit::types::Host for PluginState {}

impl wit::host::Host for PluginState {
    fn log(&mut self, level: wit::host::LogLevel, message: String) -> wasmtime::Result<()> {
        let level = LogLevel::from(level);
        if self.logs.len() >= MAX_LOG_LINES {
            self.dropped_logs += 1;
            return Ok(());
        }
        let mut text = message;
        if text.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
        }
        self.logs.push(LogLine { level, text });
        Ok(())
    }

    fn now_ms(&mut self) -> i64 {
        self.inputs.clock.now_ms()
    }

    fn config_json(&mut self) -> String {
        self.inputs.config_json.to_string()
    }

    fn config_string(&mut self, key: String) -> Option<String> {
        self.inputs.config.get(&key)?.as_str().map(str::to_string)
    }

    fn kv_get(&mut self, key: String) -> Option<Vec<u8>> {
        if key.len() > MAX_KV_KEY {
            return None; // no stored key is that long
        }
        let now = self.inputs.clock.now_ms().max(0) as u64;
        if let Some(pending) = self.kv.get(&key) {
            return match pending {
                Some((v, exp)) if *exp == 0 || *exp > now => Some(v.clone()),
                _ => None,
            };
        }
        let store = self.inputs.store.as_ref()?;
        self.reads.keys.insert(key.clone());
        // A store read error is treated as "no value": the plugin then behaves as for a
        // first-seen key; the error itself surfaces on the next commit.
        store
            .kv_get(&self.inputs.kv_namespace, &key, now)
            .ok()
            .flatten()
    }

    fn kv_set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_seconds: Option<u64>,
    ) -> wasmtime::Result<()> {
        if key.len() > MAX_KV_KEY || value.len() > MAX_KV_VALUE {
            return Err(self.refuse(format!(
                "kv-set: key ({} bytes) or value ({} bytes) over the fixed limit ({MAX_KV_KEY} / {MAX_KV_VALUE} bytes)",
                key.len(),
                value.len()
            )));
        }
        self.account_kv(&key, Some((key.len() + value.len()) as u64))?;
        let expires = match ttl_seconds {
            None => 0,
            Some(ttl) => (self.inputs.clock.now_ms().max(0) as u64)
                .saturating_add(ttl.saturating_mul(1000))
                .max(1),
        };
        self.kv.insert(key, Some((value, expires)));
        Ok(())
    }

    fn kv_delete(&mut self, key: String) -> wasmtime::Result<()> {
        if key.len() > MAX_KV_KEY {
            return Err(self.refuse(format!(
                "kv-delete: key of {} bytes over the fixed limit of {MAX_KV_KEY} bytes",
                key.len()
            )));
        }
        self.account_kv(&key, None)?;
        self.kv.insert(key, None);
        Ok(())
    }
}

/// An older version's host interface is the newest one (with `$extra` functions of its
/// own): every call is passed on.
macro_rules! older_host {
    ($($m:ident)::+ { $($extra:tt)* }) => {
        impl $($m)::+::mailpipe::plugin::types::Host for PluginState {}

        impl $($m)::+::mailpipe::plugin::host::Host for PluginState {
            fn log(
                &mut self,
                level: $($m)::+::mailpipe::plugin::host::LogLevel,
                message: String,
            ) -> wasmtime::Result<()> {
                use $($m)::+::mailpipe::plugin::host::LogLevel as Old;
                let level = match level {
                    Old::Debug => wit::host::LogLevel::Debug,
                    Old::Info => wit::host::LogLevel::Info,
                    Old::Warn => wit::host::LogLevel::Warn,
                    Old::Error => wit::host::LogLevel::Error,
                };
                wit::host::Host::log(self, level, message)
            }

            fn now_ms(&mut self) -> i64 {
                wit::host::Host::now_ms(self)
            }

            fn config_json(&mut self) -> String {
                wit::host::Host::config_json(self)
            }

            fn config_string(&mut self, key: String) -> Option<String> {
                wit::host::Host::config_string(self, key)
            }

            fn kv_get(&mut self, key: String) -> Option<Vec<u8>> {
                wit::host::Host::kv_get(self, key)
            }

            fn kv_set(
                &mut self,
                key: String,
                value: Vec<u8>,
                ttl_seconds: Option<u64>,
            ) -> wasmtime::Result<()> {
                wit::host::Host::kv_set(self, key, value, ttl_seconds)
            }

            fn kv_delete(&mut self, key: String) -> wasmtime::Result<()> {
                wit::host::Host::kv_delete(self, key)
            }

            $($extra)*
        }
    };
}

// 0.3's and 0.2's host interfaces are the newest one.
older_host!(v0_3 {});
older_host!(v0_2 {});

// 0.1's is the newest one plus `raw-message`.
older_host!(v0_1 {
    /// Only for plugins that declared `needs: raw`, as 0.1 promises; empty for the others.
    fn raw_message(&mut self) -> Vec<u8> {
        self.raw_for_0_1()
    }
});
