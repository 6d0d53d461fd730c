//! IMAP accounts as jobs: the worker of one account (`worker`: its session, passes and
//! watch loop; `mailbox`: one mailbox's pass), the deciding of fetched chunks in a task of
//! its own (`decide`), and the forwards that must be built from the complete message before
//! the plan moves it (`forwards`).

pub mod decide;
pub mod forwards;
mod mailbox;
pub mod worker;

pub use worker::{AccountWorker, PassReport, Timings, IDLE_RENEW};
