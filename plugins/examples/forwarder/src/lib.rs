//! forwarder: forward matching messages to other addresses.
//!
//! Configuration (every matching rule forwards; a rule without conditions matches everything):
//!
//! ```toml
//! [[rules]]
//! from = "*@example.com"          # optional: glob on the From address (`*`, `?`, any case)
//! subject_contains = "invoice"    # optional: case-insensitive substring of the subject
//! to = ["accounting@example.org"] # required: where to send it
//! mode = "attachment"             # "redirect" (default): resend as is; "attachment": wrap it
//! note = "Forwarded by mailpipe"  # optional: text of the wrapping message (attachment mode)
//! ```
//!
//! The host decides which recipients are allowed; forwarding elsewhere fails the message.

use mailpipe_plugin::{
    matches_glob, Action, Forward, ForwardMode, Message, Needs, Plugin, PluginInfo,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    from: Option<String>,
    subject_contains: Option<String>,
    to: Vec<String>,
    #[serde(default)]
    mode: Mode,
    note: Option<String>,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Mode {
    #[default]
    Redirect,
    Attachment,
}

impl Rule {
    fn matches(&self, msg: &Message) -> bool {
        let from_ok = self
            .from
            .as_ref()
            .is_none_or(|pattern| msg.from.iter().any(|a| matches_glob(pattern, &a.address)));
        let subject_ok = self.subject_contains.as_ref().is_none_or(|needle| {
            let subject = msg.subject.as_deref().unwrap_or("").to_lowercase();
            subject.contains(&needle.to_lowercase())
        });
        from_ok && subject_ok
    }

    fn action(&self) -> Action {
        Action::Forward(Forward {
            to: self.to.clone(),
            mode: match self.mode {
                Mode::Redirect => ForwardMode::Redirect,
                Mode::Attachment => ForwardMode::Attachment,
            },
            // A redirected message is resent unchanged, so a note only goes with attachments.
            note: self.note.clone().filter(|_| self.mode == Mode::Attachment),
        })
    }
}

struct Forwarder;

impl Plugin for Forwarder {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "forwarder".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            needs: Needs::Headers,
        }
    }

    fn on_message(msg: Message) -> Result<Vec<Action>, String> {
        let config: Config = mailpipe_plugin::config()?;
        if let Some(i) = config.rules.iter().position(|r| r.to.is_empty()) {
            return Err(format!(
                "rule #{}: `to` must list at least one address",
                i + 1
            ));
        }
        Ok(config
            .rules
            .iter()
            .filter(|rule| rule.matches(&msg))
            .map(Rule::action)
            .collect())
    }
}

mailpipe_plugin::export!(Forwarder);
