//! What mailpipe tells its operator while it runs: log events through `tracing` (set up once
//! in `logs`), with the account, mailbox, UID, message id and plugin as fields; and metrics
//! with a health check (`metrics`, opt-in with `run --metrics`).

pub mod logs;
pub mod metrics;
