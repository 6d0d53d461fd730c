//! What a decision changes in the state store: one `MessageCommit` per message (plugin
//! state, queued mail, the processed mark with a summary and each plugin's decision in
//! brief). Below the sources and the runner, which both commit decisions.

use crate::model::decision::Action;
use crate::pipeline::{Decision, PluginStatus};
use crate::state::{MessageCommit, OutboxEntry};

/// What a decision changes in the state store.
pub fn commit_for(d: &Decision, now: u64) -> MessageCommit {
    let summary = serde_json::json!({
        "message_id": d.message_id,
        "deliveries": d.deliveries.iter().map(|x| &x.folder).collect::<Vec<_>>(),
        "outgoing": d.outgoing.iter().map(|o| &o.id).collect::<Vec<_>>(),
        "failed_plugins": d.failed_plugins().map(|r| &r.plugin).collect::<Vec<_>>(),
        // A delivery refused: what a repeated attempt is answered again (`run::deliver`).
        "refused": d.refused.as_ref().map(|r| r.reply_text()),
        // What each plugin decided, for `mailpipe explain`.
        "plugins": decisions_brief(d),
        "at_ms": now,
    });
    MessageCommit {
        message_key: d.message_key.clone(),
        also_processed: Vec::new(),
        summary: summary.to_string(),
        kv: d.kv.clone(),
        outbox: d
            .outgoing
            .iter()
            .map(|o| {
                let mut entry = OutboxEntry::new(
                    &o.id,
                    &d.message_key,
                    &o.plugin,
                    &o.mail_from,
                    o.rcpt_to.clone(),
                    now,
                );
                entry.automatic = matches!(
                    o.kind,
                    crate::actions::OutgoingKind::Reply | crate::actions::OutgoingKind::Notify
                );
                (entry, o.raw.clone())
            })
            .collect(),
        checkpoint: None,
        pending: None,
        durable: true,
        plugin_failed: None,
        message_id: d.message_id.clone(),
    }
}

/// What each plugin decided, kept with the processed mark for `mailpipe explain`: one line
/// per plugin, actions in brief ("file-into Lists/rust", "reply: Out of office"). Built as
/// plain text: this runs for every message, and JSON values per action cost ~5 µs a message.
pub fn decisions_brief(d: &Decision) -> Vec<String> {
    use std::fmt::Write as _;
    d.reports
        .iter()
        .map(|r| {
            let mut line = match &r.script {
                Some(script) => format!("{} ({script}):", r.plugin),
                None => format!("{}:", r.plugin),
            };
            match &r.status {
                PluginStatus::Failed { error } => {
                    let _ = write!(line, " failed: {error}");
                }
                PluginStatus::Skipped => line.push_str(" not run (an earlier plugin said stop)"),
                PluginStatus::Applied { actions, .. } if actions.is_empty() => {
                    line.push_str(" no actions")
                }
                PluginStatus::Applied { actions, .. } => {
                    for (i, a) in actions.iter().enumerate() {
                        line.push_str(if i == 0 { " " } else { "; " });
                        let _ = match a {
                            Action::Keep => write!(line, "keep"),
                            Action::Discard => write!(line, "discard"),
                            Action::Stop => write!(line, "stop"),
                            Action::FileInto(t) => write!(line, "file-into {}", t.folder),
                            Action::CopyInto(t) => write!(line, "copy-into {}", t.folder),
                            Action::AddFlags(f) => write!(line, "add-flags {}", f.join(" ")),
                            Action::RemoveFlags(f) => write!(line, "remove-flags {}", f.join(" ")),
                            Action::SetHeader(h) => write!(line, "set-header {}", h.name),
                            Action::AddHeader(h) => write!(line, "add-header {}", h.name),
                            Action::RemoveHeader(n) => write!(line, "remove-header {n}"),
                            Action::SetSubject(_) => write!(line, "set-subject"),
                            Action::Reply(r) => write!(
                                line,
                                "reply: {}",
                                r.subject.as_deref().unwrap_or("Re: (the original subject)")
                            ),
                            Action::Forward(f) => write!(
                                line,
                                "{} to {}",
                                match f.mode {
                                    crate::model::decision::ForwardMode::Redirect => "redirect",
                                    crate::model::decision::ForwardMode::Attachment => {
                                        "forward (attached)"
                                    }
                                },
                                f.to.join(", ")
                            ),
                            Action::Notify(n) => write!(line, "notify {}", n.to.join(", ")),
                            Action::Refuse(reason) => write!(line, "refuse: {reason}"),
                        };
                    }
                }
            }
            crate::model::text::clean_text(&line)
        })
        .collect()
}
