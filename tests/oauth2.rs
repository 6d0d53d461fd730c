//! OAuth2 end to end against the test bed: Dovecot's oauth2 passdb asks the local provider of
//! tests/mailstack (oauth2_server.py) whether a token is valid; Postfix submission goes
//! through Dovecot's SASL. Through the real binary: `mailpipe auth` with the device and the
//! browser (PKCE) flow and `--import`, IMAP with XOAUTH2 and SMTP with OAUTHBEARER, tokens
//! cached across runs, renewed when they expired, a revoked grant reported with what to do,
//! a token command, and no secret in any output.

mod common;

use common::mailstack::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const SECRET: &str = "test-secret";

fn oauth_port(stack: &Stack) -> u16 {
    stack.port("OAUTH")
}

fn control(stack: &Stack, path: &str, body: serde_json::Value) -> serde_json::Value {
    let (status, _, v) = http(oauth_port(stack), "POST", path, &body.to_string());
    assert_eq!(status, 200, "{path}: {v}");
    v
}

fn stats(stack: &Stack) -> serde_json::Value {
    http(oauth_port(stack), "GET", "/control/stats", "").2
}

/// Successful /token calls of one grant type so far (the device grant is counted under its
/// URN, urn:ietf:params:oauth:grant-type:device_code).
fn grants(stack: &Stack, grant: &str) -> u64 {
    let s = stats(stack);
    let token = s
        .get("token")
        .unwrap_or_else(|| panic!("no token stats in {s}"));
    token
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k == grant || k.ends_with(&format!(":{grant}")))
        .filter_map(|(_, v)| v.get("ok").and_then(|n| n.as_u64()))
        .sum()
}

/// A config for alice: IMAP (plain, loopback) with `imap_auth`, submission with
/// `smtp_auth`, tokens from the test provider, and the vacation responder.
fn write_config(stack: &Stack, dir: &Path, mailbox: &str, oauth2: &str) -> std::path::PathBuf {
    let text = format!(
        r#"
[state]
dir = "{state}"

[[account]]
name = "alice"
address = "alice@example.test"
mailboxes = ["{mailbox}"]

[account.imap]
host = "127.0.0.1"
port = {imap}
tls = "none"
auth = "xoauth2"

[account.smtp]
host = "127.0.0.1"
port = {submission}
tls = "none"
auth = "oauthbearer"

[account.oauth2]
{oauth2}
{plugins}"#,
        state = dir.join("state").display(),
        imap = stack.port("IMAP"),
        submission = stack.port("SUBMISSION"),
        plugins = plugin_toml(
            "vacation",
            "auto-responder",
            "send_about_mail_since = \"all\"\n[plugin.config]\naddresses = [\"alice@example.test\"]\nsubject = \"Away (oauth)\"\nbody = \"I am away.\""
        ),
    );
    let file = dir.join("mailpipe.toml");
    std::fs::write(&file, text).unwrap();
    file
}

fn client_table(stack: &Stack) -> String {
    let base = format!("http://127.0.0.1:{}", oauth_port(stack));
    format!(
        "client_id = \"mailpipe-test\"\nclient_secret_env = \"MAILPIPE_TEST_CLIENT_SECRET\"\ntoken_url = \"{base}/token\"\ndevice_url = \"{base}/device\"\nauth_url = \"{base}/authorize\"\nscopes = [\"mail\", \"offline_access\"]"
    )
}

fn mailpipe(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mailpipe"));
    c.args(args).env("MAILPIPE_TEST_CLIENT_SECRET", SECRET);
    c
}

/// `mailpipe run --once`: exit status, stdout, stderr.
fn run_once(config: &Path) -> (bool, String, String) {
    let out = mailpipe(&["run", "--once", "--json", "-c", config.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn token_file(dir: &Path) -> serde_json::Value {
    let path = dir.join("state/oauth2/alice.json");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the token file is private");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn assert_no_secrets(text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(
            !s.is_empty() && !text.contains(s),
            "a secret leaked into output:\n{text}"
        );
    }
}

async fn seed(stack: &Stack, mailbox: &str, tag: &str, n: u32) {
    let mut s = stack.session("alice").await;
    append(
        &mut s,
        mailbox,
        &message(
            "Bob <bob@example.test>",
            "alice@example.test",
            &format!("question {n} {tag}"),
            &format!("{n}.{tag}@example.test"),
            "",
        ),
    )
    .await;
    let _ = s.logout().await;
}

#[tokio::test]
async fn device_flow_then_tokens_are_cached_renewed_and_a_revoked_grant_is_reported() {
    let stack = Stack::get();
    let tag = unique("oauth-dev");
    let (s, mailbox) = fresh_mailbox(&stack, "alice", "T-oauth-dev").await;
    drop(s);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&stack, dir.path(), &mailbox, &client_table(&stack));
    let cfg = config.to_str().unwrap();

    // Not authorised yet: the run says what to do and processes nothing.
    seed(&stack, &mailbox, &tag, 1).await;
    let (ok, _, err) = run_once(&config);
    assert!(!ok);
    assert!(err.contains("mailpipe auth alice"), "{err}");

    // The device flow: mailpipe shows a code; the user (here: the test) approves it.
    let device_before = grants(&stack, "device_code");
    let mut child = mailpipe(&["auth", "alice", "-c", cfg, "--flow", "device"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut shown = String::new();
    let code = loop {
        let line = lines.next().expect("mailpipe shows a code").unwrap();
        shown += &line;
        shown.push('\n');
        if line.contains("enter the code") {
            break lines.next().unwrap().unwrap().trim().to_string();
        }
    };
    assert!(shown.contains("/activate"), "{shown}");
    control(
        &stack,
        "/control/approve",
        serde_json::json!({"user_code": code, "username": "alice@example.test"}),
    );
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{shown}{rest:?}\n{err}");
    assert_eq!(grants(&stack, "device_code"), device_before + 1);
    let stored = token_file(dir.path());
    let refresh = stored["refresh_token"].as_str().unwrap().to_string();
    let access = stored["access_token"].as_str().unwrap().to_string();
    assert_no_secrets(
        &(shown.clone() + &rest.join("\n") + &err),
        &[SECRET, &refresh, &access],
    );

    // XOAUTH2 to Dovecot with the token the flow brought, OAUTHBEARER to Postfix for the
    // reply; no refresh needed (the token is fresh).
    let refresh_before = grants(&stack, "refresh_token");
    let (ok, out, err) = run_once(&config);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains(&format!("1.{tag}@example.test")), "{out}");
    wait_for(
        &stack,
        "bob",
        "INBOX",
        &format!("1.{tag}@example.test"),
        Duration::from_secs(20),
    )
    .await
    .expect("the reply went out through submission with OAUTHBEARER");
    assert_eq!(
        grants(&stack, "refresh_token"),
        refresh_before,
        "cached token used"
    );
    assert_no_secrets(&(out + &err), &[SECRET, &refresh, &access]);

    // The provider lets the access token expire early: the server refuses it, mailpipe
    // renews it once with the refresh token and goes on.
    control(
        &stack,
        "/control/expire",
        serde_json::json!({"token": access}),
    );
    seed(&stack, &mailbox, &tag, 2).await;
    let (ok, out, err) = run_once(&config);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains(&format!("2.{tag}@example.test")), "{out}");
    assert_eq!(grants(&stack, "refresh_token"), refresh_before + 1);
    let renewed = token_file(dir.path())["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(renewed, access);

    // The user revokes mailpipe's access: the run fails with what to do; the message stays.
    control(
        &stack,
        "/control/revoke",
        serde_json::json!({"token": refresh}),
    );
    seed(&stack, &mailbox, &tag, 3).await;
    let (ok, out, err) = run_once(&config);
    assert!(!ok, "{out}\n{err}");
    assert!(
        err.contains("refused the stored refresh token") && err.contains("mailpipe auth alice"),
        "{err}"
    );
    assert_no_secrets(&(out + &err), &[SECRET, &refresh, &renewed]);
    let mut s = stack.session("alice").await;
    assert_eq!(
        count(&list(&mut s, &mailbox).await, &format!("question 3 {tag}")),
        1
    );
    let _ = s.logout().await;

    // A refresh token from elsewhere, imported from stdin; then the message is handled.
    let issued = control(
        &stack,
        "/control/issue",
        serde_json::json!({"username": "alice@example.test", "expires_in": 3600}),
    );
    let new_refresh = issued["refresh_token"].as_str().unwrap();
    let mut child = mailpipe(&["auth", "alice", "-c", cfg, "--import"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{new_refresh}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let (ok, out, err) = run_once(&config);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains(&format!("3.{tag}@example.test")), "{out}");
}

#[tokio::test]
async fn browser_flow_with_pkce_and_check_connect() {
    let stack = Stack::get();
    let (s, mailbox) = fresh_mailbox(&stack, "alice", "T-oauth-web").await;
    drop(s);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&stack, dir.path(), &mailbox, &client_table(&stack));
    let cfg = config.to_str().unwrap();
    let mut child = mailpipe(&["auth", "alice", "-c", cfg, "--flow", "browser"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("mailpipe shows an address").unwrap();
        if line.trim_start().starts_with("http") {
            break line.trim().to_string();
        }
    };
    assert!(
        url.contains("code_challenge_method=S256")
            && url.contains("login_hint=alice%40example.test"),
        "{url}"
    );
    // The "browser": the provider's page answers with a redirect to mailpipe's listener.
    let path = url
        .split_once(&format!(":{}", oauth_port(&stack)))
        .unwrap()
        .1;
    let (status, head, _) = http(oauth_port(&stack), "GET", path, "");
    assert_eq!(status, 302, "{head}");
    let location = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or_else(|| l.strip_prefix("location: "))
        })
        .expect("a redirect")
        .trim()
        .to_string();
    assert!(location.starts_with("http://127.0.0.1:"), "{location}");
    let rest = location.trim_start_matches("http://127.0.0.1:");
    let (port, path) = rest.split_at(rest.find('/').unwrap());
    // A stray request first (a browser's favicon): ignored.
    let _ = http(port.parse().unwrap(), "GET", "/favicon.ico", "");
    let (status, _, _) = http(port.parse().unwrap(), "GET", path, "");
    assert_eq!(status, 200);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stored = token_file(dir.path());
    assert!(!stored["refresh_token"].as_str().unwrap().is_empty());

    let out = mailpipe(&["check", "--connect", "-c", cfg])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("XOAUTH2 as alice@example.test"), "{text}");
    assert!(text.contains("OAUTHBEARER as alice@example.test"), "{text}");
}

#[tokio::test]
async fn token_from_a_command_and_a_refused_token_in_words() {
    let stack = Stack::get();
    let tag = unique("oauth-cmd");
    let (s, mailbox) = fresh_mailbox(&stack, "alice", "T-oauth-cmd").await;
    drop(s);
    let dir = tempfile::tempdir().unwrap();
    let token_path = dir.path().join("token");
    let config = write_config(
        &stack,
        dir.path(),
        &mailbox,
        &format!("token_command = \"cat {}\"", token_path.display()),
    );
    // A token of bob's for alice's mailbox: refused, and said so.
    let bobs = control(
        &stack,
        "/control/issue",
        serde_json::json!({"username": "bob@example.test", "expires_in": 3600}),
    );
    let bobs = bobs["access_token"].as_str().unwrap().to_string();
    std::fs::write(&token_path, &bobs).unwrap();
    seed(&stack, &mailbox, &tag, 1).await;
    let (ok, out, err) = run_once(&config);
    assert!(!ok, "{out}\n{err}");
    assert!(err.contains("XOAUTH2"), "{err}");
    assert_no_secrets(&(out + &err), &[&bobs]);

    let alices = control(
        &stack,
        "/control/issue",
        serde_json::json!({"username": "alice@example.test", "expires_in": 3600}),
    );
    std::fs::write(&token_path, alices["access_token"].as_str().unwrap()).unwrap();
    let (ok, out, err) = run_once(&config);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains(&format!("1.{tag}@example.test")), "{out}");
    wait_for(
        &stack,
        "bob",
        "INBOX",
        &format!("1.{tag}@example.test"),
        Duration::from_secs(20),
    )
    .await
    .expect("the reply went out");
}

/// One line from a ManageSieve server, and everything up to its OK/NO/BYE.
fn sieve_answer(r: &mut impl BufRead) -> String {
    let mut out = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap() == 0 {
            return out + "<closed>";
        }
        out.push_str(&line);
        if ["OK", "NO", "BYE"].iter().any(|k| line.starts_with(k)) {
            return out;
        }
    }
}

/// The daemon's ManageSieve server (issue 23) takes an OAuth2 account's own access token,
/// with either mechanism, checked at Dovecot (whose oauth2 passdb asks the test provider);
/// another user's token is refused. The client here is a second implementation beside
/// sieve-connect: raw commands, a `{N+}` literal.
#[tokio::test]
async fn managesieve_logins_with_the_accounts_own_oauth2_token() {
    use base64::Engine as _;
    use mailpipe::model::credentials::Auth;
    use mailpipe::net::auth::sasl::initial_response;
    let stack = Stack::get();
    let (s, mailbox) = fresh_mailbox(&stack, "alice", "T-oauth-msieve").await;
    drop(s);
    let dir = tempfile::tempdir().unwrap();
    let token_path = dir.path().join("token");
    let issue = |user: &str| {
        control(
            &stack,
            "/control/issue",
            serde_json::json!({"username": user, "expires_in": 3600}),
        )["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let alices = issue("alice@example.test");
    std::fs::write(&token_path, &alices).unwrap();
    let config = write_config(
        &stack,
        dir.path(),
        &mailbox,
        &format!("token_command = \"cat {}\"", token_path.display()),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("[managesieve]\nlisten = \"127.0.0.1:{port}\"\n{text}"),
    )
    .unwrap();
    let log = dir.path().join("daemon.log");
    let mut daemon = mailpipe(&["run", "-c", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let connect = || -> Option<std::net::TcpStream> {
        for _ in 0..100 {
            if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    };
    let b64 = |m: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(m);
    let result = std::panic::catch_unwind(|| {
        for (mech, name) in [
            (Auth::Oauthbearer, "OAUTHBEARER"),
            (Auth::Xoauth2, "XOAUTH2"),
        ] {
            // Another user's token: refused.
            let s = connect().expect("the ManageSieve server listens");
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            let hello = sieve_answer(&mut r);
            assert!(
                hello.contains("\"SASL\" \"PLAIN OAUTHBEARER XOAUTH2\""),
                "{hello}"
            );
            let bobs = issue("bob@example.test");
            let m = initial_response(mech, "alice@example.test", "localhost", port, &bobs).unwrap();
            write!(w, "AUTHENTICATE \"{name}\" \"{}\"\r\n", b64(m)).unwrap();
            let a = sieve_answer(&mut r);
            assert!(a.starts_with("NO \"authentication failed\""), "{name}: {a}");
            // Alice's own: accepted, and she edits her scripts.
            let m =
                initial_response(mech, "alice@example.test", "localhost", port, &alices).unwrap();
            write!(w, "AUTHENTICATE \"{name}\" \"{}\"\r\n", b64(m)).unwrap();
            let a = sieve_answer(&mut r);
            assert!(a.starts_with("OK"), "{name}: {a}");
            let script = format!("# by {name}\r\nkeep;\r\n");
            write!(
                w,
                "PUTSCRIPT \"{name}\" {{{}+}}\r\n{script}\r\n",
                script.len()
            )
            .unwrap();
            let a = sieve_answer(&mut r);
            assert!(a.starts_with("OK"), "{name}: {a}");
            write!(w, "LOGOUT\r\n").unwrap();
            assert!(sieve_answer(&mut r).starts_with("OK"));
        }
    });
    let _ = daemon.kill();
    let _ = daemon.wait();
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    if let Err(e) = result {
        panic!("{e:?}\n{logged}");
    }
    assert_no_secrets(&logged, &[&alices]);
    let out = mailpipe(&["sieve", "list", "alice", "-c", config.to_str().unwrap()])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        listed.contains("OAUTHBEARER") && listed.contains("XOAUTH2"),
        "{listed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
