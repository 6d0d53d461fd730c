//! The store's behaviour, the same on both backends: each test runs on a fresh embedded
//! store and on a fresh schema of the test PostgreSQL (`MAILPIPE_TEST_POSTGRES`, started by
//! tests/mailstack/postgres.sh; scripts/test.sh sets it).

use super::*;
use crate::config::PgSettings;

/// Where a test's store lives; `open` again is "reopened" (after a restart). A PostgreSQL
/// store has a state directory too (its sent log, compiled plugins).
enum Place {
    Dir(tempfile::TempDir),
    Pg(PgSettings, tempfile::TempDir),
}

impl Place {
    fn open(&self) -> Store {
        match self {
            Place::Dir(d) => Store::open_config(&StateSettings::Embedded, d.path()).unwrap(),
            Place::Pg(pg, dir) => {
                Store::open_config(&StateSettings::Postgres(pg.clone()), dir.path()).unwrap()
            }
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Place::Pg(pg, _) = self {
            if let Ok(mut c) = admin(pg) {
                let _ = c.batch_execute(&format!("DROP SCHEMA {} CASCADE", pg.schema));
            }
        }
    }
}

/// A plain connection to the test PostgreSQL, as an administrator would open one.
fn admin(pg: &PgSettings) -> Result<::postgres::Client, ::postgres::Error> {
    pg.url
        .parse::<::postgres::Config>()?
        .connect(::postgres::NoTls)
}

/// A new, empty schema of the test PostgreSQL.
pub(crate) fn test_postgres() -> PgSettings {
    let url = std::env::var("MAILPIPE_TEST_POSTGRES").expect(
        "MAILPIPE_TEST_POSTGRES is not set: start tests/mailstack/postgres.sh and export its \
         URL (scripts/test.sh does both)",
    );
    PgSettings {
        url,
        password: None,
        schema: format!("t_{}", hex::encode(&random_secret().unwrap()[..8])),
        lease: std::time::Duration::from_secs(10),
        tls: false,
        ca_file: None,
    }
}

/// One place per backend.
fn places() -> Vec<Place> {
    vec![
        Place::Dir(tempfile::tempdir().unwrap()),
        Place::Pg(test_postgres(), tempfile::tempdir().unwrap()),
    ]
}

pub(super) fn commit_of(key: &str, id: &str, at_ms: u64) -> MessageCommit {
    MessageCommit {
        message_key: key.into(),
        summary: serde_json::json!({
            "message_id": id, "at_ms": at_ms, "plugins": ["filer: file-into A"]
        })
        .to_string(),
        durable: true,
        message_id: Some(id.into()),
        ..Default::default()
    }
}

#[test]
fn explanations_are_found_by_message_id_and_pruned_after_their_time() {
    for place in places() {
        explanations_on(&place.open());
    }
}

fn explanations_on(s: &Store) {
    s.commit_message(&commit_of("a/INBOX/1/1", "<x@y>", 1_000))
        .unwrap();
    s.commit_message(&commit_of("a/Other/1/9", "<x@y>", 5_000))
        .unwrap();
    // A Message-ID that extends the first one is another message.
    s.commit_message(&commit_of("a/INBOX/1/2", "<x@y>z", 1_000))
        .unwrap();
    let found = s.processed_with_message_id("<x@y>").unwrap();
    let keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["a/INBOX/1/1", "a/Other/1/9"]);
    assert!(s
        .processed_with_message_id("<nobody@y>")
        .unwrap()
        .is_empty());

    // Older than 2 s at 10 s: the first goes; the mark stays.
    let day = PRUNE_EVERY_MS;
    assert_eq!(s.prune_explanations(day + 10_000, 2_000).unwrap(), 2);
    let found = s.processed_with_message_id("<x@y>").unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, "a/Other/1/9");
    assert!(s.is_processed("a/INBOX/1/1").unwrap());
    let summary = s.processed_summary("a/INBOX/1/1").unwrap().unwrap();
    assert!(
        summary.contains("\"pruned\":true") && !summary.contains("filer"),
        "{summary}"
    );
    // At most once a day.
    assert_eq!(s.prune_explanations(day + 20_000, 1_000_000).unwrap(), 0);
    assert_eq!(
        s.prune_explanations(2 * day + 10_000, 1_000_000).unwrap(),
        1
    );
}

#[test]
fn kv_expires_and_survives_reopen() {
    for place in places() {
        kv_expiry_on(&place);
    }
}

fn kv_expiry_on(place: &Place) {
    {
        let s = place.open();
        s.commit_message(&MessageCommit {
            message_key: "m1".into(),
            summary: "{}".into(),
            kv: vec![
                KvWrite {
                    plugin: "p".into(),
                    key: "a".into(),
                    value: Some((b"1".to_vec(), 0)),
                },
                KvWrite {
                    plugin: "p".into(),
                    key: "b".into(),
                    value: Some((b"2".to_vec(), 1000)),
                },
            ],
            outbox: vec![],
            durable: true,
            ..Default::default()
        })
        .unwrap();
    }
    let s = place.open();
    assert!(s.is_processed("m1").unwrap());
    assert!(!s.is_processed("m2").unwrap());
    assert_eq!(s.kv_get("p", "a", 5000).unwrap(), Some(b"1".to_vec()));
    assert_eq!(s.kv_get("p", "b", 999).unwrap(), Some(b"2".to_vec()));
    assert_eq!(s.kv_get("p", "b", 1000).unwrap(), None);
    assert_eq!(
        s.kv_get("other", "a", 0).unwrap(),
        None,
        "keys are per plugin"
    );
    assert_eq!(s.kv_purge_expired(1000).unwrap(), 1);
}

#[test]
fn an_outbox_id_is_queued_once() {
    for place in places() {
        outbox_once_on(&place.open());
    }
}

fn outbox_once_on(s: &Store) {
    let entry = OutboxEntry::new("id1", "m1", "vac", "", vec!["b@x.y".into()], 5);
    let commit = MessageCommit {
        message_key: "m1".into(),
        summary: "{}".into(),
        kv: vec![],
        outbox: vec![(entry.clone(), b"raw".to_vec())],
        durable: true,
        ..Default::default()
    };
    s.commit_message(&commit).unwrap();
    let mut sent = entry.clone();
    sent.status = OutboxStatus::Sent;
    s.outbox_update(&sent).unwrap();
    s.commit_message(&commit).unwrap();
    assert!(
        s.outbox_pending().unwrap().is_empty(),
        "a sent entry is never re-queued"
    );
    assert_eq!(s.outbox_all().unwrap().len(), 1);
}

#[test]
fn a_reply_the_server_accepted_before_a_crash_is_marked_sent_not_sent_again() {
    for place in places() {
        let s = place.open();
        let entry = OutboxEntry::new("id1", "m1", "vac", "", vec!["b@x.y".into()], 5);
        s.commit_message(&MessageCommit {
            message_key: "m1".into(),
            summary: "{}".into(),
            outbox: vec![(entry.clone(), b"raw".to_vec())],
            durable: true,
            ..Default::default()
        })
        .unwrap();
        // The server said 250 and the process died before the durable mark: all that is
        // left of the acceptance is the sent log's line.
        s.sent_log.record("id1").unwrap();
        drop(s);
        let s = place.open();
        assert!(s.outbox_pending().unwrap().is_empty(), "not sent again");
        let e = s.outbox_entry("id1").unwrap().unwrap();
        assert_eq!(e.status, OutboxStatus::Sent);
        drop(s);
        // And the log was emptied: a third open finds nothing to do.
        let (_, left) = sent_log::SentLog::open(match &place {
            Place::Dir(d) | Place::Pg(_, d) => d.path(),
        })
        .unwrap();
        assert!(left.is_empty(), "{left:?}");
    }
}

#[test]
fn an_answer_a_crash_left_in_doubt_is_not_sent_again_but_a_forward_is() {
    for place in places() {
        let s = place.open();
        let mut reply = OutboxEntry::new("r1", "m1", "vac", "", vec!["b@x.y".into()], 5);
        reply.automatic = true;
        let forward = OutboxEntry::new("f1", "m1", "fwd", "a@x.y", vec!["c@x.y".into()], 5);
        s.commit_message(&MessageCommit {
            message_key: "m1".into(),
            summary: "{}".into(),
            outbox: vec![
                (reply.clone(), b"raw".to_vec()),
                (forward.clone(), b"raw".to_vec()),
            ],
            durable: true,
            ..Default::default()
        })
        .unwrap();
        // Both handed to the server; the process dies before its answer to either.
        s.outbox_sending(&reply);
        s.outbox_sending(&forward);
        drop(s);
        let s = place.open();
        let pending: Vec<String> = s
            .outbox_pending()
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(
            pending,
            vec!["f1".to_string()],
            "the forward goes again, the reply not"
        );
        let r = s.outbox_entry("r1").unwrap().unwrap();
        assert_eq!(r.status, OutboxStatus::Sent);
        assert!(r.last_error.unwrap().contains("in doubt"));
        assert!(r.automatic, "kept through the store");
    }
}

#[test]
fn first_seen_is_recorded_once_and_kept() {
    for place in places() {
        let s = place.open();
        assert_eq!(
            s.seen_at("vacation@alice").unwrap(),
            None,
            "nothing recorded by asking"
        );
        assert_eq!(s.seen_at("vacation@alice").unwrap(), None);
        assert_eq!(s.first_seen("vacation@alice", 1000).unwrap(), 1000);
        assert_eq!(s.seen_at("vacation@alice").unwrap(), Some(1000));
        assert_eq!(s.first_seen("vacation@alice", 2000).unwrap(), 1000);
        assert_eq!(s.first_seen("vacation@bob", 3000).unwrap(), 3000);
        drop(s);
        let s = place.open();
        assert_eq!(
            s.first_seen("vacation@alice", 5000).unwrap(),
            1000,
            "kept across a restart"
        );
    }
}

fn kv_commit(key: &str, plugin: &str, value: Option<&[u8]>) -> MessageCommit {
    MessageCommit {
        message_key: key.into(),
        summary: "{}".into(),
        kv: vec![KvWrite {
            plugin: plugin.into(),
            key: key.into(),
            value: value.map(|v| (v.to_vec(), 0)),
        }],
        durable: false,
        ..Default::default()
    }
}

/// The cause of replies sent twice: a KV read while another task wrote the batch saw
/// neither the batch (already taken out) nor the database (not committed yet). Reads
/// racing with writes of every kind must always see every earlier commit.
#[test]
fn reads_see_every_commit_while_other_tasks_write() {
    // Fewer rounds on PostgreSQL: every read is a round trip there.
    for (place, rounds) in places().into_iter().zip([5000, 1000]) {
        reads_on(std::sync::Arc::new(place.open()), rounds);
    }
}

fn reads_on(s: std::sync::Arc<Store>, rounds: u32) {
    use std::sync::atomic::Ordering::Relaxed;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Writes made so far: the reader goes on until the writer has run alongside it (a
    // thread started late on a busy machine would otherwise find the reads already done).
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let writer = {
        let (s, stop, written) = (s.clone(), stop.clone(), written.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Relaxed) {
                match n % 3 {
                    0 => s.sync().unwrap(),
                    1 => s.finish_pending(&[]).unwrap(),
                    _ => s
                        .set_checkpoint(
                            "other",
                            UidMark {
                                validity: 1,
                                uid: n,
                            },
                        )
                        .unwrap(),
                }
                n += 1;
                written.store(n, Relaxed);
                // Writes keep coming, but leave the reader room: back to back, the
                // lock (not fair) can starve it for minutes on a slow machine.
                std::thread::sleep(std::time::Duration::from_micros(300));
            }
            n
        })
    };
    let mut misses = 0;
    let started = std::time::Instant::now();
    let mut i = 0;
    while i < rounds
        || (written.load(Relaxed) <= 10 && started.elapsed() < std::time::Duration::from_secs(60))
    {
        let key = format!("sender{i}");
        s.commit_message(&kv_commit(&key, "vacation", Some(b"1")))
            .unwrap();
        for back in 0..4.min(i + 1) {
            let k = format!("sender{}", i - back);
            if s.kv_get("vacation", &k, 0).unwrap().is_none() {
                misses += 1;
            }
        }
        assert!(s.is_processed(&format!("sender{}", i / 3)).unwrap());
        drop(key);
        i += 1;
    }
    stop.store(true, Relaxed);
    let writes = writer.join().unwrap();
    assert!(writes > 10, "the writer ran alongside ({writes} writes)");
    assert_eq!(misses, 0, "reads that missed an earlier commit");
}

#[test]
fn kv_usage_follows_writes_deletes_purges_and_reopen() {
    for place in places() {
        kv_usage_on(&place);
    }
}

fn kv_usage_on(place: &Place) {
    {
        let s = place.open();
        s.commit_message(&kv_commit("ab", "p", Some(b"1234")))
            .unwrap();
        s.commit_message(&kv_commit("cd", "p", Some(b"12")))
            .unwrap();
        assert_eq!(s.kv_usage("p"), KvUsage { keys: 2, bytes: 10 });
        s.commit_message(&kv_commit("ab", "p", Some(b"1"))).unwrap();
        assert_eq!(s.kv_usage("p"), KvUsage { keys: 2, bytes: 7 });
        s.commit_message(&kv_commit("cd", "p", None)).unwrap();
        assert_eq!(s.kv_usage("p"), KvUsage { keys: 1, bytes: 3 });
        assert_eq!(s.kv_usage("q"), KvUsage::default());
        let mut expiring = kv_commit("ex", "p", Some(b"xyz"));
        expiring.kv[0].value = Some((b"xyz".to_vec(), 100));
        s.commit_message(&expiring).unwrap();
        assert_eq!(s.kv_usage("p"), KvUsage { keys: 2, bytes: 8 });
        assert_eq!(s.kv_purge_expired(200).unwrap(), 1);
        assert_eq!(s.kv_usage("p"), KvUsage { keys: 1, bytes: 3 });
    }
    let s = place.open();
    assert_eq!(
        s.kv_usage("p"),
        KvUsage { keys: 1, bytes: 3 },
        "counted again at open"
    );
}

#[test]
fn keyed_hashes_differ_per_installation_and_survive_reopen() {
    for (a, b) in places().into_iter().zip(places()) {
        let h1 = a.open().keyed_hash(b"imap:x/INBOX/1/7");
        let h2 = b.open().keyed_hash(b"imap:x/INBOX/1/7");
        assert_ne!(h1, h2, "another installation cannot predict our markers");
        assert_eq!(a.open().keyed_hash(b"imap:x/INBOX/1/7"), h1);
    }
}

fn imap_commit(account: &str, uid: u32) -> MessageCommit {
    MessageCommit {
        message_key: format!(
            "{}INBOX/1/{uid}",
            crate::model::key::imap_key_prefix(account)
        ),
        summary: "{}".into(),
        durable: true,
        ..Default::default()
    }
}

/// Shared store: one process owns an account at a time, a commit for an account this process
/// does not own writes nothing (fencing), an outbox entry is sent by one process, and when a
/// session ends its accounts go with it (the server ended it; the next call opens a new
/// session that owns nothing).
#[test]
fn accounts_are_owned_by_one_process_and_commits_are_fenced() {
    let place = Place::Pg(test_postgres(), tempfile::tempdir().unwrap());
    let Place::Pg(pg, _) = &place else {
        unreachable!()
    };
    let a = place.open();
    let b = place.open();
    assert_eq!(a.processes().unwrap(), 2);
    let first = imap_commit("alice", 1);
    assert!(a.commit_message(&first).unwrap_err().is_fenced());
    assert!(
        !a.is_processed(&first.message_key).unwrap(),
        "nothing written"
    );
    assert!(a.claim_account("alice").unwrap());
    assert!(!b.claim_account("alice").unwrap(), "owned by a");
    a.commit_message(&first).unwrap();
    assert!(b.is_processed(&first.message_key).unwrap());
    assert!(b
        .commit_message(&imap_commit("alice", 2))
        .unwrap_err()
        .is_fenced());
    // Offline keys belong to no account: not fenced.
    b.commit_message(&MessageCommit {
        message_key: "offline:x".into(),
        summary: "{}".into(),
        durable: true,
        ..Default::default()
    })
    .unwrap();

    // The outbox: one sender at a time, and a sent entry is not taken again.
    let mut queued = imap_commit("alice", 3);
    let entry = OutboxEntry::new(
        "o1",
        &queued.message_key,
        "vac",
        "",
        vec!["x@y.z".into()],
        5,
    );
    queued.outbox = vec![(entry, b"raw".to_vec())];
    a.commit_message(&queued).unwrap();
    let mut taken = a.outbox_claim("o1").unwrap().expect("queued");
    assert!(b.outbox_claim("o1").unwrap().is_none(), "a is sending it");
    taken.status = OutboxStatus::Sent;
    a.outbox_update(&taken).unwrap();
    a.outbox_release("o1").unwrap();
    assert!(b.outbox_claim("o1").unwrap().is_none(), "sent already");
    assert_eq!(b.outbox_raw("o1").unwrap(), None, "bytes dropped once sent");

    // a's session is ended by the server (as after a pause longer than the lease).
    let mut admin = admin(pg).unwrap();
    admin
        .execute(
            "SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a
             WHERE a.application_name = $1 AND a.pid IN
                   (SELECT pid FROM pg_locks WHERE locktype = 'advisory')",
            &[&format!("mailpipe/{}", pg.schema)],
        )
        .unwrap();
    // The first call finds the session gone; its accounts are no longer owned.
    let _ = a.is_processed("x");
    assert!(a.owned_accounts().is_empty());
    let next = imap_commit("alice", 4);
    assert!(
        a.commit_message(&next).unwrap_err().is_fenced(),
        "a new session owns nothing"
    );
    assert!(
        b.claim_account("alice").unwrap(),
        "free for another process"
    );
    b.commit_message(&next).unwrap();
    assert!(!a.claim_account("alice").unwrap());
}

#[test]
fn a_schema_of_a_newer_mailpipe_is_refused() {
    let place = Place::Pg(test_postgres(), tempfile::tempdir().unwrap());
    let Place::Pg(pg, _) = &place else {
        unreachable!()
    };
    drop(place.open());
    let mut admin = admin(pg).unwrap();
    admin
        .execute(
            &format!(
                "INSERT INTO {}.schema_migrations (version) VALUES (999)",
                pg.schema
            ),
            &[],
        )
        .unwrap();
    let err = Store::open_config(&StateSettings::Postgres(pg.clone()), Path::new(""))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("written by a newer mailpipe"), "{err}");
}

/// TLS to PostgreSQL: verified against the test bed's CA (the test PostgreSQL serves the
/// stack's certificate, tests/mailstack/postgres.sh), refused with another CA.
#[test]
fn tls_to_postgres_is_verified() {
    let mut pg = test_postgres();
    let stack = std::path::PathBuf::from(
        std::env::var("MAILSTACK_DIR").unwrap_or_else(|_| "/tmp/mailpipe-mailstack".into()),
    );
    let place = Place::Pg(pg.clone(), tempfile::tempdir().unwrap());
    pg.tls = true;
    pg.ca_file = Some(stack.join("tls/ca.pem"));
    let store = Store::open_config(&StateSettings::Postgres(pg.clone()), Path::new(""))
        .expect("TLS with the stack's CA");
    let ssl: bool = {
        let name = format!("mailpipe/{}", pg.schema);
        let Place::Pg(plain, _) = &place else {
            unreachable!()
        };
        let mut admin = admin(plain).unwrap();
        admin
            .query_one(
                "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
                 WHERE a.application_name = $1",
                &[&name],
            )
            .unwrap()
            .get(0)
    };
    assert!(ssl, "the session is encrypted");
    drop(store);
    pg.ca_file = Some(stack.join("tls/wrong-ca.pem"));
    let err = Store::open_config(&StateSettings::Postgres(pg), Path::new(""))
        .err()
        .expect("another CA is refused")
        .to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

/// An account's key-value namespace gets a copy of the plugin's own entries once: later
/// changes on either side stay apart, and a key deleted in the namespace stays deleted.
#[test]
fn a_namespace_gets_one_copy_of_the_plugins_entries() {
    for place in places() {
        let s = place.open();
        let put = |ns: &str, key: &str, value: Option<&[u8]>| {
            let mut c = kv_commit(key, ns, value);
            c.message_key = format!("m-{ns}-{key}");
            c.durable = true;
            s.commit_message(&c).unwrap();
        };
        put("vac", "replied:ann", Some(b"1"));
        put("vac", "replied:ben", Some(b"1"));
        let alice = kv_namespace("vac", Some("alice"));
        s.prepare_kv_namespace("vac", &alice).unwrap();
        assert_eq!(
            s.kv_get(&alice, "replied:ann", 0).unwrap(),
            Some(b"1".to_vec())
        );
        assert_eq!(s.kv_usage(&alice).keys, 2);
        // Apart from now on; a deletion is not undone by copying again.
        put(&alice, "replied:ann", None);
        put("vac", "replied:cid", Some(b"1"));
        assert_eq!(s.kv_copy_into_namespace("vac", &alice).unwrap(), 0, "once");
        assert_eq!(s.kv_get(&alice, "replied:ann", 0).unwrap(), None);
        assert_eq!(s.kv_get(&alice, "replied:cid", 0).unwrap(), None);
        assert_eq!(
            s.kv_get("vac", "replied:ann", 0).unwrap(),
            Some(b"1".to_vec())
        );
        // Another account gets the plugin's entries as they are now; a reopened store knows
        // alice has had hers.
        let bob = kv_namespace("vac", Some("bob"));
        assert_eq!(s.kv_copy_into_namespace("vac", &bob).unwrap(), 3);
        drop(s);
        let s = place.open();
        assert_eq!(s.kv_copy_into_namespace("vac", &alice).unwrap(), 0);
        assert_eq!(s.kv_usage(&alice).keys, 1);
    }
}

#[test]
fn sieve_scripts_per_account_with_quotas_and_one_active() {
    for place in places() {
        sieve_scripts_on(&place.open());
        // Reopened (after a restart): everything is still there.
        let s = place.open();
        let set = scripts::list(&s, "alice").unwrap();
        assert_eq!(set.active().map(|a| a.name.as_str()), Some("main"));
        assert_eq!(set.get("main").unwrap().text, "discard;");
    }
}

fn sieve_scripts_on(s: &Store) {
    use scripts::{ScriptError, ScriptLimits};
    let limits = ScriptLimits {
        max_scripts: 3,
        max_bytes: 20,
    };
    assert!(scripts::list(s, "alice").unwrap().scripts.is_empty());
    let v1 = scripts::put(s, "alice", "main", "keep;", &limits).unwrap();
    let v2 = scripts::put(s, "alice", "lib", "stop;", &limits).unwrap();
    assert!(v2 > v1);
    // The same text again changes nothing, not even the version.
    assert_eq!(
        scripts::put(s, "alice", "main", "keep;", &limits).unwrap(),
        v1
    );
    // Another account sees none of them.
    assert!(scripts::list(s, "bob").unwrap().scripts.is_empty());
    scripts::put(s, "bob", "main", "stop;", &limits).unwrap();

    // One active at a time; the active one cannot be deleted.
    assert!(scripts::list(s, "alice").unwrap().active().is_none());
    scripts::set_active(s, "alice", Some("main")).unwrap();
    scripts::set_active(s, "alice", Some("lib")).unwrap();
    scripts::set_active(s, "alice", Some("main")).unwrap();
    let set = scripts::list(s, "alice").unwrap();
    assert_eq!(set.scripts.iter().filter(|x| x.active).count(), 1);
    assert!(matches!(
        scripts::delete(s, "alice", "main"),
        Err(ScriptError::Active(_))
    ));
    assert!(matches!(
        scripts::set_active(s, "alice", Some("nope")),
        Err(ScriptError::NoSuchScript(_))
    ));

    // A new text keeps it active and gives it a new version.
    let before = set.get("main").unwrap().version;
    let after = scripts::put(s, "alice", "main", "discard;", &limits).unwrap();
    assert!(after > before);
    let set = scripts::list(s, "alice").unwrap();
    assert_eq!(set.active().unwrap().version, after);

    // Quotas: size, then count (replacing an existing script is not a new one).
    let e = scripts::put(s, "alice", "big", &"x".repeat(21), &limits).unwrap_err();
    assert_eq!(e.response_code(), Some("QUOTA/MAXSIZE"));
    scripts::put(s, "alice", "third", "keep;", &limits).unwrap();
    let e = scripts::put(s, "alice", "fourth", "keep;", &limits).unwrap_err();
    assert_eq!(e.response_code(), Some("QUOTA/MAXSCRIPTS"));
    scripts::put(s, "alice", "third", "stop;", &limits).unwrap();
    assert!(scripts::have_space(s, "alice", "fourth", 1, &limits).is_err());
    // A name is one name however its accents are encoded (NFC): "caf\u{e9}" precomposed and
    // "cafe\u{301}" decomposed replace, find and delete the same script.
    scripts::delete(s, "alice", "third").unwrap();
    scripts::put(s, "alice", "caf\u{e9}", "keep;", &limits).unwrap();
    scripts::put(s, "alice", "cafe\u{301}", "stop;", &limits).unwrap();
    let set = scripts::list(s, "alice").unwrap();
    assert_eq!(set.get("cafe\u{301}").unwrap().text, "stop;");
    assert_eq!(set.scripts.len(), 3);
    scripts::rename(s, "alice", "cafe\u{301}", "third").unwrap();
    assert!(scripts::have_space(s, "alice", "third", 20, &limits).is_ok());

    // Names: hostile ones are refused.
    for bad in [
        "",
        "a/b",
        "..",
        ".hidden",
        "a\u{0}b",
        "a\\b",
        &"n".repeat(129),
    ] {
        assert!(
            matches!(
                scripts::put(s, "alice", bad, "keep;", &limits),
                Err(ScriptError::BadName { .. })
            ),
            "{bad:?}"
        );
    }

    // Rename: the active one stays active; onto an existing name is refused.
    assert!(matches!(
        scripts::rename(s, "alice", "lib", "third"),
        Err(ScriptError::AlreadyExists(_))
    ));
    scripts::rename(s, "alice", "main", "main2").unwrap();
    assert_eq!(
        scripts::list(s, "alice").unwrap().active().unwrap().name,
        "main2"
    );
    scripts::rename(s, "alice", "main2", "main").unwrap();
    scripts::delete(s, "alice", "third").unwrap();
    assert!(matches!(
        scripts::delete(s, "alice", "third"),
        Err(ScriptError::NoSuchScript(_))
    ));
    let names: Vec<String> = scripts::list(s, "alice")
        .unwrap()
        .scripts
        .into_iter()
        .map(|x| x.name)
        .collect();
    assert_eq!(names, ["lib", "main"]);
    // bob's untouched.
    assert_eq!(scripts::list(s, "bob").unwrap().scripts.len(), 1);
}

#[test]
fn sieve_script_changes_from_two_writers_are_never_lost() {
    for place in places() {
        // Two processes on PostgreSQL; two threads of one process on the embedded store
        // (its file is open in one process only).
        let stores = match &place {
            Place::Dir(_) => vec![place.open()],
            Place::Pg(..) => vec![place.open(), place.open()],
        };
        let (a, b) = (&stores[0], stores.last().unwrap());
        let limits = scripts::ScriptLimits {
            max_scripts: 100,
            ..Default::default()
        };
        std::thread::scope(|t| {
            for (who, s) in [("a", a), ("b", b)] {
                t.spawn(move || {
                    for i in 0..20 {
                        scripts::put(s, "carol", &format!("{who}{i}"), "keep;", &limits).unwrap();
                    }
                });
            }
        });
        assert_eq!(scripts::list(a, "carol").unwrap().scripts.len(), 40);
        // A stale writer is refused, not merged.
        let set = a.scripts_load("carol").unwrap();
        assert!(!b.scripts_replace("carol", set.version - 1, &set).unwrap());
        // The version alone, as readers check it per message; 0 for an account without any.
        assert_eq!(b.scripts_version("carol").unwrap(), set.version);
        assert_eq!(a.scripts_version("nobody").unwrap(), 0);
    }
}
