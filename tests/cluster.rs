//! Many daemons sharing one PostgreSQL state store (issue 14), on real servers: a private
//! Dovecot + Postfix with 300 users (tests/mailstack/start.sh under its own directory and
//! ports) and the test PostgreSQL (`MAILPIPE_TEST_POSTGRES`, tests/mailstack/postgres.sh).
//!
//! Three `mailpipe run` processes serve the same 300 accounts, each filing everything into
//! "Filed" and answering with the vacation auto-responder. Mail arrives in three rounds; one
//! process is SIGKILLed, another SIGSTOPped for longer than its lease and resumed. In the end
//! every message is filed exactly once and every account sent exactly one auto-reply, and the
//! time the others took to take over the killed process's accounts is reported.

mod common;

use common::mailstack::*;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ACCOUNTS: usize = 300;
const LEASE_SECONDS: u64 = 6;
/// Ports of the private stack: 16xxx (the shared stack uses 10xxx, bench/run.sh 11xxx,
/// bench/accounts.sh 12xxx, Cyrus 13xxx and 14xxx, PostgreSQL 15432).
const PORTS: [(&str, u16); 7] = [
    ("IMAP", 16143),
    ("IMAPS", 16993),
    ("SMTP", 16025),
    ("SUBMISSION", 16587),
    ("SUBMISSIONS", 16465),
    ("LMTP", 16024),
    ("OAUTH", 16080),
];

fn user(i: usize) -> String {
    format!("c{i:03}")
}

const STACK_DIR: &str = "/tmp/mailpipe-cluster-stack";

/// Start (or restart) the private stack with the accounts' users and "outside", who sends
/// the mail and receives the auto-replies.
fn cluster_stack() -> Stack {
    let mut users: Vec<String> = (0..ACCOUNTS).map(user).collect();
    users.push("outside".into());
    private_stack(Path::new(STACK_DIR), &PORTS, &users)
}

struct Instance {
    child: Child,
    log: PathBuf,
}

impl Instance {
    fn start(config: &Path, n: usize, password: &str) -> Instance {
        // Beside the private stack, kept after the test for a look.
        let log = config.with_file_name(format!("instance-{n}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_mailpipe"))
            .args(["run", "-c", config.to_str().unwrap()])
            .env("MAILPIPE_TEST_PG_PASSWORD", password)
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap();
        Instance { child, log }
    }

    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test PostgreSQL, seen from the test.
struct Db(postgres::Config);

impl Db {
    fn run<T: Send>(&self, f: impl FnOnce(&mut postgres::Client) -> T + Send) -> T {
        sql(&self.0, f)
    }
}

/// Accounts owned now, per process id of the server session (each instance has one).
fn owners(db: &Db, schema: &str) -> BTreeMap<i32, usize> {
    let rows = db.run(|db| {
        db.query(
            "SELECT a.pid, count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = $1
               AND (l.classid::bigint >> 24) = 1
             GROUP BY a.pid",
            &[&format!("mailpipe/{schema}")],
        )
        .unwrap()
    });
    rows.iter()
        .map(|r| (r.get::<_, i32>(0), r.get::<_, i64>(1) as usize))
        .collect()
}

fn count(db: &Db, sql: String) -> usize {
    db.run(|db| db.query_one(&sql, &[]).unwrap().get::<_, i64>(0) as usize)
}

fn processed(db: &Db, schema: &str) -> usize {
    count(db, format!("SELECT count(*) FROM {schema}.processed"))
}

fn sent(db: &Db, schema: &str) -> usize {
    count(
        db,
        format!("SELECT count(*) FROM {schema}.outbox WHERE status = 'sent'"),
    )
}

/// One SMTP session to the private Postfix delivering `round`'s message to every account,
/// each from its own sender (a subaddress of "outside"), so that every reply can be told
/// apart in outside's one mailbox.
fn send_round(stack: &Stack, round: usize) {
    let pairs: Vec<(String, String)> = (0..ACCOUNTS)
        .map(|i| {
            (
                format!("outside+{}@example.test", user(i)),
                format!("{}@example.test", user(i)),
            )
        })
        .collect();
    send_each(
        stack,
        "SMTP",
        &pairs,
        &format!("cluster round {round}"),
        &format!("r{round}"),
    )
}

async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool, logs: &[&Path]) {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > limit {
            let tails: Vec<String> = logs
                .iter()
                .map(|l| {
                    let t = std::fs::read_to_string(l).unwrap_or_default();
                    let n = t.len().saturating_sub(1500);
                    format!("--- {}:\n{}", l.display(), &t[t.floor_char_boundary(n)..])
                })
                .collect();
            panic!(
                "{what}: not within {limit:?}\n{}\n{what}: not within {limit:?}",
                tails.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_instances_share_300_accounts_through_kill_and_pause() {
    let stack = cluster_stack();
    let _stop = StopOnDrop(PathBuf::from(STACK_DIR));
    let (pg, url, password) = test_postgres();
    let db = Db(pg);
    let schema = format!("cluster_{}", std::process::id());
    let drop_schema = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
    db.run(|db| db.batch_execute(&drop_schema).unwrap());

    let mut text = format!(
        "[state]\nbackend = \"postgres\"\nurl = \"{url}\"\npassword_env = \"MAILPIPE_TEST_PG_PASSWORD\"\n\
         schema = \"{schema}\"\nlease_seconds = {LEASE_SECONDS}\n\
         [accounts]\nconnects_per_second = 200\n\
         [outbox]\nfirst_retry_seconds = 1\nmax_retry_seconds = 5\n"
    );
    for i in 0..ACCOUNTS {
        text += &stack.account_toml(&user(i), &["INBOX"], "");
    }
    let addresses: Vec<String> = (0..ACCOUNTS)
        .map(|i| format!("{}@example.test", user(i)))
        .collect();
    text += &plugin_toml(
        "vacation",
        "auto-responder",
        &format!("[plugin.config]\naddresses = {addresses:?}\ndays = 7\nsubject = \"away\"\nbody = \"away\""),
    );
    text += &plugin_toml(
        "filer",
        "rules-filer",
        "[plugin.config]\nrules = [ { name = \"all\", folder = \"Filed\", conditions = [ { subject = true, op = \"contains\", value = \"cluster round\" } ] } ]",
    );
    let config = PathBuf::from("/tmp/mailpipe-cluster-stack/mailpipe.toml");
    std::fs::write(&config, &text).unwrap();
    // The config must be valid before three processes are started with it.
    let check = Command::new(env!("CARGO_BIN_EXE_mailpipe"))
        .args(["check", "-c", config.to_str().unwrap()])
        .env("MAILPIPE_TEST_PG_PASSWORD", &password)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    let instances: Vec<Instance> = (0..3)
        .map(|n| Instance::start(&config, n, &password))
        .collect();
    let logs: Vec<PathBuf> = instances.iter().map(|i| i.log.clone()).collect();
    let logs: Vec<&Path> = logs.iter().map(|p| p.as_path()).collect();

    // Every account owned, by three processes, none with more than its share.
    wait_until(
        "300 accounts owned by 3 processes",
        Duration::from_secs(120),
        || {
            let o = owners(&db, &schema);
            o.len() == 3 && o.values().sum::<usize>() == ACCOUNTS && o.values().all(|&n| n == 100)
        },
        &logs,
    )
    .await;
    // Let the accounts connect and idle before mail comes.
    tokio::time::sleep(Duration::from_secs(5)).await;

    send_round(&stack, 1);
    wait_until(
        "round 1 processed",
        Duration::from_secs(120),
        || processed(&db, &schema) >= ACCOUNTS,
        &logs,
    )
    .await;

    // SIGKILL one process, then mail for everyone; SIGSTOP another past its lease.
    let killed_at = Instant::now();
    instances[0].signal("-KILL");
    instances[1].signal("-STOP");
    let round2 = {
        let stack = Stack::at(stack.dir.clone());
        std::thread::spawn(move || send_round(&stack, 2))
    };
    wait_until(
        "the killed process's accounts taken over",
        Duration::from_secs(60),
        || owners(&db, &schema).values().sum::<usize>() == ACCOUNTS,
        &logs,
    )
    .await;
    let takeover = killed_at.elapsed();
    // Past the lease, the paused process's session is ended by the server and the last one
    // takes every account.
    wait_until(
        "the paused process's accounts taken over",
        Duration::from_secs(60),
        || {
            let o = owners(&db, &schema);
            o.len() == 1 && o.values().sum::<usize>() == ACCOUNTS
        },
        &logs,
    )
    .await;
    let paused_takeover = killed_at.elapsed();
    round2.join().unwrap();
    instances[1].signal("-CONT");
    wait_until(
        "round 2 processed",
        Duration::from_secs(120),
        || processed(&db, &schema) >= 2 * ACCOUNTS,
        &logs,
    )
    .await;
    // The resumed process gets its share back (rebalancing).
    wait_until(
        "the resumed process owns its share again",
        Duration::from_secs(90),
        || {
            let o = owners(&db, &schema);
            o.len() == 2 && o.values().sum::<usize>() == ACCOUNTS && o.values().all(|&n| n == 150)
        },
        &logs,
    )
    .await;
    let rebalanced = killed_at.elapsed();
    send_round(&stack, 3);
    wait_until(
        "round 3 processed and every auto-reply sent",
        Duration::from_secs(120),
        || processed(&db, &schema) >= 3 * ACCOUNTS && sent(&db, &schema) >= ACCOUNTS,
        &logs,
    )
    .await;

    // What the servers hold: every message filed once, every account's INBOX empty.
    let users: Vec<String> = (0..ACCOUNTS).map(user).collect();
    let problems = filed_exactly(&stack, &users, "Filed", 3).await;
    // Every auto-reply exactly once: one per account in the sender's mailbox.
    let deadline = Instant::now() + Duration::from_secs(60);
    let replies = loop {
        let mut s = stack.session("outside").await;
        let got = list(&mut s, "INBOX").await;
        let _ = s.logout().await;
        if got.len() >= ACCOUNTS || Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut s = stack.session("outside").await;
    let replies_after = list(&mut s, "INBOX").await;
    let to: Vec<String> = replies_after
        .iter()
        .filter_map(|(_, _, h)| {
            h.lines()
                .find(|l| l.to_ascii_lowercase().starts_with("to:"))
                .map(|l| l.to_string())
        })
        .collect();
    let distinct_to: HashSet<&String> = to.iter().collect();
    eprintln!(
        "cluster: takeover of a SIGKILLed process's 100 accounts {:.1} s; of a SIGSTOPped one's \
         (lease {LEASE_SECONDS} s) {:.1} s after the kill; rebalanced to 150/150 {:.1} s after the kill; \
         {} replies",
        takeover.as_secs_f64(),
        paused_takeover.as_secs_f64(),
        rebalanced.as_secs_f64(),
        replies.len()
    );
    assert!(
        problems.is_empty(),
        "not filed exactly once:\n{}",
        problems.join("\n")
    );
    assert_eq!(
        replies_after.len(),
        ACCOUNTS,
        "auto-replies received (one per account)"
    );
    assert_eq!(
        distinct_to.len(),
        ACCOUNTS,
        "one reply to each account's sender"
    );
    db.run(|db| db.batch_execute(&drop_schema).unwrap());
}
