//! Why this file exists: plugins that ship inside the binary. Today one: the Sieve
//! interpreter (plugins/sieve/plugin), built by build.rs, which `sieve = "FILE"` and
//! `account_sieve = true` run. It is
//! loaded like any other component (same sandbox, limits and checks); only its bytes come
//! from here instead of a file.

use crate::config::{PluginConfig, PluginKind};

#[cfg(feature = "sieve")]
static SIEVE: Option<&[u8]> = Some(include_bytes!(concat!(env!("OUT_DIR"), "/sieve.wasm")));
#[cfg(not(feature = "sieve"))]
static SIEVE: Option<&[u8]> = None;

/// The component of the built-in Sieve interpreter, when this build has it.
pub fn sieve_component() -> Option<&'static [u8]> {
    SIEVE
}

/// The bytes of the component `settings` runs: its .wasm file, or the built-in interpreter.
pub fn component_of(settings: &PluginConfig) -> std::io::Result<Vec<u8>> {
    match settings.kind {
        PluginKind::Wasm => std::fs::read(&settings.path),
        PluginKind::Sieve | PluginKind::AccountSieve => {
            sieve_component().map(<[u8]>::to_vec).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "this mailpipe was built without the Sieve interpreter (cargo feature `sieve`)",
                )
            })
        }
    }
}
