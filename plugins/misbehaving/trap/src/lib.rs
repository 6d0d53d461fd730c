//! misbehave-trap: a TEST plugin that misbehaves on purpose: panics, which traps the instance.
//! It exists so the host's sandbox tests can prove this is contained. Never deploy it.

use mailpipe_plugin::{Action, Message, Needs, Plugin, PluginInfo};

struct Misbehave;

impl Plugin for Misbehave {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "misbehave-trap".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            needs: Needs::Headers,
        }
    }

    fn on_message(_msg: &Message) -> Result<Vec<Action>, String> {
        panic!("misbehave-trap: deliberate panic")
    }
}

mailpipe_plugin::export!(Misbehave);
