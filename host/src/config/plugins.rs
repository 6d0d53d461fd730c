//! `[[plugin]]` tables and `[limits]`: which plugins run, with which sandbox limits,
//! recipients and config table, and where each table's keys are in the file. Kept apart from
//! `config/mod.rs` because it is a whole section of its own (types, defaults, range checks
//! and the per-plugin validation) that the rest of the config only hands its tables to.

use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use toml::Spanned;

use super::error::line_of;
use super::{ConfigError, ConfigText, MailSince, RecipientPattern};

/// Sandbox limits of one plugin. `[limits]` sets the defaults; a `[[plugin]]` may override.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PluginLimits {
    /// Wall-time budget for one `on-message` call (and for `info` at load time).
    pub timeout_ms: u64,
    /// Cap on the plugin's linear memory.
    pub memory_mb: u64,
    /// Cap on the number of actions one call may return.
    pub max_actions: usize,
    /// Cap on replies + forwards generated for one incoming message (all plugins together;
    /// only the `[limits]` value counts).
    pub max_outgoing_per_message: usize,
    /// Cap on the bytes (keys + values) a plugin keeps in its key-value state, in total.
    pub kv_max_bytes: u64,
    /// Cap on the number of keys a plugin keeps in its key-value state.
    pub kv_max_keys: u64,
    /// Cap on the size of one generated message (a reply, or a forward with the original);
    /// only the `[limits]` value counts.
    pub max_outgoing_bytes: usize,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            timeout_ms: 1000,
            memory_mb: 64,
            max_actions: 100,
            max_outgoing_per_message: 3,
            kv_max_bytes: 16 << 20,
            kv_max_keys: 100_000,
            max_outgoing_bytes: 25 << 20,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlugin {
    name: Spanned<String>,
    /// A component file; or `sieve`, a Sieve script for the built-in interpreter.
    path: Option<Spanned<String>>,
    sieve: Option<Spanned<String>>,
    /// Each account's active Sieve script from the state store (`mailpipe sieve`).
    account_sieve: Option<Spanned<bool>>,
    #[serde(default)]
    enabled: Option<bool>,
    timeout_ms: Option<u64>,
    memory_mb: Option<u64>,
    max_actions: Option<usize>,
    kv_max_bytes: Option<u64>,
    kv_max_keys: Option<u64>,
    allow_send_to: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    forward_automated: bool,
    send_about_mail_since: Option<Spanned<String>>,
    #[serde(default)]
    fresh_instance: bool,
    /// Keys with their places, so a plugin's complaint about one can point at its line.
    #[serde(default)]
    config: BTreeMap<Spanned<String>, toml::Value>,
}

/// Lines of a `[[plugin]]` table: its `name` and each top-level key of its `[plugin.config]`.
#[derive(Debug, Clone, Default)]
pub struct PluginLines {
    pub name: usize,
    pub config_keys: BTreeMap<String, usize>,
}

/// `FILE:LINE: plugin NAME: `KEY`: TEXT`, at the line of `key` in the plugin's config table,
/// else at its `name` (line 1 when the plugin is not in the file).
pub fn at_key(
    file: &Path,
    plugin: &str,
    lines: Option<&PluginLines>,
    key: Option<&str>,
    text: &str,
) -> String {
    let line = match (lines, key) {
        (Some(l), Some(k)) => l.of_key(k),
        (Some(l), None) => l.name,
        (None, _) => 1,
    };
    match key {
        Some(k) => format!("{}:{line}: plugin {plugin}: `{k}`: {text}", file.display()),
        None => format!("{}:{line}: plugin {plugin}: {text}", file.display()),
    }
}

impl PluginLines {
    /// The line of config key `key` (its top-level part: `rules` for `rules[2].folder`), else
    /// the line of the plugin's name.
    pub fn of_key(&self, key: &str) -> usize {
        let top = key.split(['.', '[']).next().unwrap_or(key);
        self.config_keys.get(top).copied().unwrap_or(self.name)
    }
}

/// What runs: a component from a file, or the built-in Sieve interpreter on a script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    /// `path`: the component file.
    Wasm,
    /// `path`: the Sieve script (read into `config` already, see `config::sieve`).
    Sieve,
    /// `account_sieve = true`: each account's active script from the state store, run by
    /// the built-in interpreter (`pipeline::account_sieve`); `path` is only a label.
    AccountSieve,
}

#[derive(Debug, Clone)]
pub struct PluginConfig {
    pub name: String,
    pub kind: PluginKind,
    /// The component file, or the Sieve script (`kind`).
    pub path: PathBuf,
    pub limits: PluginLimits,
    pub allow_send_to: Vec<RecipientPattern>,
    /// Allow forwards of list, bulk and auto-submitted mail (the loop marker check stays).
    pub forward_automated: bool,
    /// Which messages its replies and forwards may be about (`actions::since`).
    pub send_about_mail_since: MailSince,
    /// A new instance for every message (nothing in the guest's memory outlives a message)
    /// instead of reusing a warm one; see docs/PIPELINE.md.
    pub fresh_instance: bool,
    /// The plugin's own table, handed to it as JSON.
    pub config: serde_json::Value,
}

/// The enabled `[[plugin]]` tables, validated in file order (`defaults`: `[limits]`), and
/// where each is in the file, by plugin name.
pub(super) fn validate(
    file: &ConfigText,
    raw: &[RawPlugin],
    defaults: &PluginLimits,
) -> Result<(Vec<PluginConfig>, BTreeMap<String, PluginLines>), ConfigError> {
    let mut names = HashSet::new();
    let mut plugins = Vec::new();
    let mut plugin_lines = BTreeMap::new();
    for p in raw {
        if p.enabled == Some(false) {
            continue;
        }
        let name = p.name.get_ref().clone();
        if name.is_empty() || name.chars().any(|c| c.is_control() || c == '\0') {
            return Err(file.invalid(
                p.name.span(),
                "plugin.name",
                "must be a non-empty printable name".into(),
            ));
        }
        if !names.insert(name.clone()) {
            return Err(file.invalid(
                p.name.span(),
                "plugin.name",
                format!("plugin name {name:?} is used twice"),
            ));
        }
        let (plugin, lines) = plugin(file, p, name, defaults)?;
        plugin_lines.insert(plugin.name.clone(), lines);
        plugins.push(plugin);
    }
    Ok((plugins, plugin_lines))
}

/// One `[[plugin]]` table (its `name` checked already) and its lines in the file.
fn plugin(
    file: &ConfigText,
    p: &RawPlugin,
    name: String,
    defaults: &PluginLimits,
) -> Result<(PluginConfig, PluginLines), ConfigError> {
    let account_sieve = p.account_sieve.as_ref().filter(|a| *a.get_ref());
    if let (Some(a), true) = (account_sieve, p.path.is_some() || p.sieve.is_some()) {
        return Err(file.invalid(
            a.span(),
            "plugin.account_sieve",
            "give one of `path`, `sieve` and `account_sieve`, not several".into(),
        ));
    }
    let (kind, plugin_path) = match (&p.path, &p.sieve) {
        (None, None) if account_sieve.is_some() => {
            (PluginKind::AccountSieve, PathBuf::from("account-sieve"))
        }
        (Some(path), None) => {
            let plugin_path = file.resolve(path);
            if !plugin_path.is_file() {
                return Err(file.invalid(path.span(), "plugin.path", {
                    // The repository's own plugins are built by a script; a user's
                    // plugin by its project (`mailpipe new` says how).
                    let ours = plugin_path.components().any(|c| c.as_os_str() == "target")
                        && plugin_path.parent().and_then(|d| d.file_name())
                            == Some(std::ffi::OsStr::new("plugins"));
                    let hint = if ours {
                        " (build the plugins with scripts/build-plugins.sh)"
                    } else {
                        " (build the plugin first, or fix the path)"
                    };
                    format!("{} does not exist{hint}", plugin_path.display())
                }));
            }
            (PluginKind::Wasm, plugin_path)
        }
        (None, Some(script)) => (
            PluginKind::Sieve,
            super::sieve::resolve_script(file.base, script.get_ref()),
        ),
        (Some(_), Some(script)) => {
            return Err(file.invalid(
                script.span(),
                "plugin.sieve",
                "give either `path` (a plugin component) or `sieve` (a Sieve script), not both"
                    .into(),
            ))
        }
        (None, None) => {
            return Err(file.invalid(
                p.name.span(),
                "plugin",
                "needs `path` (a plugin component, .wasm), `sieve` (a Sieve script) or \
                 `account_sieve = true` (each account's active script)"
                    .into(),
            ))
        }
    };
    let limits = PluginLimits {
        timeout_ms: p.timeout_ms.unwrap_or(defaults.timeout_ms),
        memory_mb: p.memory_mb.unwrap_or(defaults.memory_mb),
        max_actions: p.max_actions.unwrap_or(defaults.max_actions),
        max_outgoing_per_message: defaults.max_outgoing_per_message,
        kv_max_bytes: p.kv_max_bytes.unwrap_or(defaults.kv_max_bytes),
        kv_max_keys: p.kv_max_keys.unwrap_or(defaults.kv_max_keys),
        max_outgoing_bytes: defaults.max_outgoing_bytes,
    };
    check_limits(&limits).map_err(|m| file.invalid(p.name.span(), "plugin", m))?;
    let allow_send_to = match &p.allow_send_to {
        None => vec![RecipientPattern::Sender],
        Some(list) => list
            .iter()
            .map(|s| {
                RecipientPattern::parse(s.get_ref())
                    .map_err(|m| file.invalid(s.span(), "plugin.allow_send_to", m))
            })
            .collect::<Result<_, _>>()?,
    };
    let table: toml::Table = p
        .config
        .iter()
        .map(|(k, v)| (k.get_ref().clone(), v.clone()))
        .collect();
    let mut config = serde_json::to_value(&table)
        .map_err(|e| file.invalid(p.name.span(), "plugin.config", e.to_string()))?;
    if let (PluginKind::Sieve, Some(script)) = (kind, &p.sieve) {
        config = super::sieve::sieve_table(&plugin_path, config)
            .map_err(|m| file.invalid(script.span(), "plugin.sieve", m))?;
    }
    if let (PluginKind::AccountSieve, Some(a)) = (kind, account_sieve) {
        config = super::sieve::account_table(file.base, config)
            .map_err(|m| file.invalid(a.span(), "plugin.account_sieve", m))?;
    }
    let mut config_keys: BTreeMap<String, usize> = p
        .config
        .keys()
        .map(|k| (k.get_ref().clone(), line_of(file.text, k.span().start)))
        .collect();
    // The interpreter reports a script's errors under the key "sieve": at its line.
    if let Some(script) = &p.sieve {
        config_keys.insert("sieve".into(), line_of(file.text, script.span().start));
    }
    let lines = PluginLines {
        name: line_of(file.text, p.name.span().start),
        config_keys,
    };
    let send_about_mail_since = match &p.send_about_mail_since {
        None => Default::default(),
        Some(s) => MailSince::parse(s.get_ref())
            .map_err(|m| file.invalid(s.span(), "plugin.send_about_mail_since", m))?,
    };
    let plugin = PluginConfig {
        name,
        kind,
        path: plugin_path,
        limits,
        allow_send_to,
        forward_automated: p.forward_automated,
        send_about_mail_since,
        fresh_instance: p.fresh_instance,
        config,
    };
    Ok((plugin, lines))
}

/// Whether every limit is in its range; Err(what is not).
pub(super) fn check_limits(l: &PluginLimits) -> Result<(), String> {
    if l.timeout_ms == 0 || l.timeout_ms > 600_000 {
        return Err(format!(
            "timeout_ms must be 1..=600000, not {}",
            l.timeout_ms
        ));
    }
    if l.memory_mb == 0 || l.memory_mb > 4096 {
        return Err(format!("memory_mb must be 1..=4096, not {}", l.memory_mb));
    }
    if l.max_actions == 0 || l.max_actions > 100_000 {
        return Err(format!(
            "max_actions must be 1..=100000, not {}",
            l.max_actions
        ));
    }
    if l.kv_max_bytes == 0 || l.kv_max_bytes > 1 << 40 {
        return Err(format!(
            "kv_max_bytes must be 1..=1099511627776, not {}",
            l.kv_max_bytes
        ));
    }
    if l.kv_max_keys == 0 || l.kv_max_keys > 1 << 32 {
        return Err(format!(
            "kv_max_keys must be 1..=4294967296, not {}",
            l.kv_max_keys
        ));
    }
    if l.max_outgoing_bytes < 64 << 10 || l.max_outgoing_bytes > 1 << 30 {
        return Err(format!(
            "max_outgoing_bytes must be 65536..=1073741824, not {}",
            l.max_outgoing_bytes
        ));
    }
    Ok(())
}
