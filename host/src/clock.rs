//! The wall clock in milliseconds since the Unix epoch, for state (checkpoints, retries,
//! queued mail). Plugins see time through `plugin::Clock`, which tests can fix.

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
