//! misbehave-crlf-header: a TEST plugin that misbehaves on purpose: returns a header value containing CRLF (header injection). A valid SetSubject comes first: the host must discard the whole result, not just the bad action.
//! It exists so the host's sandbox tests can prove this is contained. Never deploy it.

use mailpipe_plugin::{Action, Header, Message, Needs, Plugin, PluginInfo};

struct Misbehave;

impl Plugin for Misbehave {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "misbehave-crlf-header".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            needs: Needs::Headers,
        }
    }

    fn on_message(_msg: &Message) -> Result<Vec<Action>, String> {
        Ok(vec![
            Action::SetSubject("this subject must not be applied".into()),
            Action::AddHeader(Header {
                name: "X-Injected".into(),
                value: "x\r\nBcc: victim@example.net".into(),
            }),
        ])
    }
}

mailpipe_plugin::export!(Misbehave);
