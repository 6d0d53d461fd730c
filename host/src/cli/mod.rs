//! Commands of the `mailpipe` binary that have more to them than a dispatch line in
//! `main.rs`: one file per command.

pub mod auth;
pub mod check;
pub mod deliver;
pub mod explain;
pub mod new;
pub mod sieve;
pub mod status;
pub mod test;
