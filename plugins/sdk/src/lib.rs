//! Why this file exists: it is the one place that turns the plugin contract
//! (`wit/v0.2/plugin.wit`, `mailpipe:plugin@0.2.0`) into Rust, so a plugin depends on this crate
//! only and is a few lines long:
//!
//! ```no_run
//! use mailpipe_plugin::{Action, Message, Needs, Plugin, PluginInfo};
//!
//! struct Hello;
//!
//! impl Plugin for Hello {
//!     fn info() -> PluginInfo {
//!         PluginInfo { name: "hello".into(), version: "0.1.0".into(), needs: Needs::Headers }
//!     }
//!
//!     fn on_message(msg: &Message) -> Result<Vec<Action>, String> {
//!         mailpipe_plugin::log::info(format!("subject: {:?}", msg.subject()));
//!         Ok(vec![Action::AddFlags(vec!["$Seen-By-Hello".into()])])
//!     }
//! }
//!
//! mailpipe_plugin::export!(Hello);
//! ```
//!
//! The message is read part by part (`msg.subject()`, `msg.header("List-Id")`,
//! `msg.text_body()`): each call asks the host, and only what is asked for is copied in.
//! `check_config` is optional: the problems it returns are shown by `mailpipe check` at the
//! line of the config file, and keep the plugin from being loaded with a broken configuration.
//!
//! Build with `cargo build --release --target wasm32-wasip2` (crate type `cdylib`): the output
//! `.wasm` is a component the host loads directly.

// Lets the generated code name this crate as `mailpipe_plugin::...` both here and when the
// `export!` macro expands inside a plugin crate (which need not depend on wit-bindgen itself).
extern crate self as mailpipe_plugin;

/// Bindings generated from the WIT contract. Prefer the re-exports at the crate root.
pub mod bindings {
    wit_bindgen::generate!({
        // plugins/sdk/wit is a link to wit/v0.2 here (plugins/sdk-0.4/wit to wit/v0.4, with
        // these same sources); `mailpipe new` writes a real copy
        // beside the SDK it vendors into a plugin project.
        path: "wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "mailpipe_plugin::bindings",
        runtime_path: "mailpipe_plugin::__private::rt",
    });
}

pub mod config;
mod glob;
mod header_safe;
pub mod kv;
pub mod log;
mod message;

/// `mailpipe_plugin::export!(MyPlugin);` makes `MyPlugin` the component's implementation.
/// Use it once, at the root of a `cdylib` crate that depends on this crate as `mailpipe-plugin`.
pub use bindings::export;
pub use bindings::mailpipe::plugin::host::LogLevel;
pub use bindings::mailpipe::plugin::types::{
    Action, Address, Attachment, ConfigProblem, Envelope, FolderTarget, Forward, ForwardMode,
    Header, Message, Needs, PluginInfo, Reply,
};

/// The trait a plugin implements: `info()` and `check_config()` once at load time,
/// `on_message(msg)` per message.
pub trait Plugin {
    fn info() -> PluginInfo;

    /// What is wrong with the plugin's configuration (`config()`), empty when it is fine.
    /// The default finds nothing wrong.
    fn check_config() -> Vec<ConfigProblem> {
        Vec::new()
    }

    /// Decide what happens to `msg`. `Err` means the plugin failed: the host drops its
    /// actions and state writes for this message and reports the error.
    fn on_message(msg: &Message) -> Result<Vec<Action>, String>;
}

impl<T: Plugin> bindings::Guest for T {
    fn info() -> PluginInfo {
        <T as Plugin>::info()
    }

    fn check_config() -> Vec<ConfigProblem> {
        <T as Plugin>::check_config()
    }

    fn on_message(msg: &Message) -> Result<Vec<Action>, String> {
        <T as Plugin>::on_message(msg)
    }
}

/// A problem with the configuration key `key` ("rules.2.folder"), for `check_config`.
pub fn config_problem(key: impl Into<String>, message: impl Into<String>) -> ConfigProblem {
    ConfigProblem {
        key: Some(key.into()),
        message: message.into(),
    }
}

pub use config::{config, config_checked, config_string};
pub use glob::matches_glob;
pub use header_safe::{header_safe, HEADER_SAFE_MAX};
pub use message::{header, headers_all, is_direct_recipient, sender_address};

/// Current time, milliseconds since the Unix epoch (from the host; plugins have no clock).
pub fn now_ms() -> i64 {
    bindings::mailpipe::plugin::host::now_ms()
}

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen::rt;
}
