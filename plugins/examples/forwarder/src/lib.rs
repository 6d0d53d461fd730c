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
    config_problem, matches_glob, Action, Address, ConfigProblem, Forward, ForwardMode, Message,
    Needs, Plugin, PluginInfo,
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
    /// `subject` in lower case.
    fn matches(&self, from: &[Address], subject: &str) -> bool {
        let from_ok = self
            .from
            .as_ref()
            .is_none_or(|pattern| from.iter().any(|a| matches_glob(pattern, &a.address)));
        let subject_ok = self
            .subject_contains
            .as_ref()
            .is_none_or(|needle| subject.contains(&needle.to_lowercase()));
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

/// The first rule that forwards to nobody.
fn empty_rule(config: &Config) -> Option<ConfigProblem> {
    let i = config.rules.iter().position(|r| r.to.is_empty())?;
    Some(config_problem(
        format!("rules.{i}.to"),
        format!("rule #{}: `to` must list at least one address", i + 1),
    ))
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

    fn check_config() -> Vec<ConfigProblem> {
        match mailpipe_plugin::config_checked::<Config>() {
            Ok(config) => empty_rule(&config).into_iter().collect(),
            Err(problem) => vec![problem],
        }
    }

    fn on_message(msg: &Message) -> Result<Vec<Action>, String> {
        let config: &Config = mailpipe_plugin::config_once!(Config)?;
        if let Some(problem) = empty_rule(config) {
            return Err(problem.message);
        }
        let (from, subject) = (msg.from(), msg.subject().unwrap_or_default().to_lowercase());
        Ok(config
            .rules
            .iter()
            .filter(|rule| rule.matches(&from, &subject))
            .map(Rule::action)
            .collect())
    }
}

mailpipe_plugin::export!(Forwarder);
