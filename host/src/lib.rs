//! mailpipe: process email with sandboxed WebAssembly component plugins.
//!
//! The data's path, one module per stage: `config` → `source` → `message` → `plugin`
//! (runtime) → `pipeline` → `actions` → `sink` (mail store, outbox) → `state`.
//! `runner` wires them for the CLI in `main.rs`; `report` formats results.

pub mod actions;
pub mod clock;
pub mod config;
pub mod contract;
pub mod message;
pub mod model;
pub mod net;
pub mod pipeline;
pub mod plugin;
pub mod report;
pub mod run;
pub mod sink;
pub mod source;
pub mod state;
pub mod telemetry;
