//! misbehave-infinite-loop: a TEST plugin that misbehaves on purpose: `on_message` never returns (the host must stop it by fuel or epoch deadline).
//! It exists so the host's sandbox tests can prove this is contained. Never deploy it.

use mailpipe_plugin::{Action, Message, Needs, Plugin, PluginInfo};

struct Misbehave;

impl Plugin for Misbehave {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "misbehave-infinite-loop".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            needs: Needs::Headers,
        }
    }

    fn on_message(_msg: &Message) -> Result<Vec<Action>, String> {
        let mut n: u64 = 0;
        loop {
            // black_box keeps the compiler from proving the loop useless.
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

mailpipe_plugin::export!(Misbehave);
