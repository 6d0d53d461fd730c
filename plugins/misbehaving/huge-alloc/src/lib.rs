//! misbehave-huge-alloc: a TEST plugin that misbehaves on purpose: allocates and touches 1 GiB (the host's memory limit must stop it).
//! It exists so the host's sandbox tests can prove this is contained. Never deploy it.

use mailpipe_plugin::{Action, Message, Needs, Plugin, PluginInfo};

struct Misbehave;

impl Plugin for Misbehave {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "misbehave-huge-alloc".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            needs: Needs::Headers,
        }
    }

    fn on_message(_msg: &Message) -> Result<Vec<Action>, String> {
        let bytes = std::hint::black_box(vec![1u8; 1 << 30]);
        let sum: u64 = bytes.iter().map(|&b| u64::from(b)).sum();
        Ok(vec![Action::AddFlags(vec![format!("$Sum{sum}")])])
    }
}

mailpipe_plugin::export!(Misbehave);
