//! mailpipe: process email with sandboxed WebAssembly component plugins.
//!
//! The modules are layers; each imports only from the layers below it (checked by
//! tests/architecture.rs; docs/ARCHITECTURE.md draws the house and one message's path):
//! `model`, `clock`, `contract` (the vocabulary) → `config`, `net` → `message`, `state` →
//! `plugin`, `actions`, `source`, `sink` → `pipeline` → `telemetry`, `report` → `run` (the
//! jobs: fetch → decide → commit → carry out → flush). The binary's commands (`main.rs`,
//! `cli/`) sit on top.

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
pub mod serve;
pub mod sink;
pub mod source;
pub mod state;
pub mod telemetry;
