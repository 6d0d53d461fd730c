//! POP3 mailboxes read into a Maildir through the plugins, on the real Dovecot pop3d:
//! STLS, implicit TLS and APOP logins; each message filed once and answered once (never
//! about mail that was there before mailpipe); `keep = false` deletes a message only once
//! it is stored and committed, so a crash before QUIT loses nothing and stores nothing twice;
//! `keep = true` leaves every message and reads only the new ones.
//!
//! Each test has its own user (dave, erin, frank) and empties its INBOX first.

mod common;

use common::mailstack::*;
use futures::StreamExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A config in `dir`: `user` reads its POP3 mailbox (`pop3`: the table's lines after host)
/// into `dir/Maildir`, files invoices, answers with a vacation reply whose subject holds
/// `tag`, sends through the stack's Postfix.
fn setup(dir: &Path, user: &str, tag: &str, pop3: &str) -> (PathBuf, PathBuf) {
    let stack = Stack::get();
    let text = format!(
        r#"
[state]
dir = "state"

[[account]]
name = "{user}"
address = "{user}@example.test"
poll_seconds = 5
[account.pop3]
host = "localhost"
{pop3}
username = "{user}@example.test"
password_command = "echo secret-{user}"
[account.deliver]
maildir = "Maildir"
{smtp}{plugins}"#,
        smtp = stack.smtp_table(user),
        plugins = filer_and_vacation(&format!("{user}@example.test"), tag),
    );
    let file = dir.join("mailpipe.toml");
    std::fs::write(&file, text).unwrap();
    (file, dir.join("Maildir"))
}

/// `mailpipe run --once -c CONFIG` with `env`: exit code and stderr.
fn run_once(config: &Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mailpipe"))
        .args(["run", "--once", "-c"])
        .arg(config)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Empty `user`'s INBOX (over IMAP), so that a test starts from nothing.
async fn empty_inbox(user: &str) {
    let stack = Stack::get();
    let mut s = stack.session(user).await;
    s.select("INBOX").await.unwrap();
    if let Ok(st) = s.uid_store("1:*", "+FLAGS.SILENT (\\Deleted)").await {
        st.collect::<Vec<_>>().await;
    }
    {
        let st = s.expunge().await.unwrap();
        st.collect::<Vec<_>>().await;
    }
    let _ = s.logout().await;
}

/// The raw headers of what `user`'s INBOX holds now.
async fn inbox(user: &str) -> Vec<String> {
    let stack = Stack::get();
    let mut s = stack.session(user).await;
    let l = list(&mut s, "INBOX").await;
    let _ = s.logout().await;
    l.into_iter().map(|(_, _, h)| h).collect()
}

/// Wait until `user`'s INBOX holds `want` messages containing `needle`; how many it holds.
async fn wait_inbox(user: &str, needle: &str, want: usize) -> usize {
    let start = std::time::Instant::now();
    loop {
        let n = inbox(user)
            .await
            .iter()
            .filter(|h| h.contains(needle))
            .count();
        if n >= want || start.elapsed() > Duration::from_secs(30) {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The message files of one Maildir++ folder ("" for INBOX), and of all folders.
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

fn stored(maildir: &Path) -> usize {
    files(maildir, "").len() + files(maildir, "Finance/Invoices").len()
}

/// Send through Postfix (it writes the Received fields a real mailbox has).
fn send(from: &str, to: &str, subject: &str, id: &str) {
    let stack = Stack::get();
    send_each(
        &stack,
        "SMTP",
        &[(from.to_string(), to.to_string())],
        subject,
        id,
    );
}

#[tokio::test]
async fn stls_files_answers_new_mail_only_and_deletes_only_what_is_stored() {
    let user = "dave";
    let to = "dave@example.test";
    empty_inbox(user).await;
    let dir = tempfile::tempdir().unwrap();
    let tag = unique("pop3-stls");
    let stack = Stack::get();
    let pop3 = format!(
        "port = {}\ntls = \"starttls\"\nca_file = \"{}\"\nkeep = false",
        stack.port("POP3"),
        stack.ca().display()
    );
    let (config, maildir) = setup(dir.path(), user, &tag, &pop3);

    // Mail that was there before mailpipe: filed, never answered.
    {
        let mut s = stack.session(user).await;
        for i in 0..2 {
            let raw = message(
                "bob@example.test",
                to,
                &format!("Old {tag} {i}"),
                &format!("old{i}.{tag}@t"),
                "",
            );
            append(&mut s, "INBOX", &raw).await;
        }
        let _ = s.logout().await;
    }
    let (code, err) = run_once(&config, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(stored(&maildir), 2, "{err}");
    assert!(inbox(user).await.is_empty(), "deleted once stored");

    // New mail, through Postfix: filed, and each sender answered once.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    send(
        "bob@example.test",
        to,
        &format!("Hello {tag}"),
        &format!("n1.{tag}"),
    );
    send(
        "bob@example.test",
        to,
        &format!("Your invoice {tag}"),
        &format!("n2.{tag}"),
    );
    send(
        "carol@example.test",
        to,
        &format!("Hi {tag}"),
        &format!("n3.{tag}"),
    );
    assert_eq!(wait_inbox(user, &tag, 3).await, 3, "Postfix delivered");
    let (code, err) = run_once(&config, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(stored(&maildir), 5, "{err}");
    assert_eq!(files(&maildir, "Finance/Invoices").len(), 1);
    assert!(inbox(user).await.is_empty());
    let away = format!("Away {tag}");
    assert_eq!(wait_inbox("bob", &away, 1).await, 1, "bob answered");
    assert_eq!(wait_inbox("carol", &away, 1).await, 1, "carol answered");
    // Again: nothing new, nothing twice.
    let (code, err) = run_once(&config, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(stored(&maildir), 5);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let bob = inbox("bob").await;
    assert_eq!(
        bob.iter().filter(|h| h.contains(&away)).count(),
        1,
        "answered twice"
    );
    // The replies were about new mail only: none names an old message.
    assert!(!bob.iter().any(|h| h.contains(&away) && h.contains("old0.")));
}

#[tokio::test]
async fn a_crash_before_quit_loses_nothing_and_stores_nothing_twice() {
    let user = "erin";
    let to = "erin@example.test";
    empty_inbox(user).await;
    let dir = tempfile::tempdir().unwrap();
    let tag = unique("pop3-crash");
    let stack = Stack::get();
    let pop3 = format!(
        "port = {}\ntls = \"implicit\"\nca_file = \"{}\"\nkeep = false",
        stack.port("POP3S"),
        stack.ca().display()
    );
    let (config, maildir) = setup(dir.path(), user, &tag, &pop3);
    // A first pass over the empty mailbox: from now on mail is new.
    let (code, err) = run_once(&config, &[]);
    assert_eq!(code, Some(0), "{err}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for i in 0..4 {
        send(
            "bob@example.test",
            to,
            &format!("Note {i} {tag}"),
            &format!("c{i}.{tag}"),
        );
    }
    assert_eq!(wait_inbox(user, &tag, 4).await, 4);
    // Killed right after the first message's commit: before its DELE and QUIT.
    let (code, err) = run_once(&config, &[("MAILPIPE_FAULT_ABORT_AT", "committed")]);
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("fault injected"), "{err}");
    assert_eq!(stored(&maildir), 1);
    assert_eq!(inbox(user).await.len(), 4, "nothing deleted without QUIT");
    let (code, err) = run_once(&config, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(stored(&maildir), 4, "each stored once: {err}");
    assert!(inbox(user).await.is_empty(), "all deleted now");
    // The killed run's marker of its stored copy was removed by this one.
    let marked = std::fs::read_dir(maildir.join("tmp"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".unsettled"))
        .count();
    assert_eq!(marked, 0, "a marker left");
    let away = format!("Away {tag}");
    assert_eq!(wait_inbox("bob", &away, 1).await, 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        inbox("bob")
            .await
            .iter()
            .filter(|h| h.contains(&away))
            .count(),
        1,
        "answered twice"
    );
    // Each Message-ID once.
    let mut ids: Vec<String> = files(&maildir, "")
        .iter()
        .map(|p| {
            let t = std::fs::read_to_string(p).unwrap();
            t.lines()
                .find(|l| l.starts_with("Message-ID:"))
                .unwrap()
                .to_string()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4);

    // XOAUTH2 with a token from the stack's OAuth2 provider: someone else's token is refused
    // (and said so, without the token), erin's is taken.
    send(
        "bob@example.test",
        to,
        &format!("Token {tag}"),
        &format!("t1.{tag}"),
    );
    assert_eq!(wait_inbox(user, &format!("Token {tag}"), 1).await, 1);
    let odir = dir.path().join("oauth");
    std::fs::create_dir_all(&odir).unwrap();
    let token_path = odir.join("token");
    let pop3 = format!(
        "port = {}\ntls = \"implicit\"\nca_file = \"{}\"\nkeep = false\nauth = \"xoauth2\"",
        stack.port("POP3S"),
        stack.ca().display()
    );
    let (config, maildir) = setup(&odir, user, &tag, &pop3);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "password_command = \"echo secret-erin\"\n[account.deliver]",
        "[account.deliver]",
    ) + &format!(
        "\n[account.oauth2]\ntoken_command = \"cat {}\"\n",
        token_path.display()
    );
    std::fs::write(&config, text).unwrap();
    let issue = |who: &str| {
        let body = format!("{{\"username\": \"{who}\", \"expires_in\": 3600}}");
        let (status, _, out) = http(stack.port("OAUTH"), "POST", "/control/issue", &body);
        assert_eq!(status, 200, "{out}");
        out["access_token"].as_str().unwrap().to_string()
    };
    let bobs = issue("bob@example.test");
    std::fs::write(&token_path, &bobs).unwrap();
    let (code, err) = run_once(&config, &[]);
    assert_ne!(code, Some(0));
    assert!(err.contains("XOAUTH2") && !err.contains(&bobs), "{err}");
    assert_eq!(inbox(user).await.len(), 1);
    std::fs::write(&token_path, issue("erin@example.test")).unwrap();
    let (code, err) = run_once(&config, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(stored(&maildir), 1);
    assert!(inbox(user).await.is_empty());
    // OAUTHBEARER (RFC 7628) with the same token.
    send(
        "bob@example.test",
        to,
        &format!("Bearer {tag}"),
        &format!("t2.{tag}"),
    );
    assert_eq!(wait_inbox(user, &format!("Bearer {tag}"), 1).await, 1);
    let text = std::fs::read_to_string(&config).unwrap();
    let bearer = text.replace("auth = \"xoauth2\"", "auth = \"oauthbearer\"");
    assert_ne!(bearer, text);
    std::fs::write(&config, bearer).unwrap();
    let (code, err) = run_once(&config, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(stored(&maildir), 2);
    assert!(inbox(user).await.is_empty());
}

#[tokio::test]
async fn keep_reads_only_new_messages_and_apop_keeps_the_password_off_the_wire() {
    let user = "frank";
    let to = "frank@example.test";
    empty_inbox(user).await;
    let dir = tempfile::tempdir().unwrap();
    let tag = unique("pop3-keep");
    let stack = Stack::get();
    // Plain POP3 on loopback: the password is proven with APOP, never sent.
    let pop3 = format!("port = {}\ntls = \"none\"", stack.port("POP3"));
    let (config, maildir) = setup(dir.path(), user, &tag, &pop3);
    let (code, err) = run_once(&config, &[]);
    assert_eq!(code, Some(0), "{err}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    send(
        "bob@example.test",
        to,
        &format!("First {tag}"),
        &format!("k1.{tag}"),
    );
    assert_eq!(wait_inbox(user, &tag, 1).await, 1);
    let (code, err) = run_once(&config, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(stored(&maildir), 1);
    send(
        "carol@example.test",
        to,
        &format!("Second {tag}"),
        &format!("k2.{tag}"),
    );
    assert_eq!(wait_inbox(user, &tag, 2).await, 2);
    let (code, err) = run_once(&config, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(stored(&maildir), 2, "only the new one was read");
    assert_eq!(inbox(user).await.len(), 2, "keep = true leaves them");
    // check --connect logs in to both servers and says what it found.
    let out = Command::new(env!("CARGO_BIN_EXE_mailpipe"))
        .args(["check", "--connect", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(&format!("POP3 localhost:{} ok", stack.port("POP3")))
            && said.contains("2 message(s), unique ids (UIDL) for all")
            && said.contains("kept on the server")
            && said.contains("SMTP localhost:"),
        "{said}"
    );
    let log = std::fs::read_to_string(stack.dir.join("log/dovecot.log")).unwrap_or_default();
    assert!(
        log.lines().any(|l| l.contains("pop3-login")
            && l.contains("frank@example.test")
            && l.contains("method=APOP")),
        "frank logged in with APOP"
    );
    // The daemon polls the mailbox, and its LMTP server delivers to the same account: one
    // store, one turn, one vacation memory (carol, answered above, is not answered again).
    let lmtp_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let text = std::fs::read_to_string(&config).unwrap()
        + &format!("\n[lmtp]\nlisten = \"127.0.0.1:{lmtp_port}\"\n");
    std::fs::write(&config, text).unwrap();
    let log = dir.path().join("daemon.log");
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_mailpipe"))
        .args(["run", "-c"])
        .arg(&config)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", lmtp_port)).is_err() {
        assert!(
            daemon.try_wait().unwrap().is_none(),
            "{}",
            std::fs::read_to_string(&log).unwrap()
        );
        assert!(started.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(50));
    }
    send(
        "bob@example.test",
        to,
        &format!("Third {tag}"),
        &format!("k3.{tag}"),
    );
    send_each_at(
        lmtp_port,
        true,
        &[("carol@example.test".into(), to.into())],
        &format!("Direct {tag}"),
        &format!("d.{tag}"),
    );
    let waited = std::time::Instant::now();
    while stored(&maildir) < 4 && waited.elapsed() < Duration::from_secs(40) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        stored(&maildir),
        4,
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let status = daemon.wait().unwrap();
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    assert_eq!(inbox(user).await.len(), 3, "keep = true");
    let away = format!("Away {tag}");
    assert_eq!(wait_inbox("carol", &away, 1).await, 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        inbox("carol")
            .await
            .iter()
            .filter(|h| h.contains(&away))
            .count(),
        1,
        "carol answered twice"
    );

    // A wrong CA for POP3S: a clear error, nothing stored or deleted.
    let bad = format!(
        "port = {}\ntls = \"implicit\"\nca_file = \"{}\"",
        stack.port("POP3S"),
        stack.wrong_ca().display()
    );
    std::fs::create_dir_all(dir.path().join("bad")).unwrap();
    let (config, _) = setup(&dir.path().join("bad"), user, &tag, &bad);
    let (code, err) = run_once(&config, &[]);
    assert_ne!(code, Some(0));
    assert!(err.contains("certificate"), "{err}");
    assert_eq!(inbox(user).await.len(), 3);
}
