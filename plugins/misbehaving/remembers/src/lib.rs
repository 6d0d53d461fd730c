//! misbehave-remembers: a TEST plugin that keeps what it saw of earlier messages in a global
//! and tells the host through a header (X-Seen-Before: number of earlier calls of this
//! instance, X-Last-Subject: the previous message's subject); it traps on a subject
//! containing "trap". The host's tests use it to show what instance reuse means: a warm
//! instance remembers, a trapped one is replaced, `fresh_instance = true` forgets. Never deploy it.

use std::sync::Mutex;

use mailpipe_plugin::{Action, Header, Message, Needs, Plugin, PluginInfo};

static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Remembers;

impl Plugin for Remembers {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "misbehave-remembers".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            needs: Needs::Headers,
        }
    }

    fn on_message(msg: &Message) -> Result<Vec<Action>, String> {
        let subject = msg.subject().unwrap_or_default();
        if subject.contains("trap") {
            panic!("asked to trap");
        }
        let mut seen = SEEN.lock().unwrap();
        let mut actions = vec![Action::SetHeader(Header {
            name: "X-Seen-Before".into(),
            value: seen.len().to_string(),
        })];
        if let Some(last) = seen.last() {
            actions.push(Action::SetHeader(Header {
                name: "X-Last-Subject".into(),
                value: last.clone(),
            }));
        }
        seen.push(subject);
        Ok(actions)
    }
}

mailpipe_plugin::export!(Remembers);
