//! One IMAP account as a job: a pass over each configured mailbox (what is new is fetched
//! from the server, decided by the pipeline in a task of its own, committed with its plan,
//! the plans carried out on the server in large batches), then the outbox sent; `watch`
//! keeps a session open with IDLE (or polling) and reconnects with backoff.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::now_ms;
use crate::config::{AccountConfig, Identity, RetryPolicy, WatchMode};
use crate::pipeline::Pipeline;
use crate::sink::outbox::{self, FlushReport};
use crate::sink::smtp::SmtpSink;
use crate::source::imap::apply::ServerCaps;
use crate::source::imap::connect::{self, connect_with, timed, ImapError, ImapSession};
use crate::source::imap::{discover, pacer};
use crate::state::{Store, UidMark};
use crate::telemetry::metrics;

/// IDLE is re-issued at least this often (RFC 2177 asks for < 29 min); a connection that
/// died silently is noticed when the DONE that ends it gets no answer.
pub const IDLE_RENEW: Duration = Duration::from_secs(240);

pub struct AccountWorker {
    pub account: AccountConfig,
    /// The account's IMAP server (`account.imap`, which a worker always has).
    pub imap: crate::config::ServerConfig,
    pub pipeline: Arc<Pipeline>,
    pub store: Arc<Store>,
    pub smtp: Option<SmtpSink>,
    pub retry: RetryPolicy,
    pub dry_run: bool,
    pub json: bool,
    /// Decide again the messages whose actions were given up (in each mailbox's first pass).
    pub retry_failed: bool,
    /// Mailboxes whose given-up messages were decided again already.
    pub retried: std::sync::Mutex<HashSet<String>>,
    /// Changes when the daemon is asked to reload its config (SIGHUP): the worker ends at
    /// its next wait for new mail.
    pub reload: Option<tokio::sync::watch::Receiver<u64>>,
    /// Shared by the accounts of an instance: paces their logins.
    pub pacer: Option<std::sync::Arc<pacer::Pacer>>,
}

/// Resolves when a reload was requested; never without a reload channel.
async fn reload_requested(reload: &mut Option<tokio::sync::watch::Receiver<u64>>) {
    if let Some(rx) = reload {
        if rx.changed().await.is_ok() {
            return;
        }
    }
    std::future::pending().await
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
    /// Messages whose refused actions wait for another try.
    pub retrying: usize,
    /// Messages left where they were after their actions were refused `action_attempts` times.
    pub given_up: usize,
    pub warnings: Vec<String>,
    pub outbox: FlushReport,
    /// Where the time went, printed with `MAILPIPE_DEBUG=1` (see docs/IMAP-SMTP.md).
    pub timings: Timings,
}

/// Time spent per stage of a mailbox pass (summed over chunks; stages overlap).
#[derive(Debug, Default, Clone, Copy)]
pub struct Timings {
    pub fetch: Duration,
    pub decide: Duration,
    pub sync: Duration,
    pub apply: Duration,
    pub waiting_for_decisions: Duration,
}

impl AccountWorker {
    pub(super) fn identity(&self) -> Identity {
        self.account.identity()
    }

    pub(super) fn info(&self, text: &str) {
        tracing::info!(account = %self.account.name, "{text}");
    }

    pub(super) fn warn(&self, text: &str) {
        tracing::warn!(account = %self.account.name, "{text}");
    }

    /// Process what is in the mailboxes now, then return (`--once`).
    pub async fn once(&self) -> Result<PassReport, ImapError> {
        connect::with_deadline(self.account.timeout, self.once_here()).await
    }

    async fn once_here(&self) -> Result<PassReport, ImapError> {
        if let Some(pacer) = &self.pacer {
            pacer.wait_for(&self.account.name).await;
        }
        let mut session = connect_with(&self.imap, self.account.max_message_bytes).await?;
        let (caps, mut folders) = discover(&mut session).await?;
        let mut report = PassReport::default();
        self.pass(&mut session, caps, &mut folders, &mut report)
            .await?;
        let _ = timed("LOGOUT", session.logout()).await;
        Ok(report)
    }

    /// Run until the task is cancelled: process, wait for new mail (IDLE or poll), repeat;
    /// reconnect with exponential backoff and jitter when the connection or server fails.
    pub async fn watch(&self) {
        connect::with_deadline(self.account.timeout, self.watch_here()).await
    }

    async fn watch_here(&self) {
        let mut failures: u32 = 0;
        loop {
            let mut report = PassReport::default();
            match self.session_loop(&mut report, &mut failures).await {
                Ok(()) => return,
                Err(ImapError::State(e)) if e.is_fenced() => {
                    // Another process may own the account now: never retry, end here.
                    self.warn(&format!("{e}; stopping"));
                    return;
                }
                Err(e) => {
                    failures += 1;
                    metrics::inc(
                        "mailpipe_imap_reconnects_total",
                        "Connections to an IMAP server that ended in an error and were opened again.",
                        &[("account", &self.account.name)],
                        1.0,
                    );
                    metrics::account_health(&self.account.name, Some(e.to_string()));
                    // Network trouble: 2 s doubling to 64 s. A problem the user has to fix
                    // (login, certificate): every 5 minutes, not hammering the server.
                    let base = if e.is_transient() {
                        (1000u64 << failures.min(6)).min(60_000)
                    } else {
                        300_000
                    };
                    // Jitter from the account's name and the time: accounts that failed
                    // in the same millisecond (a server restart) do not wake together.
                    let delay = base + jitter_ms(&self.account.name, failures, base / 2);
                    self.warn(&format!(
                        "{e}; reconnecting in {:.1} s",
                        delay as f64 / 1000.0
                    ));
                    // A stop (reload, account removed or handed over) ends the wait.
                    let mut reload = self.reload.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(delay)) => {}
                        _ = reload_requested(&mut reload) => return,
                    }
                }
            }
        }
    }

    async fn session_loop(
        &self,
        report: &mut PassReport,
        failures: &mut u32,
    ) -> Result<(), ImapError> {
        let mut reload = self.reload.clone();
        if let Some(pacer) = &self.pacer {
            pacer.wait_for(&self.account.name).await;
        }
        let mut session =
            Box::pin(connect_with(&self.imap, self.account.max_message_bytes)).await?;
        let (caps, mut folders) = Box::pin(discover(&mut session)).await?;
        let idle_ok = self.account.mode == WatchMode::Idle
            && timed("CAPABILITY", session.capabilities())
                .await?
                .has_str("IDLE");
        self.info(&format!(
            "connected ({})",
            if idle_ok { "IDLE" } else { "polling" }
        ));
        metrics::set(
            "mailpipe_imap_idle",
            "1 while the account waits with IDLE, 0 while it polls.",
            &[("account", &self.account.name)],
            if idle_ok { 1.0 } else { 0.0 },
        );
        // The checkpoint when the last pass was run at once because mail had come in during
        // the one before. Passes follow at once as long as each moves the checkpoint on (mail
        // that keeps arriving while a pass runs is all taken); a pass that does not (a
        // message that never gets checkpointed) must not keep the account busy.
        let mut again_at: Option<UidMark> = None;
        loop {
            // Boxed: a pass's state is large and only needed while it runs, not for the
            // hours an account waits for mail (with thousands of accounts, that adds up).
            Box::pin(self.pass(&mut session, caps, &mut folders, report)).await?;
            metrics::account_health(&self.account.name, None);
            *failures = 0;
            let wait = self.next_wait();
            if idle_ok {
                let watched = connect::server_name(&session, &self.account.mailboxes[0])?;
                let selected = timed("SELECT", session.select(watched)).await?;
                // Mail that arrived after the pass looked is already counted by this SELECT,
                // so IDLE would not announce it: pass again now instead of waiting.
                if let Some(at) = self.arrived_since_pass(&selected) {
                    if again_at != Some(at) {
                        again_at = Some(at);
                        continue;
                    }
                }
                again_at = None;
                let mut idle = session.idle();
                timed("IDLE", idle.init()).await?;
                let (fut, stop) = idle.wait_with_timeout(wait);
                let outcome = tokio::select! {
                    o = tokio::time::timeout(wait + Duration::from_secs(30), fut) => Some(o),
                    _ = reload_requested(&mut reload) => None,
                };
                drop(stop);
                let Some(outcome) = outcome else {
                    // SIGHUP: end this session cleanly; the caller starts over with the new
                    // config. Nothing is in flight while waiting.
                    if let Ok(mut s) = timed("DONE", idle.done()).await {
                        let _ = timed("LOGOUT", s.logout()).await;
                    }
                    return Ok(());
                };
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
                let pause = wait.min(Duration::from_secs(self.account.poll_seconds));
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = reload_requested(&mut reload) => {
                        let _ = timed("LOGOUT", session.logout()).await;
                        return Ok(());
                    }
                }
                timed("NOOP", session.noop()).await?;
            }
            // Drop unsolicited responses the library queued; we re-read state each pass.
            while session.unsolicited_responses.try_recv().is_ok() {}
        }
    }

    /// Whether the watched mailbox, as just selected, has messages past the last one the
    /// passes checkpointed (or another UIDVALIDITY): then that checkpoint.
    fn arrived_since_pass(&self, selected: &async_imap::types::Mailbox) -> Option<UidMark> {
        let key = format!("{}/{}", self.account.name, self.account.mailboxes[0]);
        match (
            self.store.checkpoint(&key),
            selected.uid_validity,
            selected.uid_next,
        ) {
            (Ok(Some(at)), Some(v), Some(next))
                if v != at.validity || next > at.uid.saturating_add(1) =>
            {
                Some(at)
            }
            _ => None,
        }
    }

    /// How long to wait for new mail: until IDLE must be renewed, or until queued mail is
    /// due for another try, whichever is first.
    fn next_wait(&self) -> Duration {
        let due = self.store.outbox_next_due().ok().flatten();
        let now = now_ms();
        let until_due = due.map(|t| {
            let wait = if self.retry.is_due(t, now) {
                0
            } else {
                t - now
            };
            Duration::from_millis(wait.max(1000))
        });
        until_due.map_or(IDLE_RENEW, |d| d.min(IDLE_RENEW))
    }

    /// One pass over every configured mailbox, then the outbox.
    async fn pass(
        &self,
        session: &mut ImapSession,
        caps: ServerCaps,
        folders: &mut HashSet<String>,
        report: &mut PassReport,
    ) -> Result<(), ImapError> {
        if !self.dry_run {
            // From now on this account's plugins may send mail about what arrives; never
            // about what was there before (`actions::since`).
            self.pipeline
                .enable_for(&crate::model::key::imap_source(&self.account.name))?;
        }
        for mailbox in &self.account.mailboxes {
            let r = self
                .mailbox_pass(session, mailbox, caps, folders, report)
                .await;
            self.server_notes(session, report);
            match r {
                Ok(()) => {}
                // One mailbox the server refuses (gone, no rights) does not stop the others.
                Err(e @ ImapError::Refused { .. }) => {
                    let msg = format!("{mailbox}: skipped this pass: {e}");
                    self.warn(&msg);
                    report.warnings.push(msg);
                }
                Err(e) => return Err(e),
            }
        }
        self.flush(report).await?;
        Ok(())
    }

    /// Report what the connection's watch repaired or skipped in the server's answers.
    fn server_notes(&self, session: &ImapSession, report: &mut PassReport) {
        for n in session.get_ref().state().take_notes() {
            let msg = format!("server: {n}");
            self.warn(&msg);
            report.warnings.push(msg);
        }
    }

    async fn flush(&self, report: &mut PassReport) -> Result<(), ImapError> {
        if self.dry_run {
            return Ok(());
        }
        let ours = crate::model::key::imap_key_prefix(&self.account.name);
        let Some(smtp) = &self.smtp else {
            let queued = self
                .store
                .outbox_pending()?
                .iter()
                .filter(|e| e.message_key.starts_with(&ours))
                .count();
            if queued > 0 {
                report.warnings.push(format!(
                    "{queued} message(s) queued but the account has no [account.smtp]"
                ));
            }
            return Ok(());
        };
        let r = outbox::flush(&self.store, smtp, now_ms(), &self.retry, &ours).await;
        smtp.close().await;
        let r = r?;
        for (id, e) in &r.failed {
            self.warn(&format!("outgoing {id} refused permanently: {e}"));
        }
        metrics::record_flush(&self.store, &r);
        report.outbox.absorb(r);
        Ok(())
    }
}

/// Up to `spread` ms (at least 1 s) of jitter, different per account and per attempt.
fn jitter_ms(account: &str, attempt: u32, spread: u64) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (account, attempt, now_ms(), std::process::id()).hash(&mut h);
    h.finish() % spread.max(1000)
}
