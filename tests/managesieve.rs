//! The daemon's ManageSieve server (issue 23) driven by a real client, `sieve-connect`
//! (Debian package, installed by tests/mailstack): it checks a broken script (the error comes
//! back with its line), uploads and activates a script, lists, downloads, deactivates and
//! deletes, with the account's own IMAP password (checked against the real Dovecot, over
//! TLS); mail sent through the real Postfix is then filed by the uploaded script. On both
//! state backends.

mod common;

use common::mailstack::*;
use std::path::{Path, PathBuf};
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

/// How a test reaches the server.
struct Client {
    port: u16,
    /// sieve-connect's server and TLS options.
    how: Vec<String>,
}

/// sieve-connect with `args`, the password on fd 3: (exit code, stdout + stderr).
fn sieve_connect(c: &Client, password: &str, dir: &Path, args: &[&str]) -> (i32, String) {
    let pw = dir.join("pw");
    std::fs::write(&pw, format!("{password}\n")).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec sieve-connect --port {} --user {USER}@example.test \
             --authmech PLAIN --passwordfd 3 \"$@\" 3<\"{}\"",
            c.port,
            pw.display()
        ))
        .arg("sieve-connect")
        .args(&c.how)
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

/// The stack's server certificate for localhost and 127.0.0.1, with its key, and its SHA-256
/// fingerprint as sieve-connect writes it (AB:CD:...).
fn server_cert(stack: &Stack) -> (PathBuf, PathBuf, String) {
    use rustls_pki_types::{pem::PemObject, CertificateDer};
    use sha2::Digest;
    let dir = stack.ca().parent().unwrap().to_path_buf();
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    let der = CertificateDer::from_pem_file(&cert).unwrap();
    let print: Vec<String> = sha2::Sha256::digest(der.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    (cert, key, print.join(":"))
}

#[derive(Clone, Copy)]
enum Tls {
    /// No TLS, on loopback.
    None,
    /// STARTTLS, the client checks the chain against the stack's CA.
    Ca,
    /// STARTTLS, the client pins the certificate's fingerprint; the account comes from an
    /// account file (`[accounts] dir`), not the main config.
    Pinned,
}

/// The body of GET `path` from the daemon's metrics listener.
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

async fn scenario(name: &str, state: &str, tls: Tls) {
    let stack = Stack::get();
    // The test's own name: two tests started in the same millisecond get different tags.
    let tag = unique(name);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let (cert, key, print) = server_cert(&stack);
    let (tls_config, how): (String, Vec<String>) = match tls {
        Tls::None => (
            String::new(),
            vec!["--server".into(), "127.0.0.1".into(), "--clearchan".into()],
        ),
        Tls::Ca | Tls::Pinned => (
            format!(
                "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
                cert.display(),
                key.display()
            ),
            match tls {
                Tls::Ca => vec!["--server", "localhost", "--noclearchan", "--tlscafile"]
                    .into_iter()
                    .map(String::from)
                    .chain([stack.ca().display().to_string()])
                    .collect(),
                _ => vec!["--server", "127.0.0.1", "--noclearchan", "--notlsverify"]
                    .into_iter()
                    .map(String::from)
                    .chain(["--tlscertfingerprint".into(), format!("sha256:{print}")])
                    .collect(),
            },
        ),
    };
    let client = Client { port, how };
    let config = d.join("mailpipe.toml");
    let mut account = stack.account_toml(USER, &["INBOX"], "");
    if matches!(tls, Tls::Pinned) {
        // Users of account files log in as well as those of the main file.
        std::fs::create_dir(d.join("accounts")).unwrap();
        std::fs::write(
            d.join("accounts").join(format!("{USER}.toml")),
            account.replace("[[account]]", "[account]"),
        )
        .unwrap();
        account = format!("[accounts]\ndir = \"{}\"\n", d.join("accounts").display());
    }
    std::fs::write(
        &config,
        format!(
            "{state}\n[managesieve]\nlisten = \"127.0.0.1:{port}\"\n{tls_config}{account}\n[[plugin]]\nname = \"rules\"\naccount_sieve = true\n",
        )
        .replace("{STATE}", &d.join("state").display().to_string()),
    )
    .unwrap();
    let log = d.join("daemon.log");
    let metrics = free_port();
    let mut daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_mailpipe"))
            .args(["run", "--metrics", &format!("127.0.0.1:{metrics}"), "-c"])
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
        &client,
        &pw,
        d,
        &["--checkscript", "--localsieve", "bad.sieve"],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(":3:1: error:"), "{out}");
    // A wrong password is refused (checked against Dovecot).
    let (code, out) = sieve_connect(&client, "guess", d, &["--list"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("authentication failed"), "{out}");
    // ...and counted.
    let page = http_get(metrics, "/metrics");
    assert!(
        page.contains("mailpipe_managesieve_logins_total{result=\"failed\"} 1"),
        "{page}"
    );

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
        let (code, out) = sieve_connect(&client, &pw, d, &args);
        assert_eq!(code, 0, "{args:?}: {out}");
    }
    let (code, out) = sieve_connect(&client, &pw, d, &["--list"]);
    assert_eq!((code, out.trim()), (0, "\"rules\" ACTIVE"), "{out}");
    let (code, out) = sieve_connect(
        &client,
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
    let (code, out) = sieve_connect(&client, &pw, d, &["--delete", "--remotesieve", "rules"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("ACTIVE"), "{out}");
    for args in [
        vec!["--deactivate"],
        vec!["--delete", "--remotesieve", "rules"],
    ] {
        let (code, out) = sieve_connect(&client, &pw, d, &args);
        assert_eq!(code, 0, "{args:?}: {out}");
    }
    let (code, out) = sieve_connect(&client, &pw, d, &["--list"]);
    assert_eq!((code, out.trim()), (0, ""), "{out}");

    // SIGHUP reloads: the server lets go of the state store (the embedded one is locked
    // while open) and listens again, and what was stored is still there.
    let (code, out) = sieve_connect(
        &client,
        &pw,
        d,
        &[
            "--upload",
            "--localsieve",
            "rules.sieve",
            "--remotesieve",
            "kept",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let kill = Command::new("kill")
        .args(["-HUP", &daemon.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut again = false;
    for _ in 0..100 {
        if text().matches("ManageSieve: listening").count() == 2
            && text().matches("IDLE").count() >= 2
        {
            again = true;
            break;
        }
        assert!(
            daemon.0.try_wait().unwrap().is_none(),
            "{state}: the daemon survives a reload: {}",
            text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(again, "{state}: the daemon reloads: {}", text());
    let (code, out) = sieve_connect(&client, &pw, d, &["--list"]);
    assert_eq!((code, out.trim()), (0, "\"kept\""), "{out}");
}

#[tokio::test]
async fn sieve_connect_edits_the_scripts_that_file_mail_on_the_embedded_store() {
    scenario("msieve-embedded", "[state]\ndir = \"{STATE}\"", Tls::None).await;
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
        Tls::None,
    )
    .await;
}

#[tokio::test]
async fn sieve_connect_over_starttls_checked_against_the_ca() {
    scenario("msieve-tls-ca", "[state]\ndir = \"{STATE}\"", Tls::Ca).await;
}

#[tokio::test]
async fn sieve_connect_over_starttls_with_a_pinned_certificate() {
    scenario("msieve-tls-pin", "[state]\ndir = \"{STATE}\"", Tls::Pinned).await;
}

/// Implicit TLS (`tls = "implicit"`), which sieve-connect cannot speak, driven by a second
/// client implementation (tests/managesieve/client.py: Python's TLS checked against the CA,
/// `{N+}` literals, RENAMESCRIPT, HAVESPACE, NOOP, UNAUTHENTICATE); a client that speaks
/// plaintext to that port gets no greeting. On both state backends.
#[tokio::test]
async fn a_python_client_over_implicit_tls_on_the_embedded_store() {
    python_client("[state]\ndir = \"{STATE}\"").await;
}

#[tokio::test]
async fn a_python_client_over_implicit_tls_on_postgresql() {
    let (_, url, _) = test_postgres();
    let schema = format!("msieve_py_{}", std::process::id());
    python_client(&format!(
        "[state]\nbackend = \"postgres\"\nurl = \"{url}\"\npassword_env = \"MAILPIPE_TEST_PG_PASSWORD\"\nschema = \"{schema}\""
    ))
    .await;
}

async fn python_client(state: &str) {
    use std::io::Read;
    let stack = Stack::get();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let (cert, key, _) = server_cert(&stack);
    let config = d.join("mailpipe.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[managesieve]\nlisten = \"127.0.0.1:{port}\"\ntls = \"implicit\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n{}\n[[plugin]]\nname = \"rules\"\naccount_sieve = true\n",
            state.replace("{STATE}", &d.join("state").display().to_string()),
            cert.display(),
            key.display(),
            stack.account_toml(USER, &["INBOX"], ""),
        ),
    )
    .unwrap();
    let log = d.join("daemon.log");
    let _daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_mailpipe"))
            .args(["run", "-c"])
            .arg(&config)
            .env("MAILPIPE_TEST_PG_PASSWORD", test_postgres().2)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    for _ in 0..100 {
        if text().contains("ManageSieve: listening") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(text().contains("tls=\"implicit\""), "{}", text());
    // Plaintext to a TLS port: no greeting, no capability list.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    assert!(
        !String::from_utf8_lossy(&buf[..n]).contains("IMPLEMENTATION"),
        "plaintext greeting on a TLS port"
    );
    drop(s);
    let client = common::root().join("tests/managesieve/client.py");
    let out = Command::new("python3")
        .arg(&client)
        .args(["localhost", &port.to_string()])
        .arg(stack.ca())
        .args([&format!("{USER}@example.test"), &format!("secret-{USER}")])
        .output()
        .expect("python3");
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}\n{}", text());
    assert!(said.contains("LOGOUT: OK"), "{said}");
}
