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
/// with a vacation reply whose subject holds `tag`, sends through the stack's Postfix.
fn setup(dir: &Path, tag: &str) -> (PathBuf, PathBuf) {
    let stack = Stack::get();
    let maildir = dir.join("Maildir");
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
[account.smtp]
host = "localhost"
port = {submission}
tls = "starttls"
ca_file = "{ca}"
username = "alice@example.test"
password_command = "echo secret-alice"
{filer}
[plugin.config]
rules = [ {{ name = "invoices", folder = "Finance/Invoices", conditions = [ {{ subject = true, op = "contains", value = "invoice" }} ] }} ]
{vacation}
[plugin.config]
addresses = ["alice@example.test"]
days = 7
subject = "Away {tag}"
body = "Back soon."
"#,
        submission = stack.port("SUBMISSION"),
        ca = stack.ca().display(),
        filer = plugin_toml("filer", "rules-filer", ""),
        vacation = plugin_toml("vacation", "auto-responder", ""),
    );
    let file = dir.join("mailpipe.toml");
    std::fs::write(&file, text).unwrap();
    (file, maildir)
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
    let msg = message(
        "bob@example.test",
        "alice@example.test",
        &format!("Your invoice {tag}"),
        &format!("{tag}.1@test"),
        "",
    );
    let args = [
        "-c",
        config,
        "-f",
        "bob@example.test",
        "-a",
        "alice@example.test",
    ];
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
    for at in ["stored", "committed"] {
        let dir = tempfile::tempdir().unwrap();
        let tag = unique(&format!("crash-{at}"));
        let (config, maildir) = setup(dir.path(), &tag);
        let config = config.to_str().unwrap();
        let msg = message(
            "bob@example.test",
            "alice@example.test",
            &format!("Hello {tag}"),
            &format!("{tag}@test"),
            "",
        );
        let args = [
            "-c",
            config,
            "-f",
            "bob@example.test",
            "-a",
            "alice@example.test",
        ];
        let (code, err) = deliver(&args, &msg, &[("MAILPIPE_FAULT_ABORT_AT", at)]);
        assert_ne!(code, Some(0), "{at}: the fault did not strike: {err}");
        assert!(err.contains("fault injected"), "{at}: {err}");
        // The copy is on disk either way; the MTA saw no answer and tries again.
        assert_eq!(files(&maildir, "").len(), 1, "{at}");
        let (code, err) = deliver(&args, &msg, &[]);
        assert_eq!(code, Some(0), "{at}: {err}");
        assert_eq!(files(&maildir, "").len(), 1, "{at}: stored twice");
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
    let to = |r: &'static str| ["-c", config, "-f", "bob@example.test", "-a", r];

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
    // A mail store that cannot be written: 75, nothing recorded; once fixed, delivered.
    std::fs::write(&maildir, b"not a directory").unwrap();
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
    let (config, maildir) = setup(&dir, &tag);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replacen(
            "recipients = [\"alice@example.test\", \"alias@example.test\"]",
            &format!("recipients = [\"alice@{domain}\"]"),
            1,
        )
        .replacen(
            "addresses = [\"alice@example.test\"]",
            &format!("addresses = [\"alice+{tag}@{domain}\"]"),
            1,
        );
    std::fs::write(&config, text).unwrap();
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
    // A +detail of this run's own (the account takes it): Postfix's log lines of this run
    // are told apart from earlier runs' by it.
    let alice = format!("alice+{tag}@{domain}");
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
    let deferred = until(Duration::from_secs(60), || {
        postfix_log(&stack, &alice)
            .iter()
            .any(|l| l.contains("status=deferred"))
    })
    .await;
    assert!(deferred, "{:?}", postfix_log(&stack, &alice));
    assert!(files(&maildir, "").is_empty());
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    stack.run("postfix-ctl.sh", &["flush"]);
    let arrived = until(Duration::from_secs(60), || files(&maildir, "").len() == 1).await;
    assert!(arrived, "{:?}", postfix_log(&stack, &alice));
    assert!(
        !postfix_log(&stack, &alice)
            .iter()
            .any(|l| l.contains("status=bounced")),
        "{:?}",
        postfix_log(&stack, &alice)
    );

    // 3. A recipient no account takes: 67, bounced, with mailpipe's reason in Postfix's log.
    let nobody = format!("nobody-{tag}@{domain}");
    send_each(
        &stack,
        "SMTP",
        &[(bob.clone(), nobody.clone())],
        &format!("Nobody {tag}"),
        &format!("{tag}-c"),
    );
    let bounced = until(Duration::from_secs(60), || {
        postfix_log(&stack, &nobody)
            .iter()
            .any(|l| l.contains("status=bounced") && l.contains("no account takes mail"))
    })
    .await;
    assert!(bounced, "{:?}", postfix_log(&stack, &nobody));
    let _ = std::fs::remove_dir_all(&dir);
}
