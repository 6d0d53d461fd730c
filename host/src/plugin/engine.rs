//! The one wasmtime `Engine` of the process and its settings: component model, epoch
//! interruption for wall-time deadlines, and the pooling allocator when the address space
//! allows it (probed, with a fallback to on-demand allocation, as Spin does).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances; plugin deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

pub struct PluginEngine {
    pub engine: Engine,
    pub pooling: bool,
    stop_ticker: Arc<AtomicBool>,
}

impl PluginEngine {
    /// `max_memory_bytes`: the largest memory any configured plugin may use.
    pub fn new(max_memory_bytes: u64) -> wasmtime::Result<PluginEngine> {
        let (engine, pooling) = match Engine::new(&config(Some(max_memory_bytes))) {
            Ok(engine) => (engine, true),
            Err(_) => (Engine::new(&config(None))?, false),
        };
        let stop_ticker = Arc::new(AtomicBool::new(false));
        let (e, stop) = (engine.clone(), stop_ticker.clone());
        std::thread::Builder::new()
            .name("mailpipe-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    e.increment_epoch();
                }
            })
            .map_err(|e| wasmtime::format_err!("cannot start the epoch thread: {e}"))?;
        Ok(PluginEngine {
            engine,
            pooling,
            stop_ticker,
        })
    }

    /// Epoch ticks for a wall-time budget (rounded up, at least one).
    pub fn ticks_for(timeout: Duration) -> u64 {
        (timeout.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64 + 1
    }
}

impl Drop for PluginEngine {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

fn config(pooling_max_memory: Option<u64>) -> Config {
    let mut cfg = Config::new();
    cfg.wasm_component_model(true);
    cfg.epoch_interruption(true);
    cfg.cranelift_opt_level(wasmtime::OptLevel::Speed);
    if let Some(max_memory) = pooling_max_memory {
        // Sized for a handful of plugins instantiated per message, including the larger
        // JS and Python components (many core instances, big tables).
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(64)
            .total_core_instances(1024)
            .total_memories(128)
            .total_tables(512)
            .total_stacks(64)
            .max_core_instances_per_component(128)
            .max_memories_per_component(8)
            .max_tables_per_component(32)
            .max_component_instance_size(1 << 20)
            .max_core_instance_size(1 << 20)
            .table_elements(100_000)
            .max_memory_size(max_memory as usize);
        cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    cfg
}
