//! Why this file exists: thin, typed wrappers over the host's per-plugin key-value store.
//! Writes become durable only if `on_message` returns `Ok`; on `Err` the host drops them.

use crate::bindings::mailpipe::plugin::host;

pub fn get(key: &str) -> Option<Vec<u8>> {
    host::kv_get(key)
}

/// Store `value`; with `ttl_seconds` the entry expires after that many seconds.
pub fn set(key: &str, value: &[u8], ttl_seconds: Option<u64>) {
    host::kv_set(key, value, ttl_seconds);
}

pub fn delete(key: &str) {
    host::kv_delete(key);
}

/// The value as UTF-8 text; `None` when absent or not valid UTF-8.
pub fn get_string(key: &str) -> Option<String> {
    get(key).and_then(|bytes| String::from_utf8(bytes).ok())
}

pub fn set_string(key: &str, value: &str, ttl_seconds: Option<u64>) {
    set(key, value.as_bytes(), ttl_seconds);
}
