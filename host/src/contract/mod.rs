//! Why this module exists: the plugin contract (the WIT package in `wit/`) is part of the
//! program, not only of the repository: `mailpipe wit` prints it, `mailpipe new` vendors it
//! into a plugin project made anywhere, and `mailpipe wit --typescript` derives the types JS
//! plugin authors see in their editor from it.

pub mod typescript;

/// The contract version new plugins are built against.
pub const CURRENT_VERSION: &str = "0.1.0";

/// The WIT text of the current contract (wit/v0.1/plugin.wit).
pub const CURRENT_WIT: &str = include_str!("../../../wit/v0.1/plugin.wit");

/// The world a plugin component implements.
pub const WORLD: &str = "plugin";
