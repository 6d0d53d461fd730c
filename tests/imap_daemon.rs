//! The long-running daemon (`mailpipe run` with IDLE) as a real child process against the
//! real test bed, including faults: new mail is processed within seconds, a SIGKILL in the
//! middle of a run loses and duplicates nothing, a Dovecot restart is survived, and replies
//! wait in the outbox while Postfix is down. These tests restart servers, so they run one at
//! a time.

mod badsmtp;
mod common;

use common::mailstack::*;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Daemon {
    child: Child,
    log: std::path::PathBuf,
}

impl Daemon {
    fn start(config: &std::path::Path, args: &[&str]) -> Daemon {
        Daemon::start_under(&[], config, args)
    }

    /// `mailpipe run` started by the command `wrapper` (e.g. strace), if not empty.
    fn start_under(wrapper: &[&str], config: &std::path::Path, args: &[&str]) -> Daemon {
        let log = config.with_extension(format!("log{}", mailpipe::clock::now_ms()));
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(env!("CARGO_BIN_EXE_mailpipe"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_mailpipe")),
        };
        let child = cmd
            .args(["run", "-c", config.to_str().unwrap()])
            .args(args)
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap();
        Daemon { child, log }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until the daemon's output contains `needle`.
    async fn wait_output(&self, needle: &str, limit: Duration) {
        self.wait_output_times(needle, 1, limit).await
    }

    /// Wait until the daemon's output contains `needle` at least `times` times.
    async fn wait_output_times(&self, needle: &str, times: usize, limit: Duration) {
        let start = Instant::now();
        while self.output().matches(needle).count() < times {
            assert!(
                start.elapsed() < limit,
                "not {times} × {needle:?} within {limit:?}:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL: no chance to clean up.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

fn smtp_send(stack: &Stack, to: &str, subject: &str, id: &str) {
    let status = Command::new("swaks")
        .args([
            "--server",
            "127.0.0.1",
            "--port",
            &stack.port("SMTP").to_string(),
        ])
        .args(["--from", "bob@example.test", "--to", to])
        .args([
            "--header",
            &format!("Subject: {subject}"),
            "--header",
            &format!("Message-ID: <{id}>"),
        ])
        .stdout(Stdio::null())
        .status()
        .expect("swaks");
    assert!(status.success());
}

fn filer_on_subject(tag: &str, folder: &str) -> String {
    plugin_toml(
        "filer",
        "rules-filer",
        &format!(
            "[plugin.config]\nrules = [ {{ name = \"t\", folder = \"{folder}\", conditions = [ {{ subject = true, op = \"contains\", value = \"{tag}\" }} ] }} ]"
        ),
    )
}

/// `n` messages "Sender i" -> alice, subject "{tag} #i", Message-ID <i.{tag}@example.net>.
async fn fill(
    s: &mut mailpipe::source::imap::connect::ImapSession,
    mailbox: &str,
    tag: &str,
    n: usize,
) {
    create(s, mailbox).await;
    for i in 0..n {
        let raw = message(
            &format!("Sender {i} <s{i}@example.net>"),
            "alice@example.test",
            &format!("{tag} #{i}"),
            &format!("{i}.{tag}@example.net"),
            "",
        );
        append(s, mailbox, &raw).await;
    }
}

/// SIGKILL the daemon as soon as `dst` holds at least `at_least` messages; how many it held.
async fn kill_when_moved(
    daemon: &mut Daemon,
    s: &mut mailpipe::source::imap::connect::ImapSession,
    dst: &str,
    at_least: usize,
) -> usize {
    let start = Instant::now();
    while list(s, dst).await.len() < at_least {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no progress:\n{}",
            daemon.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    daemon.kill();
    list(s, dst).await.len()
}

/// Send a message (subject, Message-ID) to `to` through Postfix and wait until `user`'s
/// `folder` holds a message whose headers contain `needle`; `why` (with the daemon's
/// output) if not within 30 s.
async fn send_and_see_filed(
    daemon: &Daemon,
    stack: &Stack,
    to: &str,
    (subject, id): (&str, &str),
    (user, folder, needle): (&str, &str, &str),
    why: &str,
) {
    smtp_send(stack, to, subject, id);
    let filed = wait_for(stack, user, folder, needle, Duration::from_secs(30)).await;
    assert!(filed.is_some(), "{why}:\n{}", daemon.output());
}

/// `mailpipe run --once` to the end; it must succeed.
fn run_once(config: &std::path::Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_mailpipe"))
        .args(["run", "-c", config.to_str().unwrap(), "--once"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn write_config(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    let cfg = config(dir, &format!("[state]\ndir = \"{}\"\n[outbox]\nfirst_retry_seconds = 1\nmax_retry_seconds = 5\n{body}", dir.join("state").display()));
    cfg.file
}

#[tokio::test]
async fn idle_processes_new_mail_within_seconds() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::get();
    let tag = unique("idle");
    let folder = format!("T-{tag}");
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(
        dir.path(),
        &(stack.account_toml("alice", &["INBOX"], "") + &filer_on_subject(&tag, &folder)),
    );
    let daemon = Daemon::start(&file, &[]);
    // Wait until it is connected and idling.
    daemon
        .wait_output("connected (IDLE)", Duration::from_secs(60))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = Instant::now();
    smtp_send(
        &stack,
        "alice@example.test",
        &format!("hello {tag}"),
        &format!("{tag}@example.test"),
    );
    let filed = wait_for(&stack, "alice", &folder, &tag, Duration::from_secs(20)).await;
    assert!(
        filed.is_some(),
        "not filed within 20 s:\n{}",
        daemon.output()
    );
    eprintln!("IDLE: SMTP acceptance to filed in {:?}", sent.elapsed());
}

#[tokio::test]
async fn sigkill_mid_run_loses_and_duplicates_nothing() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::get();
    let tag = unique("kill");
    let (src, dst) = (format!("T-{tag}-in"), format!("T-{tag}-out"));
    let n = 120;
    let mut s = stack.session("alice").await;
    fill(&mut s, &src, &tag, n).await;
    // Every message is moved to dst and forwarded to carol: both must happen exactly once.
    let body = stack.account_toml("alice", &[&src], "batch = 7\napply_batch = 7\nmode = \"poll\"")
        + &filer_on_subject(&tag, &dst)
        + &plugin_toml(
            "fwd",
            "forwarder",
            &format!("send_about_mail_since = \"all\"\nallow_send_to = [\"carol@example.test\"]\n[plugin.config]\nrules = [ {{ subject_contains = \"{tag}\", to = [\"carol@example.test\"] }} ]"),
        );
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(dir.path(), &body);
    let mut daemon = Daemon::start(&file, &[]);
    let killed_at = kill_when_moved(&mut daemon, &mut s, &dst, n / 3).await;
    assert!(
        killed_at < n,
        "killed too late to prove anything ({killed_at})"
    );

    // Start again and let it finish.
    run_once(&file);

    let moved = list(&mut s, &dst).await;
    assert!(
        list(&mut s, &src).await.is_empty(),
        "every message left the source mailbox"
    );
    for i in 0..n {
        assert_eq!(
            count(&moved, &format!("Message-ID: <{i}.{tag}@example.net>")),
            1,
            "message {i} filed once (killed at {killed_at})"
        );
    }
    // Forwards: wait for all to arrive, then make sure none arrived twice.
    let start = Instant::now();
    loop {
        let mut c = stack.session("carol").await;
        let inbox = list(&mut c, "INBOX").await;
        let got = count(&inbox, &format!("Subject: {tag} #"));
        if got >= n {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let inbox = list(&mut c, "INBOX").await;
            for i in 0..n {
                assert_eq!(
                    count(&inbox, &format!("Message-ID: <{i}.{tag}@example.net>")),
                    1,
                    "forward of {i} sent once"
                );
            }
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "only {got}/{n} forwards arrived"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn a_dovecot_restart_is_survived() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::get();
    let tag = unique("dcrestart");
    let folder = format!("T-{tag}");
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(
        dir.path(),
        &(stack.account_toml("alice", &["INBOX"], "") + &filer_on_subject(&tag, &folder)),
    );
    let daemon = Daemon::start(&file, &[]);
    daemon
        .wait_output("connected (IDLE)", Duration::from_secs(60))
        .await;
    stack.run("restart-dovecot.sh", &[]);
    smtp_send(
        &stack,
        "alice@example.test",
        &format!("after restart {tag}"),
        &format!("{tag}@example.test"),
    );
    let filed = wait_for(&stack, "alice", &folder, &tag, Duration::from_secs(60)).await;
    assert!(
        filed.is_some(),
        "not processed after the restart:\n{}",
        daemon.output()
    );
    assert!(
        daemon.output().contains("reconnecting"),
        "{}",
        daemon.output()
    );
}

#[tokio::test]
async fn replies_wait_in_the_outbox_while_postfix_is_down() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::get();
    let tag = unique("pfdown");
    let box_ = format!("T-{tag}");
    let mut s = stack.session("alice").await;
    create(&mut s, &box_).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(
        dir.path(),
        &(stack.account_toml("alice", &[&box_], "")
            + &plugin_toml(
                "vacation",
                "auto-responder",
                "send_about_mail_since = \"all\"\n[plugin.config]\naddresses = [\"alice@example.test\"]\nbody = \"away\"",
            )),
    );
    let ctl = |what: &str| {
        let st = Command::new("bash")
            .arg(stack.script("postfix-ctl.sh"))
            .arg(what)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "postfix-ctl {what}");
    };
    ctl("stop");
    let daemon = Daemon::start(&file, &[]);
    append(
        &mut s,
        &box_,
        &message(
            "Bob <bob@example.test>",
            "alice@example.test",
            &format!("ping {tag}"),
            &format!("{tag}@example.test"),
            "",
        ),
    )
    .await;
    // The message is processed and the reply queued, but cannot be sent.
    daemon
        .wait_output(&format!("ping {tag}"), Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    ctl("start");
    let needle = format!("In-Reply-To: <{tag}@example.test>");
    let got = wait_for(&stack, "bob", "INBOX", &needle, Duration::from_secs(60)).await;
    assert!(
        got.is_some(),
        "reply not delivered after Postfix came back:\n{}",
        daemon.output()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut b = stack.session("bob").await;
    assert_eq!(count(&list(&mut b, "INBOX").await, &needle), 1, "sent once");
}

/// Full messages of `mailbox`: (headers + body) as text.
async fn full_messages(
    s: &mut mailpipe::source::imap::connect::ImapSession,
    mailbox: &str,
) -> Vec<String> {
    use futures::TryStreamExt;
    let Ok(mb) = s.select(mailpipe::model::folder::encode(mailbox)).await else {
        return Vec::new();
    };
    if mb.exists == 0 {
        return Vec::new();
    }
    let stream = s.uid_fetch("1:*", "(UID BODY.PEEK[])").await.unwrap();
    let items: Vec<_> = stream.try_collect().await.unwrap();
    items
        .iter()
        .map(|f| String::from_utf8_lossy(f.body().unwrap_or_default()).into_owned())
        .collect()
}

/// A rewrite of headers-only mail keeps just the new header block in its plan; the body is
/// read from the original when the plan is carried out, also after a crash. Killed in the
/// middle of such a run, a restart leaves every message once, rewritten, with its body.
#[tokio::test]
async fn sigkill_during_rewrites_keeps_every_body() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::get();
    let tag = unique("rwkill");
    let (src, dst) = (format!("T-{tag}-in"), format!("T-{tag}-out"));
    let n = 150;
    let mut s = stack.session("alice").await;
    fill(&mut s, &src, &tag, n).await;
    let body = stack.account_toml(
        "alice",
        &[&src],
        "batch = 10\napply_batch = 10\nmode = \"poll\"",
    ) + &plugin_toml(
        "tagger",
        "subject-tagger",
        "[plugin.config]\ntag = \"[EXT]\"\nwhen_from_not = [\"*@example.test\"]",
    ) + &filer_on_subject(&tag, &dst);
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(dir.path(), &body);
    let mut daemon = Daemon::start(&file, &[]);
    let killed_at = kill_when_moved(&mut daemon, &mut s, &dst, n / 4).await;
    assert!(killed_at < n, "killed too late to prove anything");

    run_once(&file);

    assert!(list(&mut s, &src).await.is_empty(), "the source is empty");
    let moved = full_messages(&mut s, &dst).await;
    for i in 0..n {
        let copies: Vec<&String> = moved
            .iter()
            .filter(|m| m.contains(&format!("Message-ID: <{i}.{tag}@example.net>")))
            .collect();
        assert_eq!(copies.len(), 1, "message {i} once (killed at {killed_at})");
        let m = copies[0];
        assert!(m.contains(&format!("Subject: [EXT] {tag} #{i}")), "{m}");
        assert!(
            m.contains(&format!(
                "\r\n\r\nHello from Sender {i} <s{i}@example.net>."
            )),
            "body of {i} kept: {m}"
        );
    }
}

/// How many messages `mailbox` holds (STATUS, so the daemon's folder is not selected and
/// no headers are fetched); 0 while it does not exist.
/// Replies with `Subject: {subject}` in bob's INBOX, per address in `to`.
async fn replies_in_bobs_inbox(subject: &str, to: &[String]) -> Vec<usize> {
    let mut bob = Stack::get().session("bob").await;
    let inbox = list(&mut bob, "INBOX").await;
    let _ = bob.logout().await;
    to.iter()
        .map(|a| {
            inbox
                .iter()
                .filter(|(_, _, h)| {
                    h.contains(&format!("Subject: {subject}")) && h.contains(&format!("To: <{a}>"))
                })
                .count()
        })
        .collect()
}

/// The replies per address of `to` once every address `expected` to have one has it (30 s
/// at most) and a few seconds more have passed for late duplicates.
async fn settled_replies(
    subject: &str,
    to: &[String],
    expected: &[usize],
    daemon: &Daemon,
) -> Vec<usize> {
    let t = Instant::now();
    loop {
        let got = replies_in_bobs_inbox(subject, to).await;
        if got.iter().zip(expected).all(|(&g, &e)| e == 0 || g >= 1) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "replies after 30 s: {got:?}, expected {expected:?}\n{}",
            daemon.output()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    replies_in_bobs_inbox(subject, to).await
}

/// Messages `0..n` with Message-ID `<i.{tag}@example.net>` left `src` and each is in `dst`
/// exactly once, with nothing else there; `context` is shown when not.
async fn assert_each_filed_once(
    s: &mut mailpipe::source::imap::connect::ImapSession,
    (src, dst): (&str, &str),
    tag: &str,
    n: usize,
    context: &str,
) {
    assert_eq!(
        message_count(s, src).await,
        0,
        "the source is empty ({context})"
    );
    let moved = list(s, dst).await;
    let mut ids: std::collections::HashMap<String, usize> = Default::default();
    for (_, _, h) in &moved {
        for line in h.lines() {
            if let Some(id) = line.strip_prefix("Message-ID: ") {
                *ids.entry(id.trim().to_string()).or_default() += 1;
            }
        }
    }
    for i in 0..n {
        assert_eq!(
            ids.get(&format!("<{i}.{tag}@example.net>")).copied(),
            Some(1),
            "message {i} filed once ({context})"
        );
    }
    assert_eq!(
        moved.len(),
        n,
        "nothing else in the destination ({context})"
    );
}

async fn message_count(
    s: &mut mailpipe::source::imap::connect::ImapSession,
    mailbox: &str,
) -> usize {
    s.status(mailpipe::model::folder::encode(mailbox), "(MESSAGES)")
        .await
        .map_or(0, |m| m.exists as usize)
}

/// The messages (their subjects) that got a reply by `plugin`, in the order of a daemon's
/// log (`mailpipe run` prints each decided message, then `-> reply to ... by <plugin>`).
fn answered(log: &str, plugin: &str) -> Vec<String> {
    let mut last = "";
    let mut out = Vec::new();
    for line in log.lines() {
        if !line.starts_with(' ') {
            last = line;
        } else if line.starts_with("    -> reply to ") && line.ends_with(&format!(" by {plugin}")) {
            out.push(last.split('"').nth(1).unwrap_or(last).to_string());
        }
    }
    out
}

/// Plugin state is exactly-once: the vacation auto-responder answers each of 6 senders once
/// although their 1500 interleaved messages go through 60 batches of 25, the pipelined pass
/// (one batch is decided while the one before is made durable and moved: a KV read that saw
/// neither the batch nor the database sent a second reply in the next batch, issue 10) and
/// three SIGKILLs at pseudo-random moments. Every message is also filed exactly once. The
/// senders are subaddresses of bob and carol (`+` is the stack's recipient delimiter), so
/// every reply can be counted in their INBOX.
#[tokio::test]
async fn each_sender_is_answered_once_across_batches_and_sigkills() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let stack = Stack::get();
    let (mut s, src) = fresh_mailbox(&stack, "alice", "T-once").await;
    let tag = src.trim_start_matches("T-").to_string();
    let dst = format!("{src}-out");
    let away = format!("Away {tag}");
    let n = 1500;
    let senders: Vec<(&str, String)> = ["bob", "carol"]
        .into_iter()
        .flat_map(|user| (0..3).map(move |k| (user, k)))
        .map(|(user, k)| (user, format!("{user}+{tag}-{k}@example.test")))
        .collect();

    // Seed: sender k joins at message k * n/7, and from then on the senders that joined take
    // turns. Every batch holds several senders, and each sender's first reply is decided in
    // another batch (and, with the kills below, mostly in another run of the daemon): six
    // chances for the next batch to read the state while that batch is being written.
    let joins_every = n / 7;
    for i in 0..n {
        let joined = (i / joins_every + 1).min(senders.len());
        let k = if i % joins_every == 0 && i / joins_every < senders.len() {
            i / joins_every
        } else {
            i % joined
        };
        let (_, from) = &senders[k];
        let raw = message(
            &format!("Sender {k} <{from}>"),
            "alice@example.test",
            &format!("{tag} #{i}"),
            &format!("{i}.{tag}@example.net"),
            "",
        );
        append(&mut s, &src, &raw).await;
    }
    let seeded = started.elapsed();

    let body = stack.account_toml(
        "alice",
        &[&src],
        "batch = 25\napply_batch = 25\nmode = \"poll\"",
    ) + &plugin_toml(
        "vacation",
        "auto-responder",
        &format!("send_about_mail_since = \"all\"\n[plugin.config]\naddresses = [\"alice@example.test\"]\ndays = 7\nsubject = \"{away}\"\nbody = \"away\""),
    ) + &filer_on_subject(&tag, &dst);
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(dir.path(), &body);

    // Three kills near 15 %, 45 % and 70 % of the messages moved, each moved by up to
    // +-5 % (xorshift seeded from the process id and the clock; the seed is printed).
    let seed = ((u64::from(std::process::id()) << 32) ^ mailpipe::clock::now_ms()) | 1;
    let mut x = seed;
    let mut jitter = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % 101) as f64 / 1000.0 - 0.05
    };
    let targets: Vec<usize> = [0.15, 0.45, 0.70]
        .iter()
        .map(|f| ((f + jitter()) * n as f64) as usize)
        .collect();
    let mut killed_at = Vec::new();
    let mut logs = Vec::new();
    for &target in &targets {
        let mut daemon = Daemon::start(&file, &[]);
        let t = Instant::now();
        while message_count(&mut s, &dst).await < target {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "no progress (seed {seed}, kills at {killed_at:?}):\n{}",
                daemon.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        daemon.kill();
        let at = message_count(&mut s, &dst).await;
        assert!(
            at < n,
            "killed too late to prove anything (seed {seed}, {at} moved)"
        );
        killed_at.push(at);
        logs.push(daemon.output());
    }
    eprintln!("seed {seed}: targets {targets:?}, killed at {killed_at:?} moved of {n}");

    // Start again and let it finish (and send the queued replies).
    let out = Command::new(env!("CARGO_BIN_EXE_mailpipe"))
        .args(["run", "-c", file.to_str().unwrap(), "--once"])
        .output()
        .unwrap();
    let last_run =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{last_run}");
    logs.push(last_run);
    let processed = started.elapsed();

    assert_each_filed_once(
        &mut s,
        (&src, &dst),
        &tag,
        n,
        &format!("seed {seed}, killed at {killed_at:?}"),
    )
    .await;

    // Replies: wait until every sender has one, wait a little longer for late duplicates,
    // then count again.
    let is_reply = |h: &str| {
        h.lines()
            .any(|l| l.trim_end() == format!("Subject: {away}"))
    };
    let replies = |inboxes: &[Vec<(u32, Vec<String>, String)>; 2]| -> Vec<usize> {
        senders
            .iter()
            .map(|(user, address)| {
                let inbox = &inboxes[usize::from(*user == "carol")];
                inbox
                    .iter()
                    .filter(|(_, _, h)| is_reply(h) && h.contains(&format!("To: <{address}>")))
                    .count()
            })
            .collect()
    };
    let inboxes = || async {
        let mut b = stack.session("bob").await;
        let mut c = stack.session("carol").await;
        let r = [list(&mut b, "INBOX").await, list(&mut c, "INBOX").await];
        let _ = b.logout().await;
        let _ = c.logout().await;
        r
    };
    let t = Instant::now();
    loop {
        let got = replies(&inboxes().await);
        if got.iter().all(|&c| c >= 1) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "replies per sender after 30 s: {got:?} (seed {seed}, killed at {killed_at:?})"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let all = inboxes().await;
    let got = replies(&all);
    let total: usize = all
        .iter()
        .map(|inbox| inbox.iter().filter(|(_, _, h)| is_reply(h)).count())
        .sum();
    assert!(
        got.iter().all(|&c| c == 1) && total == senders.len(),
        "replies per sender {got:?} ({total} in all) for {:?}; seed {seed}, killed at {killed_at:?}\nmessages answered, per run (3 killed daemons, then --once): {:?}",
        senders.iter().map(|s| &s.1).collect::<Vec<_>>(),
        logs.iter().map(|l| answered(l, "vacation")).collect::<Vec<_>>()
    );
    eprintln!(
        "{n} messages, {} senders: seeded in {seeded:?}, processed with {} kills in {:?}, all checked in {:?}",
        senders.len(),
        killed_at.len(),
        processed - seeded,
        started.elapsed()
    );
}

/// The worst moment for a reply: the submission server has said `250` and mailpipe is
/// SIGKILLed a few milliseconds later, before its durable "sent" mark could be committed.
/// Ten times in a row, each run killed after the first reply it sends; then a run to the
/// end. Every sender is answered exactly once: the acceptance reached the sent log (one
/// write the kernel holds) before the kill, so the next run marks it sent instead of
/// sending it again. The store's writes are made slow (strace delays each `pwrite` by 20 ms,
/// as a busy disk would; the sent log appends with `write`): the kill 5 ms after the `250`
/// then always falls between it and the commit of the "sent" mark, the window that repeated
/// replies before the sent log. The embedded store is named (the PostgreSQL pass of the
/// suite would otherwise move it to a server these delays do not reach). (A kill before
/// mailpipe has even read the `250` could still repeat a reply: SMTP has no transaction;
/// five milliseconds are far more than reading it takes.)
#[tokio::test]
async fn a_kill_right_after_the_servers_250_sends_no_reply_twice() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::get();
    let (mut s, src) = fresh_mailbox(&stack, "alice", "T-250").await;
    let tag = src.trim_start_matches("T-").to_string();
    let n = 24;
    for i in 0..n {
        let raw = message(
            &format!("Sender {i} <s{i}-{tag}@example.net>"),
            "alice@example.test",
            &format!("{tag} #{i}"),
            &format!("{i}.{tag}@example.net"),
            "",
        );
        append(&mut s, &src, &raw).await;
    }
    let smtp = badsmtp::BadSmtp::start(badsmtp::Mode::KillAfterAccept).await;
    let account = plain_smtp(
        &stack.account_toml("alice", &[&src], "batch = 4\nmode = \"poll\""),
        smtp.port,
    );
    let body = account
        + &plugin_toml(
            "vacation",
            "auto-responder",
            "send_about_mail_since = \"all\"\n[plugin.config]\naddresses = [\"alice@example.test\"]\ndays = 7\nbody = \"away\"",
        );
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(dir.path(), &body);
    let text = std::fs::read_to_string(&file).unwrap().replacen(
        "[state]\n",
        "[state]\nbackend = \"embedded\"\n",
        1,
    );
    std::fs::write(&file, text).unwrap();

    // Each run is waited for without blocking this thread: the SMTP server runs on it.
    let run = |kill: bool| {
        let (smtp, file) = (&smtp, &file);
        async move {
            let slow_disk = [
                "strace",
                "-f",
                // Only the traced calls stop the process: the rest runs at full speed.
                "--seccomp-bpf",
                "-qq",
                "-o",
                "/dev/null",
                "-e",
                "trace=pwrite64",
                "-e",
                "inject=pwrite64:delay_enter=20000",
            ];
            let mut daemon = Daemon::start_under(&slow_disk, file, &["--once"]);
            if kill {
                smtp.kill_pid.store(
                    traced_child(daemon.child.id()).await,
                    std::sync::atomic::Ordering::SeqCst,
                );
            }
            let t = Instant::now();
            loop {
                if let Some(status) = daemon.child.try_wait().unwrap() {
                    return (status, daemon.output());
                }
                assert!(
                    t.elapsed() < Duration::from_secs(60),
                    "a run neither sent nor ended:\n{}",
                    daemon.output()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let kills = 10;
    let mut logs = Vec::new();
    for k in 0..kills {
        let (status, log) = run(true).await;
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "run {k} was to be killed after a 250 (all sent already?):\n{log}"
        );
        logs.push(log);
    }
    smtp.kill_pid.store(0, std::sync::atomic::Ordering::SeqCst);
    let (status, last) = run(false).await;
    assert!(status.success(), "{last}");

    let mut per_sender: std::collections::BTreeMap<String, usize> = Default::default();
    for rcpts in smtp.recipients.lock().unwrap().iter() {
        for r in rcpts {
            *per_sender.entry(r.clone()).or_default() += 1;
        }
    }
    let twice: Vec<_> = per_sender.iter().filter(|(_, &c)| c != 1).collect();
    assert!(
        per_sender.len() == n && twice.is_empty(),
        "replies per sender after {kills} kills right after a 250: {} senders answered, not once: {twice:?}\nlast run:\n{last}",
        per_sender.len()
    );
    assert!(
        logs.iter().skip(1).any(|l| l.contains("marked sent from the sent log")),
        "no run found an accepted reply in the sent log; the kills missed the window they test:\n{}",
        logs.join("\n---\n")
    );
}

/// The default on a real server: switched on over a mailbox that already holds mail, the
/// daemon files that mail but answers nobody about it (INTERNALDATE before the plugin was
/// enabled); mail that arrives afterwards is answered, once.
#[tokio::test]
async fn a_first_run_answers_new_mail_only() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::get();
    let (mut s, src) = fresh_mailbox(&stack, "alice", "T-first").await;
    let tag = src.trim_start_matches("T-").to_string();
    let dst = format!("{src}-out");
    create(&mut s, &dst).await;
    let sender = |k: &str| format!("bob+{tag}-{k}@example.test");
    let letter = |k: &str| {
        message(
            &format!("Bob <{}>", sender(k)),
            "alice@example.test",
            &format!("{tag} {k}"),
            &format!("{k}.{tag}@example.net"),
            "",
        )
    };
    for k in ["old0", "old1", "old2"] {
        append(&mut s, &src, &letter(k)).await;
    }
    // INTERNALDATE has whole seconds: the old mail is a second older than the first run.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let body = stack.account_toml("alice", &[&src], "")
        + &filer_on_subject(&tag, &dst)
        + &plugin_toml(
            "vacation",
            "auto-responder",
            &format!("[plugin.config]\naddresses = [\"alice@example.test\"]\nsubject = \"Away {tag}\"\nbody = \"away\""),
        );
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(dir.path(), &body);
    let daemon = Daemon::start(&file, &[]);
    daemon
        .wait_output_times(
            "before this plugin was enabled here",
            3,
            Duration::from_secs(60),
        )
        .await;
    assert!(
        daemon
            .output()
            .contains("first pass, 3 message(s) already there"),
        "{}",
        daemon.output()
    );
    for k in ["new0", "new1"] {
        append(&mut s, &src, &letter(k)).await;
    }
    let to: Vec<String> = ["old0", "old1", "old2", "new0", "new1"]
        .iter()
        .map(|k| sender(k))
        .collect();
    let got = settled_replies(&format!("Away {tag}"), &to, &[0, 0, 0, 1, 1], &daemon).await;
    assert_eq!(
        got,
        [0, 0, 0, 1, 1],
        "replies per sender (3 old, 2 new):\n{}",
        daemon.output()
    );
    assert_eq!(
        message_count(&mut s, &dst).await,
        5,
        "all five filed, old and new"
    );
}

/// A daemon on a PostgreSQL state store (`state`: the `[state]` table's lines) over `n`
/// messages from `senders` senders in a fresh mailbox of alice: each filed into "<mailbox>-out"
/// and answered by the vacation responder ("Away <tag>"). For the store's fault tests.
struct StoreFault {
    s: mailpipe::source::imap::connect::ImapSession,
    src: String,
    dst: String,
    tag: String,
    away: String,
    senders: Vec<String>,
    daemon: Daemon,
    _dir: tempfile::TempDir,
}

impl StoreFault {
    async fn start(prefix: &str, state: &str, n: usize, senders: usize) -> StoreFault {
        let stack = Stack::get();
        let (mut s, src) = fresh_mailbox(&stack, "alice", prefix).await;
        let tag = src.trim_start_matches("T-").to_string();
        let dst = format!("{src}-out");
        let away = format!("Away {tag}");
        let senders: Vec<String> = (0..senders)
            .map(|k| format!("bob+{tag}-{k}@example.test"))
            .collect();
        for i in 0..n {
            let raw = message(
                &format!("Sender <{}>", senders[i % senders.len()]),
                "alice@example.test",
                &format!("{tag} #{i}"),
                &format!("{i}.{tag}@example.net"),
                "",
            );
            append(&mut s, &src, &raw).await;
        }
        let body = format!(
            "[state]\nbackend = \"postgres\"\n{state}lease_seconds = 4\n\
             [outbox]\nfirst_retry_seconds = 1\nmax_retry_seconds = 5\n"
        ) + &stack.account_toml("alice", &[&src], "batch = 20\napply_batch = 20\nmode = \"poll\"")
            + &filer_on_subject(&tag, &dst)
            + &plugin_toml(
                "vacation",
                "auto-responder",
                &format!("send_about_mail_since = \"all\"\n[plugin.config]\naddresses = [\"alice@example.test\"]\nsubject = \"{away}\"\nbody = \"away\""),
            );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mailpipe.toml");
        std::fs::write(&file, body).unwrap();
        let daemon = Daemon::start(&file, &[]);
        StoreFault {
            s,
            src,
            dst,
            tag,
            away,
            senders,
            daemon,
            _dir: dir,
        }
    }

    /// Wait until at least `target` messages were filed: how many, and how long it took.
    async fn moved_at_least(&self, target: usize, limit: Duration) -> (usize, Duration) {
        let t = Instant::now();
        let mut s = Stack::get().session("alice").await;
        loop {
            let moved = message_count(&mut s, &self.dst).await;
            if moved >= target {
                return (moved, t.elapsed());
            }
            assert!(
                t.elapsed() < limit,
                "{moved} of {target} moved after {limit:?}:\n{}",
                self.daemon.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every message filed once, every sender answered once.
    async fn assert_all_once(&mut self, n: usize) {
        let out = self.daemon.output();
        assert_each_filed_once(&mut self.s, (&self.src, &self.dst), &self.tag, n, &out).await;
        let once = vec![1; self.senders.len()];
        let got = settled_replies(&self.away, &self.senders, &once, &self.daemon).await;
        assert!(
            got.iter().all(|&c| c == 1),
            "replies per sender: {got:?}\n{}",
            self.daemon.output()
        );
    }
}

/// The shared store's faults under one daemon on PostgreSQL, each in the middle of a pass:
/// mailpipe's session ended by the server (`pg_terminate_backend`), the server itself
/// restarted, then paused (SIGSTOP) for twice the lease. Nothing is lost or filed twice,
/// every sender is answered once, and the daemon resumes by itself; how long each took is
/// printed.
#[tokio::test]
async fn postgres_faults_mid_pass_lose_nothing_and_send_nothing_twice() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::get();
    let (pg, url, password) = test_postgres();
    let schema = format!("pgfaults_{}", std::process::id());
    sql(&pg, |c| {
        c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .unwrap()
    });
    let n = 600;
    let state =
        format!("url = \"{url}\"\npassword_command = \"echo {password}\"\nschema = \"{schema}\"\n");
    let mut f = StoreFault::start("T-pgf", &state, n, 12).await;
    let moved_at_least = |target, limit| f.moved_at_least(target, limit);
    let started = Instant::now();

    // 1. The session ended by the server in the middle of the pass.
    let (at, _) = moved_at_least(n / 4, Duration::from_secs(120)).await;
    let app = format!("mailpipe/{schema}");
    let ended: i64 = sql(&pg, |c| {
        c.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .unwrap()
        .len() as i64
    });
    assert!(ended >= 1, "no session of the daemon to end");
    let (_, resumed_after_terminate) = moved_at_least(at + 40, Duration::from_secs(60)).await;

    // 2. The server restarted in the middle of the pass.
    let (at, _) = moved_at_least(n / 2, Duration::from_secs(120)).await;
    let pgctl = |what: &str| stack.run("postgres.sh", &[what]);
    pgctl("stop");
    tokio::time::sleep(Duration::from_secs(2)).await;
    pgctl("start");
    let (_, resumed_after_restart) = moved_at_least(at + 40, Duration::from_secs(60)).await;

    // 3. The server paused (SIGSTOP of every process of the test cluster) for twice the lease,
    //    in the middle of a statement of the pass, then resumed.
    let (at, _) = moved_at_least(3 * n / 4, Duration::from_secs(120)).await;
    let pg_signal = |sig: &str| {
        let script = format!(
            "p=$(head -1 {}/postgres/data/postmaster.pid) && kill {sig} $p $(pgrep -P $p)",
            stack.dir.display()
        );
        let st = Command::new("bash").args(["-c", &script]).status().unwrap();
        assert!(st.success(), "kill {sig} of the test PostgreSQL");
    };
    pg_signal("-STOP");
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (during_pause, _) = moved_at_least(at, Duration::from_secs(1)).await;
    pg_signal("-CONT");
    let (_, resumed_after_pause) = moved_at_least(during_pause + 40, Duration::from_secs(90)).await;
    let (_, _) = moved_at_least(n, Duration::from_secs(120)).await;
    let all_filed = started.elapsed();

    f.assert_all_once(n).await;
    eprintln!(
        "postgres faults: {n} messages; after pg_terminate_backend the next 40 were filed {resumed_after_terminate:.1?} later, after a restart (2 s down) {resumed_after_restart:.1?} later, after a pause of 8 s (lease 4 s; {during_pause} moved when it ended) the next 40 {resumed_after_pause:.1?} after it was resumed; all filed in {all_filed:.1?}"
    );
    // It took the account back by itself after each fault: three starts in all.
    let starts = f
        .daemon
        .output()
        .matches("owned by this process now: starting")
        .count();
    assert!(
        starts >= 3,
        "{starts} starts of the account:\n{}",
        f.daemon.output()
    );
    sql(&pg, |c| {
        c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .unwrap()
    });
}

/// The wall clock jumps while the daemon runs (libfaketime moves it; the monotonic clock is
/// left alone, as on a real system): back a day, then forward a week. With `days = 14`, a
/// sender answered once is answered neither after the jump back nor after the week forward;
/// a reply that could not be sent (Postfix down) before the clock went back a day goes out
/// as soon as Postfix is back, not a day later. (Replies go to Postfix's plain port on
/// loopback: the test bed's certificates are from today, and a clock a day back would
/// rightly refuse them as not valid yet.)
#[tokio::test]
async fn the_wall_clock_jumping_repeats_no_reply_and_holds_none_back() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::get();
    let (mut s, src) = fresh_mailbox(&stack, "alice", "T-clock").await;
    let tag = src.trim_start_matches("T-").to_string();
    let away = format!("Away {tag}");
    let dir = tempfile::tempdir().unwrap();
    let clock = dir.path().join("faketime");
    std::fs::write(&clock, "+0\n").unwrap();
    let file = write_config(
        dir.path(),
        &(plain_smtp(&stack.account_toml("alice", &[&src], ""), stack.port("SMTP"))
            + &plugin_toml(
                "vacation",
                "auto-responder",
                &format!("[plugin.config]\naddresses = [\"alice@example.test\"]\ndays = 14\nsubject = \"{away}\"\nbody = \"away\""),
            )),
    );
    // Mail that was there before: not answered; its note says the first pass is done.
    let old = message(
        &format!("Bob <bob+{tag}-old@example.test>"),
        "alice@example.test",
        &format!("{tag} old"),
        &format!("old.{tag}@example.net"),
        "",
    );
    append(&mut s, &src, &old).await;
    // INTERNALDATE has whole seconds: the old mail is a second older than the first run.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let preload = format!(
        "LD_PRELOAD=/usr/lib/{}-linux-gnu/faketime/libfaketimeMT.so.1",
        std::env::consts::ARCH
    );
    let timestamp = format!("FAKETIME_TIMESTAMP_FILE={}", clock.display());
    let daemon = Daemon::start_under(
        &[
            "env",
            &preload,
            &timestamp,
            "FAKETIME_NO_CACHE=1",
            "FAKETIME_DONT_FAKE_MONOTONIC=1",
        ],
        &file,
        &[],
    );
    daemon
        .wait_output(
            "before this plugin was enabled here",
            Duration::from_secs(30),
        )
        .await;
    let (a, b) = (
        format!("bob+{tag}-a@example.test"),
        format!("bob+{tag}-b@example.test"),
    );
    let mut sent = 0;
    let mut mail = |from: &str| {
        sent += 1;
        message(
            &format!("Bob <{from}>"),
            "alice@example.test",
            &format!("{tag} #{sent}"),
            &format!("{sent}.{tag}@example.net"),
            "",
        )
    };
    let replies_to = |who: String| {
        let away = away.clone();
        async move {
            let mut bob = Stack::get().session("bob").await;
            let n = list(&mut bob, "INBOX")
                .await
                .iter()
                .filter(|(_, _, h)| {
                    h.contains(&format!("Subject: {away}")) && h.contains(&format!("To: <{who}>"))
                })
                .count();
            let _ = bob.logout().await;
            n
        }
    };
    let daemon = &daemon;
    let wait_replies = |who: String, want: usize| async move {
        let t = Instant::now();
        while replies_to(who.clone()).await < want {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "no reply to {who} within 30 s:\n{}",
                daemon.output()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };

    append(&mut s, &src, &mail(&a)).await;
    wait_replies(a.clone(), 1).await;
    for (jump, n) in [("-1d", 2), ("+7d", 3)] {
        std::fs::write(&clock, format!("{jump}\n")).unwrap();
        append(&mut s, &src, &mail(&a)).await;
        daemon
            .wait_output(&format!("{tag} #{n}"), Duration::from_secs(30))
            .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        replies_to(a.clone()).await,
        1,
        "answered once in 14 days, whatever the clock did:\n{}",
        daemon.output()
    );

    // A reply that fails now, the clock then going back a day: sent once Postfix is back.
    let ctl = |what: &str| {
        let st = Command::new("bash")
            .arg(stack.script("postfix-ctl.sh"))
            .arg(what)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "postfix-ctl {what}");
    };
    std::fs::write(&clock, "+0\n").unwrap();
    // Postfix is started again whatever happens below.
    struct StartAgain(std::path::PathBuf);
    impl Drop for StartAgain {
        fn drop(&mut self) {
            let _ = Command::new("bash")
                .arg(&self.0)
                .arg("start")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
    let _start_again = StartAgain(stack.script("postfix-ctl.sh"));
    ctl("stop");
    append(&mut s, &src, &mail(&b)).await;
    // Decided, and its first attempt refused (the connection is).
    daemon
        .wait_output(&format!("{tag} #4"), Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    std::fs::write(&clock, "-1d\n").unwrap();
    ctl("start");
    let t = Instant::now();
    wait_replies(b.clone(), 1).await;
    let back_after = t.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(replies_to(b.clone()).await, 1, "{}", daemon.output());
    eprintln!("clock: a reply held back by a Postfix outage went out {back_after:.1?} after Postfix was back, the clock a day behind");
}

/// `account` (from `account_toml`) sending through the test bed's SMTP port on loopback,
/// without TLS or login.
fn plain_smtp(account: &str, port: u16) -> String {
    account.split("[account.smtp]").next().unwrap().to_string()
        + &format!("[account.smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n")
}

/// The mailpipe process that the tracer `strace` (pid `tracer`) started (strace forks
/// helpers of its own first: the child that runs mailpipe's binary).
async fn traced_child(tracer: u32) -> u32 {
    let binary = std::fs::canonicalize(env!("CARGO_BIN_EXE_mailpipe")).unwrap();
    let t = Instant::now();
    loop {
        let children = std::fs::read_to_string(format!("/proc/{tracer}/task/{tracer}/children"))
            .unwrap_or_default();
        for pid in children.split_whitespace() {
            if std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == binary) {
                return pid.parse().unwrap();
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "strace started no mailpipe"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// SIGHUP reloads the config: a broken one is refused and the running one goes on; a good one
/// takes over at the next wait, and the next message follows the new rules.
#[tokio::test]
async fn sighup_reloads_the_config_and_keeps_the_old_one_when_it_is_broken() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::get();
    let tag = unique("hup");
    let (old, new) = (format!("T-{tag}-old"), format!("T-{tag}-new"));
    let dir = tempfile::tempdir().unwrap();
    let config = |folder: &str| {
        stack.account_toml("alice", &["INBOX"], "") + &filer_on_subject(&tag, folder)
    };
    let file = write_config(dir.path(), &config(&old));
    let daemon = Daemon::start(&file, &[]);
    daemon
        .wait_output("connected (IDLE)", Duration::from_secs(60))
        .await;
    let hup = || {
        assert!(Command::new("kill")
            .args(["-HUP", &daemon.child.id().to_string()])
            .status()
            .unwrap()
            .success());
    };
    // A broken config: reported, the running one kept.
    std::fs::write(&file, "[[account]]\nname = \n").unwrap();
    hup();
    daemon
        .wait_output("the running one is kept", Duration::from_secs(20))
        .await;
    smtp_send(
        &stack,
        "alice@example.test",
        &format!("first {tag}"),
        &format!("1.{tag}@example.test"),
    );
    assert!(
        wait_for(
            &stack,
            "alice",
            &old,
            &format!("first {tag}"),
            Duration::from_secs(30)
        )
        .await
        .is_some(),
        "the old config still works:\n{}",
        daemon.output()
    );
    // A good one takes over.
    std::fs::write(&file, config(&new)).unwrap();
    hup();
    daemon
        .wait_output("reloading the config", Duration::from_secs(20))
        .await;
    daemon
        .wait_output_times("connected (IDLE)", 2, Duration::from_secs(30))
        .await;
    smtp_send(
        &stack,
        "alice@example.test",
        &format!("second {tag}"),
        &format!("2.{tag}@example.test"),
    );
    assert!(
        wait_for(
            &stack,
            "alice",
            &new,
            &format!("second {tag}"),
            Duration::from_secs(30)
        )
        .await
        .is_some(),
        "the new config applies:\n{}",
        daemon.output()
    );
    assert!(!daemon.output().contains("panicked"), "{}", daemon.output());
}

/// `[accounts] dir`: the daemon starts an account when its file appears (with the file's own
/// plugin keys), stops it when the file goes, and reports a broken file with its line while
/// the other accounts keep working.
#[tokio::test]
async fn account_files_are_picked_up_and_dropped_while_running() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::get();
    let tag = unique("dir");
    let (alices, bobs) = (format!("T-{tag}-alice"), format!("T-{tag}-bob"));
    let dir = tempfile::tempdir().unwrap();
    let accounts = dir.path().join("accounts.d");
    std::fs::create_dir(&accounts).unwrap();
    let account_file = |user: &str| {
        stack
            .account_toml(user, &["INBOX"], "")
            .replace("[[account]]", "[account]")
    };
    std::fs::write(accounts.join("alice.toml"), account_file("alice")).unwrap();
    std::fs::write(
        accounts.join("carol.toml"),
        "[account]\nname = \"carol\"\naddress = \"carol@\"\n",
    )
    .unwrap();
    let file = write_config(
        dir.path(),
        &format!(
            "[accounts]\ndir = \"accounts.d\"\nrescan_seconds = 1\n{}",
            filer_on_subject(&tag, &alices)
        ),
    );
    let daemon = Daemon::start(&file, &[]);
    daemon
        .wait_output("connected (IDLE)", Duration::from_secs(60))
        .await;
    assert!(
        daemon.output().contains("carol.toml:3: `account.address`"),
        "the broken file is named with its line:\n{}",
        daemon.output()
    );
    send_and_see_filed(
        &daemon,
        &stack,
        "alice@example.test",
        (&format!("one {tag}"), &format!("1.{tag}@example.test")),
        ("alice", &alices, &tag),
        "alice's mail filed",
    )
    .await;

    // bob's file arrives, with its own rules for the filer.
    let bob = account_file("bob")
        + &format!(
            "\n[plugin.filer]\nrules = [ {{ name = \"bob\", folder = \"{bobs}\", conditions = [ {{ subject = true, op = \"contains\", value = \"{tag}\" }} ] }} ]\n"
        );
    std::fs::write(accounts.join("bob.toml"), &bob).unwrap();
    daemon
        .wait_output("account file added: starting", Duration::from_secs(20))
        .await;
    daemon
        .wait_output_times("connected (IDLE)", 2, Duration::from_secs(30))
        .await;
    send_and_see_filed(
        &daemon,
        &stack,
        "bob@example.test",
        (&format!("two {tag}"), &format!("2.{tag}@example.test")),
        ("bob", &bobs, &tag),
        "bob's mail filed by his own rule",
    )
    .await;

    // bob's file changes: his account starts again with the new rule; a broken edit is
    // reported and leaves him running as he was.
    let bobs2 = format!("{bobs}-2");
    std::fs::write(accounts.join("bob.toml"), bob.replace(&bobs, &bobs2)).unwrap();
    daemon
        .wait_output("account file changed: restarting", Duration::from_secs(20))
        .await;
    send_and_see_filed(
        &daemon,
        &stack,
        "bob@example.test",
        (&format!("changed {tag}"), &format!("c.{tag}@example.test")),
        ("bob", &bobs2, &format!("changed {tag}")),
        "bob's changed rule applies",
    )
    .await;
    std::fs::write(accounts.join("bob.toml"), "[account]\nname = \"bob\"\n").unwrap();
    daemon
        .wait_output(
            "the account keeps running as it was",
            Duration::from_secs(20),
        )
        .await;

    // alice's file goes: her account stops, bob's goes on.
    std::fs::remove_file(accounts.join("alice.toml")).unwrap();
    daemon
        .wait_output(
            "stopped (its account file is gone)",
            Duration::from_secs(20),
        )
        .await;
    smtp_send(
        &stack,
        "alice@example.test",
        &format!("three {tag}"),
        &format!("3.{tag}@example.test"),
    );
    send_and_see_filed(
        &daemon,
        &stack,
        "bob@example.test",
        (&format!("four {tag}"), &format!("4.{tag}@example.test")),
        ("bob", &bobs2, &format!("four {tag}")),
        "bob still served",
    )
    .await;
    let arrived = wait_for(
        &stack,
        "alice",
        "INBOX",
        &format!("three {tag}"),
        Duration::from_secs(30),
    )
    .await;
    assert!(arrived.is_some(), "alice's mail delivered");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut s = stack.session("alice").await;
    let inbox = list(&mut s, "INBOX").await;
    assert_eq!(
        count(&inbox, &format!("three {tag}")),
        1,
        "alice's mail stays where it is once her file is gone"
    );
    assert!(!daemon.output().contains("panicked"), "{}", daemon.output());
}

/// Accounts from the accounts table of the PostgreSQL state (`[accounts] table = true`): a row
/// added while the daemon runs starts its account with its own filing rule, a changed row
/// restarts it with the new rule, a removed row stops it and leaves its mail in place.
#[tokio::test]
async fn accounts_table_rows_are_picked_up_and_dropped_while_running() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::get();
    let (pg, url, password) = test_postgres();
    let tag = unique("table");
    let schema = format!("table_{}", tag.replace('-', "_"));
    let (first, second) = (format!("T-{tag}-1"), format!("T-{tag}-2"));
    let dir = tempfile::tempdir().unwrap();
    // The state on PostgreSQL, in a schema of this test's own.
    let file = dir.path().join("mailpipe.toml");
    std::fs::write(
        &file,
        format!(
            "[state]\nbackend = \"postgres\"\nurl = \"{url}\"\npassword_command = \"printf %s {password}\"\n\
             schema = \"{schema}\"\nlease_seconds = 4\ndir = \"{}\"\n\
             [accounts]\ntable = true\nrescan_seconds = 1\n{}",
            dir.path().join("state").display(),
            filer_on_subject("never-matches", "Nowhere")
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&file, &[]);
    let table = format!("{schema}.accounts");
    let start = Instant::now();
    while !sql(&pg, |c| {
        c.query_opt("SELECT to_regclass($1)::text", &[&table])
            .unwrap()
            .and_then(|r| r.get::<_, Option<String>>(0))
            .is_some()
    }) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no accounts table:\n{}",
            daemon.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let row = |folder: &str| {
        stack.account_toml("carol", &["INBOX"], "").replace("[[account]]", "[account]")
            + &format!(
                "\n[plugin.filer]\nrules = [ {{ name = \"row\", folder = \"{folder}\", conditions = [ {{ subject = true, op = \"contains\", value = \"{tag}\" }} ] }} ]\n"
            )
    };
    let upsert = |text: String| {
        let sql_text = format!(
            "INSERT INTO {table} (id, config) VALUES ('carol', $1)
             ON CONFLICT (id) DO UPDATE SET config = excluded.config, changed_at = now()"
        );
        sql(&pg, move |c| c.execute(&sql_text, &[&text]).unwrap());
    };
    upsert(row(&first));
    daemon
        .wait_output("account file added: starting", Duration::from_secs(20))
        .await;
    daemon
        .wait_output("connected (IDLE)", Duration::from_secs(30))
        .await;
    send_and_see_filed(
        &daemon,
        &stack,
        "carol@example.test",
        (&format!("one {tag}"), &format!("1.{tag}@example.test")),
        ("carol", &first, &tag),
        "the row's account runs with its rule",
    )
    .await;

    upsert(row(&second));
    daemon
        .wait_output("account file changed: restarting", Duration::from_secs(20))
        .await;
    daemon
        .wait_output_times("connected (IDLE)", 2, Duration::from_secs(30))
        .await;
    send_and_see_filed(
        &daemon,
        &stack,
        "carol@example.test",
        (&format!("two {tag}"), &format!("2.{tag}@example.test")),
        ("carol", &second, &format!("two {tag}")),
        "the changed row's rule applies",
    )
    .await;

    let delete = format!("DELETE FROM {table} WHERE id = 'carol'");
    sql(&pg, move |c| c.execute(&delete, &[]).unwrap());
    daemon
        .wait_output(
            "stopped (its account file is gone)",
            Duration::from_secs(20),
        )
        .await;
    smtp_send(
        &stack,
        "carol@example.test",
        &format!("three {tag}"),
        &format!("3.{tag}@example.test"),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut s = stack.session("carol").await;
    assert_eq!(
        count(&list(&mut s, "INBOX").await, &format!("three {tag}")),
        1,
        "left in place"
    );
    let drop_schema = format!("DROP SCHEMA {schema} CASCADE");
    drop(daemon);
    sql(&pg, move |c| c.batch_execute(&drop_schema).unwrap());
}

/// Mail that arrives while a pass runs, after it looked for new messages, is counted by the
/// SELECT before IDLE, so IDLE never announces it: it must be processed at once, not at the
/// next IDLE renewal (minutes later). A pass over 400 messages in small batches gives the
/// new message time to arrive in the middle of it.
#[tokio::test]
async fn mail_arriving_during_a_pass_is_not_left_for_the_next_idle() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::get();
    let tag = unique("during");
    let (src, dst) = (format!("T-{tag}-in"), format!("T-{tag}-out"));
    let n = 400;
    let mut s = stack.session("alice").await;
    fill(&mut s, &src, &tag, n).await;
    let body = stack.account_toml("alice", &[&src], "batch = 5\napply_batch = 5")
        + &filer_on_subject(&tag, &dst);
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(dir.path(), &body);
    let daemon = Daemon::start(&file, &[]);
    // As soon as the pass has begun moving, a new message arrives in the watched mailbox.
    let start = Instant::now();
    while list(&mut s, &dst).await.is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no progress:\n{}",
            daemon.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let late = message(
        "Late <late@example.net>",
        "alice@example.test",
        &format!("{tag} late"),
        &format!("late.{tag}@example.net"),
        "",
    );
    append(&mut s, &src, &late).await;
    assert!(
        list(&mut s, &dst).await.len() < n,
        "the pass had finished before the new message came: nothing proven"
    );
    let start = Instant::now();
    loop {
        let moved = list(&mut s, &dst).await;
        if count(&moved, &format!("late.{tag}@example.net")) == 1 {
            assert_eq!(moved.len(), n + 1, "every message filed once");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the message that came during the pass was left waiting:\n{}",
            daemon.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Mail that keeps arriving while passes run (a burst of 150 appends to an idle account):
/// each pass that finds more arrived behind it is followed by another at once, as long as it
/// made progress, so the last of them are not left for the next IDLE renewal. The IMAP soak
/// (bench/soak.sh imap: 100 accounts, waves of 200 files moved into each mailbox) found some
/// accounts' waves waiting 4 minutes when only one immediate pass was allowed in a row; on one
/// account this test passes with that binary too (tried): it guards the burst, the soak
/// measures the fleet.
#[tokio::test]
async fn mail_that_keeps_arriving_during_passes_is_all_filed_at_once() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::get();
    let tag = unique("stream");
    let (src, dst) = (format!("T-{tag}-in"), format!("T-{tag}-out"));
    let mut s = stack.session("alice").await;
    fill(&mut s, &src, &tag, 50).await;
    let body = stack.account_toml("alice", &[&src], "batch = 5\napply_batch = 5")
        + &filer_on_subject(&tag, &dst);
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(dir.path(), &body);
    let daemon = Daemon::start(&file, &[]);
    let start = Instant::now();
    while list(&mut s, &dst).await.len() < 50 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the first 50 were not filed:\n{}",
            daemon.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Idle now; then a burst.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let late = 150;
    for i in 0..late {
        let m = message(
            "Stream <stream@example.net>",
            "alice@example.test",
            &format!("{tag} stream {i}"),
            &format!("stream{i}.{tag}@example.net"),
            "",
        );
        append(&mut s, &src, &m).await;
    }
    let start = Instant::now();
    loop {
        let moved = list(&mut s, &dst).await;
        if moved.len() >= 50 + late {
            assert_eq!(moved.len(), 50 + late, "every message filed once");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{} of {} filed 30 s after the last arrived: the rest was left waiting\n{}",
            moved.len(),
            50 + late,
            daemon.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A TCP forwarder on loopback standing for a failover address: connections go to `target`;
/// `switch` cuts every open one and sends new ones to another port.
struct FailoverAddress {
    port: u16,
    target: std::sync::Arc<std::sync::atomic::AtomicU16>,
    open: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl FailoverAddress {
    async fn start(target: u16) -> FailoverAddress {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(target));
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (t, o) = (target.clone(), open.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let to = t.load(std::sync::atomic::Ordering::SeqCst);
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                o.lock().unwrap().push(task.abort_handle());
            }
        });
        FailoverAddress { port, target, open }
    }

    fn switch(&self, to: u16) {
        self.target.store(to, std::sync::atomic::Ordering::SeqCst);
        for t in self.open.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

/// The shared store fails over: the PostgreSQL primary dies in the middle of a pass and its
/// synchronous standby is promoted behind the same address (tests/mailstack/pg-standby.sh and
/// a forwarder in this test). Nothing is lost or filed twice, every sender is answered once,
/// and the daemon goes on by itself.
#[tokio::test(flavor = "multi_thread")]
async fn a_standby_promoted_behind_the_same_address_loses_nothing_and_sends_nothing_twice() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::get();
    let pair = |what: &str| stack.run("pg-standby.sh", &[what]);
    let urls = pair("start");
    struct StopPair(std::path::PathBuf);
    impl Drop for StopPair {
        fn drop(&mut self) {
            let _ = Command::new("bash").arg(&self.0).arg("stop").status();
        }
    }
    let _stop = StopPair(stack.script("pg-standby.sh"));
    let port_of = |url: &str| -> u16 {
        url.rsplit(':')
            .next()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let mut lines = urls.lines();
    let (primary, standby) = (
        port_of(lines.next().unwrap()),
        port_of(lines.next().unwrap()),
    );
    let address = FailoverAddress::start(primary).await;

    let n = 300;
    let state = format!(
        "url = \"postgres://mailpipe@127.0.0.1:{}/mailpipe\"\npassword_command = \"echo secret-pg\"\n",
        address.port
    );
    let mut f = StoreFault::start("T-failover", &state, n, 8).await;
    let moved_at_least = |target, limit| f.moved_at_least(target, limit);
    let (at, _) = moved_at_least(n / 3, Duration::from_secs(120)).await;
    // The primary dies; the standby is promoted; the address now leads to it.
    address.switch(0);
    pair("promote");
    address.switch(standby);
    let (_, resumed) = moved_at_least(at + 40, Duration::from_secs(90)).await;
    moved_at_least(n, Duration::from_secs(120)).await;
    f.assert_all_once(n).await;
    eprintln!(
        "failover: {n} messages; the primary killed and its standby promoted after {at} were \
         filed; the next 40 filed {resumed:.1?} after the address led to the new primary"
    );
}
