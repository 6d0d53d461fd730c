//! IMAP source: reads each configured mailbox incrementally and durably. Per mailbox the
//! state store keeps (UIDVALIDITY, last processed UID); messages are fetched in bounded
//! chunks with only the parts the plugins need; each message's decision is committed with
//! its IMAP plan, then the chunk's plans are applied in bulk, then the outbox is sent.
//! `watch` keeps a session open with IDLE (or polling) and reconnects with backoff.

pub mod apply;
pub mod connect;
pub mod plan;
pub mod utf7;

use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use apply::{apply, ServerCaps};
use connect::{connect, timed, ImapError, ImapSession};
use plan::{uid_sets, Plan};

use crate::config::{AccountConfig, Identity, WatchMode};
use crate::message::Email;
use crate::pipeline::Pipeline;
use crate::plugin::bindings::Needs;
use crate::report;
use crate::runner::{commit_for, now_ms};
use crate::sink::outbox::{self, FlushReport, RetryPolicy};
use crate::sink::smtp::SmtpSink;
use crate::state::Store;

/// Header on rewritten messages we append: identifies them so that the copy appended back
/// into a watched mailbox is recognised as already processed instead of run again.
pub const REWRITTEN_HEADER: &str = "X-Mailpipe-Rewritten";

/// IDLE is re-issued at least this often (RFC 2177 asks for < 29 min); a connection that
/// died silently is noticed when the DONE that ends it gets no answer.
pub const IDLE_RENEW: Duration = Duration::from_secs(240);

pub struct AccountWorker {
    pub account: AccountConfig,
    pub pipeline: Arc<Pipeline>,
    pub store: Arc<Store>,
    pub smtp: Option<SmtpSink>,
    pub retry: RetryPolicy,
    pub dry_run: bool,
    pub json: bool,
}

#[derive(Debug, Default)]
pub struct PassReport {
    pub processed: usize,
    pub skipped: usize,
    pub plugin_failures: usize,
    pub moved: usize,
    pub copied: usize,
    pub appended: usize,
    pub removed: usize,
    pub warnings: Vec<String>,
    pub outbox: FlushReport,
}

struct Fetched {
    uid: u32,
    flags: Vec<String>,
    internal_date: Option<String>,
    raw: Vec<u8>,
}

impl AccountWorker {
    fn identity(&self) -> Identity {
        Identity {
            address: self.account.address.clone(),
            name: self.account.display_name.clone(),
        }
    }

    fn log(&self, text: &str) {
        eprintln!("[{}] {text}", self.account.name);
    }

    /// Process what is in the mailboxes now, then return (`--once`).
    pub async fn once(&self) -> Result<PassReport, ImapError> {
        let mut session = connect(&self.account.imap).await?;
        let (caps, mut folders) = self.discover(&mut session).await?;
        let mut report = PassReport::default();
        self.pass(&mut session, caps, &mut folders, &mut report)
            .await?;
        let _ = timed("LOGOUT", session.logout()).await;
        Ok(report)
    }

    /// Run until the task is cancelled: process, wait for new mail (IDLE or poll), repeat;
    /// reconnect with exponential backoff and jitter when the connection or server fails.
    pub async fn watch(&self) {
        let mut failures: u32 = 0;
        loop {
            let mut report = PassReport::default();
            match self.session_loop(&mut report, &mut failures).await {
                Ok(()) => return,
                Err(e) => {
                    failures += 1;
                    let base = if e.is_transient() {
                        1000u64 << failures.min(6)
                    } else {
                        300_000
                    };
                    let delay = base.min(60_000) + now_ms() % 1000;
                    self.log(&format!(
                        "{e}; reconnecting in {:.1} s",
                        delay as f64 / 1000.0
                    ));
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
            }
        }
    }

    async fn session_loop(
        &self,
        report: &mut PassReport,
        failures: &mut u32,
    ) -> Result<(), ImapError> {
        let mut session = connect(&self.account.imap).await?;
        let (caps, mut folders) = self.discover(&mut session).await?;
        let idle_ok = self.account.mode == WatchMode::Idle
            && timed("CAPABILITY", session.capabilities())
                .await?
                .has_str("IDLE");
        self.log(&format!(
            "connected ({})",
            if idle_ok { "IDLE" } else { "polling" }
        ));
        loop {
            self.pass(&mut session, caps, &mut folders, report).await?;
            *failures = 0;
            let wait = self.next_wait();
            if idle_ok {
                timed(
                    "SELECT",
                    session.select(utf7::encode(&self.account.mailboxes[0])),
                )
                .await?;
                let mut idle = session.idle();
                timed("IDLE", idle.init()).await?;
                let (fut, stop) = idle.wait_with_timeout(wait);
                let outcome = tokio::time::timeout(wait + Duration::from_secs(30), fut).await;
                drop(stop);
                let ended = matches!(
                    outcome,
                    Ok(Ok(
                        async_imap::extensions::idle::IdleResponse::ManualInterrupt
                    ))
                );
                if ended {
                    return Err(ImapError::protocol(
                        "IDLE",
                        "the server closed the connection",
                    ));
                }
                session = timed("DONE", idle.done()).await?;
            } else {
                tokio::time::sleep(wait.min(Duration::from_secs(self.account.poll_seconds))).await;
                timed("NOOP", session.noop()).await?;
            }
            // Drop unsolicited responses the library queued; we re-read state each pass.
            while session.unsolicited_responses.try_recv().is_ok() {}
        }
    }

    /// How long to wait for new mail: until IDLE must be renewed, or until queued mail is
    /// due for another try, whichever is first.
    fn next_wait(&self) -> Duration {
        let due = self.store.outbox_next_due().ok().flatten();
        let until_due = due.map(|t| Duration::from_millis(t.saturating_sub(now_ms()).max(1000)));
        until_due.map_or(IDLE_RENEW, |d| d.min(IDLE_RENEW))
    }

    async fn discover(
        &self,
        session: &mut ImapSession,
    ) -> Result<(ServerCaps, HashSet<String>), ImapError> {
        let c = timed("CAPABILITY", session.capabilities()).await?;
        let caps = ServerCaps {
            has_move: c.has_str("MOVE"),
            uidplus: c.has_str("UIDPLUS"),
        };
        let names = {
            let stream = timed("LIST", session.list(Some(""), Some("*"))).await?;
            timed("LIST", stream.try_collect::<Vec<_>>()).await?
        };
        let folders = names
            .iter()
            .filter_map(|n| utf7::decode(n.name()))
            .collect();
        Ok((caps, folders))
    }

    /// One pass over every configured mailbox, then the outbox.
    async fn pass(
        &self,
        session: &mut ImapSession,
        caps: ServerCaps,
        folders: &mut HashSet<String>,
        report: &mut PassReport,
    ) -> Result<(), ImapError> {
        for mailbox in &self.account.mailboxes {
            self.mailbox_pass(session, mailbox, caps, folders, report)
                .await?;
        }
        self.flush(report).await?;
        Ok(())
    }

    async fn flush(&self, report: &mut PassReport) -> Result<(), ImapError> {
        if self.dry_run {
            return Ok(());
        }
        let Some(smtp) = &self.smtp else {
            let queued = self.store.outbox_pending()?.len();
            if queued > 0 {
                report.warnings.push(format!(
                    "{queued} message(s) queued but the account has no [account.smtp]"
                ));
            }
            return Ok(());
        };
        let r = outbox::flush(&self.store, smtp, now_ms(), &self.retry).await?;
        for (id, e) in &r.failed {
            self.log(&format!("outgoing {id} refused permanently: {e}"));
        }
        report.outbox.sent.extend(r.sent);
        report.outbox.deferred.extend(r.deferred);
        report.outbox.failed.extend(r.failed);
        Ok(())
    }

    async fn mailbox_pass(
        &self,
        session: &mut ImapSession,
        mailbox: &str,
        caps: ServerCaps,
        folders: &mut HashSet<String>,
        report: &mut PassReport,
    ) -> Result<(), ImapError> {
        let selected = timed("SELECT", session.select(utf7::encode(mailbox))).await?;
        let validity = selected.uid_validity.unwrap_or(0);
        let checkpoint_key = format!("{}/{mailbox}", self.account.name);
        let prefix = format!("imap:{checkpoint_key}/{validity}/");

        // Plans decided before a crash but not confirmed done: carry them out first.
        if !self.dry_run {
            let pending = self.store.pending(&prefix)?;
            if !pending.is_empty() {
                self.log(&format!(
                    "{mailbox}: completing {} action(s) of an interrupted run",
                    pending.len()
                ));
                let keys: Vec<String> = pending.iter().map(|(k, _)| k.clone()).collect();
                let mut plans: Vec<Plan> = pending
                    .iter()
                    .filter_map(|(_, p)| Plan::from_json(p))
                    .collect();
                let r = apply(session, mailbox, &mut plans, caps, folders).await?;
                report.warnings.extend(r.warnings);
                self.store.finish_pending(&keys)?;
            }
        }

        let last = match self.store.checkpoint(&checkpoint_key)? {
            Some((v, uid)) if v == validity => uid,
            Some((v, _)) => {
                // The server renumbered the mailbox: UIDs no longer tell what we saw. Do not
                // run everything again (that would re-send auto-replies): start after the
                // current messages and say so.
                let top = selected.uid_next.unwrap_or(1).saturating_sub(1);
                let msg = format!(
                    "{mailbox}: UIDVALIDITY changed ({v} -> {validity}); the {} message(s) there now are not processed again",
                    selected.exists
                );
                self.log(&msg);
                report.warnings.push(msg);
                if !self.dry_run {
                    self.store.set_checkpoint(&checkpoint_key, validity, top)?;
                }
                return Ok(());
            }
            None => 0,
        };
        let mut uids: Vec<u32> = timed(
            "UID SEARCH",
            session.uid_search(format!("UID {}:*", last + 1)),
        )
        .await?
        .into_iter()
        .filter(|&u| u > last)
        .collect();
        uids.sort_unstable();
        if uids.is_empty() {
            return Ok(());
        }
        let headers_only = self.pipeline.needs() == Needs::Headers;
        let query = if headers_only {
            "(UID FLAGS INTERNALDATE BODY.PEEK[HEADER])"
        } else {
            "(UID FLAGS INTERNALDATE BODY.PEEK[])"
        };
        let progress = std::io::stderr().is_terminal() && !self.json;
        let total = uids.len();
        let mut done = 0;
        for chunk in uids.chunks(self.account.batch) {
            let fetched = fetch(session, chunk, query).await?;
            let mut plans = Vec::new();
            let mut keys = Vec::new();
            for f in &fetched {
                let key = format!("{prefix}{}", f.uid);
                if self.store.is_processed(&key)? {
                    report.skipped += 1;
                    continue;
                }
                let email = Email::new(f.raw.clone(), mailbox, f.flags.clone());
                if let Some(marker) = email.header(REWRITTEN_HEADER) {
                    if self.store.is_processed(&format!("rewritten:{marker}"))? {
                        // Our own rewritten copy of a message processed before.
                        report.skipped += 1;
                        if !self.dry_run {
                            let mut commit = crate::state::MessageCommit {
                                message_key: key,
                                summary: format!("{{\"rewritten_copy_of\":{marker:?}}}"),
                                ..Default::default()
                            };
                            commit.checkpoint = Some((checkpoint_key.clone(), validity, f.uid));
                            self.store.commit_message(&commit)?;
                        }
                        continue;
                    }
                }
                let d = self
                    .pipeline
                    .process_as(&email, &key, &self.identity())
                    .await;
                report.processed += 1;
                report.plugin_failures += d.failed_plugins().count();
                for line in report::log_lines(&d, std::env::var_os("MAILPIPE_DEBUG").is_some()) {
                    self.log(&line);
                }
                let label = format!("{}/{mailbox}/{}", self.account.name, f.uid);
                if self.json {
                    println!("{}", report::decision_json(&label, &d));
                } else if !progress {
                    print!("{}", report::human(&label, &d));
                }
                if self.dry_run {
                    continue;
                }
                let marker = hex::encode(&Sha256::digest(key.as_bytes())[..12]);
                let new_raw = match (d.rewritten, headers_only) {
                    (false, _) => None,
                    (true, headers_only) => {
                        let mut raw = crate::message::rewrite::edit(&d.email.raw, |h| {
                            h.set(REWRITTEN_HEADER, &marker)
                        });
                        if headers_only {
                            // Only the header block was fetched: put the untouched body back.
                            raw.extend(fetch_text(session, f.uid).await?);
                        }
                        Some(raw)
                    }
                };
                let plan = Plan::new(
                    f.uid,
                    &d,
                    f.flags.clone(),
                    f.internal_date.clone(),
                    new_raw.as_deref(),
                );
                let mut commit = commit_for(&d, now_ms());
                for (entry, _) in &mut commit.outbox {
                    if entry.mail_from.is_empty() {
                        entry.mail_from = self.account.reply_envelope_from.clone();
                    }
                }
                if new_raw.is_some() {
                    commit.also_processed.push(format!("rewritten:{marker}"));
                }
                commit.checkpoint = Some((checkpoint_key.clone(), validity, f.uid));
                commit.durable = false;
                if !plan.is_noop() {
                    commit.pending = Some(plan.to_json());
                    plans.push(plan);
                    keys.push(key);
                }
                self.store.commit_message(&commit)?;
            }
            done += chunk.len();
            if progress {
                eprint!(
                    "\r[{}] {mailbox}: {done}/{total} messages",
                    self.account.name
                );
            }
            if self.dry_run {
                continue;
            }
            // The chunk's decisions are on disk before the server is touched.
            let last_uid = *chunk.last().expect("chunk not empty");
            self.store
                .set_checkpoint(&checkpoint_key, validity, last_uid)?;
            let r = apply(session, mailbox, &mut plans, caps, folders).await?;
            for w in &r.warnings {
                self.log(w);
            }
            report.moved += r.moved;
            report.copied += r.copied;
            report.appended += r.appended;
            report.removed += r.removed;
            report.warnings.extend(r.warnings);
            self.store.finish_pending(&keys)?;
            self.flush(report).await?;
        }
        if progress {
            eprintln!();
        }
        Ok(())
    }
}

async fn fetch(
    session: &mut ImapSession,
    uids: &[u32],
    query: &str,
) -> Result<Vec<Fetched>, ImapError> {
    let mut out = Vec::with_capacity(uids.len());
    for set in uid_sets(uids) {
        let stream = timed("UID FETCH", session.uid_fetch(&set, query)).await?;
        let items: Vec<_> = timed("UID FETCH", stream.try_collect::<Vec<_>>()).await?;
        for f in items {
            let Some(uid) = f.uid else { continue };
            let raw = f.body().or_else(|| f.header()).unwrap_or_default().to_vec();
            out.push(Fetched {
                uid,
                flags: f.flags().filter_map(flag_name).collect(),
                internal_date: f
                    .internal_date()
                    .map(|d| d.format("%d-%b-%Y %H:%M:%S %z").to_string()),
                raw,
            });
        }
    }
    out.sort_by_key(|f| f.uid);
    Ok(out)
}

async fn fetch_text(session: &mut ImapSession, uid: u32) -> Result<Vec<u8>, ImapError> {
    let stream = timed(
        "UID FETCH",
        session.uid_fetch(uid.to_string(), "(UID BODY.PEEK[TEXT])"),
    )
    .await?;
    let items: Vec<_> = timed("UID FETCH", stream.try_collect::<Vec<_>>()).await?;
    Ok(items
        .iter()
        .find_map(|f| f.text().map(<[u8]>::to_vec))
        .unwrap_or_default())
}

fn flag_name(f: async_imap::types::Flag<'_>) -> Option<String> {
    use async_imap::types::Flag;
    Some(match f {
        Flag::Seen => "\\Seen".into(),
        Flag::Answered => "\\Answered".into(),
        Flag::Flagged => "\\Flagged".into(),
        Flag::Deleted => "\\Deleted".into(),
        Flag::Draft => "\\Draft".into(),
        Flag::Custom(c) if !c.starts_with('\\') => c.to_string(),
        _ => return None,
    })
}
