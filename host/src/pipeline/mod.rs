//! The pipeline: runs the configured plugins in order over one message and turns their
//! answers into one `Decision` (where the message goes, with which flags and bytes, and what
//! mail is sent). It does no I/O of its own beyond the plugin calls: sinks act on the
//! decision. Semantics are written down in docs/PIPELINE.md; the short form:
//! - each plugin sees the message as rewritten by the ones before it;
//! - a plugin's result is applied whole or not at all (trap, timeout, memory, error, an
//!   invalid action → discarded and reported; later plugins still run);
//! - implicit keep unless a file-into or discard; keep/file-into beat discard;
//! - replies/forwards pass the loop guard and the per-message cap, and are built from the
//!   message as received.

mod account_sieve;
mod commit;
mod decision;
pub mod parallel;

pub use account_sieve::AccountScripts;
pub use commit::{commit_for, decisions_brief};
pub use decision::{Decision, PluginReport, PluginStatus, Refusal, WrittenState};

use std::sync::Arc;

use crate::actions::since;
use crate::actions::{self, loop_guard, notify, reply, validate, Outgoing, OutgoingKind};
use crate::config::MailSince;
use crate::config::{Identity, PluginConfig, PluginLimits};
use crate::message::encode;
use crate::message::{rewrite, view, Email};
use crate::model::decision::{Action, ForwardMode};
use crate::model::key::source_of_key;
use crate::model::message::Needs;
use crate::plugin::readable::Readable;
use crate::plugin::{CallFailure, Clock, LoadedPlugin, PluginRuntime};
use crate::state::Store;

pub struct Pipeline {
    pub runtime: PluginRuntime,
    pub plugins: Vec<LoadedPlugin>,
    pub identity: Identity,
    /// The `[limits]` defaults; the per-message caps on generated mail come from here.
    pub limits: PluginLimits,
    pub store: Option<Arc<Store>>,
    pub clock: Clock,
    /// Sources whose "enabled" bound is known to be recorded (`enable_for`).
    pub enabled: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The interpreters of `account_sieve = true` plugins, per account (`account_sieve`).
    pub account_scripts: AccountScripts,
}

/// What every plugin's actions are checked and built against: the message as received.
struct Origin<'a> {
    original: &'a Email,
    sender: Option<&'a str>,
    identity: &'a Identity,
}

/// State of a message between plugins.
struct Working {
    email: Email,
    decision: Decision,
}

impl Pipeline {
    /// The plugins that failed in `d` with their fingerprints, as stored with the message
    /// (`MessageCommit::plugin_failed`); None when none failed.
    pub fn failed_fingerprints(&self, d: &Decision) -> Option<String> {
        let failed: serde_json::Map<String, serde_json::Value> = d
            .failed_plugins()
            .filter_map(|r| {
                let p = self.plugins.iter().find(|p| *p.name == *r.plugin)?;
                Some((r.plugin.to_string(), p.fingerprint.clone().into()))
            })
            .collect();
        (!failed.is_empty()).then(|| serde_json::Value::Object(failed).to_string())
    }

    /// Whether a plugin that failed on a message (`failed_fingerprints`) has changed since:
    /// new code or config, or it is no longer configured.
    pub fn changed_since(&self, failed: &str) -> bool {
        let Ok(serde_json::Value::Object(map)) = serde_json::from_str(failed) else {
            return true;
        };
        map.iter().any(|(name, print)| {
            !self
                .plugins
                .iter()
                .any(|p| *p.name == **name && print.as_str() == Some(p.fingerprint.as_str()))
        })
    }

    /// Whether some plugin sends no mail about mail older than its bound (every plugin but
    /// those with `send_about_mail_since = "all"`): what a first run says about old mail.
    pub fn holds_back_old_mail(&self) -> bool {
        self.plugins
            .iter()
            .any(|p| p.settings.send_about_mail_since != MailSince::All)
    }

    /// The most any plugin needs, so a source can fetch no more than that.
    pub fn needs(&self) -> Needs {
        let rank = |n: Needs| match n {
            Needs::Headers => 0,
            Needs::Bodies => 1,
            Needs::Raw => 2,
        };
        self.plugins
            .iter()
            .map(LoadedPlugin::needs)
            .max_by_key(|n| rank(*n))
            .unwrap_or(Needs::Headers)
    }

    pub async fn process(&self, original: &Email, message_key: &str) -> Decision {
        self.process_as(original, message_key, &self.identity).await
    }

    /// Process for an account whose generated mail comes from `identity`. A panic anywhere
    /// in the host while handling this message is contained here: the message is kept
    /// where it is, unchanged, with nothing sent, and the failure is reported as a host error.
    pub async fn process_as(
        &self,
        original: &Email,
        message_key: &str,
        identity: &Identity,
    ) -> Decision {
        use futures::FutureExt;
        let run = std::panic::AssertUnwindSafe(self.decide(original, message_key, identity));
        match run.catch_unwind().await {
            Ok(decision) => decision,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Decision::host_failure(message_key, original, what)
            }
        }
    }

    async fn decide(&self, original: &Email, message_key: &str, identity: &Identity) -> Decision {
        #[cfg(feature = "test-hooks")]
        if injected_panic(message_key) {
            panic!("fault injected by MAILPIPE_FAULT_PANIC_KEY for {message_key}");
        }
        // One scan of the header block for what every message needs.
        let block = rewrite::HeaderBlock::parse(&original.raw);
        let first = |name: &str| block.values(name).next();
        let raw = |name: &str| first(name).map(|v| String::from_utf8_lossy(v).into_owned());
        let message_id = first("Message-ID").map(view::decode_value);
        let sender = reply::response_address_of(raw("Return-Path"), raw("From"));
        let mut w = Working {
            email: original.clone(),
            decision: Decision::new(message_key, message_id),
        };
        // The message as plugins read it, parsed part by part on demand and shared by the
        // next plugins while none of them changes it.
        let mut readable: Option<Arc<Readable>> = None;
        let at_delivery = crate::model::key::at_delivery(message_key);
        for configured in &self.plugins {
            if w.decision.stopped_by.is_some() {
                w.decision.reports.push(PluginReport::skipped(configured));
                continue;
            }
            // `account_sieve = true`: the account's active script, in its own instance.
            let mut script_note = None;
            let resolved;
            let plugin: &LoadedPlugin = match configured.settings.kind {
                crate::config::PluginKind::AccountSieve => {
                    match self.account_sieve(configured, message_key).await {
                        Ok(Some((p, note))) => {
                            resolved = p;
                            script_note = Some(note);
                            &resolved
                        }
                        Ok(None) => configured,
                        Err(e) => {
                            w.decision.reports.push(PluginReport {
                                plugin: configured.name.to_string(),
                                elapsed_us: 0,
                                status: PluginStatus::Failed {
                                    error: CallFailure::Refused(e),
                                },
                                logs: Vec::new(),
                                script: None,
                            });
                            continue;
                        }
                    }
                }
                _ => configured,
            };
            let msg = readable
                .get_or_insert_with(|| {
                    Arc::new(Readable::new(w.email.clone()).at_delivery(at_delivery))
                })
                .clone();
            let call = self
                .runtime
                .call_for(
                    plugin,
                    &msg,
                    self.store.clone(),
                    self.clock,
                    crate::model::key::account_of_key(message_key),
                )
                .await;
            let logs = call.logs;
            w.decision.reads.push((plugin.name.to_string(), call.reads));
            let outcome = call.outcome.and_then(|actions| {
                validate::totals(&actions)
                    .map_err(|reason| CallFailure::InvalidAction { index: 0, reason })?;
                for (i, a) in actions.iter().enumerate() {
                    validate::validate(a, &plugin.settings, sender.as_deref())
                        .map_err(|reason| CallFailure::InvalidAction { index: i, reason })?;
                    validate::at_stage(a, at_delivery)
                        .map_err(|reason| CallFailure::InvalidAction { index: i, reason })?;
                }
                Ok(actions)
            });
            let report = match outcome {
                Ok(actions) => {
                    if actions.iter().any(changes_message) {
                        readable = None;
                    }
                    let origin = Origin {
                        original,
                        sender: sender.as_deref(),
                        identity,
                    };
                    let mut notes = self.apply(&mut w, &origin, plugin, &actions);
                    // Mail held back because the message is old mail was decided by a plugin
                    // that cannot know the host's rule: what it wrote to remember it (a
                    // vacation's "answered") would stop it from answering the sender's next,
                    // new message. Its state changes for this message are not kept.
                    let sends = actions.iter().any(|a| {
                        matches!(a, Action::Reply(_) | Action::Forward(_) | Action::Notify(_))
                    });
                    if sends
                        && !call.kv.is_empty()
                        && self.old_mail(original, plugin, message_key).is_some()
                    {
                        notes.push(
                            "its state changes for this message were not kept: the mail it would remember was not sent"
                                .into(),
                        );
                    } else {
                        w.decision.add_kv(&plugin.name, call.kv);
                    }
                    PluginStatus::Applied { actions, notes }
                }
                Err(error) => PluginStatus::Failed { error },
            };
            w.decision.reports.push(PluginReport {
                plugin: plugin.name.to_string(),
                elapsed_us: call.elapsed.as_micros() as u64,
                status: report,
                logs,
                script: script_note,
            });
        }
        w.decision.finish(w.email, original)
    }

    /// Apply a validated result. Returns notes (suppressed mail and the like).
    fn apply(
        &self,
        w: &mut Working,
        origin: &Origin,
        plugin: &LoadedPlugin,
        actions: &[Action],
    ) -> Vec<String> {
        let mut notes = Vec::new();
        let d = &mut w.decision;
        for (index, action) in actions.iter().enumerate() {
            match action {
                Action::Keep => d.keep = true,
                Action::Discard => d.discard = true,
                Action::FileInto(t) => d.file_into(t, true),
                Action::CopyInto(t) => d.file_into(t, false),
                Action::AddFlags(f) => w.email.add_flags(f),
                Action::RemoveFlags(f) => w.email.remove_flags(f),
                Action::SetHeader(h) => {
                    w.email.raw = edit(&w.email.raw, |b| b.set(&h.name, &h.value))
                }
                Action::AddHeader(h) => {
                    w.email.raw = edit(&w.email.raw, |b| b.add(&h.name, &h.value))
                }
                Action::RemoveHeader(n) => w.email.raw = edit(&w.email.raw, |b| b.remove(n)),
                Action::SetSubject(s) => w.email.raw = edit(&w.email.raw, |b| b.set("Subject", s)),
                Action::Stop => d.stopped_by = Some(plugin.name.to_string()),
                Action::Refuse(reason) => {
                    d.refuse(&plugin.name, reason);
                    // Nothing after a refusal counts: the message is not taken.
                    break;
                }
                Action::Reply(_) | Action::Forward(_) | Action::Notify(_) => {
                    // The cap is checked before anything is built.
                    if d.outgoing.len() >= self.limits.max_outgoing_per_message {
                        notes.push(format!(
                            "not sent: the cap of {} outgoing messages per message is reached (max_outgoing_per_message)",
                            self.limits.max_outgoing_per_message
                        ));
                        continue;
                    }
                    match self.outgoing(origin, plugin, index, action, &d.message_key) {
                        Err(reason) => notes.push(reason),
                        Ok(out) if out.raw.len() > self.limits.max_outgoing_bytes => {
                            notes.push(format!(
                                "not sent: the {} would be {} bytes, over max_outgoing_bytes = {}",
                                out.kind.label(),
                                out.raw.len(),
                                self.limits.max_outgoing_bytes
                            ))
                        }
                        Ok(out) => d.outgoing.push(out),
                    }
                }
            }
        }
        notes
    }

    /// Build the outgoing message of a reply/forward action, or say why it is suppressed.
    fn outgoing(
        &self,
        origin: &Origin,
        plugin: &LoadedPlugin,
        index: usize,
        action: &Action,
        message_key: &str,
    ) -> Result<Outgoing, String> {
        let Origin {
            original,
            sender,
            identity,
        } = *origin;
        let automated_ok = matches!(action, Action::Forward(_) | Action::Notify(_))
            && plugin.settings.forward_automated;
        let blocked = match action {
            Action::Notify(_) => loop_guard::notify_blocker(original, automated_ok),
            _ => loop_guard::blocker(original, sender, automated_ok),
        };
        if let Some(reason) = blocked {
            return Err(format!("not sent: {reason}"));
        }
        if let Some(reason) = self.old_mail(original, plugin, message_key) {
            return Err(format!("not sent: {reason}"));
        }
        let id = actions::outgoing_id(message_key, &plugin.name, index);
        let now = self.clock.now_ms();
        let (kind, mail_from, rcpt_to, raw, spec) = match action {
            Action::Reply(r) => {
                let to = sender.expect("checked by the loop guard").to_string();
                if let Err(e) = crate::model::address::validate_addr_spec(&to) {
                    return Err(format!("not sent: the sender's address is unusable: {e}"));
                }
                let raw = reply::compose(original, r, &to, identity, &id, now);
                // RFC 3834: automatic responses go out with a null reverse-path.
                (
                    OutgoingKind::Reply,
                    String::new(),
                    vec![to],
                    encode::crlf(&raw),
                    None,
                )
            }
            Action::Forward(f) => {
                let spec = crate::model::decision::ForwardSpec {
                    id: id.clone(),
                    attach: f.mode == ForwardMode::Attachment,
                    to: f.to.clone(),
                    note: f.note.clone(),
                    from_address: identity.address.clone(),
                    from_name: identity.name.clone(),
                    now_ms: now,
                };
                let kind = match f.mode {
                    ForwardMode::Redirect => OutgoingKind::Redirect,
                    ForwardMode::Attachment => OutgoingKind::ForwardAttachment,
                };
                let raw = spec.build(original);
                (
                    kind,
                    identity.address.clone(),
                    f.to.clone(),
                    raw,
                    Some(spec),
                )
            }
            Action::Notify(n) => {
                let raw = notify::compose(original, n, identity, &id, now);
                // Automatic mail, like a reply: a null reverse-path, so that nothing bounces
                // back into a loop.
                (
                    OutgoingKind::Notify,
                    String::new(),
                    n.to.clone(),
                    encode::crlf(&raw),
                    None,
                )
            }
            _ => unreachable!("only reply, forward and notify produce mail"),
        };
        Ok(Outgoing {
            id,
            plugin: plugin.name.to_string(),
            kind,
            mail_from,
            rcpt_to,
            // CRLF everywhere, as SMTP wants it (bare CR or LF in a forwarded original too).
            raw,
            forward: spec,
        })
    }
}

impl Pipeline {
    /// Record, once, that this pipeline's plugins are enabled for `source` from now on
    /// (`actions::since`): call before its messages are decided. Returns true the first
    /// time (a first run over mail that was there before).
    pub fn enable_for(&self, source: &str) -> Result<bool, crate::state::StateError> {
        let Some(store) = &self.store else {
            return Ok(false);
        };
        let mut known = self.enabled.lock().unwrap_or_else(|e| e.into_inner());
        if known.contains(source) {
            return Ok(false);
        }
        let now = u64::try_from(self.clock.now_ms()).unwrap_or(0);
        let mut first = false;
        for p in &self.plugins {
            if p.settings.send_about_mail_since == MailSince::Enabled {
                first |= store.first_seen(&enabled_key(&p.name, source), now)? == now;
            }
        }
        known.insert(source.to_string());
        Ok(first)
    }

    /// Why `plugin` may send no mail about `original` because it arrived before the
    /// plugin's bound (`actions::since`); None when it may.
    fn old_mail(
        &self,
        original: &Email,
        plugin: &LoadedPlugin,
        message_key: &str,
    ) -> Option<String> {
        let bound = plugin.settings.send_about_mail_since;
        let since_ms = match bound {
            MailSince::All => return None,
            MailSince::Time(t) => t,
            MailSince::Enabled => {
                original.arrived_ms?;
                let source = source_of_key(message_key);
                let now = u64::try_from(self.clock.now_ms()).unwrap_or(0);
                let recorded = self
                    .enabled
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains(source);
                match &self.store {
                    // A dry run records nothing (`enable_for` was not called): enabled now,
                    // as a first run would be.
                    Some(store) if recorded => {
                        match store.first_seen(&enabled_key(&plugin.name, source), now) {
                            Ok(t) => t,
                            Err(e) => return Some(format!(
                                "since when this plugin is enabled is unknown (the state store: {e})"
                            )),
                        }
                    }
                    _ => now,
                }
            }
        };
        since::blocker(original.arrived_ms, since_ms, bound)
    }
}

/// The state store's name of the moment `plugin` was enabled for `source`.
fn enabled_key(plugin: &str, source: &str) -> String {
    format!("auto-mail:{plugin}:{source}")
}

/// Fault injection for the tests of panic containment (test builds only, `test-hooks`): a
/// message whose key contains the value of `MAILPIPE_FAULT_PANIC_KEY` makes the pipeline
/// panic.
#[cfg(feature = "test-hooks")]
fn injected_panic(message_key: &str) -> bool {
    static KEY: std::sync::LazyLock<Option<String>> = std::sync::LazyLock::new(|| {
        std::env::var("MAILPIPE_FAULT_PANIC_KEY")
            .ok()
            .filter(|k| !k.is_empty())
    });
    KEY.as_deref().is_some_and(|k| message_key.contains(k))
}

/// One header edit of the message: new bytes (the old ones may still be read by others).
fn edit(raw: &[u8], f: impl FnOnce(&mut rewrite::HeaderBlock)) -> bytes::Bytes {
    rewrite::edit(raw, f).into()
}

fn changes_message(a: &Action) -> bool {
    matches!(
        a,
        Action::AddFlags(_)
            | Action::RemoveFlags(_)
            | Action::SetHeader(_)
            | Action::AddHeader(_)
            | Action::RemoveHeader(_)
            | Action::SetSubject(_)
    )
}

/// Settings of a plugin for `mailpipe test`, where there is no config file: a component, or
/// a Sieve script (`config::sieve::is_sieve_script`) with the scripts beside it.
pub fn adhoc_plugin_config(
    path: &std::path::Path,
    config: serde_json::Value,
    allow_send_to: Vec<crate::config::RecipientPattern>,
) -> Result<PluginConfig, String> {
    let (kind, config) = if crate::config::sieve::is_sieve_script(path) {
        let table = crate::config::sieve::sieve_table(path, config)?;
        (crate::config::PluginKind::Sieve, table)
    } else {
        (crate::config::PluginKind::Wasm, config)
    };
    Ok(PluginConfig {
        kind,
        name: path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plugin".into()),
        path: path.to_owned(),
        limits: Default::default(),
        allow_send_to,
        forward_automated: false,
        send_about_mail_since: Default::default(),
        fresh_instance: false,
        config,
    })
}
