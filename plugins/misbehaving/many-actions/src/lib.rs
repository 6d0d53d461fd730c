//! misbehave-many-actions: a TEST plugin that misbehaves on purpose: returns 10,000 actions (the host must cap the number of actions).
//! It exists so the host's sandbox tests can prove this is contained. Never deploy it.

use mailpipe_plugin::{Action, Message, Needs, Plugin, PluginInfo};

struct Misbehave;

impl Plugin for Misbehave {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "misbehave-many-actions".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            needs: Needs::Headers,
        }
    }

    fn on_message(_msg: &Message) -> Result<Vec<Action>, String> {
        Ok((0..10_000)
            .map(|i| Action::AddFlags(vec![format!("$Flag{i}")]))
            .collect())
    }
}

mailpipe_plugin::export!(Misbehave);
