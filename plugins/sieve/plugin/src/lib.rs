//! sieve: runs a Sieve script (RFC 5228 and the extensions `mailpipe_sieve::CAPABILITIES`
//! lists) as a mailpipe plugin. The host reads the script file named by `sieve = "FILE"` and
//! hands it over in the configuration:
//!
//! ```toml
//! script = "require \"fileinto\"; ..."   # the script's text (the host fills it in)
//! script_name = "/home/me/.dovecot.sieve"  # for error messages
//! includes = { common = "..." }            # scripts `include` may name (:personal)
//! global_includes = { spam = "..." }       # and `include :global`
//! addresses = ["me@example.com"]           # your addresses, for vacation (optional)
//! spamtest_header = "X-Spam-Score"         # where spamtest reads a score (optional)
//! spamtest_max = 15.0
//! virustest_header = "X-Virus-Score"       # likewise for virustest (optional)
//! virustest_max = 5.0
//! folder_separator = "."                   # the separator the script's folder names use
//! ```
//!
//! The script is compiled once per instance. What it decides becomes contract actions: keep,
//! file-into (copy-into for :copy), discard, add-flags, forward in redirect mode, reply for
//! vacation (one per sender per period, remembered in the plugin's key-value store), notify
//! for enotify's mailto (contract 0.3), and header edits. docs/SIEVE.md lists what differs from Pigeonhole and why.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use mailpipe_plugin::bindings::mailpipe::plugin::types::{Notification, Stage};
use mailpipe_plugin::{
    config_problem, kv, log, Action, ConfigProblem, FolderTarget, Forward, ForwardMode, Header,
    Message, Needs, Plugin, PluginInfo, Reply,
};
use mailpipe_sieve::{compile, HeaderEdit, Input, Options, Outcome, ScoreHeader, Script, Settings};
use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Config {
    script: String,
    #[serde(default)]
    script_name: Option<String>,
    #[serde(default)]
    includes: BTreeMap<String, String>,
    #[serde(default)]
    global_includes: BTreeMap<String, String>,
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(default)]
    spamtest_header: Option<String>,
    #[serde(default)]
    spamtest_max: Option<f64>,
    #[serde(default)]
    virustest_header: Option<String>,
    #[serde(default)]
    virustest_max: Option<f64>,
    #[serde(default)]
    folder_separator: Option<String>,
    #[serde(default)]
    domain: Option<String>,
}

struct Loaded {
    config: Config,
    script: Script,
    settings: Settings,
}

fn load() -> Result<Loaded, String> {
    let config: Config = mailpipe_plugin::config()?;
    let opts = Options::with_includes(&config.includes, &config.global_includes);
    let name = config
        .script_name
        .clone()
        .unwrap_or_else(|| "script".into());
    let script = compile(&config.script, &opts).map_err(|e| e.display_in(&name))?;
    let score = |h: &Option<String>, max: Option<f64>, default: f64| {
        h.as_ref().map(|h| ScoreHeader {
            header: h.clone(),
            max: max.unwrap_or(default),
        })
    };
    let settings = Settings {
        spamtest: score(&config.spamtest_header, config.spamtest_max, 10.0),
        virustest: score(&config.virustest_header, config.virustest_max, 5.0),
        addresses: config.addresses.clone(),
        ..Settings::default()
    };
    Ok(Loaded {
        config,
        script,
        settings,
    })
}

fn loaded() -> Result<&'static Loaded, String> {
    static LOADED: OnceLock<Result<Loaded, String>> = OnceLock::new();
    LOADED.get_or_init(load).as_ref().map_err(Clone::clone)
}

struct Sieve;

impl Plugin for Sieve {
    fn info() -> PluginInfo {
        // A script that never reads a body lets the host fetch headers only.
        let needs = match loaded() {
            Ok(l) if !l.script.reads_body => Needs::Headers,
            // body :raw and :content read the raw message (its MIME parts).
            _ => Needs::Raw,
        };
        PluginInfo {
            name: "sieve".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            needs,
        }
    }

    fn check_config() -> Vec<ConfigProblem> {
        match load() {
            Ok(_) => Vec::new(),
            Err(e) => vec![config_problem("sieve", e)],
        }
    }

    fn on_message(msg: &Message) -> Result<Vec<Action>, String> {
        let l = loaded()?;
        let mut input = MessageInput::new(msg, &l.config);
        let outcome = mailpipe_sieve::run(&l.script, &mut input, &l.settings)
            .map_err(|e| format!("Sieve run-time error (the message is kept): {e}"))?;
        for line in &outcome.trace {
            log::debug(line.clone());
        }
        Ok(actions(msg, &l.config, outcome))
    }
}

mailpipe_plugin::export!(Sieve);

/// FNV-1a, to keep key-value keys short whatever the handle's length.
fn fnv(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn folder_name(config: &Config, folder: &str) -> String {
    match config.folder_separator.as_deref() {
        Some(sep) if !sep.is_empty() && sep != "/" => folder.replace(sep, "/"),
        _ => folder.to_string(),
    }
}

fn actions(msg: &Message, config: &Config, o: Outcome) -> Vec<Action> {
    if let Some(reason) = o.reject {
        // Refused at delivery: the sending server returns the message with the reason
        // (the interpreter made sure nothing else was decided for it).
        return vec![Action::Refuse(reason)];
    }
    let mailbox = msg.mailbox();
    let mut out = Vec::new();
    // Where each store goes (None: the message's own mailbox), one entry per place: a later
    // store into the same place gives it its flags, as Pigeonhole merges duplicate stores.
    let mut places: Vec<(Option<FolderTarget>, Vec<String>)> = Vec::new();
    let mut place = |target: Option<FolderTarget>, fl: &[String]| {
        let same = |p: &Option<FolderTarget>| match (p, &target) {
            (None, None) => true,
            (Some(a), Some(b)) => a.folder == b.folder,
            _ => false,
        };
        match places.iter_mut().find(|(p, _)| same(p)) {
            Some((p, flags)) => {
                if let (Some(p), Some(t)) = (p.as_mut(), &target) {
                    p.create |= t.create;
                }
                *flags = fl.to_vec();
            }
            None => places.push((target, fl.to_vec())),
        }
    };
    for s in &o.stores {
        let target = s.folder.as_ref().map(|f| FolderTarget {
            folder: folder_name(config, f),
            create: s.create,
        });
        let own = target.as_ref().is_some_and(|t| {
            t.folder.eq_ignore_ascii_case(&mailbox)
                && (t.folder.eq_ignore_ascii_case("INBOX") || t.folder == mailbox)
        });
        place(if own { None } else { target }, &s.flags);
    }
    if o.implicit_keep {
        place(None, &o.implicit_flags);
    }
    let mut flags: Vec<String> = Vec::new();
    for (target, fl) in &places {
        for f in fl {
            if !flags.iter().any(|x| x.eq_ignore_ascii_case(f)) {
                flags.push(f.clone());
            }
        }
        match target {
            // The implicit keep needs no action (other plugins may still decide).
            None if o.implicit_keep => {}
            None => out.push(Action::Keep),
            // Only :copy stores leave the implicit keep standing: the message stays.
            Some(t) if o.implicit_keep => out.push(Action::CopyInto(t.clone())),
            Some(t) => out.push(Action::FileInto(t.clone())),
        }
    }
    if !o.implicit_keep && o.stores.is_empty() {
        out.push(Action::Discard);
    }
    if !flags.is_empty() {
        out.push(Action::AddFlags(flags));
    }
    for to in &o.redirects {
        out.push(Action::Forward(Forward {
            to: vec![to.clone()],
            mode: ForwardMode::Redirect,
            note: None,
        }));
    }
    for n in &o.notifications {
        if n.from.is_some() {
            log::debug(
                "notify :from is not used: the host writes From from the account's identity",
            );
        }
        let mut headers = Vec::new();
        match n.importance {
            1 => headers.push(Header {
                name: "Importance".into(),
                value: "high".into(),
            }),
            3 => headers.push(Header {
                name: "Importance".into(),
                value: "low".into(),
            }),
            _ => {}
        }
        out.push(Action::Notify(Notification {
            to: n.to.clone(),
            subject: n.subject.as_deref().map(clean),
            text: n.text.clone(),
            headers,
        }));
    }
    for edit in o.header_edits {
        match edit {
            HeaderEdit::Add { name, value, .. } => {
                out.push(Action::AddHeader(Header { name, value }))
            }
            HeaderEdit::Replace { name, survivors } => {
                out.push(Action::RemoveHeader(name.clone()));
                for value in survivors {
                    out.push(Action::AddHeader(Header {
                        name: name.clone(),
                        value,
                    }));
                }
            }
        }
    }
    for (key, seconds) in &o.duplicate_marks {
        kv::set(&format!("dup:{}", fnv(key)), b"1", Some((*seconds).max(1)));
    }
    if let Some(v) = o.vacation {
        let key = format!("vacation:{}:{}", fnv(&v.handle), v.to.to_ascii_lowercase());
        if v.period_seconds > 0 && kv::get(&key).is_some() {
            log::debug(format!(
                "vacation: {} was answered less than {} s ago",
                v.to, v.period_seconds
            ));
        } else {
            if v.period_seconds > 0 {
                kv::set(&key, b"1", Some(v.period_seconds));
            }
            if v.from.is_some() {
                log::debug(
                    "vacation :from is not used: the host writes From from the account's identity",
                );
            }
            let (text, html) = if v.mime {
                mime_reason(&v.reason)
            } else {
                (v.reason.clone(), None)
            };
            out.push(Action::Reply(Reply {
                subject: Some(clean(&v.subject)),
                text,
                html,
                headers: Vec::new(),
            }));
        }
    }
    out
}

/// A header-safe line: CR, LF and other controls become spaces.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// `vacation :mime`: the reason is a MIME entity; its body is the reply's text (or HTML).
fn mime_reason(reason: &str) -> (String, Option<String>) {
    let (head, body) = reason
        .split_once("\r\n\r\n")
        .or_else(|| reason.split_once("\n\n"))
        .unwrap_or(("", reason));
    if head.to_ascii_lowercase().contains("text/html") {
        (String::new(), Some(body.to_string()))
    } else {
        (body.to_string(), None)
    }
}

/// The message as the interpreter reads it, each part fetched from the host once.
struct MessageInput<'a> {
    msg: &'a Message,
    config: &'a Config,
    envelope: Option<mailpipe_plugin::Envelope>,
}

impl<'a> MessageInput<'a> {
    fn new(msg: &'a Message, config: &'a Config) -> Self {
        MessageInput {
            msg,
            config,
            envelope: None,
        }
    }

    fn envelope(&mut self) -> &mailpipe_plugin::Envelope {
        if self.envelope.is_none() {
            self.envelope = Some(self.msg.envelope());
        }
        self.envelope.as_ref().expect("just filled")
    }
}

impl Input for MessageInput<'_> {
    fn headers(&mut self) -> Vec<(String, String)> {
        self.msg
            .headers()
            .into_iter()
            .map(|h| (h.name, h.value))
            .collect()
    }

    fn header(&mut self, name: &str) -> Vec<String> {
        self.msg.header_all(name)
    }

    fn envelope_from(&mut self) -> Option<String> {
        // The address alone: a Return-Path may carry a comment inside its brackets.
        let rp = self.envelope().return_path.clone()?;
        Some(
            mailpipe_sieve::address::parse_list(&rp)
                .into_iter()
                .next()
                .unwrap_or_default(),
        )
    }

    fn envelope_to(&mut self) -> Option<String> {
        self.envelope()
            .recipients
            .first()
            .cloned()
            .or_else(|| self.config.addresses.first().cloned())
    }

    fn size(&mut self) -> u64 {
        self.msg.size()
    }

    fn body_text(&mut self) -> Vec<String> {
        // A message without a body has no text to match (not even "").
        let raw = self.msg.raw();
        let has_body = raw.starts_with(b"\n")
            || raw.starts_with(b"\r\n")
            || raw.windows(2).any(|w| w == b"\n\n")
            || raw.windows(4).any(|w| w == b"\r\n\r\n");
        if !has_body {
            return Vec::new();
        }
        self.msg
            .text_body()
            .into_iter()
            .chain(self.msg.html_body())
            .filter(|t| !t.is_empty())
            .collect()
    }

    fn body_raw(&mut self) -> String {
        let raw = self.msg.raw();
        let text = String::from_utf8_lossy(&raw);
        let body = text
            .split_once("\r\n\r\n")
            .or_else(|| text.split_once("\n\n"))
            .map_or("", |(_, b)| b);
        body.to_string()
    }

    fn raw_message(&mut self) -> Vec<u8> {
        self.msg.raw()
    }

    fn mailbox_exists(&mut self, name: &str) -> bool {
        // The contract does not list folders: only the message's own mailbox is known to exist.
        let name = folder_name(self.config, name);
        name.eq_ignore_ascii_case(&self.msg.mailbox()) || name.eq_ignore_ascii_case("INBOX")
    }

    fn now_ms(&mut self) -> i64 {
        mailpipe_plugin::now_ms()
    }

    fn duplicate_seen(&mut self, key: &str) -> bool {
        kv::get(&format!("dup:{}", fnv(key))).is_some()
    }

    fn at_delivery(&mut self) -> bool {
        self.msg.stage() == Stage::Delivery
    }

    fn environment(&mut self, item: &str) -> Option<String> {
        Some(match item {
            "domain" => match &self.config.domain {
                Some(d) => d.clone(),
                None => self.envelope_to()?.rsplit_once('@')?.1.to_string(),
            },
            "host" => "localhost".into(),
            "location" => "MS".into(),
            "name" => "mailpipe".into(),
            // RFC 5183: "during" delivery, "post" after it.
            "phase" if self.at_delivery() => "during".into(),
            "phase" => "post".into(),
            "version" => env!("CARGO_PKG_VERSION").into(),
            _ => return None,
        })
    }
}
