//! The daemon's ManageSieve server (issue 23) driven by a real client, `sieve-connect`
//! (Debian package, installed by tests/mailstack): it checks a broken script (the error comes
//! back with its line), uploads and activates a script, lists, downloads, deactivates and
//! deletes, with the account's own IMAP password (checked against the real Dovecot, over
//! TLS); mail sent through the real Postfix is then filed by the uploaded script. On both
//! state backends.

mod common;

use common::mailstack::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const USER: &str = "carol";

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// sieve-connect with `args`, the password on fd 3: (exit code, stdout + stderr).
fn sieve_connect(port: u16, password: &str, dir: &Path, args: &[&str]) -> (i32, String) {
    let pw = dir.join("pw");
    std::fs::write(&pw, format!("{password}\n")).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec sieve-connect --server 127.0.0.1 --port {port} --user {USER}@example.test \
             --authmech PLAIN --clearchan --passwordfd 3 \"$@\" 3<\"{}\"",
            pw.display()
        ))
        .arg("sieve-connect")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect(
            "sieve-connect (Debian package sieve-connect; tests/mailstack/start.sh installs it)",
        );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Messages in `folder` of USER whose header has `subject`.
async fn count_subject(stack: &Stack, folder: &str, subject: &str) -> usize {
    use futures::TryStreamExt;
    let mut s = stack.session(USER).await;
    let n = match s.select(folder).await {
        Ok(mb) if mb.exists > 0 => {
            let items: Vec<_> = s
                .uid_fetch("1:*", "(UID BODY.PEEK[HEADER])")
                .await
                .expect("FETCH")
                .try_collect()
                .await
                .expect("FETCH");
            items
                .iter()
                .filter(|f| {
                    String::from_utf8_lossy(f.header().unwrap_or_default()).contains(subject)
                })
                .count()
        }
        _ => 0,
    };
    let _ = s.logout().await;
    n
}

async fn scenario(name: &str, state: &str) {
    let stack = Stack::get();
    // The test's own name: two tests started in the same millisecond get different tags.
    let tag = unique(name);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let config = d.join("mailpipe.toml");
    std::fs::write(
        &config,
        format!(
            "{state}\n[managesieve]\nlisten = \"127.0.0.1:{port}\"\n{}\n[[plugin]]\nname = \"rules\"\naccount_sieve = true\n",
            stack.account_toml(USER, &["INBOX"], "")
        )
        .replace("{STATE}", &d.join("state").display().to_string()),
    )
    .unwrap();
    let log = d.join("daemon.log");
    let _daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_mailpipe"))
            .args(["run", "-c"])
            .arg(&config)
            .env("MAILPIPE_TEST_PG_PASSWORD", test_postgres().2)
            .stdout(std::fs::File::create(d.join("daemon.out")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    let mut listening = false;
    for _ in 0..100 {
        if text().contains("ManageSieve: listening") && text().contains("IDLE") {
            listening = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(listening, "{state}: the daemon listens: {}", text());
    let pw = format!("secret-{USER}");

    // A broken script comes back with its line; nothing is stored.
    std::fs::write(
        d.join("bad.sieve"),
        "require \"fileinto\";\nfileinto \"X\"\n",
    )
    .unwrap();
    let (code, out) = sieve_connect(
        port,
        &pw,
        d,
        &["--checkscript", "--localsieve", "bad.sieve"],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(":3:1: error:"), "{out}");
    // A wrong password is refused (checked against Dovecot).
    let (code, out) = sieve_connect(port, "guess", d, &["--list"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("authentication failed"), "{out}");

    let folder = format!("Bills-{tag}");
    let script = format!(
        "require [\"fileinto\", \"mailbox\"];\nif header :contains \"subject\" \"invoice {tag}\" {{ fileinto :create \"{folder}\"; }}\n"
    );
    std::fs::write(d.join("rules.sieve"), &script).unwrap();
    for args in [
        vec![
            "--upload",
            "--localsieve",
            "rules.sieve",
            "--remotesieve",
            "rules",
        ],
        vec!["--activate", "--remotesieve", "rules"],
    ] {
        let (code, out) = sieve_connect(port, &pw, d, &args);
        assert_eq!(code, 0, "{args:?}: {out}");
    }
    let (code, out) = sieve_connect(port, &pw, d, &["--list"]);
    assert_eq!((code, out.trim()), (0, "\"rules\" ACTIVE"), "{out}");
    let (code, out) = sieve_connect(
        port,
        &pw,
        d,
        &[
            "--download",
            "--remotesieve",
            "rules",
            "--localsieve",
            "back.sieve",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        std::fs::read_to_string(d.join("back.sieve")).unwrap(),
        script
    );

    // Mail through Postfix, filed by the uploaded script (the daemon reads it per message).
    send_each(
        &stack,
        "SMTP",
        &[("shop@example.net".into(), format!("{USER}@example.test"))],
        &format!("invoice {tag}"),
        &tag,
    );
    let mut filed = 0;
    for _ in 0..100 {
        filed = count_subject(&stack, &folder, &format!("invoice {tag}")).await;
        if filed == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        filed,
        1,
        "{state}: filed by the uploaded script: {}",
        text()
    );

    // The active script cannot be deleted; deactivated, it can.
    let (code, out) = sieve_connect(port, &pw, d, &["--delete", "--remotesieve", "rules"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("ACTIVE"), "{out}");
    for args in [
        vec!["--deactivate"],
        vec!["--delete", "--remotesieve", "rules"],
    ] {
        let (code, out) = sieve_connect(port, &pw, d, &args);
        assert_eq!(code, 0, "{args:?}: {out}");
    }
    let (code, out) = sieve_connect(port, &pw, d, &["--list"]);
    assert_eq!((code, out.trim()), (0, ""), "{out}");
}

#[tokio::test]
async fn sieve_connect_edits_the_scripts_that_file_mail_on_the_embedded_store() {
    scenario("msieve-embedded", "[state]\ndir = \"{STATE}\"").await;
}

#[tokio::test]
async fn sieve_connect_edits_the_scripts_that_file_mail_on_postgresql() {
    let (_, url, _) = test_postgres();
    let schema = format!("msieve_{}", std::process::id());
    scenario(
        "msieve-pg",
        &format!(
        "[state]\nbackend = \"postgres\"\nurl = \"{url}\"\npassword_env = \"MAILPIPE_TEST_PG_PASSWORD\"\nschema = \"{schema}\""
        ),
    )
    .await;
}
