//! {{name}}: a mailpipe plugin. Files messages whose subject contains a word into a folder
//! and flags them; leaves every other message alone.
//!
//! Config (its `[plugin.config]` table in the mailpipe config, or `--config KEY=VALUE` in
//! `mailpipe test`):
//!     word = "invoice"      # case-insensitive; default "invoice"
//!     folder = "Invoices"   # created when missing; default "Invoices"

use mailpipe_plugin::{
    config_problem, Action, ConfigProblem, FolderTarget, Message, Needs, Plugin, PluginInfo,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    word: String,
    folder: String,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            word: "invoice".into(),
            folder: "Invoices".into(),
        }
    }
}

struct Filer;

impl Plugin for Filer {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "{{name}}".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            // Only headers: the host does not decode bodies for this plugin.
            needs: Needs::Headers,
        }
    }

    // Called when the plugin is loaded and by `mailpipe check`, which shows each problem at
    // its line of the config file; a plugin with problems is not loaded.
    fn check_config() -> Vec<ConfigProblem> {
        match mailpipe_plugin::config_checked::<Config>() {
            Ok(config) if config.folder.trim().is_empty() => {
                vec![config_problem("folder", "must name a folder")]
            }
            Ok(_) => Vec::new(),
            Err(problem) => vec![problem],
        }
    }

    fn on_message(msg: &Message) -> Result<Vec<Action>, String> {
        // Parsed once per instance; the host reuses instances from message to message.
        let config: &Config = mailpipe_plugin::config_once!(Config)?;
        // Each part of the message is read from the host when asked for (here: the subject).
        let subject = msg.subject().unwrap_or_default().to_lowercase();
        if config.word.is_empty() || !subject.contains(&config.word.to_lowercase()) {
            return Ok(vec![]);
        }
        mailpipe_plugin::log::info(format!("filing into {}", config.folder));
        Ok(vec![
            Action::FileInto(FolderTarget {
                folder: config.folder.clone(),
                create: true,
            }),
            Action::AddFlags(vec!["$Invoice".into()]),
        ])
    }
}

mailpipe_plugin::export!(Filer);
