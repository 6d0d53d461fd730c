//! Deciding one fetched chunk of a mailbox: every new message through the pipeline, each
//! decision committed (not yet synced) together with its IMAP plan. It does no IMAP I/O, so
//! it runs as a task of its own: on the second core it overlaps the connection's work
//! (fetching the next chunk, applying the previous chunk's plans). See docs/IMAP-SMTP.md.

use std::sync::Arc;

use crate::clock::now_ms;
use crate::config::Identity;
use crate::message::Email;
use crate::pipeline::commit_for;
use crate::pipeline::Pipeline;
use crate::report;
use crate::source::imap::plan::Plan;
use crate::source::imap::{Fetched, REWRITTEN_HEADER};
use crate::state::{MessageCommit, StateError, Store, UidMark};

/// What a chunk's decisions are made with; shared by the chunks of one mailbox pass.
pub struct Decider {
    pub pipeline: Arc<Pipeline>,
    pub store: Arc<Store>,
    pub identity: Identity,
    pub account: String,
    pub mailbox: String,
    /// Message keys are `{prefix}{uid}`.
    pub prefix: String,
    pub checkpoint_key: String,
    pub validity: u32,
    /// The checkpoint when the pass began: messages at or below it (re-decided ones) never
    /// move it back.
    pub floor: u32,
    /// Only header blocks were fetched.
    pub headers_only: bool,
    pub dry_run: bool,
    pub json: bool,
    /// A progress counter is shown instead of a line per message.
    pub quiet: bool,
    pub reply_envelope_from: String,
}

/// A decided chunk: the plans to carry out on the server, with their message keys.
#[derive(Default)]
pub struct Decided {
    pub plans: Vec<Plan>,
    pub keys: Vec<String>,
    pub processed: usize,
    pub skipped: usize,
    pub plugin_failures: usize,
}

/// Our marker on a rewritten copy, if the message has one. Nearly no message has: a quick
/// byte search first, the header scan only when it might.
fn rewritten_marker(email: &Email) -> Option<String> {
    let raw = &email.raw;
    let maybe = memchr::memmem::find(raw, b"ewritten").is_some()
        || memchr::memmem::find(raw, b"EWRITTEN").is_some();
    maybe.then(|| email.header(REWRITTEN_HEADER)).flatten()
}

impl Decided {
    /// Add a later chunk's plans, to be applied together with these.
    pub fn absorb(&mut self, later: Decided) {
        self.plans.extend(later.plans);
        self.keys.extend(later.keys);
    }

    /// Bytes of rewritten messages held in the plans.
    pub fn plan_bytes(&self) -> usize {
        self.plans
            .iter()
            .map(|p| p.rewritten.as_ref().map_or(0, String::len))
            .sum()
    }
}

impl Decider {
    /// The checkpoint a message's commit moves to, if it moves it forward.
    fn checkpoint(&self, uid: u32) -> Option<(String, UidMark)> {
        (uid > self.floor).then(|| {
            let at = UidMark {
                validity: self.validity,
                uid,
            };
            (self.checkpoint_key.clone(), at)
        })
    }

    pub async fn decide(&self, fetched: Vec<Fetched>) -> Result<Decided, StateError> {
        let mut out = Decided::default();
        let identity = &self.identity;
        // Printed once per chunk: one write instead of one per line (stdout is line-buffered).
        let mut output = String::new();
        for f in fetched {
            let key = format!("{}{}", self.prefix, f.uid);
            if self.store.is_processed(&key)? {
                out.skipped += 1;
                continue;
            }
            let email = Email::new(f.raw, self.mailbox.as_str(), f.flags.clone()).arrived_at(
                f.internal_date
                    .and_then(|d| u64::try_from(d.timestamp_millis()).ok()),
            );
            if let Some(marker) = rewritten_marker(&email) {
                if self.store.is_processed(&format!("rewritten:{marker}"))? {
                    // Our own rewritten copy of a message processed before.
                    out.skipped += 1;
                    if !self.dry_run {
                        self.store.commit_message(&MessageCommit {
                            message_key: key,
                            summary: format!("{{\"rewritten_copy_of\":{marker:?}}}"),
                            checkpoint: self.checkpoint(f.uid),
                            ..Default::default()
                        })?;
                    }
                    continue;
                }
            }
            let d = self.pipeline.process_as(&email, &key, identity).await;
            out.processed += 1;
            out.plugin_failures += d.failed_plugins().count();
            crate::telemetry::metrics::record_decision(&self.account, &d);
            report::emit_logs(
                &d,
                report::Origin {
                    account: Some(&self.account),
                    mailbox: &self.mailbox,
                    uid: Some(f.uid),
                },
            );
            let label = format!("{}/{}/{}", self.account, self.mailbox, f.uid);
            if self.json {
                output.push_str(&report::decision_json(&label, &d).to_string());
                output.push('\n');
            } else if !self.quiet {
                output.push_str(&report::human(&label, &d));
            }
            if self.dry_run {
                continue;
            }
            let marker = d
                .rewritten
                .then(|| hex::encode(&self.store.keyed_hash(key.as_bytes())[..12]));
            let new_raw = marker.as_ref().map(|marker| {
                crate::message::rewrite::edit(&d.email.raw, |h| h.set(REWRITTEN_HEADER, marker))
            });
            let mut plan = Plan::new(
                f.uid,
                &d.email.mailbox,
                &d.deliveries,
                f.flags,
                d.flags.clone(),
            )
            .rewritten(
                new_raw.as_deref(),
                new_raw
                    .as_ref()
                    .and(f.internal_date)
                    .map(|d| d.format("%d-%b-%Y %H:%M:%S %z").to_string()),
                self.headers_only,
            );
            let mut commit = commit_for(&d, now_ms());
            commit.plugin_failed = self.pipeline.failed_fingerprints(&d);
            for (entry, _) in &mut commit.outbox {
                if entry.mail_from.is_empty() {
                    entry.mail_from = self.reply_envelope_from.clone();
                }
            }
            if self.headers_only {
                // A forward carries the whole original, and only its header block was
                // fetched: hold it until the plan reads the body (source::imap::forwards).
                for spec in d.outgoing.iter().filter_map(|o| o.forward.as_ref()) {
                    if let Some((entry, _)) =
                        commit.outbox.iter_mut().find(|(e, _)| e.id == spec.id)
                    {
                        entry.held = true;
                        plan.forwards.push(spec.clone());
                    }
                }
            }
            if let Some(marker) = marker {
                commit.also_processed.push(format!("rewritten:{marker}"));
            }
            commit.checkpoint = self.checkpoint(f.uid);
            // Made durable with the chunk, before any of its plans touches the server.
            commit.durable = false;
            if !plan.is_noop() {
                commit.pending = Some(plan.to_json());
                out.plans.push(plan);
                out.keys.push(key);
            }
            self.store.commit_message(&commit)?;
        }
        report::stdout(&output);
        Ok(out)
    }
}
