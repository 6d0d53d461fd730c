//! One mailbox pass of an IMAP account's job: finish what an interrupted run left, find
//! what is new since the checkpoint (and what is to be decided again), leave the too-large
//! alone, then fetch → decide (a task of its own) → commit → carry out the plans on the
//! server in large batches. The account's session, watch loop and outbox are `worker`'s.

use std::collections::{HashSet, VecDeque};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

use super::decide::{Decided, Decider};
use super::forwards;
use super::worker::{AccountWorker, PassReport};
use crate::clock::now_ms;
use crate::model::message::Needs;
use crate::source::imap::apply::{self, apply, ServerCaps};
use crate::source::imap::connect::{self, completed, timed, ImapError, ImapSession};
use crate::source::imap::plan::Plan;
use crate::source::imap::{confirmed_large, fetch, Fetched};
use crate::state::UidMark;

/// Decided plans are carried out in batches of `apply_batch` (default 5,000) plans or this
/// many bytes of rewritten messages, and at the end of the pass: every UID MOVE / STORE
/// costs Dovecot ~20 ms in a 10k-message folder whatever the number of UIDs in it, so few
/// large commands beat one per chunk (measured 4.7 s vs 0.2 s for 10k messages).
const APPLY_BYTES: usize = 32 << 20;

/// Chunks fetched ahead of the decisions (and the bytes they may hold together).
const FETCH_AHEAD: usize = 4;

const FETCH_AHEAD_BYTES: usize = 64 << 20;

/// Where a mailbox pass stands between chunks.
struct PassState<'a> {
    mailbox: &'a str,
    checkpoint_key: &'a str,
    validity: u32,
    progress: bool,
    total: usize,
    done: usize,
    /// Decided plans not yet carried out on the server.
    pending: Option<Decided>,
}

impl AccountWorker {
    /// One pass over `mailbox`: finish what an interrupted run left, then decide and apply
    /// what is new since its checkpoint (and what is to be decided again).
    pub(super) async fn mailbox_pass(
        &self,
        session: &mut ImapSession,
        mailbox: &str,
        caps: ServerCaps,
        folders: &mut HashSet<String>,
        report: &mut PassReport,
    ) -> Result<(), ImapError> {
        let own = connect::server_name(session, mailbox)?;
        let selected = timed("SELECT", session.select(&own)).await?;
        completed(session, "SELECT")?;
        let validity = selected.uid_validity.unwrap_or(0);
        let checkpoint_key = format!("{}/{mailbox}", self.account.name);
        let prefix = format!("imap:{checkpoint_key}/{validity}/"); // lease::imap_key_prefix + mailbox/validity

        // Plans decided before a crash but not confirmed done: carry them out first.
        if !self.dry_run {
            self.complete_interrupted(session, mailbox, &prefix, caps, folders, report)
                .await?;
        }

        let Some(last) = self.last_seen(mailbox, &checkpoint_key, validity, &selected, report)?
        else {
            return Ok(());
        };
        // A checkpoint at the top of the UID range leaves nothing above it to look at.
        let Some(first) = last.checked_add(1) else {
            return Ok(());
        };
        let found = timed("UID SEARCH", session.uid_search(format!("UID {first}:*"))).await?;
        completed(session, "UID SEARCH")?;
        let mut uids: Vec<u32> = found.into_iter().filter(|&u| u > last).collect();
        uids.sort_unstable();
        self.drop_unassigned(session, mailbox, &own, selected.uid_next, &mut uids, report)
            .await?;
        // Decided again, with the config as it is now: messages whose actions were given up
        // (on `run --retry-failed`, in each mailbox's first pass), and messages a plugin
        // failed on, once that plugin's code or config changed (or on --retry-failed). Mail
        // their plugins queued before is not queued again: outgoing ids are per message and
        // plugin action.
        if !self.dry_run {
            self.decide_again(mailbox, &prefix, last, &mut uids)?;
        }
        if uids.is_empty() {
            return Ok(());
        }
        self.leave_too_large(session, mailbox, &prefix, first, &mut uids, report)
            .await?;
        if uids.is_empty() {
            return Ok(());
        }
        let decider = self.decider(mailbox, prefix, checkpoint_key, validity, last);
        self.process(session, decider, &uids, caps, folders, report)
            .await
    }

    /// Carry out the due plans of an interrupted run (decided, not confirmed done).
    async fn complete_interrupted(
        &self,
        session: &mut ImapSession,
        mailbox: &str,
        prefix: &str,
        caps: ServerCaps,
        folders: &mut HashSet<String>,
        report: &mut PassReport,
    ) -> Result<(), ImapError> {
        let pending = self.store.pending(prefix)?;
        if !pending.is_empty() {
            self.info(&format!(
                "{mailbox}: completing {} action(s) of an interrupted run",
                pending.len()
            ));
            // Plans refused before wait for their next try; the rest of the mailbox goes on.
            let now = now_ms();
            let (keys, mut plans): (Vec<String>, Vec<Plan>) = pending
                .iter()
                .filter_map(|p| Some((p.message_key.clone(), Plan::from_json(&p.plan)?)))
                .filter(|(_, p)| p.next_try_ms <= now)
                .unzip();
            let held = forwards::complete(
                session,
                &self.store,
                mailbox,
                &plans,
                self.pipeline.limits.max_outgoing_bytes,
            )
            .await?;
            let r = apply(session, mailbox, &mut plans, caps, folders, true).await?;
            report.warnings.extend(held);
            self.settle(mailbox, &keys, &mut plans, r, report)?;
        }
        Ok(())
    }

    /// The last UID of the mailbox seen before (0 for a first pass over mail already there),
    /// or None when this pass ends here: UIDVALIDITY changed, or the mailbox is empty when
    /// first seen (the checkpoint is set to its top then).
    fn last_seen(
        &self,
        mailbox: &str,
        checkpoint_key: &str,
        validity: u32,
        selected: &async_imap::types::Mailbox,
        report: &mut PassReport,
    ) -> Result<Option<u32>, ImapError> {
        let last = match self.store.checkpoint(checkpoint_key)? {
            Some(at) if at.validity == validity => at.uid,
            Some(UidMark { validity: v, .. }) => {
                // The server renumbered the mailbox: UIDs no longer tell what we saw. Do not
                // run everything again (that would re-send auto-replies): start after the
                // current messages and say so.
                let top = selected.uid_next.unwrap_or(1).saturating_sub(1);
                let msg = format!(
                    "{mailbox}: UIDVALIDITY changed ({v} -> {validity}); the {} message(s) there now are not processed again",
                    selected.exists
                );
                self.warn(&msg);
                report.warnings.push(msg);
                if !self.dry_run {
                    let at = UidMark { validity, uid: top };
                    self.store.set_checkpoint(checkpoint_key, at)?;
                }
                return Ok(None);
            }
            None if selected.exists == 0 => {
                // Empty when first seen: remembered, so that what arrives next is new mail,
                // not a "first pass" over mail that was there before.
                if !self.dry_run {
                    let top = selected.uid_next.unwrap_or(1).saturating_sub(1);
                    let at = UidMark { validity, uid: top };
                    self.store.set_checkpoint(checkpoint_key, at)?;
                }
                return Ok(None);
            }
            None => {
                if self.pipeline.holds_back_old_mail() {
                    tracing::info!(
                        account = %self.account.name,
                        "{mailbox}: first pass, {} message(s) already there: each is decided \
                         and filed as the plugins say, but no reply or forward goes out about \
                         mail that arrived before its plugin was enabled (send_about_mail_since)",
                        selected.exists
                    );
                }
                0
            }
        };
        Ok(Some(last))
    }

    /// Drop from `uids` (found by UID SEARCH) those the server never assigned (at or past
    /// UIDNEXT, after selecting `own` again), with a warning.
    async fn drop_unassigned(
        &self,
        session: &mut ImapSession,
        mailbox: &str,
        own: &str,
        uid_next: Option<u32>,
        uids: &mut Vec<u32>,
        report: &mut PassReport,
    ) -> Result<(), ImapError> {
        // UIDs at or past UIDNEXT were never assigned: a new message may have arrived since
        // SELECT, so look again; whatever is still past it is refused, never processed (one
        // absurd UID would otherwise move the checkpoint past every future message).
        if let Some(next) = uid_next {
            if uids.last().is_some_and(|&u| u >= next) {
                let again = timed("SELECT", session.select(own)).await?;
                completed(session, "SELECT")?;
                let next = again.uid_next.unwrap_or(next);
                let bogus: Vec<u32> = uids.iter().copied().filter(|&u| u >= next).collect();
                if !bogus.is_empty() {
                    let msg = format!(
                        "{mailbox}: the server listed UID(s) {bogus:?} at or past its UIDNEXT {next}; ignored"
                    );
                    self.warn(&msg);
                    report.warnings.push(msg);
                    uids.retain(|&u| u < next);
                }
            }
        }
        Ok(())
    }

    /// Add to `uids` the messages to decide again (up to the checkpoint `last`; see the call
    /// in `mailbox_pass`), and forget their failures.
    fn decide_again(
        &self,
        mailbox: &str,
        prefix: &str,
        last: u32,
        uids: &mut Vec<u32>,
    ) -> Result<(), ImapError> {
        let retry_all = self.retry_failed
            && self
                .retried
                .lock()
                .expect("not poisoned")
                .insert(mailbox.to_string());
        let mut keys: Vec<String> = Vec::new();
        if retry_all {
            keys.extend(
                self.store
                    .failed_under(prefix)?
                    .into_iter()
                    .map(|p| p.message_key),
            );
        }
        let plugin_failed = self.store.plugin_failed_under(prefix)?;
        let mut changed = 0;
        for f in plugin_failed {
            if retry_all || self.pipeline.changed_since(&f.fingerprints) {
                changed += 1;
                keys.push(f.message_key);
            }
        }
        keys.sort();
        keys.dedup();
        let again: Vec<u32> = keys
            .iter()
            .filter_map(|k| k.strip_prefix(prefix)?.parse().ok())
            .filter(|u| *u <= last)
            .collect();
        if !keys.is_empty() {
            self.info(&format!(
                "{mailbox}: deciding {} message(s) again ({changed} after a plugin that failed on them changed or on request, the rest whose actions were given up)",
                again.len()
            ));
            self.store.forget_failed(&keys)?;
            uids.extend(again);
            uids.sort_unstable();
            uids.dedup();
        }
        Ok(())
    }

    /// Take out of `uids` the messages over the size limit (from `first` on); those not
    /// reported before are recorded as processed and reported.
    async fn leave_too_large(
        &self,
        session: &mut ImapSession,
        mailbox: &str,
        prefix: &str,
        first: u32,
        uids: &mut Vec<u32>,
        report: &mut PassReport,
    ) -> Result<(), ImapError> {
        // Messages over the size limit are never fetched: each is left where it is and
        // reported once (recorded as processed, with the reason).
        let limit = self.account.max_message_bytes;
        let large = timed(
            "UID SEARCH",
            session.uid_search(format!("UID {first}:* LARGER {limit}")),
        )
        .await?;
        completed(session, "UID SEARCH")?;
        // One answer is not trusted alone to leave mail unprocessed: the sizes the server
        // gives for the same messages (RFC822.SIZE) must agree.
        let claimed: Vec<u32> = uids.iter().copied().filter(|u| large.contains(u)).collect();
        let large = confirmed_large(session, &claimed, limit).await?;
        if large.len() < claimed.len() {
            let msg = format!(
                "{mailbox}: the server's SEARCH LARGER named {} message(s) whose own size \
                 (RFC822.SIZE) is within max_message_mb: they are processed",
                claimed.len() - large.len()
            );
            self.warn(&msg);
            report.warnings.push(msg);
        }
        if !large.is_empty() {
            let mut skipped = Vec::new();
            for &uid in uids.iter().filter(|u| large.contains(u)) {
                let key = format!("{prefix}{uid}");
                if self.store.is_processed(&key)? {
                    continue; // reported when it was first seen
                }
                if !self.dry_run {
                    self.store.commit_message(&crate::state::MessageCommit {
                        message_key: key,
                        summary: format!("{{\"too_large\":true,\"limit\":{limit}}}"),
                        durable: true,
                        ..Default::default()
                    })?;
                }
                skipped.push(uid);
            }
            if !skipped.is_empty() {
                let msg = format!(
                    "{mailbox}: message(s) {skipped:?} are larger than max_message_mb = {} MiB: left in place, not processed",
                    limit >> 20
                );
                self.warn(&msg);
                report.warnings.push(msg);
            }
            uids.retain(|u| !large.contains(u));
        }
        Ok(())
    }

    /// What the chunks of this pass over `mailbox` are decided with (`floor`: the checkpoint
    /// when the pass began, which messages decided again never move back).
    fn decider(
        &self,
        mailbox: &str,
        prefix: String,
        checkpoint_key: String,
        validity: u32,
        floor: u32,
    ) -> Decider {
        let headers_only = self.pipeline.needs() == Needs::Headers;
        let progress = std::io::stderr().is_terminal() && !self.json;
        Decider {
            pipeline: self.pipeline.clone(),
            store: self.store.clone(),
            identity: self.identity(),
            account: self.account.name.clone(),
            mailbox: mailbox.to_string(),
            prefix,
            checkpoint_key,
            validity,
            floor,
            headers_only,
            dry_run: self.dry_run,
            json: self.json,
            quiet: progress,
            reply_envelope_from: self.account.reply_envelope_from.clone(),
        }
    }

    /// Fetch `uids` chunk by chunk, have each decided (by `decider`, in a task of its own),
    /// made durable and, in large batches, carried out on the server.
    async fn process(
        &self,
        session: &mut ImapSession,
        decider: Decider,
        uids: &[u32],
        caps: ServerCaps,
        folders: &mut HashSet<String>,
        report: &mut PassReport,
    ) -> Result<(), ImapError> {
        let query = if decider.headers_only {
            "(UID FLAGS INTERNALDATE BODY.PEEK[HEADER])"
        } else {
            "(UID FLAGS INTERNALDATE BODY.PEEK[])"
        };
        let decider = Arc::new(decider);
        let mut state = PassState {
            mailbox: &decider.mailbox,
            checkpoint_key: &decider.checkpoint_key,
            validity: decider.validity,
            progress: decider.quiet,
            total: uids.len(),
            done: 0,
            pending: None,
        };
        let mailbox = state.mailbox;
        let progress = state.progress;
        // Three stages: fetch (connection) -> decide (a task of its own, on the other core)
        // -> make the decisions durable and apply them (connection). The connection fetches
        // up to FETCH_AHEAD chunks ahead of the decisions. Chunks are
        // decided one at a time and in order, so plugin state (KV) sees messages in UID order.
        // Plans are carried out in few large batches (see APPLY_BYTES); applying them early,
        // while the rest is decided, was measured slower: Dovecot's cost per MOVE in a big
        // folder is high, and its CPU competes with the decisions on two cores.
        let (to_decide, queued) = mpsc::channel::<Vec<Fetched>>(FETCH_AHEAD);
        let (decided_tx, mut decided_rx) = mpsc::unbounded_channel();
        let worker = spawn_decisions(decider.clone(), queued, decided_tx);
        let result = async {
            let mut chunks = uids.chunks(self.account.batch).peekable();
            // Last UID and bytes of each chunk handed to the worker, oldest first.
            let mut in_flight: VecDeque<(u32, usize)> = VecDeque::new();
            loop {
                let bytes: usize = in_flight.iter().map(|(_, b)| b).sum();
                if chunks.peek().is_some()
                    && in_flight.len() < FETCH_AHEAD
                    && bytes < FETCH_AHEAD_BYTES
                {
                    let c = chunks.next().expect("peeked");
                    let t = Instant::now();
                    let fetched = fetch(session, c, query).await?;
                    report.timings.fetch += t.elapsed();
                    let size = fetched.iter().map(|f| f.raw.len()).sum();
                    in_flight.push_back((*c.last().expect("not empty"), size));
                    if to_decide.send(fetched).await.is_err() {
                        // The worker stopped on an error; the error is in the channel.
                        while let Some(r) = decided_rx.recv().await {
                            r?;
                        }
                        return Err(ImapError::protocol(
                            "processing",
                            "the decision task ended early",
                        ));
                    }
                    while let Ok(r) = decided_rx.try_recv() {
                        let (last_uid, _) = in_flight.pop_front().expect("in flight");
                        self.decided(&mut state, r, last_uid, report, session, caps, folders)
                            .await?;
                    }
                    continue;
                }
                if in_flight.is_empty() {
                    break;
                }
                let t = Instant::now();
                let r = decided_rx.recv().await.ok_or_else(|| {
                    ImapError::protocol("processing", "the decision task ended early")
                })?;
                report.timings.waiting_for_decisions += t.elapsed();
                let (last_uid, _) = in_flight.pop_front().expect("in flight");
                self.decided(&mut state, r, last_uid, report, session, caps, folders)
                    .await?;
            }
            if let Some(p) = state.pending.take() {
                self.apply_chunk(session, mailbox, p, caps, folders, report)
                    .await?;
            }
            Ok::<(), ImapError>(())
        }
        .await;
        drop(to_decide);
        if result.is_err() {
            worker.abort();
        }
        let _ = worker.await;
        if progress {
            eprintln!();
        }
        result
    }

    /// A chunk's decisions came back: count them, make them durable, and carry out the
    /// collected plans once there are enough of them.
    #[allow(clippy::too_many_arguments)]
    async fn decided(
        &self,
        state: &mut PassState<'_>,
        r: Result<(Decided, Duration), crate::state::StateError>,
        last_uid: u32,
        report: &mut PassReport,
        session: &mut ImapSession,
        caps: ServerCaps,
        folders: &mut HashSet<String>,
    ) -> Result<(), ImapError> {
        let (decided, took) = r?;
        report.timings.decide += took;
        report.processed += decided.processed;
        report.skipped += decided.skipped;
        report.plugin_failures += decided.plugin_failures;
        state.done += decided.processed + decided.skipped;
        if state.progress {
            eprint!(
                "\r[{}] {}: {}/{} messages",
                self.account.name, state.mailbox, state.done, state.total
            );
        }
        if self.dry_run {
            return Ok(());
        }
        // The chunk's decisions are on disk before the server is touched. Its mail is sent
        // after the pass (`pass`), when nothing is being decided, so nothing that is not yet
        // durable can be sent.
        let t = Instant::now();
        let at = UidMark {
            validity: state.validity,
            uid: last_uid,
        };
        self.store.set_checkpoint(state.checkpoint_key, at)?;
        report.timings.sync += t.elapsed();
        let pending = match state.pending.take() {
            Some(mut p) => {
                p.absorb(decided);
                p
            }
            None => decided,
        };
        if pending.plans.len() >= self.account.apply_batch || pending.plan_bytes() >= APPLY_BYTES {
            self.apply_chunk(session, state.mailbox, pending, caps, folders, report)
                .await?;
        } else {
            state.pending = Some(pending);
        }
        Ok(())
    }

    /// Carry out a decided (and durable) chunk's plans on the server.
    async fn apply_chunk(
        &self,
        session: &mut ImapSession,
        mailbox: &str,
        mut decided: Decided,
        caps: ServerCaps,
        folders: &mut HashSet<String>,
        report: &mut PassReport,
    ) -> Result<(), ImapError> {
        if decided.plans.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let held = forwards::complete(
            session,
            &self.store,
            mailbox,
            &decided.plans,
            self.pipeline.limits.max_outgoing_bytes,
        )
        .await?;
        for w in &held {
            self.warn(w);
        }
        report.warnings.extend(held);
        let r = apply(session, mailbox, &mut decided.plans, caps, folders, false).await;
        report.timings.apply += started.elapsed();
        self.settle(mailbox, &decided.keys, &mut decided.plans, r?, report)
    }

    /// Record what an attempt at `plans` did: done plans are finished; a plan a step of
    /// which the server refused stays pending with its completed steps, to be tried again on
    /// the next pass and then with growing pauses; after the account's `action_attempts` refusals it is
    /// given up: the message stays where it is and the failure is recorded and reported.
    fn settle(
        &self,
        mailbox: &str,
        keys: &[String],
        plans: &mut [Plan],
        r: apply::ApplyReport,
        report: &mut PassReport,
    ) -> Result<(), ImapError> {
        for w in &r.warnings {
            self.warn(w);
        }
        report.moved += r.moved;
        report.copied += r.copied;
        report.appended += r.appended;
        report.removed += r.removed;
        report.warnings.extend(r.warnings);
        let refused: std::collections::HashMap<u32, String> = r.refused.into_iter().collect();
        let mut finished = Vec::new();
        for (key, plan) in keys.iter().zip(plans.iter_mut()) {
            let Some(why) = refused.get(&plan.uid) else {
                finished.push(key.clone());
                continue;
            };
            plan.attempts += 1;
            plan.last_error = Some(why.clone());
            let most = self.account.action_attempts;
            let msg = if plan.attempts >= most {
                report.given_up += 1;
                self.store.give_up_pending(key, &plan.to_json())?;
                format!(
                    "{mailbox}: message {} was left where it is after {} refused attempts: {why}",
                    plan.uid, plan.attempts
                )
            } else {
                report.retrying += 1;
                // The first retry comes with the next pass, later ones after growing pauses.
                let pause = 30_000u64 << (plan.attempts - 1).min(7);
                plan.next_try_ms = if plan.attempts == 1 {
                    0
                } else {
                    now_ms() + pause
                };
                self.store.update_pending(key, &plan.to_json())?;
                format!(
                    "{mailbox}: message {} not done yet: {why}; its actions will be tried again (attempt {} of {most})",
                    plan.uid, plan.attempts
                )
            };
            self.warn(&msg);
            report.warnings.push(msg);
        }
        self.store.finish_pending(&finished)?;
        Ok(())
    }
}

/// The decision task: decides the chunks `queued` hands it, one at a time and in order, and
/// sends each chunk's decisions back with the time they took; it ends after an error.
fn spawn_decisions(
    decider: Arc<Decider>,
    mut queued: mpsc::Receiver<Vec<Fetched>>,
    decided_tx: mpsc::UnboundedSender<Result<(Decided, Duration), crate::state::StateError>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(fetched) = queued.recv().await {
            let t = Instant::now();
            let r = decider.decide(fetched).await.map(|d| (d, t.elapsed()));
            let failed = r.is_err();
            if decided_tx.send(r).is_err() || failed {
                break;
            }
        }
    })
}
