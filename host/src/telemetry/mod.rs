//! What mailpipe tells its operator while it runs: log events through `tracing` (set up once
//! in `logs`), with the account, mailbox, UID, message id and plugin as fields.

pub mod logs;
