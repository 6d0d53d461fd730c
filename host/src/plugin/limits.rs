//! What one plugin instance may consume, enforced by wasmtime through this limiter: linear
//! memory counted over *all* the instance's memories together (a component holds several
//! core instances, each may have its own memory; a per-memory limit would let it use
//! `memory_mb` many times over), table elements likewise, and bounded numbers of
//! instances, tables and memories. Failing a growth traps the call, which the runtime
//! reports as "exceeded its memory limit".

use wasmtime::ResourceLimiter;

/// Table elements (all tables together) a plugin instance may hold.
pub const MAX_TABLE_ELEMENTS: usize = 1_000_000;
/// Core instances, tables and memories one plugin's store may create.
pub const MAX_INSTANCES: usize = 256;
pub const MAX_TABLES: usize = 256;
pub const MAX_MEMORIES: usize = 16;

#[derive(Debug)]
pub struct PluginLimiter {
    memory_max: usize,
    memory_used: usize,
    table_used: usize,
    /// The growth last allowed, taken back if wasmtime then fails to grow.
    last_memory_growth: usize,
    last_table_growth: usize,
}

impl PluginLimiter {
    pub fn new(memory_mb: u64) -> PluginLimiter {
        PluginLimiter {
            memory_max: (memory_mb << 20) as usize,
            memory_used: 0,
            table_used: 0,
            last_memory_growth: 0,
            last_table_growth: 0,
        }
    }
}

/// Allow growing one memory or table from `current` to `desired` when the total of all of
/// them (`used`) stays within `max` and the item's own `maximum`; remember the growth so a
/// failed growth can give it back.
fn grow(
    used: &mut usize,
    last: &mut usize,
    max: usize,
    (current, desired, maximum): (usize, usize, Option<usize>),
) -> bool {
    let growth = desired.saturating_sub(current);
    let total = used.saturating_add(growth);
    if total > max || maximum.is_some_and(|m| desired > m) {
        return false;
    }
    *used = total;
    *last = growth;
    true
}

impl ResourceLimiter for PluginLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let (max, used) = (self.memory_max, self.memory_used);
        if !grow(
            &mut self.memory_used,
            &mut self.last_memory_growth,
            max,
            (current, desired, maximum),
        ) {
            wasmtime::bail!(
                "forcing trap when growing memory to {desired} bytes ({used} bytes in use in all memories)"
            );
        }
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.memory_used = self.memory_used.saturating_sub(self.last_memory_growth);
        Err(error.context("forcing a memory growth failure to be a trap"))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if !grow(
            &mut self.table_used,
            &mut self.last_table_growth,
            MAX_TABLE_ELEMENTS,
            (current, desired, maximum),
        ) {
            wasmtime::bail!("forcing trap when growing table to {desired} elements");
        }
        Ok(true)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.table_used = self.table_used.saturating_sub(self.last_table_growth);
        Err(error.context("forcing a table growth failure to be a trap"))
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_counted_over_all_memories() {
        let mut l = PluginLimiter::new(1);
        assert!(l.memory_growing(0, 600 << 10, None).unwrap());
        // A second memory of the same instance: together they pass 1 MiB.
        assert!(l.memory_growing(0, 600 << 10, None).is_err());
        assert!(l.memory_growing(0, 400 << 10, None).unwrap());
        // A failed growth gives its share back.
        assert!(l.memory_grow_failed(wasmtime::format_err!("no")).is_err());
        assert!(l.memory_growing(0, 400 << 10, None).unwrap());
    }
}
