//! rules-filer: file and flag messages by rules on headers, addresses, subject and body.
//!
//! Configuration (rules are tried in order; every matching rule acts):
//!
//! ```toml
//! [[rules]]
//! name = "rust lists"           # used in error messages
//! match = "any"                 # "all" (default): every condition must hold; "any": one is enough
//! folder = "Lists/rust"         # optional: file into this folder ...
//! create = true                 # ... creating it when missing (default true)
//! flags = ["$Label1"]           # optional: flags/keywords to add, e.g. "\\Flagged"
//! stop = true                   # optional: no later rule, and no later plugin, runs (default false)
//! conditions = [
//!   { header = "List-Id", op = "contains", value = "rust-lang.org" },
//!   { address = "from", op = "regex", value = "@(.+\\.)?rust-lang\\.org$" },
//!   { subject = true, op = "contains", value = "[rust]", case_sensitive = false },
//!   { body = true, op = "exists" },
//! ]
//! ```
//!
//! A condition looks at one field: `header = "<name>"` (every field of that name), `address =
//! "from" | "to" | "cc" | "sender" | "reply-to"` (every address, e.g. "a@example.com"),
//! `subject = true` or `body = true` (text body, and HTML body if any). It holds when any of
//! those values passes `op`: "contains", "equals", "regex" (all with `value`; case-insensitive
//! unless `case_sensitive = true`) or "exists" (the field is present). A rule with no
//! conditions matches when `match = "all"`. Body conditions make the host fetch bodies.

use std::sync::OnceLock;

use mailpipe_plugin::{
    headers_all, log, Action, ConfigProblem, FolderTarget, Message, Needs, Plugin, PluginInfo,
};
use regex::{Regex, RegexBuilder};
use serde::Deserialize;

// ---- Configuration as written by the user ----

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    rules: Vec<serde_json::Value>, // parsed one by one so errors can name the rule
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    #[serde(rename = "match", default)]
    match_mode: MatchMode,
    #[serde(default)]
    conditions: Vec<RawCondition>,
    folder: Option<String>,
    #[serde(default = "yes")]
    create: bool,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    stop: bool,
}

#[derive(Deserialize, Default, PartialEq)]
#[serde(rename_all = "lowercase")]
enum MatchMode {
    Any,
    #[default]
    All,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    header: Option<String>,
    address: Option<AddressField>,
    #[serde(default)]
    subject: bool,
    #[serde(default)]
    body: bool,
    op: String,
    value: Option<String>,
    #[serde(default)]
    case_sensitive: bool,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum AddressField {
    From,
    To,
    Cc,
    Sender,
    ReplyTo,
}

fn yes() -> bool {
    true
}

// ---- Checked, ready-to-run rules ----

struct Rule {
    name: String,
    match_mode: MatchMode,
    conditions: Vec<Condition>,
    folder: Option<FolderTarget>,
    flags: Vec<String>,
    stop: bool,
}

struct Condition {
    field: Field,
    test: Test,
}

enum Field {
    Header(String),
    Address(AddressField),
    Subject,
    Body,
}

enum Test {
    Exists,
    /// The needle is lowercased already when the test is case-insensitive.
    Contains {
        needle: String,
        case_sensitive: bool,
    },
    Equals {
        value: String,
        case_sensitive: bool,
    },
    Regex(Regex),
}

/// Parse and check the configuration once per plugin instance (regexes are costly to build).
fn rules() -> Result<&'static [Rule], String> {
    static RULES: OnceLock<Result<Vec<Rule>, ConfigProblem>> = OnceLock::new();
    match RULES.get_or_init(load_rules) {
        Ok(rules) => Ok(rules),
        Err(problem) => Err(problem.message.clone()),
    }
}

/// The rules, or the first problem with them, named by its key ("rules.2.conditions.0").
fn load_rules() -> Result<Vec<Rule>, ConfigProblem> {
    let raw: RawConfig = mailpipe_plugin::config_checked()?;
    let mut rules = Vec::new();
    for (i, value) in raw.rules.into_iter().enumerate() {
        let label = match value.get("name").and_then(|n| n.as_str()) {
            Some(name) => format!("rule {:?}", name),
            None => format!("rule #{}", i + 1),
        };
        let problem = |key: String, e: String| ConfigProblem {
            key: Some(key),
            message: format!("{label}: {e}"),
        };
        let raw: RawRule = serde_json::from_value(value)
            .map_err(|e| problem(format!("rules.{i}"), e.to_string()))?;
        rules.push(check_rule(raw).map_err(|(j, e)| match j {
            Some(j) => problem(format!("rules.{i}.conditions.{j}"), e),
            None => problem(format!("rules.{i}"), e),
        })?);
    }
    Ok(rules)
}

/// A checked rule, or the problem with it (with the index of the condition it is about).
fn check_rule(raw: RawRule) -> Result<Rule, (Option<usize>, String)> {
    let conditions = raw
        .conditions
        .into_iter()
        .enumerate()
        .map(|(j, c)| check_condition(c).map_err(|e| (Some(j), e)))
        .collect::<Result<_, _>>()?;
    Ok(Rule {
        name: raw.name,
        match_mode: raw.match_mode,
        conditions,
        folder: raw.folder.map(|folder| FolderTarget {
            folder,
            create: raw.create,
        }),
        flags: raw.flags,
        stop: raw.stop,
    })
}

fn check_condition(raw: RawCondition) -> Result<Condition, String> {
    let mut fields = Vec::new();
    if let Some(name) = raw.header {
        fields.push(Field::Header(name));
    }
    if let Some(address) = raw.address {
        fields.push(Field::Address(address));
    }
    if raw.subject {
        fields.push(Field::Subject);
    }
    if raw.body {
        fields.push(Field::Body);
    }
    if fields.len() != 1 {
        return Err("each condition needs exactly one of `header`, `address`, `subject = true`, `body = true`".into());
    }
    let field = fields.remove(0);

    let case_sensitive = raw.case_sensitive;
    let value = || {
        raw.value
            .clone()
            .ok_or(format!("op {:?} needs a `value`", raw.op))
    };
    let test = match raw.op.as_str() {
        "exists" => Test::Exists,
        "contains" => Test::Contains {
            needle: fold(value()?, case_sensitive),
            case_sensitive,
        },
        "equals" => Test::Equals {
            value: fold(value()?, case_sensitive),
            case_sensitive,
        },
        "regex" => Test::Regex(
            RegexBuilder::new(&value()?)
                .case_insensitive(!case_sensitive)
                .build()
                .map_err(|e| format!("invalid regex: {e}"))?,
        ),
        other => {
            return Err(format!(
                "unknown op {other:?} (expected \"contains\", \"equals\", \"regex\" or \"exists\")"
            ))
        }
    };
    Ok(Condition { field, test })
}

fn fold(s: String, case_sensitive: bool) -> String {
    if case_sensitive {
        s
    } else {
        s.to_lowercase()
    }
}

// ---- Evaluation ----

impl Condition {
    /// Each field is read from the host when a condition asks for it.
    fn holds(&self, msg: &Message) -> bool {
        let values = self.field.values(msg);
        match &self.test {
            Test::Exists => !values.is_empty(),
            Test::Contains {
                needle,
                case_sensitive,
            } => values
                .iter()
                .any(|v| fold(v.to_string(), *case_sensitive).contains(needle.as_str())),
            Test::Equals {
                value,
                case_sensitive,
            } => values
                .iter()
                .any(|v| fold(v.trim().to_string(), *case_sensitive) == *value),
            Test::Regex(re) => values.iter().any(|v| re.is_match(v)),
        }
    }
}

impl Field {
    fn values(&self, msg: &Message) -> Vec<String> {
        let addresses =
            |list: Vec<mailpipe_plugin::Address>| list.into_iter().map(|a| a.address).collect();
        match self {
            Field::Header(name) => headers_all(msg, name),
            Field::Address(AddressField::From) => addresses(msg.from()),
            Field::Address(AddressField::To) => addresses(msg.to()),
            Field::Address(AddressField::Cc) => addresses(msg.cc()),
            Field::Address(AddressField::ReplyTo) => addresses(msg.reply_to()),
            Field::Address(AddressField::Sender) => addresses(msg.sender().into_iter().collect()),
            Field::Subject => msg.subject().into_iter().collect(),
            Field::Body => [msg.text_body(), msg.html_body()]
                .into_iter()
                .flatten()
                .collect(),
        }
    }
}

impl Rule {
    fn matches(&self, msg: &Message) -> bool {
        match self.match_mode {
            MatchMode::All => self.conditions.iter().all(|c| c.holds(msg)),
            MatchMode::Any => self.conditions.iter().any(|c| c.holds(msg)),
        }
    }
}

struct RulesFiler;

impl Plugin for RulesFiler {
    fn info() -> PluginInfo {
        // Only ask the host to fetch bodies when a rule looks at them. A broken configuration
        // is reported by `check_config`, and the host does not load the plugin then.
        let wants_body = rules().is_ok_and(|rules| {
            rules
                .iter()
                .flat_map(|r| &r.conditions)
                .any(|c| matches!(c.field, Field::Body))
        });
        PluginInfo {
            name: "rules-filer".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            needs: if wants_body {
                Needs::Bodies
            } else {
                Needs::Headers
            },
        }
    }

    fn check_config() -> Vec<ConfigProblem> {
        load_rules().err().into_iter().collect()
    }

    fn on_message(msg: &Message) -> Result<Vec<Action>, String> {
        let mut actions = Vec::new();
        for rule in rules()?.iter().filter(|r| r.matches(msg)) {
            log::debug(format!("rule {:?} matched", rule.name));
            if let Some(target) = &rule.folder {
                actions.push(Action::FileInto(target.clone()));
            }
            if !rule.flags.is_empty() {
                actions.push(Action::AddFlags(rule.flags.clone()));
            }
            if rule.stop {
                actions.push(Action::Stop);
                break;
            }
        }
        Ok(actions)
    }
}

mailpipe_plugin::export!(RulesFiler);
