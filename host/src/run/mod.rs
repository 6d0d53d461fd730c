//! The job layer: where a message's whole path is driven. Every job takes the same steps:
//! fetch messages from a source → the pipeline decides → commit the decision (with what is
//! still to be done) → carry out the plan (mail store or IMAP server) → flush the outbox.
//! `offline` runs them over a Maildir or folder of .eml files, `imap` over an IMAP account,
//! `accounts` and `daemon` over many accounts (reload, rebalance); `setup` builds what they
//! share (plugins, pipeline, state store). The sources below speak their protocol only.

pub mod accounts;
pub mod daemon;
pub mod deliver;
mod fault;
pub mod group_commit;
pub mod imap;
pub mod lmtp;
pub mod offline;
pub mod pop3;
pub mod roster;
pub mod setup;

pub use accounts::{account_rows, account_workers, probe_accounts, run_accounts_once};
pub use daemon::watch_accounts;
pub use offline::{run_offline, Offline};
pub use setup::{
    build_pipeline, build_pipeline_unchecked, config_problems, describe_plugins, load_plugins,
    maintain, test_message_key, RunOptions, RunSummary, MAINTENANCE_EVERY,
};
