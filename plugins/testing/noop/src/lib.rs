//! noop: a TEST plugin that returns no actions without looking at the message. A call of it
//! costs only what the host adds to every call (handing it the message handle,
//! entering it, reading the result back): benches/pipeline.rs reports that as the host's
//! overhead per plugin call.

use mailpipe_plugin::{Action, Message, Needs, Plugin, PluginInfo};

struct Noop;

impl Plugin for Noop {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "noop".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            needs: Needs::Headers,
        }
    }

    fn on_message(_msg: &Message) -> Result<Vec<Action>, String> {
        Ok(Vec::new())
    }
}

mailpipe_plugin::export!(Noop);
