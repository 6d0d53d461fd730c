//! misbehave-kv-then-fail: a TEST plugin that misbehaves on purpose: writes kv key "k" then fails (the host must not persist the write).
//! It exists so the host's sandbox tests can prove this is contained. Never deploy it.

use mailpipe_plugin::{Action, Message, Needs, Plugin, PluginInfo};

struct Misbehave;

impl Plugin for Misbehave {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "misbehave-kv-then-fail".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            needs: Needs::Headers,
        }
    }

    fn on_message(_msg: &Message) -> Result<Vec<Action>, String> {
        mailpipe_plugin::kv::set_string("k", "written-by-a-failed-call", None);
        Err("boom".into())
    }
}

mailpipe_plugin::export!(Misbehave);
