//! The offline job: a Maildir or folder of .eml files (read-only) → pipeline → mail store +
//! state + outbox folder, in the order that keeps every message safe across a crash.

use anyhow::Context;
use futures::StreamExt;
use std::sync::Arc;

use super::setup::{
    build_pipeline, log_plugins, maintain, open_store, RunOptions, RunSummary, MAINTENANCE_EVERY,
};
use crate::clock::now_ms;
use crate::config::Config;
use crate::pipeline::{commit_for, parallel, Decision, Pipeline};
use crate::plugin::Clock;
use crate::report;
use crate::sink::mailstore::{Delivered, Leftovers, MailStore};
use crate::sink::outbox::{self};
use crate::sink::outbox_dir::OutboxDir;
use crate::source::maildir::{Entry, MaildirSource};
use crate::state::Store;

/// Process every message of the offline source not processed before.
pub async fn run_offline(config: &Config, opts: &RunOptions) -> anyhow::Result<RunSummary> {
    Offline::new(config).await?.pass(opts).await
}

/// The offline source, sink and pipeline, set up once and kept for every pass of a polling
/// run (plugins are loaded and the store opened once, not at every pass).
pub struct Offline {
    config: Config,
    store: Arc<Store>,
    pipeline: Arc<Pipeline>,
    source: MaildirSource,
    mailstore: MailStore,
    /// Markers an earlier run left when it died between a commit and its settle; those of
    /// messages found processed are removed as the pass meets them.
    leftovers: std::sync::Mutex<Leftovers>,
    transport: OutboxDir,
    maintained: std::time::Instant,
    /// An empty source was reported already (once per run, not every poll).
    said_empty: std::sync::atomic::AtomicBool,
    /// Set (by a signal): the pass ends after the message it is on.
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Offline {
    pub async fn new(config: &Config) -> anyhow::Result<Offline> {
        let offline = config.offline.as_ref().with_context(|| {
            format!(
                "{}: no [offline] section: nothing to read mail from",
                config.file.display()
            )
        })?;
        let store = open_store(config)?;
        let pipeline = Arc::new(build_pipeline(config, Some(store.clone()), Clock::System).await?);
        log_plugins(&pipeline);
        let mailstore = MailStore::new(&offline.mailstore, offline.layout);
        Ok(Offline {
            config: config.clone(),
            source: MaildirSource::new(&offline.source),
            leftovers: std::sync::Mutex::new(mailstore.leftovers()),
            mailstore,
            transport: OutboxDir::new(&offline.outbox),
            store,
            pipeline,
            maintained: std::time::Instant::now(),
            said_empty: Default::default(),
            stop: Default::default(),
        })
    }

    /// Set it, and the current pass ends after the message it is on (committed as usual).
    pub fn stop_handle(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.stop.clone()
    }

    /// One pass over the source: every message not processed before.
    pub async fn pass(&mut self, opts: &RunOptions) -> anyhow::Result<RunSummary> {
        if self.maintained.elapsed() >= MAINTENANCE_EVERY {
            maintain(&self.store, &self.config)?;
            self.maintained = std::time::Instant::now();
        }
        let (config, store, pipeline) = (&self.config, &self.store, &self.pipeline);
        let (source, transport) = (&self.source, &self.transport);
        let mut summary = RunSummary::default();

        // Mail queued by an earlier run that stopped before sending it goes out first.
        if !opts.dry_run {
            let flushed = outbox::flush(store, transport, now_ms(), &config.retry, "").await?;
            crate::telemetry::metrics::record_flush(store, &flushed);
            summary.outbox.absorb(flushed);
        }
        // The messages to decide, read as they are needed (never all at once).
        let mut unreadable = 0;
        let todo = self.to_decide(opts, &mut summary)?;
        let read = todo
            .into_iter()
            .filter_map(|entry| match source.read(&entry) {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::error!("{e}; left for the next run");
                    unreadable += 1;
                    None
                }
            });
        // Up to `jobs` messages are decided at the same time, on all cores, with the result
        // of one after the other (pipeline/parallel.rs; tests/offline.rs compares both).
        let mut decided = parallel::decide_ahead(pipeline.clone(), read, opts.jobs, |m| {
            (m.email.clone(), m.key.clone())
        });
        let mut in_order = parallel::InOrder::new(opts.jobs);
        // Messages are committed without waiting for the disk and made durable together, a
        // batch at a time; their stored copies are settled and their mail sent after that.
        let mut batch = Batch::default();
        while let Some((msg, early)) = decided.next().await {
            let decision = in_order
                .settle(pipeline, &msg.email, &msg.key, early, !opts.dry_run)
                .await;
            summary.processed += 1;
            summary.plugin_failures += decision.failed_plugins().count();
            show(&msg.label, &decision, opts.json);
            if !opts.dry_run {
                // 1. Store the message (idempotent file names: a crash before 3. re-delivers
                //    onto the same files). 2. Commit plugin state, queued mail and the
                //    processed mark in one transaction. 3. Make the batch durable, settle its
                //    stored copies, send the queue.
                self.store_and_commit(&msg.label, &decision, &mut batch, &mut summary)?;
                if batch.is_due() {
                    self.finish(&mut batch, &mut summary).await?;
                }
            }
            if self.stop.load(std::sync::atomic::Ordering::Relaxed) {
                // The rest waits for the next run; messages decided ahead were not committed.
                break;
            }
        }
        self.finish(&mut batch, &mut summary).await?;
        drop(decided);
        summary.unreadable += unreadable;
        Ok(summary)
    }

    /// The source's messages not processed before (the others are counted as skipped); unless
    /// this is a dry run, the plugins may send mail about what arrives from now on.
    fn to_decide(&self, opts: &RunOptions, summary: &mut RunSummary) -> anyhow::Result<Vec<Entry>> {
        use std::sync::atomic::Ordering::Relaxed;
        let listed = self.source.list()?;
        if self.said_empty.swap(listed.is_empty(), Relaxed) != listed.is_empty()
            && listed.is_empty()
        {
            tracing::warn!("nothing to read: {}", self.source.why_empty());
        }
        let (config, store, pipeline, source) =
            (&self.config, &self.store, &self.pipeline, &self.source);
        let mut leftovers = self.leftovers.lock().unwrap();
        let settle_leftovers = !opts.dry_run && !leftovers.is_empty();
        let mut todo = Vec::new();
        for entry in listed {
            let key = source.key(&entry);
            if store.is_processed(&key)? {
                if settle_leftovers {
                    leftovers.settle(&key);
                }
                summary.skipped += 1;
            } else {
                todo.push(entry);
            }
        }
        // From now on the plugins may send mail about what arrives here; never about what
        // was there before (`actions::since`).
        if !opts.dry_run
            && pipeline.enable_for(&source.source_name())?
            && !todo.is_empty()
            && pipeline.holds_back_old_mail()
        {
            tracing::info!(
                "first run over {}: {} message(s) already there are decided and filed as the \
                 plugins say, but no reply or forward goes out about mail that arrived before \
                 now (send_about_mail_since)",
                config
                    .offline
                    .as_ref()
                    .map_or_else(String::new, |o| o.source.display().to_string()),
                todo.len()
            );
        }
        Ok(todo)
    }

    /// Store a decided message and commit it, not yet durably, as part of `batch`.
    fn store_and_commit(
        &self,
        label: &str,
        decision: &Decision,
        batch: &mut Batch,
        summary: &mut RunSummary,
    ) -> anyhow::Result<()> {
        let (store, mailstore) = (&self.store, &self.mailstore);
        let delivered = match mailstore.deliver(decision) {
            Ok(d) => d,
            Err(e) => {
                // Only this message is affected: it stays in its own mailbox, the run goes on.
                // (When even that cannot be written, the mail store itself is broken.)
                tracing::error!("{}: {e}; kept in {} instead", label, decision.email.mailbox);
                summary.store_failures += 1;
                mailstore.deliver(&decision.kept_in_own_mailbox())?
            }
        };
        for d in &delivered {
            if let Some(wanted) = &d.fallback_from {
                tracing::warn!(
                    "folder {wanted:?} does not exist (create = false); kept in {}",
                    d.folder
                );
            }
        }
        let mut commit = commit_for(decision, now_ms());
        commit.durable = false;
        store.commit_message(&commit)?;
        batch.add(delivered, !commit.outbox.is_empty());
        Ok(())
    }

    /// Make a batch durable, settle its stored copies and send what it queued.
    async fn finish(&self, batch: &mut Batch, summary: &mut RunSummary) -> anyhow::Result<()> {
        if batch.messages == 0 {
            return Ok(());
        }
        // The stored copies first: a durable processed mark must never outlive its copy.
        self.mailstore.make_durable(&batch.delivered)?;
        self.store.sync()?;
        super::fault::fault("synced");
        self.mailstore.settle(&batch.delivered);
        if batch.queued {
            let flushed = outbox::flush(
                &self.store,
                &self.transport,
                now_ms(),
                &self.config.retry,
                "",
            )
            .await?;
            crate::telemetry::metrics::record_flush(&self.store, &flushed);
            summary.outbox.absorb(flushed);
        }
        *batch = Batch::default();
        Ok(())
    }
}

/// Report a decision: metrics, its log lines, and a line (or JSON) on stdout.
fn show(label: &str, decision: &Decision, json: bool) {
    crate::telemetry::metrics::record_decision("offline", decision);
    report::emit_logs(
        decision,
        report::Origin {
            account: None,
            mailbox: &decision.email.mailbox,
            uid: None,
        },
    );
    if json {
        report::stdout(&format!("{}\n", report::decision_json(label, decision)));
    } else {
        report::stdout(&report::human(label, decision));
    }
}

/// Messages stored and committed, not yet made durable (`Offline::finish`).
struct Batch {
    delivered: Vec<Delivered>,
    messages: usize,
    /// Whether one of them queued mail to send.
    queued: bool,
    started: std::time::Instant,
}

impl Default for Batch {
    fn default() -> Batch {
        Batch {
            delivered: Vec::new(),
            messages: 0,
            queued: false,
            started: std::time::Instant::now(),
        }
    }
}

impl Batch {
    /// At most this many messages, or this long, between two durable commits: what a crash
    /// makes the next run decide and store again (onto the same files, sending nothing twice).
    const MESSAGES: usize = 500;
    const TIME: std::time::Duration = std::time::Duration::from_millis(250);

    fn add(&mut self, delivered: Vec<Delivered>, queued: bool) {
        if self.messages == 0 {
            self.started = std::time::Instant::now();
        }
        self.delivered.extend(delivered);
        self.messages += 1;
        self.queued |= queued;
    }

    fn is_due(&self) -> bool {
        self.messages >= Self::MESSAGES || self.started.elapsed() >= Self::TIME
    }
}

impl crate::sink::mailstore::Deliverable for crate::pipeline::Decision {
    fn key(&self) -> &str {
        &self.message_key
    }
    fn email(&self) -> &crate::message::Email {
        &self.email
    }
    fn deliveries(&self) -> &[crate::model::decision::Delivery] {
        &self.deliveries
    }
    fn flags(&self) -> &[String] {
        &self.flags
    }
}
