//! Rust bindings for the newest WIT contract, `wit/v0.2` (`mailpipe:plugin@0.2.0`), generated
//! by wasmtime's `bindgen!`. Its types are the host's internal model: actions, addresses and
//! headers of older contracts are converted to these (`v0_1`). Exports are async (the host
//! runs plugins on tokio and interrupts them by epoch); host imports are plain synchronous
//! calls; `kv-set`, `kv-delete` and `log` may trap a plugin that exceeds its quotas. The
//! `message` resource is served by `message_api`.

wasmtime::component::bindgen!({
    path: "../wit/v0.2",
    world: "plugin",
    imports: {
        "mailpipe:plugin/host.kv-set": trappable,
        "mailpipe:plugin/host.kv-delete": trappable,
        "mailpipe:plugin/host.log": trappable,
    },
    exports: { default: async },
});

pub use self::mailpipe::plugin::host::LogLevel;
// `Action`, `ConfigProblem`, `Message` and `PluginInfo` are at the root already (the world
// uses them).
pub use self::mailpipe::plugin::types::{
    Address, Attachment, Envelope, FolderTarget, Forward, ForwardMode, Header, Needs, Reply,
};
