//! `mailpipe deliver` as a mail server runs it: one message on standard input, the answer in
//! the exit code. Delivered once whatever happens (an MTA's retry, a crash before or after
//! the commit), replies sent once through the real Postfix, every failure a fix can mend
//! deferred (75) rather than bounced, and what is refused refused with the right code.

mod common;

use common::mailstack::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A config in `dir`: alice takes deliveries into `dir/Maildir`, files invoices, answers
/// with a vacation reply whose subject holds `tag`, refuses lotteries (Sieve's reject, after
/// the vacation decided), sends through the stack's Postfix.
fn setup(dir: &Path, tag: &str) -> (PathBuf, PathBuf) {
    let stack = Stack::get();
    let maildir = dir.join("Maildir");
    std::fs::write(
        dir.join("rules.sieve"),
        "require \"reject\";\nif header :contains \"subject\" \"lottery\" {\n  reject \"No lotteries,\n thank you.\";\n}\n",
    )
    .unwrap();
    let text = format!(
        r#"
[state]
dir = "state"

[[account]]
name = "alice"
address = "alice@example.test"
recipients = ["alice@example.test", "alias@example.test"]
[account.deliver]
maildir = "Maildir"
{smtp}{plugins}
[[plugin]]
name = "rules"
sieve = "rules.sieve"
"#,
        smtp = stack.smtp_table("alice"),
        plugins = filer_and_vacation("alice@example.test", tag),
    );
    let file = dir.join("mailpipe.toml");
    std::fs::write(&file, text).unwrap();
    (file, maildir)
}

/// A message from bob to alice, found again by its subject and Message-ID.
fn from_bob(subject: &str, id: &str) -> Vec<u8> {
    message("bob@example.test", "alice@example.test", subject, id, "")
}

/// `deliver`'s options for a message from bob to `recipient` under `config`.
fn bob_to<'a>(config: &'a str, recipient: &'a str) -> [&'a str; 6] {
    ["-c", config, "-f", "bob@example.test", "-a", recipient]
}

/// `setup`, with alice taking mail for `alice@DOMAIN` (any +detail) and the vacation
/// answering mail to `answers` (the address the test writes to).
fn setup_for(dir: &Path, tag: &str, domain: &str, answers: &str) -> (PathBuf, PathBuf) {
    let (config, maildir) = setup(dir, tag);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replacen(
            "recipients = [\"alice@example.test\", \"alias@example.test\"]",
            &format!("recipients = [\"alice@{domain}\"]"),
            1,
        )
        .replacen(
            "addresses = [\"alice@example.test\"]",
            &format!("addresses = [\"{answers}\"]"),
            1,
        );
    std::fs::write(&config, text).unwrap();
    (config, maildir)
}

/// Run `mailpipe deliver ARGS` with `input` on stdin and `env`; its exit code (None: killed
/// by a signal) and what it wrote on stderr.
fn deliver(args: &[&str], input: &[u8], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailpipe"))
        .arg("deliver")
        .args(args)
        .env_remove("SENDER")
        .env_remove("RECIPIENT")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Written whole: deliver reads (or drains) all of it, as a mail server expects.
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The message files of one Maildir++ folder ("" for INBOX).
fn files(maildir: &Path, folder: &str) -> Vec<PathBuf> {
    let dir = if folder.is_empty() {
        maildir.to_path_buf()
    } else {
        maildir.join(format!(".{}", folder.replace('/', ".")))
    };
    ["new", "cur"]
        .iter()
        .filter_map(|s| std::fs::read_dir(dir.join(s)).ok())
        .flat_map(|d| d.flatten().map(|e| e.path()))
        .collect()
}

/// How many messages in bob's INBOX hold `needle`.
async fn replies_to_bob(needle: &str) -> usize {
    let stack = Stack::get();
    let mut s = stack.session("bob").await;
    let n = count(&list(&mut s, "INBOX").await, needle);
    let _ = s.logout().await;
    n
}

/// Wait up to `limit` for bob to have `want` replies holding `needle`; how many he has.
async fn wait_replies(needle: &str, want: usize, limit: Duration) -> usize {
    let start = std::time::Instant::now();
    loop {
        let n = replies_to_bob(needle).await;
        if n >= want || start.elapsed() > limit {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn delivered_filed_answered_once_and_a_retry_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tag = unique("deliver");
    let (config, maildir) = setup(dir.path(), &tag);
    let config = config.to_str().unwrap();
    let msg = from_bob(&format!("Your invoice {tag}"), &format!("{tag}.1@test"));
    let args = bob_to(config, "alice@example.test");
    let (code, err) = deliver(&args, &msg, &[]);
    assert_eq!(code, Some(0), "{err}");
    let filed = files(&maildir, "Finance/Invoices");
    assert_eq!(filed.len(), 1, "{filed:?}");
    let text = std::fs::read_to_string(&filed[0]).unwrap();
    assert!(
        text.starts_with("Return-Path: <bob@example.test>\r\nDelivered-To: alice@example.test\r\n"),
        "{text}"
    );
    assert!(files(&maildir, "").is_empty());
    assert_eq!(wait_replies(&tag, 1, Duration::from_secs(20)).await, 1);

    // The MTA did not see the answer and delivers the same message again: nothing changes.
    let (code, err) = deliver(&args, &msg, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(files(&maildir, "Finance/Invoices").len(), 1);
    // The same message to the alias, and from Postfix's environment instead of options:
    // another delivery (another recipient), filed again, but the vacation memory holds.
    let (code, err) = deliver(
        &["-c", config],
        &msg,
        &[
            ("SENDER", "bob@example.test"),
            ("RECIPIENT", "Alias+x@Example.test"),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(files(&maildir, "Finance/Invoices").len(), 2);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(replies_to_bob(&tag).await, 1, "answered twice");
}

#[tokio::test]
async fn a_crash_before_or_after_the_commit_stores_and_answers_once() {
    for at in ["stored", "committed", "durable"] {
        let dir = tempfile::tempdir().unwrap();
        let tag = unique(&format!("crash-{at}"));
        let (config, maildir) = setup(dir.path(), &tag);
        let config = config.to_str().unwrap();
        let msg = from_bob(&format!("Hello {tag}"), &format!("{tag}@test"));
        let args = bob_to(config, "alice@example.test");
        let (code, err) = deliver(&args, &msg, &[("MAILPIPE_FAULT_ABORT_AT", at)]);
        assert_ne!(code, Some(0), "{at}: the fault did not strike: {err}");
        assert!(err.contains("fault injected"), "{at}: {err}");
        // The copy is on disk either way; the MTA saw no answer and tries again.
        assert_eq!(files(&maildir, "").len(), 1, "{at}");
        let (code, err) = deliver(&args, &msg, &[]);
        assert_eq!(code, Some(0), "{at}: {err}");
        assert_eq!(files(&maildir, "").len(), 1, "{at}: stored twice");
        // Settled: no marker of an unfinished delivery is left in tmp/ (a crash after the
        // commit left one, the retry that found the message delivered removed it).
        let marked = std::fs::read_dir(maildir.join("tmp"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".unsettled"))
            .count();
        assert_eq!(marked, 0, "{at}: a marker left");
        assert_eq!(
            wait_replies(&tag, 1, Duration::from_secs(20)).await,
            1,
            "{at}: no reply"
        );
        // Once more, in case a second reply was on its way.
        let (code, _) = deliver(&args, &msg, &[]);
        assert_eq!(code, Some(0));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(replies_to_bob(&tag).await, 1, "{at}: answered twice");
    }
}

#[test]
fn every_failure_a_fix_can_mend_defers_and_refusals_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let (config, maildir) = setup(dir.path(), &unique("codes"));
    let config = config.to_str().unwrap();
    let msg = message("bob@example.test", "x@example.test", "Hi", "codes@test", "");
    let to = |r: &'static str| bob_to(config, r);

    // Unknown recipient: 67, the MTA bounces ("user unknown").
    let (code, err) = deliver(&to("nobody@example.test"), &msg, &[]);
    assert_eq!(code, Some(67), "{err}");
    assert!(
        err.contains("nobody@example.test") && err.contains("alice"),
        "{err}"
    );
    // Not a message: 65.
    let elf = std::fs::read(env!("CARGO_BIN_EXE_mailpipe")).unwrap();
    let (code, err) = deliver(&to("alice@example.test"), &elf[..65536], &[]);
    assert_eq!(code, Some(65), "{err}");
    // A line break in the envelope: refused, never written into a header.
    let (code, _) = deliver(
        &[
            "-c",
            config,
            "-f",
            "bob@example.test\nBcc: x@evil.test",
            "-a",
            "alice@example.test",
        ],
        &msg,
        &[],
    );
    assert_eq!(code, Some(65));
    // What a fix mends keeps the mail queued (75), Postfix would bounce on 1, 2 or 101:
    // a missing config, a mistyped option, no recipient.
    let (code, err) = deliver(
        &["-c", "/nonexistent/mailpipe.toml", "-a", "a@b"],
        &msg,
        &[],
    );
    assert_eq!(code, Some(75), "{err}");
    let (code, err) = deliver(
        &["-c", config, "--recipent", "alice@example.test"],
        &msg,
        &[],
    );
    assert_eq!(code, Some(75), "{err}");
    let (code, err) = deliver(&["-c", config], &msg, &[]);
    assert_eq!(code, Some(75), "{err}");
    // Larger than the account takes (max_message_mb): 65, read no further than the limit.
    let text = std::fs::read_to_string(config).unwrap();
    std::fs::write(
        config,
        text.replacen("recipients = [", "max_message_mb = 1\nrecipients = [", 1),
    )
    .unwrap();
    let mut big = msg.clone();
    big.extend(std::iter::repeat_n(b'x', 3 << 20));
    let (code, err) = deliver(&to("alice@example.test"), &big, &[]);
    assert_eq!(code, Some(65), "{err}");
    assert!(err.contains("max_message_mb"), "{err}");
    std::fs::write(config, text).unwrap();
    // A mail store that cannot be written: 75, nothing recorded; once fixed, delivered.
    let check = || {
        let out = Command::new(env!("CARGO_BIN_EXE_mailpipe"))
            .args(["check", "-c", config])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = check();
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(
            "account alice: mail to alice@example.test, alias@example.test delivered into"
        ),
        "{out}"
    );
    std::fs::write(&maildir, b"not a directory").unwrap();
    // `check` says so before any mail arrives.
    let (code, out) = check();
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("account alice: FAILED") && out.contains("not a directory"),
        "{out}"
    );
    let (code, err) = deliver(&to("alice@example.test"), &msg, &[]);
    assert_eq!(code, Some(75), "{err}");
    assert!(err.contains("Maildir"), "{err}");
    std::fs::remove_file(&maildir).unwrap();
    let (code, err) = deliver(&to("alice@example.test"), &msg, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(files(&maildir, "").len(), 1);
}

/// Postfix's log lines that mention `needle`.
fn postfix_log(stack: &Stack, needle: &str) -> Vec<String> {
    std::fs::read_to_string(stack.dir.join("log/postfix.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// Postfix bounced nothing addressed to `who`.
fn nothing_bounced(stack: &Stack, who: &str) {
    let lines = postfix_log(stack, who);
    assert!(
        !lines.iter().any(|l| l.contains("status=bounced")),
        "{lines:?}"
    );
}

/// Wait up to a minute for a Postfix log line about `who` holding every one of `what`.
async fn postfix_logged(stack: &Stack, who: &str, what: &[&str]) -> bool {
    until(Duration::from_secs(60), || {
        postfix_log(stack, who)
            .iter()
            .any(|l| what.iter().all(|w| l.contains(w)))
    })
    .await
}

/// Wait up to `limit` for `check` to hold.
async fn until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    check()
}

#[tokio::test]
async fn postfix_delivers_through_it_defers_on_75_and_bounces_an_unknown_user() {
    let stack = Stack::get();
    let domain = format!("deliver.{}", stack.vars["MAILSTACK_DOMAIN"]);
    let tag = unique("postfix");
    // pipe(8) runs the command as mpdeliver (tests/mailstack/start.sh): its files are its own.
    let dir = stack.dir.join("mailpipe").join(&tag);
    std::fs::create_dir_all(&dir).unwrap();
    // A +detail of this run's own (the account takes it): Postfix's log lines of this run
    // are told apart from earlier runs' by it.
    let alice = format!("alice+{tag}@{domain}");
    let (config, maildir) = setup_for(&dir, &tag, &domain, &alice);
    let chown = Command::new("chown")
        .args(["-R", "mpdeliver"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(chown.success());
    // The delivery command Postfix's master.cf names: this build, this config (and, in the
    // suites' PostgreSQL pass, its state backend: pipe(8) passes no environment on).
    let script = stack.dir.join("mailpipe/deliver");
    let pg = std::env::var("MAILPIPE_TEST_STATE_POSTGRES")
        .map(|u| format!("export MAILPIPE_TEST_STATE_POSTGRES='{u}'\n"))
        .unwrap_or_default();
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{pg}exec {} deliver -c {} \"$@\"\n",
            env!("CARGO_BIN_EXE_mailpipe"),
            config.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let bob = "bob@example.test".to_string();

    // 1. Filed, answered through Postfix again, with Postfix's own Return-Path/Delivered-To.
    send_each(
        &stack,
        "SMTP",
        &[(bob.clone(), alice.clone())],
        &format!("Invoice {tag}"),
        &format!("{tag}-a"),
    );
    let filed = until(Duration::from_secs(60), || {
        files(&maildir, "Finance/Invoices").len() == 1
    })
    .await;
    assert!(filed, "not delivered: {:?}", postfix_log(&stack, &alice));
    let text = std::fs::read_to_string(&files(&maildir, "Finance/Invoices")[0]).unwrap();
    // Postfix's own trace fields (pipe flags=DR), not written a second time.
    assert_eq!(text.matches("Delivered-To:").count(), 1, "{text}");
    assert_eq!(text.matches("Return-Path:").count(), 1, "{text}");
    assert!(
        text.starts_with(&format!(
            "Return-Path: <bob@example.test>\nDelivered-To: {alice}\n"
        )),
        "{text}"
    );
    assert_eq!(
        wait_replies(&format!("Away {tag}"), 1, Duration::from_secs(30)).await,
        1
    );

    // 2. A Maildir it cannot write: 75, Postfix keeps the message; fixed, it arrives.
    let tmp = maildir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let chown = Command::new("chown")
        .args(["-R", "mpdeliver"])
        .arg(&maildir)
        .status();
    assert!(chown.unwrap().success());
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o500)).unwrap();
    send_each(
        &stack,
        "SMTP",
        &[(bob.clone(), alice.clone())],
        &format!("Plain {tag}"),
        &format!("{tag}-b"),
    );
    let deferred = postfix_logged(&stack, &alice, &["status=deferred"]).await;
    assert!(deferred, "{:?}", postfix_log(&stack, &alice));
    assert!(files(&maildir, "").is_empty());
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    stack.run("postfix-ctl.sh", &["flush"]);
    let arrived = until(Duration::from_secs(60), || files(&maildir, "").len() == 1).await;
    assert!(arrived, "{:?}", postfix_log(&stack, &alice));
    nothing_bounced(&stack, &alice);

    // 3. A recipient no account takes: 67, bounced, with mailpipe's reason in Postfix's log.
    let nobody = format!("nobody-{tag}@{domain}");
    let send = |to: &str, subject: &str, id: &str| {
        send_each(
            &stack,
            "SMTP",
            &[(bob.clone(), to.to_string())],
            &format!("{subject} {tag}"),
            &format!("{tag}-{id}"),
        )
    };
    send(&nobody, "Nobody", "c");
    let why = ["status=bounced", "no account takes mail"];
    assert!(
        postfix_logged(&stack, &nobody, &why).await,
        "{:?}",
        postfix_log(&stack, &nobody)
    );

    // 4. Refused by the Sieve script (reject): 77, bounced with the script's reason.
    send(&alice, "Lottery", "d");
    let why = ["status=bounced", "No lotteries, thank you."];
    assert!(
        postfix_logged(&stack, &alice, &why).await,
        "{:?}",
        postfix_log(&stack, &alice)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A daemon killed (-9) when dropped, also when a test fails.
struct Daemon(std::process::Child);

impl Daemon {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Start `mailpipe run -c CONFIG` (the daemon, with its LMTP server on `port`), its log in
/// `log`; returns once the port answers.
fn start_daemon(config: &Path, port: u16, log: &Path) -> Daemon {
    start_daemon_until(config, log, &|| {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
}

/// Start the daemon; returns once `ready` holds.
fn start_daemon_until(config: &Path, log: &Path, ready: &dyn Fn() -> bool) -> Daemon {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut child = Daemon(
        Command::new(env!("CARGO_BIN_EXE_mailpipe"))
            .args(["run", "-c"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let start = std::time::Instant::now();
    while !ready() {
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "the daemon ended at start"
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the LMTP server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// `config` with an LMTP server on `dir/lmtp.sock`, and the daemon serving it (its log in
/// `dir/daemon.log`), once the socket answers.
fn daemon_on_socket(config: &Path, dir: &Path) -> Daemon {
    let mut text = std::fs::read_to_string(config).unwrap();
    text += "\n[lmtp]\nlisten = \"unix:lmtp.sock\"\n";
    std::fs::write(config, text).unwrap();
    let socket = dir.join("lmtp.sock");
    start_daemon_until(config, &dir.join("daemon.log"), &|| {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    })
}

/// The Message-IDs of every message file under `maildir`'s INBOX.
fn message_ids(maildir: &Path) -> Vec<String> {
    files(maildir, "")
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).ok()?;
            text.lines()
                .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
                .map(|l| l[11..].trim().to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_through_lmtp_delivers_each_message_once_across_kills() {
    const MESSAGES: usize = 300;
    const SENDERS: usize = 20;
    let stack = Stack::get();
    let domain = format!("lmtp.{}", stack.vars["MAILSTACK_DOMAIN"]);
    let port = stack.port("MAILPIPE_LMTP");
    let tag = unique("lmtp");
    let dir = tempfile::tempdir().unwrap();
    let alice = format!("alice+{tag}@{domain}");
    let (config, maildir) = setup_for(dir.path(), &tag, &domain, &alice);
    let text = std::fs::read_to_string(&config).unwrap()
        + &format!("\n[lmtp]\nlisten = \"127.0.0.1:{port}\"\n");
    std::fs::write(&config, text).unwrap();
    let log = dir.path().join("daemon.log");

    // Postfix takes 300 messages from 20 senders (bob+sN, so that replies reach bob) while
    // mailpipe is down, and keeps them (connection refused: deferred).
    let pairs: Vec<(String, String)> = (0..MESSAGES)
        .map(|i| {
            (
                format!("bob+s{}-{tag}@example.test", i % SENDERS),
                alice.clone(),
            )
        })
        .collect();
    let senders: Vec<_> = pairs
        .chunks(MESSAGES / 4)
        .enumerate()
        .map(|(n, chunk)| {
            let (chunk, tag) = (chunk.to_vec(), tag.clone());
            std::thread::spawn(move || {
                send_each(
                    &Stack::get(),
                    "SMTP",
                    &chunk,
                    &format!("Lmtp {tag}"),
                    &format!("{tag}-{n}"),
                )
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    // Then it hands them over in a burst, and the daemon is killed (-9) four times, at
    // seeded random moments of the burst.
    let mut seed = mailpipe::clock::now_ms();
    println!("kill moments seeded with {seed}");
    let mut daemon = start_daemon(&config, port, &log);
    for _ in 0..4 {
        stack.run("postfix-ctl.sh", &["flush"]);
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        tokio::time::sleep(Duration::from_millis(20 + (seed >> 33) % 150)).await;
        daemon.kill();
        println!("killed with {} stored", message_ids(&maildir).len());
        daemon = start_daemon(&config, port, &log);
    }
    // Everything Postfix deferred while mailpipe was down is handed over again.
    let start = std::time::Instant::now();
    while message_ids(&maildir).len() < MESSAGES && start.elapsed() < Duration::from_secs(180) {
        stack.run("postfix-ctl.sh", &["flush"]);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let ids = message_ids(&maildir);
    let distinct: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(
        (ids.len(), distinct.len()),
        (MESSAGES, MESSAGES),
        "each message stored once; daemon log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // Each sender answered once: 20 replies in bob's INBOX, to 20 different addresses.
    let needle = format!("Away {tag}");
    let n = wait_replies(&needle, SENDERS, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut s = stack.session("bob").await;
    let replies: Vec<String> = list(&mut s, "INBOX")
        .await
        .into_iter()
        .filter(|(_, _, h)| h.contains(&needle))
        .filter_map(|(_, _, h)| {
            h.lines()
                .find(|l| l.to_ascii_lowercase().starts_with("to:"))
                .map(|l| l.to_string())
        })
        .collect();
    let _ = s.logout().await;
    let answered: std::collections::HashSet<&String> = replies.iter().collect();
    assert_eq!(
        (n, replies.len(), answered.len()),
        (SENDERS, SENDERS, SENDERS),
        "{replies:?}\ndaemon log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    nothing_bounced(&stack, &alice);
    daemon.kill();
}

#[tokio::test]
async fn deliver_beside_a_daemon_hands_the_message_to_its_lmtp_server() {
    let dir = tempfile::tempdir().unwrap();
    let tag = unique("handoff");
    let (config, maildir) = setup(dir.path(), &tag);
    // The daemon holds the embedded store: deliver could not open it.
    let mut daemon = daemon_on_socket(&config, dir.path());
    let c = config.to_str().unwrap();
    let msg = from_bob(&format!("Hi {tag}"), &format!("{tag}@test"));
    let (code, err) = deliver(&bob_to(c, "alice@example.test"), &msg, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("LMTP server said: 250"), "{err}");
    let stored = files(&maildir, "");
    assert_eq!(stored.len(), 1);
    let text = std::fs::read_to_string(&stored[0]).unwrap();
    assert!(
        text.starts_with("Return-Path: <bob@example.test>\r\nDelivered-To: alice@example.test\r\n"),
        "{text}"
    );
    let (code, err) = deliver(&bob_to(c, "nobody@example.test"), &msg, &[]);
    assert_eq!(code, Some(67), "{err}");
    daemon.kill();
    // No daemon: deliver opens the store itself.
    let msg2 = from_bob("Second", &format!("{tag}.2@test"));
    let (code, err) = deliver(&bob_to(c, "alice@example.test"), &msg2, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("LMTP server said"), "{err}");
    assert_eq!(files(&maildir, "").len(), 2);
}

/// Sieve's reject at delivery: `deliver` exits 77 with the script's reason, stores nothing,
/// and says the same to a repeated attempt; the vacation reply a plugin before it decided is
/// not sent, and that plugin does not remember it (the sender's next message is answered).
/// Through the daemon's LMTP server the refusal is `550 5.7.1` with the reason.
#[tokio::test]
async fn a_sieve_reject_refuses_the_delivery_and_nothing_is_sent_about_it() {
    let dir = tempfile::tempdir().unwrap();
    let tag = unique("reject");
    let (config, maildir) = setup(dir.path(), &tag);
    let c = config.to_str().unwrap();
    let lottery = from_bob(
        &format!("You won the lottery {tag}"),
        &format!("{tag}-1@test"),
    );
    for attempt in ["first", "repeated"] {
        let (code, err) = deliver(&bob_to(c, "alice@example.test"), &lottery, &[]);
        assert_eq!(code, Some(77), "{attempt}: {err}");
        assert!(
            err.contains("refused by the recipient's filter: No lotteries, thank you."),
            "{attempt}: {err}"
        );
    }
    assert!(files(&maildir, "").is_empty() && files(&maildir, "Finance/Invoices").is_empty());
    // bob's next message is answered: the refused one left no "answered bob" behind.
    let plain = from_bob(&format!("Hello {tag}"), &format!("{tag}-2@test"));
    let (code, err) = deliver(&bob_to(c, "alice@example.test"), &plain, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(files(&maildir, "").len(), 1);
    let needle = format!("Away {tag}");
    assert_eq!(wait_replies(&needle, 1, Duration::from_secs(30)).await, 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        replies_to_bob(&needle).await,
        1,
        "no reply about the refused message"
    );

    // The daemon's LMTP server (deliver hands the message to it).
    let mut daemon = daemon_on_socket(&config, dir.path());
    let again = from_bob(&format!("Lottery news {tag}"), &format!("{tag}-3@test"));
    let (code, err) = deliver(&bob_to(c, "alice@example.test"), &again, &[]);
    assert_eq!(code, Some(77), "{err}");
    assert!(
        err.contains("LMTP server said: 550 5.7.1 <alice@example.test> No lotteries, thank you."),
        "{err}"
    );
    assert_eq!(files(&maildir, "").len(), 1, "nothing more stored");
    daemon.kill();
}

/// `[account.deliver.imap]`: delivered mail APPENDed to an IMAP server (Dovecot, as carol),
/// filed by the plugins, once whatever happens: a crash after the commit and before the
/// APPEND, a crash after the APPEND and before the plan is finished (the retry finds the
/// copy by its marker), a server that cannot be reached (75, then delivered once when it is
/// back).
#[tokio::test]
async fn delivered_into_an_imap_server_once_across_crashes_and_an_outage() {
    let stack = Stack::get();
    let dir = tempfile::tempdir().unwrap();
    let tag = unique("imap-target");
    let (config, _) = setup(dir.path(), &tag);
    let imap_table = |port: u16| {
        format!(
            "[account.deliver.imap]\nhost = \"localhost\"\nport = {port}\ntls = \"implicit\"\nca_file = \"{}\"\nusername = \"carol@example.test\"\npassword_command = \"echo secret-carol\"\n",
            stack.ca().display()
        )
    };
    let text = std::fs::read_to_string(&config).unwrap();
    let with_port = |port: u16| {
        text.replacen(
            "[account.deliver]\nmaildir = \"Maildir\"\n",
            &imap_table(port),
            1,
        )
    };
    assert_ne!(with_port(1), text, "the Maildir table was replaced");
    std::fs::write(&config, with_port(stack.port("IMAPS"))).unwrap();
    let c = config.to_str().unwrap();
    let args = bob_to(c, "alice@example.test");
    let copies = |folder: &'static str, needle: String| async move {
        let mut s = Stack::get().session("carol").await;
        let found: Vec<String> = list(&mut s, folder)
            .await
            .into_iter()
            .filter(|(_, _, h)| h.contains(&needle))
            .map(|(_, _, h)| h)
            .collect();
        let _ = s.logout().await;
        found
    };

    // Filed by the plugins, each copy marked.
    let (code, err) = deliver(
        &args,
        &from_bob(&format!("Hello {tag}"), &format!("{tag}-1@test")),
        &[],
    );
    assert_eq!(code, Some(0), "{err}");
    let inbox = copies("INBOX", format!("Hello {tag}")).await;
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert!(inbox[0].contains("X-Mailpipe-Rewritten: "), "{}", inbox[0]);
    let (code, err) = deliver(
        &args,
        &from_bob(&format!("Invoice {tag}"), &format!("{tag}-2@test")),
        &[],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        copies("Finance/Invoices", format!("Invoice {tag}"))
            .await
            .len(),
        1
    );
    assert!(copies("INBOX", format!("Invoice {tag}")).await.is_empty());

    // Killed after the commit (before any APPEND), and after the APPEND (before the plan is
    // finished): the mail server's retry stores it, once.
    for at in ["committed", "appended"] {
        let subject = format!("Crash {at} {tag}");
        let msg = from_bob(&subject, &format!("{tag}-{at}@test"));
        let (code, err) = deliver(&args, &msg, &[("MAILPIPE_FAULT_ABORT_AT", at)]);
        assert!(err.contains("fault injected"), "{at}: {code:?} {err}");
        let before = copies("INBOX", subject.clone()).await.len();
        assert_eq!(before, usize::from(at == "appended"), "{at}");
        let (code, err) = deliver(&args, &msg, &[]);
        assert_eq!(code, Some(0), "{at}: {err}");
        assert_eq!(
            copies("INBOX", subject.clone()).await.len(),
            1,
            "{at}: stored once"
        );
        let (code, _) = deliver(&args, &msg, &[]);
        assert_eq!(code, Some(0), "{at}: again");
        assert_eq!(copies("INBOX", subject).await.len(), 1, "{at}: still once");
    }

    // The server cannot be reached: 75, the mail server keeps the message; back, delivered once.
    std::fs::write(&config, with_port(1)).unwrap();
    let subject = format!("Outage {tag}");
    let msg = from_bob(&subject, &format!("{tag}-outage@test"));
    let (code, err) = deliver(&args, &msg, &[]);
    assert_eq!(code, Some(75), "{err}");
    assert!(
        err.contains("IMAP server delivered mail is stored on"),
        "{err}"
    );
    std::fs::write(&config, with_port(stack.port("IMAPS"))).unwrap();
    let (code, err) = deliver(&args, &msg, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(copies("INBOX", subject).await.len(), 1);
    // Each sender answered once: bob got one vacation reply over all of it.
    assert_eq!(
        wait_replies(&format!("Away {tag}"), 1, Duration::from_secs(30)).await,
        1
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(replies_to_bob(&format!("Away {tag}")).await, 1);
}
