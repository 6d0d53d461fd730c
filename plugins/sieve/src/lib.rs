//! Why this file exists: the door of the Sieve interpreter. `compile` a script once (errors
//! with line and column, as sievec gives them), then `run` it on each message through the
//! `Input` trait; the `Outcome` says what the script decided. The interpreter does no I/O: the
//! mailpipe plugin in `plugin/` reads the message from the host and turns the outcome into
//! contract actions, so the host carries them out with its own checks.
//!
//! Layout: `lexer` → `parser` (the grammar) → `compile` (meaning, `require`, arguments) →
//! `script` (the checked form) → `interp` (running) → `outcome`; helpers `matching`
//! (comparators, match types), `address`, `date`, `variables`.

pub mod address;
pub mod compile;
pub mod date;
pub mod error;
pub mod interp;
pub mod lexer;
pub mod mailto;
pub mod matching;
pub mod mime;
pub mod outcome;
pub mod parser;
pub mod script;
pub mod testing;
pub mod variables;

pub use compile::{compile, Options, CAPABILITIES};
pub use error::{CompileError, Pos};
pub use interp::{run, Input, RuntimeError, ScoreHeader, Settings};
pub use outcome::{HeaderEdit, Notification, Outcome, Store, VacationReply};
pub use script::Script;

#[cfg(test)]
mod tests;
