//! Compiled-code cache: a component is compiled once and its native artifact stored under
//! the state directory, keyed by the SHA-256 of the .wasm and the engine's compatibility
//! hash, so a restart deserializes (sub-millisecond for Rust plugins) instead of recompiling
//! (tens of milliseconds for Rust, seconds for JS/Python components).

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Where a component came from: compiled now, or loaded from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheUse {
    Compiled,
    Cached,
    Disabled,
}

/// Components this big take seconds to compile: their compilation is announced.
const BIG_COMPONENT: usize = 4 << 20;

pub fn load_component(
    engine: &Engine,
    wasm: &[u8],
    cache_dir: Option<&Path>,
) -> wasmtime::Result<(Component, CacheUse)> {
    let Some(dir) = cache_dir else {
        return Ok((Component::new(engine, wasm)?, CacheUse::Disabled));
    };
    let path = artifact_path(engine, wasm, dir);
    if path.is_file() {
        // SAFETY: the artifact was written by this program (same engine settings, checked by
        // the key) into the user's own state directory; wasmtime still validates its header.
        if let Ok(component) = unsafe { Component::deserialize_file(engine, &path) } {
            return Ok((component, CacheUse::Cached));
        }
        // Unreadable or stale: fall through and replace it.
    }
    if wasm.len() >= BIG_COMPONENT {
        // Seconds of silence otherwise (a Python component is ~18 MiB of code to compile).
        tracing::info!(
            size_mib = wasm.len() >> 20,
            "compiling the plugin (first use of this build of it; cached afterwards)"
        );
    }
    let component = Component::new(engine, wasm)?;
    let bytes = component.serialize()?;
    // Best effort: a failing cache write costs a recompilation next time, nothing else.
    if std::fs::create_dir_all(dir).is_ok() {
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, &bytes).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }
    Ok((component, CacheUse::Compiled))
}

fn artifact_path(engine: &Engine, wasm: &[u8], dir: &Path) -> PathBuf {
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let mut h = Sha256::new();
    h.update(wasm);
    h.update(engine_hash.finish().to_be_bytes());
    dir.join(format!("{}.cwasm", hex::encode(&h.finalize()[..16])))
}
