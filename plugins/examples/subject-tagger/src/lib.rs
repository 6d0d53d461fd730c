//! subject-tagger: mark mail from outside your own domains, e.g. "[EXT] Invoice".
//!
//! Configuration:
//!
//! ```toml
//! tag = "[EXT]"                     # required: prefix added to the subject
//! when_from_not = ["*@example.com"] # globs of internal senders; mail from anyone else is tagged
//! header = "X-External"             # optional: also set this header field ...
//! header_value = "yes"              # ... to this value (default "yes")
//! ```
//!
//! A subject that already contains the tag (e.g. "Re: [EXT] Invoice") is left alone.

use mailpipe_plugin::{
    config_problem, header_safe, matches_glob, Action, ConfigProblem, Header, Message, Needs,
    Plugin, PluginInfo,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    tag: String,
    #[serde(default)]
    when_from_not: Vec<String>,
    header: Option<String>,
    header_value: Option<String>,
}

struct SubjectTagger;

impl Plugin for SubjectTagger {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "subject-tagger".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            needs: Needs::Headers,
        }
    }

    fn check_config() -> Vec<ConfigProblem> {
        match mailpipe_plugin::config_checked::<Config>() {
            Ok(config) if header_safe(&config.tag).is_empty() => {
                vec![config_problem("tag", "must not be empty")]
            }
            Ok(_) => Vec::new(),
            Err(problem) => vec![problem],
        }
    }

    fn on_message(msg: &Message) -> Result<Vec<Action>, String> {
        let config: &Config = mailpipe_plugin::config_once!(Config)?;
        let tag = header_safe(&config.tag);
        if tag.is_empty() {
            return Err("`tag` must not be empty".into());
        }

        // Internal means: every From address matches one of the globs (and there is one).
        let from = msg.from();
        let internal = !from.is_empty()
            && from.iter().all(|a| {
                config
                    .when_from_not
                    .iter()
                    .any(|glob| matches_glob(glob, &a.address))
            });
        if internal {
            return Ok(vec![]);
        }

        let mut actions = Vec::new();
        // Inbound subject and config text go into header values: made header-safe (no CR/LF,
        // bounded length), or the host would refuse the whole result.
        let subject = header_safe(&msg.subject().unwrap_or_default());
        if !subject.to_lowercase().contains(&tag.to_lowercase()) {
            actions.push(Action::SetSubject(header_safe(&format!("{tag} {subject}"))));
        }
        if let Some(name) = &config.header {
            let value = config.header_value.as_deref().unwrap_or("yes");
            actions.push(Action::SetHeader(Header {
                name: name.clone(),
                value: header_safe(value),
            }));
        }
        Ok(actions)
    }
}

mailpipe_plugin::export!(SubjectTagger);
