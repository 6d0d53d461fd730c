//! How results are shown: one readable block per message for people, and the documented,
//! stable JSON form (docs/JSON.md) that scripts and CI read from `mailpipe test --json` and
//! `mailpipe run --json`.

use serde_json::{json, Value};

use crate::model::decision::LogLevel;
use crate::model::message::Needs;
use crate::pipeline::{Decision, PluginStatus};

/// The JSON form of a decision (see docs/JSON.md).
pub fn decision_json(label: &str, d: &Decision) -> Value {
    let mut v = serde_json::to_value(d).expect("decision serialises");
    v["source"] = json!(label);
    v["discarded"] = json!(d.discarded());
    v
}

pub fn needs_name(n: Needs) -> &'static str {
    match n {
        Needs::Headers => "headers",
        Needs::Bodies => "bodies",
        Needs::Raw => "raw",
    }
}

fn level_name(l: LogLevel) -> &'static str {
    match l {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    }
}

/// Plugin log lines, tagged with plugin and message id, for stderr. Debug lines only with
/// `debug` (`MAILPIPE_DEBUG=1` for `mailpipe run`; always in `mailpipe test`).
pub fn log_lines(d: &Decision, debug: bool) -> Vec<String> {
    let id = d.message_id.as_deref().unwrap_or("(no message-id)");
    d.reports
        .iter()
        .flat_map(|r| {
            r.logs
                .iter()
                .filter(move |l| debug || l.level != LogLevel::Debug)
                .map(move |l| {
                    format!(
                        "[{}] {} <{}>: {}",
                        r.plugin,
                        level_name(l.level),
                        printable(id),
                        printable(&l.text)
                    )
                })
        })
        .collect()
}

/// Write a run's results to standard output. When the reader went away (`mailpipe run
/// --json | head`), the run ends there, quietly, like any Unix filter: state is transactional,
/// so ending at any point loses nothing (the SIGKILL tests show it). Rust ignores SIGPIPE,
/// and it stays ignored: sockets and plugin pipes must report a closed peer as an error, never
/// end the process.
pub fn stdout(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        tracing::warn!("cannot write to standard output: {e}");
    }
}

/// Where a decided message came from, for the fields of its log events.
#[derive(Debug, Clone, Copy, Default)]
pub struct Origin<'a> {
    pub account: Option<&'a str>,
    pub mailbox: &'a str,
    pub uid: Option<u32>,
}

/// The plugins' log lines of a decision as log events at their own level, and each plugin
/// failure as a warning with the plugin's own error text; fields: plugin, account, mailbox,
/// uid, message_id.
pub fn emit_logs(d: &Decision, at: Origin<'_>) {
    let id = printable(d.message_id.as_deref().unwrap_or(""));
    let account = at.account.unwrap_or("");
    for r in &d.reports {
        for l in &r.logs {
            let text = printable(&l.text);
            let plugin = &*r.plugin;
            macro_rules! event {
                ($lvl:ident) => {
                    tracing::$lvl!(plugin, account, mailbox = at.mailbox, uid = at.uid, message_id = %id, "{text}")
                };
            }
            match l.level {
                LogLevel::Debug => event!(debug),
                LogLevel::Info => event!(info),
                LogLevel::Warn => event!(warn),
                LogLevel::Error => event!(error),
            }
        }
        if let PluginStatus::Failed { error } = &r.status {
            tracing::warn!(
                plugin = &*r.plugin,
                account,
                mailbox = at.mailbox,
                uid = at.uid,
                message_id = %id,
                "plugin failed, its actions were discarded: {}",
                printable(&error.to_string())
            );
        }
    }
}

/// Text from a message or a plugin made safe for a terminal or a log line: control
/// characters (escape sequences, CR, LF) are shown escaped, never sent to the terminal.
pub fn printable(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// A readable block for one message.
pub fn human(label: &str, d: &Decision) -> String {
    let [subject, from] = d
        .email
        .first_values(["Subject", "From"])
        .map(Option::unwrap_or_default);
    let mut out = format!("{label}  {subject:?}  from {}\n", printable(&from));
    if d.discarded() {
        out.push_str("    -> discarded\n");
    }
    if let Some(r) = &d.refused {
        out.push_str(&format!(
            "    -> refused by {} (550 5.7.1 {})\n",
            r.plugin,
            r.reply_text()
        ));
    }
    for del in &d.deliveries {
        let flags = if d.flags.is_empty() {
            String::from("-")
        } else {
            d.flags.join(" ")
        };
        out.push_str(&format!(
            "    -> {}  [flags: {flags}]{}\n",
            del.folder,
            if d.rewritten { "  (rewritten)" } else { "" }
        ));
    }
    for o in &d.outgoing {
        out.push_str(&format!(
            "    -> {} to {} by {}\n",
            o.kind.label(),
            o.rcpt_to.join(", "),
            o.plugin
        ));
    }
    for r in &d.reports {
        match &r.status {
            PluginStatus::Failed { error: f } => out.push_str(&format!(
                "    !! plugin {} {}; its actions were discarded\n",
                r.plugin,
                printable(&f.to_string())
            )),
            PluginStatus::Applied { notes, .. } => {
                for n in notes {
                    out.push_str(&format!("    .. {}: {}\n", r.plugin, printable(n)));
                }
            }
            PluginStatus::Skipped => out.push_str(&format!(
                "    .. {} not run (stopped by {})\n",
                r.plugin,
                d.stopped_by.as_deref().unwrap_or("?")
            )),
        }
    }
    out
}

/// An error and its causes on one line, as `{:#}` would, but without a cause its parent
/// already quoted (a message ending in "...: No such file or directory" is not followed by
/// ": No such file or directory" again).
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.ends_with(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(super::printable("a\x1b[2Jb\r\nc"), "a\\u{1b}[2Jb\\r\\nc");
        assert_eq!(super::printable("Grüße"), "Grüße");
    }

    #[test]
    fn an_error_chain_says_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let quoted = anyhow::Error::new(io).context("cannot read a.wasm: No such file");
        assert_eq!(
            super::error_chain(&quoted),
            "cannot read a.wasm: No such file"
        );
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let plain = anyhow::Error::new(io).context("cannot read a.wasm");
        assert_eq!(
            super::error_chain(&plain),
            "cannot read a.wasm: No such file"
        );
    }
}
