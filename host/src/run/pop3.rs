//! The POP3 job: an account's POP3 mailbox (`[account.pop3]`) read into its Maildir
//! (`[account.deliver]`) through its plugins, each message once, through the same delivery
//! steps as `mailpipe deliver` and LMTP (`run/deliver.rs`: decided in the account's turn,
//! stored, fsynced, committed, then answered by the plugins' replies).
//!
//! Once-only and nothing lost, with a server that may drop the connection at any moment:
//! - a message is known by its key (`model::key::pop3_key`: unique id and size; without a
//!   trustworthy id, its bytes), marked processed in the commit that stores it;
//! - with `keep = false` a message is marked deleted (DELE) only after that commit, and the
//!   server deletes only at QUIT: a drop before QUIT deletes nothing, and the next pass
//!   finds the messages processed and deletes them without deciding again;
//! - ids that appear twice in one listing are not trusted (those messages are known by
//!   their bytes); `keep = true` needs ids (UIDL), or every pass would fetch everything;
//! - a message larger than `max_message_mb` (by LIST, or found while fetching) is left on
//!   the server and reported once.
//!
//! No mail about old mail: POP3 has no arrival date. Every message found before a pass first
//! went through the whole mailbox was there before mailpipe: it is old, whatever its Received
//! fields say (a server that writes none leaves the sender's, which may be forged into the
//! future). A message found later arrived at its topmost Received date (written by the
//! mailbox's own server), never later than now; without one, now.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::now_ms;
use crate::config::{AccountConfig, Pop3Source};
use crate::message::Email;
use crate::model::key::{pop3_key, pop3_source};
use crate::sink::mailstore::Leftovers;
use crate::source::pop3::{Listed, Pop3Error, Session};

use super::deliver::{DeliverError, Deliverer};

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Pop3Report {
    /// Decided and stored now.
    pub processed: usize,
    /// Processed before (left on the server, or deleted now with `keep = false`).
    pub skipped: usize,
    /// Marked deleted and gone at QUIT.
    pub deleted: usize,
    /// Left on the server: too large, or refused by every folder.
    pub left: usize,
}

/// Why a pass ended early.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Pop3(#[from] Pop3Error),
    #[error("{0}")]
    Deliver(DeliverError),
    #[error("{0}")]
    Config(String),
}

impl PassError {
    pub fn is_transient(&self) -> bool {
        match self {
            PassError::Pop3(e) => e.is_transient(),
            PassError::Deliver(e) => e.is_transient(),
            PassError::Config(_) => false,
        }
    }
}

/// One account's POP3 mailbox.
pub struct Pop3Job {
    pub account: AccountConfig,
    source: Pop3Source,
    deliverer: Arc<Deliverer>,
    /// Messages left on the server for good in this process (too large), reported once: by
    /// key, or by number and size when the server gives no id.
    left: std::sync::Mutex<HashSet<String>>,
    /// Markers a process killed between a commit and its settle left in the Maildir, read at
    /// the first pass; those of messages found processed are removed.
    leftovers: std::sync::Mutex<Option<Leftovers>>,
    /// Set (reload, shutdown, account handed back): the watch ends at its next wait.
    stop: Option<tokio::sync::watch::Receiver<u64>>,
}

impl Pop3Job {
    /// The job of `account` (which must have `[account.pop3]`).
    pub fn new(
        account: AccountConfig,
        deliverer: Arc<Deliverer>,
        stop: Option<tokio::sync::watch::Receiver<u64>>,
    ) -> anyhow::Result<Pop3Job> {
        let source = account
            .pop3
            .clone()
            .ok_or_else(|| anyhow::anyhow!("account {}: no [account.pop3]", account.name))?;
        Ok(Pop3Job {
            account,
            source,
            deliverer,
            left: Default::default(),
            leftovers: Default::default(),
            stop,
        })
    }

    /// One pass over the mailbox: every message not processed before, then QUIT, then the
    /// replies go out.
    pub async fn pass(&self) -> Result<Pop3Report, PassError> {
        let mut report = Pop3Report::default();
        let name = &self.account.name;
        let mut session = Session::connect(&self.source.server, self.account.timeout).await?;
        let listed = session.list().await?;
        let trusted = trusted_ids(&listed);
        if self.source.keep && !listed.is_empty() && trusted.is_empty() {
            return Err(PassError::Config(format!(
                "account {name}: the POP3 server gives no unique ids (UIDL), so keep = true cannot tell \
                 old messages from new without fetching them all at every pass: set keep = false \
                 (each message is deleted once stored)"
            )));
        }
        // Until a pass has gone through the whole mailbox once, what is found there was there
        // before mailpipe (for mail whose arrival cannot be read).
        let store = self.deliverer.store();
        let state = |e| PassError::Deliver(super::deliver::state_error(e));
        let listed_once = format!("pop3-listed:{name}");
        let first_pass = store
            .seen_at(&listed_once)
            .map_err(state)?
            .is_none()
            .then(now_ms);
        self.deliverer
            .enable(&self.account, &pop3_source(name))
            .await
            .map_err(PassError::Deliver)?;
        if self.leftovers.lock().unwrap().is_none() {
            let found = self
                .deliverer
                .leftovers(&self.account)
                .map_err(PassError::Deliver)?;
            *self.leftovers.lock().unwrap() = Some(found);
        }
        let result = self
            .messages(&mut session, &listed, &trusted, first_pass, &mut report)
            .await;
        if result.is_ok() && first_pass.is_some() {
            store.first_seen(&listed_once, now_ms()).map_err(state)?;
        }
        // What was marked deleted goes only now; after an error too, since every message
        // marked was committed first.
        let quit = session.quit().await;
        result?;
        match quit {
            Ok(()) => {}
            Err(e) if report.deleted > 0 => {
                // Not deleted after all: the next pass deletes them (they are processed).
                tracing::warn!(account = %name, "{e}; the messages marked deleted are deleted at the next pass");
                report.deleted = 0;
            }
            Err(_) => {}
        }
        self.deliverer.flush(&self.account).await;
        Ok(report)
    }

    async fn messages(
        &self,
        session: &mut Session,
        listed: &[Listed],
        trusted: &HashMap<u32, String>,
        first_pass: Option<u64>,
        report: &mut Pop3Report,
    ) -> Result<(), PassError> {
        let name = &self.account.name;
        let max = self.account.max_message_bytes;
        let delivered = |key: &str| {
            self.deliverer
                .was_delivered(&self.account, key)
                .map_err(PassError::Deliver)
        };
        for l in listed {
            let by_id = trusted
                .get(&l.number)
                .map(|uid| pop3_key(name, Some(uid), l.size, None));
            if let Some(key) = &by_id {
                if delivered(key)? {
                    self.settle_leftovers(key);
                    report.skipped += 1;
                    self.delete(session, l.number, report).await?;
                    continue;
                }
            }
            let left_as = match &by_id {
                Some(k) => k.clone(),
                None => no_id_identity(session, l).await?,
            };
            if self.left.lock().unwrap().contains(&left_as) {
                report.left += 1;
                continue;
            }
            if l.size > max {
                self.leave(
                    &left_as,
                    l,
                    &format!("{} bytes, larger than max_message_mb", l.size),
                );
                report.left += 1;
                continue;
            }
            let raw = match session.retr(l.number, max).await {
                Ok(raw) => raw,
                Err(Pop3Error::TooLarge { .. }) => {
                    // The server's LIST said less: the connection is of no use any more.
                    self.leave(&left_as, l, "larger than max_message_mb (LIST said less)");
                    return Err(PassError::Pop3(Pop3Error::protocol(
                        format!("RETR {}", l.number),
                        "larger than its listed size and max_message_mb; left on the server",
                    )));
                }
                Err(e) => return Err(e.into()),
            };
            let key = match by_id {
                Some(k) => k,
                None => {
                    let k = pop3_key(name, None, 0, Some(&raw));
                    if delivered(&k)? {
                        self.settle_leftovers(&k);
                        report.skipped += 1;
                        self.delete(session, l.number, report).await?;
                        continue;
                    }
                    k
                }
            };
            let email = Email::new(raw, "INBOX", Vec::new());
            let arrived = arrival(&email, first_pass, now_ms());
            match self
                .deliverer
                .deliver_fetched(&self.account, key, email.arrived_at(Some(arrived)))
                .await
            {
                Ok(_) => {
                    report.processed += 1;
                    self.delete(session, l.number, report).await?;
                }
                Err(e) => return Err(PassError::Deliver(e)),
            }
        }
        Ok(())
    }

    /// Mark message `number` deleted, when the account does not keep its messages. A server
    /// that refuses keeps it: the next pass tries again (the message is processed).
    async fn delete(
        &self,
        session: &mut Session,
        number: u32,
        report: &mut Pop3Report,
    ) -> Result<(), PassError> {
        if self.source.keep {
            return Ok(());
        }
        match session.dele(number).await {
            Ok(()) => report.deleted += 1,
            Err(Pop3Error::Refused { message, .. }) => tracing::warn!(
                account = %self.account.name,
                "the server refused to delete message {number} ({message}); tried again at the next pass"
            ),
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// A processed message's markers, if a crash left any.
    fn settle_leftovers(&self, key: &str) {
        if let Some(l) = self.leftovers.lock().unwrap().as_mut() {
            if !l.is_empty() {
                l.settle(key);
            }
        }
    }

    /// Leave a message on the server for good in this process, said once.
    fn leave(&self, left_as: &str, l: &Listed, why: &str) {
        if self.left.lock().unwrap().insert(left_as.to_string()) {
            tracing::error!(
                account = %self.account.name,
                "POP3 message {} ({}): {why}; left on the server",
                l.number,
                l.uid.as_deref().unwrap_or("no id")
            );
        }
    }

    /// Run until stopped: a pass, then a wait of `poll_seconds`; after an error, a pause
    /// that grows (network trouble: 2 s doubling to 64 s; what the user must fix: 5 min).
    pub async fn watch(&self) {
        let mut failures: u32 = 0;
        let mut stop = self.stop.clone();
        loop {
            let pause = match self.pass().await {
                Ok(r) => {
                    failures = 0;
                    crate::telemetry::metrics::account_health(&self.account.name, None);
                    if r.processed + r.deleted > 0 {
                        tracing::info!(
                            account = %self.account.name,
                            processed = r.processed,
                            deleted = r.deleted,
                            "POP3 pass"
                        );
                    }
                    Duration::from_secs(self.account.poll_seconds)
                }
                Err(e) => {
                    failures += 1;
                    crate::telemetry::metrics::account_health(
                        &self.account.name,
                        Some(e.to_string()),
                    );
                    let ms = if e.is_transient() {
                        (1000u64 << failures.min(6)).min(64_000)
                    } else {
                        300_000
                    };
                    tracing::warn!(account = %self.account.name, "{e}; trying again in {} s", ms / 1000);
                    Duration::from_millis(ms)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stopped(&mut stop) => return,
            }
        }
    }
}

/// Resolves when the stop signal changes (never without one).
async fn stopped(stop: &mut Option<tokio::sync::watch::Receiver<u64>>) {
    match stop {
        Some(rx) => {
            let _ = rx.changed().await;
        }
        None => std::future::pending().await,
    }
}

/// What a message without a usable id is known by until it is fetched (to leave it alone
/// when it is too large): a hash of its header block (TOP), or, on a server without TOP, its
/// number and listed size.
async fn no_id_identity(session: &mut Session, l: &Listed) -> Result<String, Pop3Error> {
    use sha2::{Digest, Sha256};
    Ok(match session.top_headers(l.number, 1 << 20).await {
        Ok(Some(head)) => format!("top:{}", hex::encode(&Sha256::digest(&head)[..16])),
        Ok(None) | Err(Pop3Error::TooLarge { .. }) => format!("#{}:{}", l.number, l.size),
        Err(e) => return Err(e),
    })
}

/// The unique ids of a listing that name one message each: an id the server gives twice
/// (a broken server) names none, and those messages are known by their bytes.
fn trusted_ids(listed: &[Listed]) -> HashMap<u32, String> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for uid in listed.iter().filter_map(|l| l.uid.as_deref()) {
        *seen.entry(uid).or_default() += 1;
    }
    listed
        .iter()
        .filter_map(|l| {
            let uid = l.uid.as_deref()?;
            (seen[uid] == 1).then(|| (l.number, uid.to_string()))
        })
        .collect()
}

/// When a fetched message reached the mailbox (ms). In the first pass ever (`first_pass`:
/// when it started) it was there before mailpipe: at the latest a second before that pass
/// began, so before any plugin was enabled for this mailbox, even when its Received date
/// says later (a date bound in `send_about_mail_since` still sees the earlier dates). Later:
/// its topmost Received date, never later than now; without one, now.
fn arrival(email: &Email, first_pass: Option<u64>, now: u64) -> u64 {
    match (email.received_at(), first_pass) {
        (t, Some(started)) => t.unwrap_or(0).min(started.saturating_sub(1000)),
        (Some(t), None) => t.min(now),
        (None, None) => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(number: u32, uid: Option<&str>) -> Listed {
        Listed {
            number,
            size: 100,
            uid: uid.map(str::to_string),
        }
    }

    #[test]
    fn an_id_given_twice_is_trusted_for_neither_message() {
        let l = [
            listed(1, Some("a")),
            listed(2, Some("b")),
            listed(3, Some("a")),
            listed(4, None),
        ];
        let t = trusted_ids(&l);
        assert_eq!(t.len(), 1);
        assert_eq!(t[&2], "b");
    }

    #[test]
    fn arrival_from_the_topmost_received_field() {
        let raw = b"Received: from mx.example.test by pop.example.test;\r\n\tMon, 7 Dec 2026 10:00:00 +0000\r\n\
                    Received: from forged.example; Thu, 1 Jan 2099 00:00:00 +0000\r\nSubject: x\r\n\r\nhi\r\n";
        let email = |raw: &[u8]| Email::new(raw.to_vec(), "INBOX", Vec::new());
        let t = arrival(&email(raw), None, u64::MAX);
        assert_eq!(t, 1_796_637_600_000);
        // Never later than now (a server clock ahead).
        assert_eq!(arrival(&email(raw), None, 5), 5);
        let bare = email(b"Subject: x\r\n\r\nhi\r\n");
        assert_eq!(
            arrival(&bare, Some(77_000), 90_000),
            0,
            "found in the first pass: old"
        );
        assert_eq!(arrival(&bare, None, 77), 77, "found later: arrived now");
        let bad = email(b"Received: from x; not a date\r\nSubject: x\r\n\r\nhi\r\n");
        assert_eq!(arrival(&bad, Some(77_000), 90_000), 0);
    }

    #[test]
    fn the_first_pass_finds_only_old_mail_whatever_received_says() {
        // A server that writes no Received leaves the sender's, dated in the future: found in
        // the first pass, it is still older than the pass (and than any plugin enabled in it).
        let forged = b"Received: from forged.example; Thu, 1 Jan 2099 00:00:00 +0000\r\nSubject: x\r\n\r\nhi\r\n";
        let email = Email::new(forged.to_vec(), "INBOX", Vec::new());
        let started = 1_796_700_000_500;
        let t = arrival(&email, Some(started), started + 5_000);
        assert!(
            t / 1000 < started / 1000,
            "{t} not before the pass's second"
        );
        let since = crate::config::MailSince::Enabled;
        assert!(crate::actions::since::blocker(Some(t), started, since).is_some());
        // An earlier Received date is kept (send_about_mail_since = a date reads it).
        let old = b"Received: from mx; Mon, 7 Dec 2026 10:00:00 +0000\r\n\r\nhi\r\n";
        let email = Email::new(old.to_vec(), "INBOX", Vec::new());
        assert_eq!(arrival(&email, Some(started), started), 1_796_637_600_000);
    }
}
