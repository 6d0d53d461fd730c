//! SMTP servers that misbehave cannot hold mailpipe up: a server that never answers costs
//! one deadline per flush, not one per queued message, and a kept connection whose NOOP
//! check gets no answer is replaced instead of hanging the run. Nothing queued is lost or
//! marked failed for it. Deadlines are set short here; they are configurable.

mod badsmtp;
mod common;

use badsmtp::{BadSmtp, Mode};
use mailpipe::config::RetryPolicy;
use mailpipe::config::{ServerConfig, TlsMode};
use mailpipe::sink::outbox;
use mailpipe::sink::smtp::SmtpSink;
use mailpipe::state::{MessageCommit, OutboxEntry, OutboxStatus, Store};
use std::time::{Duration, Instant};

fn server(port: u16) -> ServerConfig {
    ServerConfig {
        host: "127.0.0.1".into(),
        port,
        tls: TlsMode::None,
        ca_file: None,
        tls_pin: None,
        username: None,
        password: None,
        auth: mailpipe::config::Auth::Password,
        oauth2: None,
    }
}

/// A store with `n` replies queued.
fn queued(n: usize) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for i in 0..n {
        let entry = OutboxEntry::new(
            &format!("out-{i}"),
            &format!("m-{i}"),
            "vacation",
            "",
            vec![format!("sender{i}@example.test")],
            0,
        );
        let raw = format!("From: a@example.test\r\nTo: sender{i}@example.test\r\nSubject: away\r\n\r\nI am away.\r\n");
        store
            .commit_message(&MessageCommit {
                message_key: format!("m-{i}"),
                summary: "{}".into(),
                outbox: vec![(entry, raw.into_bytes())],
                durable: true,
                ..Default::default()
            })
            .unwrap();
    }
    (dir, store)
}

#[tokio::test]
async fn a_tarpit_costs_one_flush_budget_not_one_deadline_per_message() {
    let bad = BadSmtp::start(Mode::Tarpit).await;
    let (_dir, store) = queued(16);
    let sink = SmtpSink::new(&server(bad.port), "example.test")
        .await
        .unwrap()
        .with_timeout(Duration::from_secs(1));
    let retry = RetryPolicy {
        flush_seconds: 2,
        ..Default::default()
    };
    let started = Instant::now();
    let r = outbox::flush(&store, &sink, 0, &retry, "").await.unwrap();
    let took = started.elapsed();
    // 16 messages × 1 s would be 16 s; the budget stops it after ~2 s (+ one deadline).
    assert!(took < Duration::from_secs(6), "flush took {took:?}");
    assert_eq!((r.sent.len(), r.failed.len(), r.deferred.len()), (0, 0, 16));
    assert!(
        r.deferred
            .iter()
            .any(|(_, why)| why.contains("flush_seconds")),
        "{:?}",
        r.deferred
    );
    let all = store.outbox_all().unwrap();
    assert!(
        all.iter().all(|e| e.status == OutboxStatus::Queued),
        "nothing given up"
    );
    assert!(
        all.iter().filter(|e| e.attempts > 0).count() <= 3,
        "untried messages keep their attempts"
    );
}

#[tokio::test]
async fn a_kept_connection_whose_noop_hangs_is_replaced() {
    let bad = BadSmtp::start(Mode::MuteAfterFirst).await;
    let (_dir, store) = queued(3);
    let sink = SmtpSink::new(&server(bad.port), "example.test")
        .await
        .unwrap()
        .with_timeout(Duration::from_secs(1));
    let started = Instant::now();
    let r = outbox::flush(&store, &sink, 0, &RetryPolicy::default(), "")
        .await
        .unwrap();
    assert_eq!(r.sent.len(), 3, "{r:?}");
    assert_eq!(bad.accepted.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert_eq!(
        bad.connections.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "a new connection after each silent NOOP"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}
