//! The delivery job: one message handed over by a mail transfer agent for one recipient
//! (`mailpipe deliver` on a pipe today; the LMTP listener next), decided by the recipient
//! account's plugins, stored in the account's Maildir and committed, exactly once however
//! often the MTA retries and wherever a crash strikes.
//!
//! Once-only rests on the delivery key (`model::key::delivery_key`: account, envelope and
//! bytes), which an MTA's retry reproduces. The order below is what makes it hold:
//! 1. a processed mark for the key means the delivery happened before (a crash or a lost
//!    answer made the MTA try again): answer "delivered", store and send nothing;
//! 2. decide; store the copy under names derived from the key (a second attempt lands on
//!    the same file) and make it durable (fsync);
//! 3. commit plugin state, queued replies and the processed mark in one durable
//!    transaction; only then is the delivery acknowledged (exit 0 / 250);
//! 4. send the queued mail; the outbox's ids and sent log keep a crash from sending twice.
//!
//! A crash before 3. leaves no mark: the retry decides again and replaces the copy. A crash
//! after 3. leaves the mark: the retry is answered from it.

use std::sync::Arc;

use crate::clock::now_ms;
use crate::config::{AccountConfig, Config, DeliverTarget};
use crate::message::Email;
use crate::model::key::{deliver_source, delivery_key, pop3_source};
use crate::pipeline::commit_for;
use crate::sink::mailstore::MailStore;
use crate::source::imap::target::{AppendPlan, ImapAppend};
use crate::state::Store;

use super::fault::fault;
use super::roster::Pipelines;

/// Who sent a message and to whom, as the MTA says (SMTP's MAIL FROM and RCPT TO).
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The reverse path; "" for the null sender (bounces).
    pub sender: String,
    pub recipient: String,
    /// The recipient before the MTA rewrote it (aliases, virtual maps), if it says.
    pub original_recipient: Option<String>,
}

/// Why a delivery did not happen: transient (the MTA keeps the message and tries again) or
/// permanent (it returns the message to its sender).
pub type DeliverError = crate::model::failure::Failure;

/// What a delivery did.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered {
    pub key: String,
    /// The folders the message was stored in (none: the plugins discarded it).
    pub folders: Vec<String>,
    /// Delivered before (an MTA's retry): nothing was stored or sent this time.
    pub again: bool,
    /// Replies or forwards were queued (to be sent by `flush`).
    pub queued: bool,
    /// Refused by a plugin (`refuse`): the reason to give the sending server (one line of
    /// printable ASCII). Nothing was stored or queued; the refusal is committed, so a
    /// repeated attempt is refused again without deciding again.
    pub refused: Option<String>,
}

/// The accounts that take deliveries, their plugins and mail stores, and the state store.
pub struct Deliverer {
    config: Config,
    accounts: Vec<AccountConfig>,
    store: Arc<Store>,
    pipelines: tokio::sync::Mutex<Pipelines>,
    targets: std::sync::Mutex<std::collections::HashMap<String, Target>>,
    /// One flush at a time (the outbox's claims keep other processes apart).
    flushing: tokio::sync::Mutex<()>,
    /// One delivery at a time per account in this process (`turn`).
    turns: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Embedded store: deliveries made durable together (`group_commit`).
    group: super::group_commit::GroupCommit,
}

impl Deliverer {
    pub async fn new(config: &Config, store: Arc<Store>) -> anyhow::Result<Deliverer> {
        let rows = super::roster::account_rows(config, &store)?;
        let accounts = super::roster::all_accounts(config, &rows)
            .into_iter()
            .filter(|a| a.deliver.is_some())
            .collect();
        Ok(Deliverer {
            config: config.clone(),
            accounts,
            pipelines: tokio::sync::Mutex::new(Pipelines::new(config, store.clone()).await?),
            store,
            targets: Default::default(),
            flushing: Default::default(),
            turns: Default::default(),
            group: Default::default(),
        })
    }

    /// The account mail to `recipient` is delivered to: the one naming it among its
    /// `recipients` (by default its address; a `+detail` is ignored), or the one called
    /// `account` when given.
    pub fn account_for(&self, recipient: &str, account: Option<&str>) -> Option<&AccountConfig> {
        match account {
            Some(name) => self.accounts.iter().find(|a| a.name == name),
            None => self.accounts.iter().find(|a| a.receives(recipient)),
        }
    }

    /// The accounts that take deliveries (those with `[account.deliver]`).
    pub fn accounts(&self) -> &[AccountConfig] {
        &self.accounts
    }

    /// Deliver `raw` (the message as the MTA handed it over) to `account`.
    pub async fn deliver(
        &self,
        account: &AccountConfig,
        envelope: &Envelope,
        raw: &[u8],
    ) -> Result<Delivered, DeliverError> {
        let key = delivery_key(&account.name, &envelope.sender, &envelope.recipient, raw);
        // Arrived now, after the plugins were enabled for this account's deliveries: mail
        // delivered is never old mail.
        let email = || {
            Email::new(with_trace_fields(envelope, raw), "INBOX", Vec::new())
                .arrived_at(Some(now_ms()))
        };
        self.deliver_once(account, key, &deliver_source(&account.name), email)
            .await
    }

    /// A message fetched from the account's POP3 mailbox (`run/pop3.rs`): `key` names it
    /// (`model::key::pop3_key`), `email` is what the server has, arrived when its
    /// `arrived_ms` says as far as can be told (plugins send no mail about what came before
    /// they were enabled).
    pub async fn deliver_fetched(
        &self,
        account: &AccountConfig,
        key: String,
        email: Email,
    ) -> Result<Delivered, DeliverError> {
        self.deliver_once(account, key, &pop3_source(&account.name), || email)
            .await
    }

    /// Enable the account's plugins for mail from `source` (see `Pipeline::enable_for`):
    /// true when they were enabled just now, for the first time.
    /// From then on they may send mail about what arrives that way (never about mail from
    /// before: `actions::since`).
    pub async fn enable(
        &self,
        account: &AccountConfig,
        source: &str,
    ) -> Result<bool, DeliverError> {
        self.pipeline(account)
            .await?
            .enable_for(source)
            .map_err(state_error)
    }

    /// Wait until `stored` and every commit made so far are durable (embedded store; on
    /// PostgreSQL, commits are durable when they return).
    async fn durable(
        &self,
        stored: Option<(Arc<MailStore>, Vec<crate::sink::mailstore::Delivered>)>,
    ) -> Result<(), DeliverError> {
        if self.store.is_shared() {
            return Ok(());
        }
        self.group
            .durable(&self.store, stored)
            .await
            .map_err(DeliverError::transient)
    }

    /// The state store the deliveries are committed to.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The markers a crash between a commit and its settle left in the account's Maildir
    /// (`MailStore::leftovers`).
    pub fn leftovers(
        &self,
        account: &AccountConfig,
    ) -> Result<crate::sink::mailstore::Leftovers, DeliverError> {
        Ok(match self.target(account)? {
            Target::Maildir(m) => m.leftovers(),
            Target::Imap(_) => Default::default(),
        })
    }

    /// Whether the message with this key was delivered (and committed) before to
    /// `account`, and every copy of it is stored (an IMAP target's APPENDs may still be
    /// pending: then it is not, and delivering it again finishes them).
    pub fn was_delivered(&self, account: &AccountConfig, key: &str) -> Result<bool, DeliverError> {
        if !self.store.is_processed(key).map_err(state_error)? {
            return Ok(false);
        }
        Ok(match self.target(account)? {
            Target::Maildir(_) => true,
            Target::Imap(_) => self.store.pending(key).map_err(state_error)?.is_empty(),
        })
    }

    /// The steps every way in shares (see the module's comment), in the account's turn.
    async fn deliver_once(
        &self,
        account: &AccountConfig,
        key: String,
        source: &str,
        email: impl FnOnce() -> Email,
    ) -> Result<Delivered, DeliverError> {
        // Decided one after the other, as an IMAP account's messages are: a vacation reply
        // read as "not sent yet" by two deliveries at once would go out twice.
        let turn = self.turn(account).await?;
        let target = self.target(account)?;
        if self.store.is_processed(&key).map_err(state_error)? {
            if let Target::Imap(imap) = &target {
                return self.resume(imap, key, turn).await;
            }
            // Delivered before (perhaps just now, by a delivery still waiting for its sync:
            // the answer waits for that sync too). Had that delivery died between its commit
            // and its answer, its stored copy's marker is still there: it goes now.
            let refused = self.refused_before(&key)?;
            drop(turn);
            self.durable(None).await?;
            if let Target::Maildir(mailstore) = &target {
                mailstore.leftovers().settle(&key);
            }
            return Ok(Delivered {
                key,
                folders: Vec::new(),
                again: true,
                queued: false,
                refused,
            });
        }
        let pipeline = self.pipeline(account).await?;
        pipeline.enable_for(source).map_err(state_error)?;
        let now = now_ms();
        let email = email();
        let decision = pipeline.process_as(&email, &key, &account.identity()).await;
        crate::telemetry::metrics::record_decision(&account.name, &decision);
        crate::report::emit_logs(
            &decision,
            crate::report::Origin {
                account: Some(&account.name),
                mailbox: "INBOX",
                uid: None,
            },
        );
        let mailstore = match target {
            Target::Maildir(m) => m,
            Target::Imap(imap) => return self.append(&imap, key, decision, now, turn).await,
        };
        let stored = match decision.refused {
            // Refused: nothing to store; the refusal is committed like a decision.
            Some(_) => Ok(Vec::new()),
            None => mailstore.deliver(&decision),
        };
        let delivered = match stored {
            Ok(d) => d,
            Err(e) => {
                // Only this folder is affected: the message is kept in INBOX. When even that
                // cannot be written, the MTA keeps the message and tries again.
                tracing::error!(account = %account.name, "{e}; kept in INBOX instead");
                mailstore
                    .deliver(&decision.kept_in_own_mailbox())
                    .map_err(|e| DeliverError::transient(e.to_string()))?
            }
        };
        let mut commit = commit_for(&decision, now);
        if self.store.is_shared() {
            // PostgreSQL: the copy is made durable first, then the commit (shared by other
            // processes, it is durable when it returns).
            mailstore
                .make_durable(&delivered)
                .map_err(|e| DeliverError::transient(e.to_string()))?;
            fault("stored");
            self.store.commit_message(&commit).map_err(state_error)?;
            fault("committed");
        } else {
            // Embedded: committed without waiting for the disk; the next delivery to this
            // account decides now (reading this one's writes) while this one waits for a
            // sync it shares with every delivery waiting (`group_commit`).
            fault("stored");
            commit.durable = false;
            self.store.commit_message(&commit).map_err(state_error)?;
            fault("committed");
            drop(turn);
            self.durable(Some((mailstore.clone(), delivered.clone())))
                .await?;
        }
        fault("durable");
        mailstore.settle(&delivered);
        Ok(Delivered {
            key,
            folders: delivered.into_iter().map(|d| d.folder).collect(),
            again: false,
            queued: !commit.outbox.is_empty(),
            refused: decision.refused.as_ref().map(|r| r.reply_text()),
        })
    }

    /// The account's delivery turn: this process's lock, then the shared store's (waiting
    /// for other processes); given back when dropped.
    async fn turn(&self, account: &AccountConfig) -> Result<Turn, DeliverError> {
        let local = self
            .turns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(account.name.clone())
            .or_default()
            .clone();
        let local = local.lock_owned().await;
        let started = std::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(2);
        loop {
            match self.store.try_delivery_turn(&account.name) {
                Ok(true) => break,
                Ok(false) if started.elapsed() < TURN_WAIT => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_millis(100));
                }
                Ok(false) => {
                    return Err(DeliverError::transient(format!(
                        "another process has been delivering to account {} for over {} s",
                        account.name,
                        TURN_WAIT.as_secs()
                    )))
                }
                Err(e) => return Err(state_error(e)),
            }
        }
        Ok(Turn {
            store: self.store.clone(),
            account: account.name.clone(),
            _local: local,
        })
    }

    /// Send what deliveries to `account` queued (now and in earlier runs that could not),
    /// through its `[account.smtp]`. Failures are logged; the mail waits for the next try.
    pub async fn flush(&self, account: &AccountConfig) {
        let _one = self.flushing.lock().await;
        // Nothing goes out about a decision a crash could still undo.
        if let Err(e) = self.durable(None).await {
            tracing::warn!(account = %account.name, "{e}; queued mail waits");
            return;
        }
        let ours = queued_by(account);
        let Some(server) = &account.smtp else {
            let queued = self
                .store
                .outbox_pending()
                .map(|l| {
                    l.iter()
                        .filter(|e| ours.iter().any(|p| e.message_key.starts_with(p)))
                        .count()
                })
                .unwrap_or(0);
            if queued > 0 {
                tracing::warn!(
                    account = %account.name,
                    "{queued} message(s) queued but the account has no [account.smtp] to send them"
                );
            }
            return;
        };
        let sink = match crate::sink::smtp::SmtpSink::new(
            server,
            crate::actions::domain_of(&account.address),
        )
        .await
        {
            Ok(s) => s.with_timeout(account.timeout),
            Err(e) => {
                tracing::warn!(account = %account.name, "SMTP: {e}; queued mail waits for the next delivery");
                return;
            }
        };
        for prefix in &ours {
            let r = crate::sink::outbox::flush(
                &self.store,
                &sink,
                now_ms(),
                &self.config.retry,
                prefix,
            )
            .await;
            match r {
                Ok(r) => {
                    for (id, e) in &r.failed {
                        tracing::warn!(account = %account.name, "outgoing {id} refused permanently: {e}");
                    }
                    crate::telemetry::metrics::record_flush(&self.store, &r);
                }
                Err(e) => tracing::warn!(account = %account.name, "the outbox: {e}"),
            }
        }
        sink.close().await;
    }

    /// Send what is queued for every account that has mail waiting (one read of the
    /// outbox): after a restart, what a crash left queued; later, what is due for a retry.
    pub async fn flush_all(&self) {
        for account in &self.accounts {
            self.resume_pending(account).await;
        }
        let Ok(pending) = self.store.outbox_pending() else {
            return;
        };
        for account in &self.accounts {
            let ours = queued_by(account);
            if pending
                .iter()
                .any(|e| ours.iter().any(|p| e.message_key.starts_with(p)))
            {
                self.flush(account).await;
            }
        }
    }

    /// The account's plugins.
    async fn pipeline(
        &self,
        account: &AccountConfig,
    ) -> Result<Arc<crate::pipeline::Pipeline>, DeliverError> {
        self.pipelines
            .lock()
            .await
            .for_account(account)
            .await
            .map_err(|e| DeliverError::transient(format!("{e:#}")))
    }

    /// Where the account's delivered mail is stored.
    fn target(&self, account: &AccountConfig) -> Result<Target, DeliverError> {
        let target = account.deliver.as_ref().ok_or_else(|| {
            DeliverError::permanent(format!(
                "account {} has no [account.deliver]: mail is not delivered to it",
                account.name
            ))
        })?;
        let mut targets = self.targets.lock().unwrap_or_else(|e| e.into_inner());
        Ok(targets
            .entry(account.name.clone())
            .or_insert_with(|| match target {
                DeliverTarget::Maildir { maildir, layout } => {
                    Target::Maildir(Arc::new(MailStore::new(maildir, *layout)))
                }
                DeliverTarget::Imap(server) => Target::Imap(Arc::new(ImapAppend::new(
                    server.clone(),
                    account.max_message_bytes,
                ))),
            })
            .clone())
    }

    /// The IMAP target's steps (`source::imap::target`): the decision and the plan of copies
    /// committed durably first, then APPEND, then the plan finished; all in the account's
    /// turn, so a repeated delivery or `resume_pending` never appends beside a first attempt.
    async fn append(
        &self,
        imap: &ImapAppend,
        key: String,
        decision: crate::pipeline::Decision,
        now: u64,
        turn: Turn,
    ) -> Result<Delivered, DeliverError> {
        let plan = (decision.refused.is_none() && !decision.deliveries.is_empty()).then(|| {
            AppendPlan::new(
                &decision.email.raw,
                decision
                    .deliveries
                    .iter()
                    .map(|d| (d.folder.clone(), d.create))
                    .collect(),
                decision.flags.clone(),
                hex::encode(&self.store.keyed_hash(key.as_bytes())[..16]),
            )
        });
        let mut commit = commit_for(&decision, now);
        commit.pending = plan.as_ref().map(AppendPlan::to_json);
        if let Some(p) = &plan {
            // The copies are this message: an IMAP account reading that server skips them.
            commit
                .also_processed
                .push(format!("rewritten:{}", p.marker));
        }
        if !self.store.is_shared() {
            commit.durable = false;
        }
        self.store.commit_message(&commit).map_err(state_error)?;
        self.durable(None).await?;
        fault("committed");
        let folders = match &plan {
            Some(plan) => self.append_plan(imap, &key, plan, false).await?,
            None => Vec::new(),
        };
        drop(turn);
        Ok(Delivered {
            key,
            folders,
            again: false,
            queued: !commit.outbox.is_empty(),
            refused: decision.refused.as_ref().map(|r| r.reply_text()),
        })
    }

    /// Store a committed plan's copies and finish it.
    async fn append_plan(
        &self,
        imap: &ImapAppend,
        key: &str,
        plan: &AppendPlan,
        resumed: bool,
    ) -> Result<Vec<String>, DeliverError> {
        let folders = imap.store(plan, resumed).await.map_err(|e| {
            DeliverError::transient(format!("the IMAP server delivered mail is stored on: {e}"))
        })?;
        fault("appended");
        self.store
            .finish_pending(&[key.to_string()])
            .map_err(state_error)?;
        Ok(folders)
    }

    /// A delivery to an IMAP target that was committed before: its copies are stored now if
    /// a crash or an unreachable server left them pending (each folder searched for the
    /// marker first), and it is answered as before.
    async fn resume(
        &self,
        imap: &ImapAppend,
        key: String,
        turn: Turn,
    ) -> Result<Delivered, DeliverError> {
        let refused = self.refused_before(&key)?;
        self.durable(None).await?;
        let mut folders = Vec::new();
        for stored in self.store.pending(&key).map_err(state_error)? {
            if stored.message_key != key {
                continue;
            }
            let plan = AppendPlan::from_json(&stored.plan).ok_or_else(|| {
                DeliverError::transient(format!("the stored plan of delivery {key} is unreadable"))
            })?;
            folders = self.append_plan(imap, &key, &plan, true).await?;
        }
        drop(turn);
        Ok(Delivered {
            key,
            folders,
            again: true,
            queued: false,
            refused,
        })
    }

    /// The reason a delivery committed before was refused with, if it was (the processed
    /// summary's `refused`): a repeated attempt is answered the same.
    fn refused_before(&self, key: &str) -> Result<Option<String>, DeliverError> {
        Ok(self
            .store
            .processed_summary(key)
            .map_err(state_error)?
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .and_then(|v| v.get("refused")?.as_str().map(str::to_string)))
    }

    /// Store what deliveries to an IMAP target left pending (a crash after the commit, a
    /// server that could not be reached): the mail server may never repeat them (POP3
    /// messages are not fetched again once committed).
    pub async fn resume_pending(&self, account: &AccountConfig) {
        let Ok(Target::Imap(imap)) = self.target(account) else {
            return;
        };
        for prefix in queued_by(account) {
            let Ok(plans) = self.store.pending(&prefix) else {
                continue;
            };
            for stored in plans {
                let Ok(turn) = self.turn(account).await else {
                    return;
                };
                // Finished meanwhile by another delivery: `resume` finds no plan left.
                if let Err(e) = self.resume(&imap, stored.message_key.clone(), turn).await {
                    tracing::warn!(account = %account.name, "a pending delivery: {e}; tried again later");
                    return;
                }
            }
        }
    }
}

/// The key prefixes of the mail an account's deliveries and POP3 messages queue.
fn queued_by(account: &AccountConfig) -> [String; 2] {
    [
        format!("{}/", deliver_source(&account.name)),
        format!("{}/", pop3_source(&account.name)),
    ]
}

/// A state store failure as a delivery error: the mail server keeps the message.
pub(super) fn state_error(e: crate::state::StateError) -> DeliverError {
    DeliverError::transient(format!("the state store: {e}"))
}

/// Where an account's delivered mail is stored.
#[derive(Clone)]
enum Target {
    Maildir(Arc<MailStore>),
    Imap(Arc<ImapAppend>),
}

/// How long a delivery waits for another process's delivery to the same account.
const TURN_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// An account's delivery turn, held while one message is decided, stored and committed.
struct Turn {
    store: Arc<Store>,
    account: String,
    _local: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Err(e) = self.store.end_delivery_turn(&self.account) {
            tracing::warn!(account = %self.account, "giving back the delivery turn: {e}");
        }
    }
}

/// The message as stored: `Return-Path:` and `Delivered-To:` (and `X-Original-To:`) before
/// the MTA's bytes, as Dovecot's and Postfix's local delivery agents write them; plugins read
/// the envelope from these fields, the first of each name. A field the MTA wrote already at
/// the top, with the same value (Postfix's pipe(8) and local(8) write them), is not written
/// twice; one the sender put into the message never stands in for ours. The lines end as the
/// message's own first line does.
pub fn with_trace_fields(envelope: &Envelope, raw: &[u8]) -> Vec<u8> {
    // Only the trace fields at the very top count: the ones an MTA prepends. The same names
    // further down are the sender's to write, and could claim any envelope.
    let mut leading: Vec<(String, String)> = Vec::new();
    for line in raw.split(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(line);
        let Some((n, v)) = line.split_once(':') else {
            break;
        };
        let n = n.trim().to_ascii_lowercase();
        if !matches!(n.as_str(), "return-path" | "delivered-to" | "x-original-to") {
            break;
        }
        leading.push((n, v.trim().trim_matches(['<', '>']).to_ascii_lowercase()));
    }
    let has = |name: &str, value: &str| {
        leading
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case(name) && *v == value.trim().to_ascii_lowercase())
    };
    let eol: &[u8] = match raw.iter().position(|&b| b == b'\n') {
        Some(i) if i > 0 && raw[i - 1] == b'\r' => b"\r\n",
        _ => b"\n",
    };
    let clean = |s: &str| -> String { s.chars().filter(|c| !c.is_control()).collect() };
    let mut out = Vec::with_capacity(raw.len() + 128);
    for (name, value) in [
        ("Return-Path", Some(&envelope.sender)),
        ("X-Original-To", envelope.original_recipient.as_ref()),
        ("Delivered-To", Some(&envelope.recipient)),
    ] {
        let Some(value) = value else { continue };
        if has(name, value) {
            continue;
        }
        let value = clean(value);
        if name == "Return-Path" {
            out.extend_from_slice(format!("{name}: <{value}>").as_bytes());
        } else {
            out.extend_from_slice(format!("{name}: {value}").as_bytes());
        }
        out.extend_from_slice(eol);
    }
    out.extend_from_slice(raw);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> Envelope {
        Envelope {
            sender: "bob@example.test".into(),
            recipient: "alice@example.test".into(),
            original_recipient: None,
        }
    }

    #[test]
    fn trace_fields_go_first_with_the_message_line_endings() {
        let lf = with_trace_fields(&envelope(), b"Subject: hi\n\nbody\n");
        assert!(lf.starts_with(
            b"Return-Path: <bob@example.test>\nDelivered-To: alice@example.test\nSubject: hi\n"
        ));
        let crlf = with_trace_fields(&envelope(), b"Subject: hi\r\n\r\nbody\r\n");
        assert!(crlf.starts_with(b"Return-Path: <bob@example.test>\r\nDelivered-To:"));
        // A bounce has the null sender; a line break in an envelope value goes nowhere.
        let mut e = envelope();
        e.sender = String::new();
        e.original_recipient = Some("a\r\nBcc: x@evil.test".into());
        let out = String::from_utf8(with_trace_fields(&e, b"Subject: hi\n\n")).unwrap();
        assert!(
            out.starts_with("Return-Path: <>\nX-Original-To: aBcc: x@evil.test\n"),
            "{out}"
        );
        // What the MTA wrote already at the top is not written again.
        let given =
            b"Return-Path: <bob@example.test>\nDelivered-To: Alice@example.test\nSubject: hi\n\n";
        assert_eq!(with_trace_fields(&envelope(), given), given.to_vec());
        // A Return-Path the sender wrote (further down, or naming someone else) is not the
        // envelope: ours goes first, and plugins read the first.
        for forged in [
            &b"Subject: hi\nReturn-Path: <victim@example.test>\nDelivered-To: alice@example.test\n\n"[..],
            &b"Return-Path: <victim@example.test>\nSubject: hi\n\n"[..],
        ] {
            let out = String::from_utf8(with_trace_fields(&envelope(), forged)).unwrap();
            assert!(out.starts_with("Return-Path: <bob@example.test>\n"), "{out}");
        }
    }
}
