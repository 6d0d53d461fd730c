//! Reaching the real Dovecot + Postfix of tests/mailstack from tests: where it listens
//! (its env.sh), an IMAP client for seeding and checking mailboxes, and configs that point
//! mailpipe at it. A test that needs the stack fails with a clear message when it is not
//! running: it is never silently skipped.
#![allow(dead_code)]

use futures::TryStreamExt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mailpipe::config::{PasswordSource, ServerConfig, TlsMode};
use mailpipe::model::folder as utf7;
use mailpipe::source::imap::connect::{connect, ImapSession};

pub struct Stack {
    pub dir: PathBuf,
    pub vars: HashMap<String, String>,
}

impl Stack {
    pub fn get() -> Stack {
        Stack::at(PathBuf::from(
            std::env::var("MAILSTACK_DIR").unwrap_or_else(|_| "/tmp/mailpipe-mailstack".into()),
        ))
    }

    /// The stack started under `dir` (a private one, e.g. with many users).
    pub fn at(dir: PathBuf) -> Stack {
        let env = std::fs::read_to_string(dir.join("env.sh")).unwrap_or_else(|_| {
            panic!("the test mail stack is not running: run `bash tests/mailstack/start.sh` first (scripts/test.sh does)")
        });
        let vars = env
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| {
                (
                    k.to_string(),
                    v.trim_matches('"').trim_matches('\'').to_string(),
                )
            })
            .collect();
        Stack { dir, vars }
    }

    pub fn port(&self, name: &str) -> u16 {
        self.vars[&format!("MAILSTACK_{name}_PORT")]
            .parse()
            .unwrap()
    }

    pub fn ca(&self) -> PathBuf {
        PathBuf::from(&self.vars["MAILSTACK_CA"])
    }

    pub fn wrong_ca(&self) -> PathBuf {
        PathBuf::from(&self.vars["MAILSTACK_WRONG_CA"])
    }

    pub fn imap(&self, user: &str) -> ServerConfig {
        ServerConfig {
            host: "localhost".into(),
            port: self.port("IMAPS"),
            tls: TlsMode::Implicit,
            ca_file: Some(self.ca()),
            tls_pin: None,
            username: Some(format!("{user}@example.test")),
            password: Some(PasswordSource::Command(format!("echo secret-{user}"))),
            auth: mailpipe::config::Auth::Password,
            oauth2: None,
        }
    }

    pub async fn session(&self, user: &str) -> ImapSession {
        connect(&self.imap(user))
            .await
            .expect("IMAP login to the test stack")
    }

    /// The `[[account]]` table for `user` watching `mailboxes`, IMAPS + submission.
    pub fn account_toml(&self, user: &str, mailboxes: &[&str], extra: &str) -> String {
        format!(
            r#"
[[account]]
name = "{user}"
address = "{user}@example.test"
mailboxes = {mailboxes:?}
{extra}
[account.imap]
host = "localhost"
port = {imaps}
tls = "implicit"
ca_file = "{ca}"
username = "{user}@example.test"
password_command = "echo secret-{user}"
{smtp}"#,
            imaps = self.port("IMAPS"),
            ca = self.ca().display(),
            smtp = self.smtp_table(user),
        )
    }

    /// `[account.smtp]` for `user`: the stack's submission port, STARTTLS, its password.
    pub fn smtp_table(&self, user: &str) -> String {
        format!(
            r#"[account.smtp]
host = "localhost"
port = {submission}
tls = "starttls"
ca_file = "{ca}"
username = "{user}@example.test"
password_command = "echo secret-{user}"
"#,
            submission = self.port("SUBMISSION"),
            ca = self.ca().display(),
        )
    }

    pub fn script(&self, name: &str) -> PathBuf {
        super::root().join("tests/mailstack").join(name)
    }

    /// Run one of tests/mailstack's scripts on this stack (its `MAILSTACK_DIR`); it must
    /// succeed. What it printed on stdout.
    pub fn run(&self, name: &str, args: &[&str]) -> String {
        let out = std::process::Command::new("bash")
            .arg(self.script(name))
            .args(args)
            .env("MAILSTACK_DIR", &self.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// A message the tests can find again: unique Message-ID and subject.
pub fn message(from: &str, to: &str, subject: &str, id: &str, extra_headers: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\n{extra_headers}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello from {from}.\r\n"
    )
    .into_bytes()
}

/// A session of `user` and a new mailbox of its own, named after `prefix`.
pub async fn fresh_mailbox(stack: &Stack, user: &str, prefix: &str) -> (ImapSession, String) {
    let mailbox = unique(prefix);
    let mut s = stack.session(user).await;
    create(&mut s, &mailbox).await;
    (s, mailbox)
}

pub async fn create(s: &mut ImapSession, mailbox: &str) {
    let _ = s.create(utf7::encode(mailbox)).await;
}

pub async fn append(s: &mut ImapSession, mailbox: &str, raw: &[u8]) {
    s.append(utf7::encode(mailbox), None, None, raw)
        .await
        .expect("APPEND");
}

/// (UID, flags, raw headers) of every message in `mailbox`.
pub async fn list(s: &mut ImapSession, mailbox: &str) -> Vec<(u32, Vec<String>, String)> {
    let Ok(mb) = s.select(utf7::encode(mailbox)).await else {
        return Vec::new();
    };
    if mb.exists == 0 {
        return Vec::new();
    }
    let stream = s
        .uid_fetch("1:*", "(UID FLAGS BODY.PEEK[HEADER])")
        .await
        .expect("FETCH");
    let items: Vec<_> = stream.try_collect().await.expect("FETCH");
    let mut out: Vec<_> = items
        .iter()
        .map(|f| {
            let flags = f.flags().map(|x| format!("{x:?}")).collect();
            (
                f.uid.unwrap_or(0),
                flags,
                String::from_utf8_lossy(f.header().unwrap_or_default()).into_owned(),
            )
        })
        .collect();
    out.sort_by_key(|x| x.0);
    out
}

/// Wait until `mailbox` of `user` has a message whose headers contain `needle`.
pub async fn wait_for(
    stack: &Stack,
    user: &str,
    mailbox: &str,
    needle: &str,
    limit: Duration,
) -> Option<String> {
    let start = Instant::now();
    while start.elapsed() < limit {
        let mut s = stack.session(user).await;
        let found = list(&mut s, mailbox)
            .await
            .into_iter()
            .find(|(_, _, h)| h.contains(needle));
        let _ = s.logout().await;
        if let Some((_, _, h)) = found {
            return Some(h);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    None
}

/// Like `wait_for`, but returns the whole message as stored (headers and body).
pub async fn wait_for_full(
    stack: &Stack,
    user: &str,
    mailbox: &str,
    needle: &str,
    limit: Duration,
) -> Option<Vec<u8>> {
    let start = Instant::now();
    while start.elapsed() < limit {
        let mut s = stack.session(user).await;
        if let Some((uid, _, _)) = list(&mut s, mailbox)
            .await
            .into_iter()
            .find(|(_, _, h)| h.contains(needle))
        {
            let stream = s
                .uid_fetch(uid.to_string(), "(UID BODY.PEEK[])")
                .await
                .expect("FETCH");
            let items: Vec<_> = stream.try_collect().await.expect("FETCH");
            let _ = s.logout().await;
            return items.first().and_then(|f| f.body()).map(<[u8]>::to_vec);
        }
        let _ = s.logout().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    None
}

pub fn count(headers: &[(u32, Vec<String>, String)], needle: &str) -> usize {
    headers
        .iter()
        .filter(|(_, _, h)| h.contains(needle))
        .count()
}

/// A unique name for this test run, so tests sharing the stack do not see each other's mail.
pub fn unique(tag: &str) -> String {
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        mailpipe::clock::now_ms() % 1_000_000
    )
}

/// Write `text` as a config file in `dir` and load it.
pub fn config(dir: &Path, text: &str) -> mailpipe::config::Config {
    let file = dir.join("mailpipe.toml");
    std::fs::write(&file, text).unwrap();
    mailpipe::config::Config::load(&file).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Two plugins: the filer (subjects with "invoice" to Finance/Invoices) and a vacation for
/// `address`, once per sender a week, whose subject holds `tag`.
pub fn filer_and_vacation(address: &str, tag: &str) -> String {
    format!(
        r#"{filer}
[plugin.config]
rules = [ {{ name = "invoices", folder = "Finance/Invoices", conditions = [ {{ subject = true, op = "contains", value = "invoice" }} ] }} ]
{vacation}
[plugin.config]
addresses = ["{address}"]
days = 7
subject = "Away {tag}"
body = "Back soon."
"#,
        filer = plugin_toml("filer", "rules-filer", ""),
        vacation = plugin_toml("vacation", "auto-responder", ""),
    )
}

pub fn plugin_toml(name: &str, wasm: &str, extra: &str) -> String {
    format!(
        "\n[[plugin]]\nname = \"{name}\"\npath = \"{}\"\n{extra}\n",
        super::plugin_path(wasm).display()
    )
}

/// The test PostgreSQL (`MAILPIPE_TEST_POSTGRES`, started by tests/mailstack/postgres.sh):
/// its config, its URL without the password (as a mailpipe config must give it) and the
/// password.
pub fn test_postgres() -> (postgres::Config, String, String) {
    let url = std::env::var("MAILPIPE_TEST_POSTGRES")
        .expect("MAILPIPE_TEST_POSTGRES is not set: scripts/test.sh starts PostgreSQL and sets it");
    let cfg: postgres::Config = url.parse().unwrap();
    let password = String::from_utf8(cfg.get_password().unwrap().to_vec()).unwrap();
    let host = match &cfg.get_hosts()[0] {
        postgres::config::Host::Tcp(h) => h.clone(),
        other => panic!("expected a TCP host, not {other:?}"),
    };
    let bare = format!(
        "postgres://{}@{}:{}/{}",
        cfg.get_user().unwrap(),
        host,
        cfg.get_ports()[0],
        cfg.get_dbname().unwrap()
    );
    (cfg, bare, password)
}

/// SQL on the test PostgreSQL from a test: the synchronous client must not run on the test's
/// runtime, so each use gets a thread (and a connection) of its own.
pub fn sql<T: Send>(
    cfg: &postgres::Config,
    f: impl FnOnce(&mut postgres::Client) -> T + Send,
) -> T {
    std::thread::scope(|s| {
        s.spawn(|| f(&mut cfg.connect(postgres::NoTls).unwrap()))
            .join()
            .unwrap()
    })
}

/// A private Dovecot + Postfix of tests/mailstack under `dir` on `ports` (("IMAP", 16143),
/// ...), with `users` and Dovecot tuned for hundreds of IDLE clients: for tests that need
/// many accounts or restart servers without disturbing the shared stack. Started empty
/// (what was under `dir` is removed); `stop_private_stack` ends it.
pub fn private_stack(dir: &Path, ports: &[(&str, u16)], users: &[String]) -> Stack {
    stop_private_stack(dir);
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let extra = dir.join("dovecot-many.conf");
    std::fs::write(
        &extra,
        "default_client_limit = 4000\ndefault_process_limit = 200\n\
         service imap-login {\n  service_count = 0\n  client_limit = 4000\n}\n\
         service imap {\n  service_count = 0\n  client_limit = 100\n  process_limit = 100\n}\n\
         service anvil {\n  client_limit = 4000\n}\nservice auth {\n  client_limit = 4000\n}\n\
         mail_max_userip_connections = 50\n",
    )
    .unwrap();
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(super::root().join("tests/mailstack/start.sh"))
        .env("MAILSTACK_DIR", dir)
        .env("MAILSTACK_USERS", users.join(" "))
        .env("MAILSTACK_DOVECOT_EXTRA", &extra)
        .stdout(std::process::Stdio::null());
    for (name, port) in ports {
        cmd.env(format!("MAILSTACK_{name}_PORT"), port.to_string());
    }
    assert!(
        cmd.status().unwrap().success(),
        "private stack under {} did not start",
        dir.display()
    );
    Stack::at(dir.to_owned())
}

pub fn stop_private_stack(dir: &Path) {
    let _ = std::process::Command::new("bash")
        .arg(super::root().join("tests/mailstack/stop.sh"))
        .env("MAILSTACK_DIR", dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// Stops a private stack when dropped (also when the test panics).
pub struct StopOnDrop(pub PathBuf);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        stop_private_stack(&self.0);
    }
}

/// One session delivering one message per (sender, recipient), subject `subject`,
/// Message-ID `<{tag}.{index}@rounds.test>`: `via` "SMTP" (the stack's Postfix, which hands
/// them to Dovecot) or "LMTP" (Dovecot's own delivery, at once).
pub fn send_each(stack: &Stack, via: &str, pairs: &[(String, String)], subject: &str, tag: &str) {
    send_each_at(stack.port(via), via == "LMTP", pairs, subject, tag)
}

/// `send_each` to the SMTP (or, `lmtp`, LMTP) server on 127.0.0.1:`port`.
pub fn send_each_at(port: u16, lmtp: bool, pairs: &[(String, String)], subject: &str, tag: &str) {
    use std::io::{BufRead, BufReader, Write};
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut r = BufReader::new(stream.try_clone().unwrap());
    let mut w = stream;
    let expect = |r: &mut BufReader<std::net::TcpStream>, code: &str| loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(
            line.starts_with(code),
            "SMTP: expected {code}, got {line:?}"
        );
        if line.as_bytes().get(3) == Some(&b' ') {
            break;
        }
    };
    expect(&mut r, "220");
    let hello = if lmtp { "LHLO" } else { "EHLO" };
    writeln!(w, "{hello} rounds.test\r").unwrap();
    expect(&mut r, "250");
    for (i, (from, to)) in pairs.iter().enumerate() {
        write!(w, "MAIL FROM:<{from}>\r\nRCPT TO:<{to}>\r\nDATA\r\n").unwrap();
        expect(&mut r, "250");
        expect(&mut r, "250");
        expect(&mut r, "354");
        write!(
            w,
            "From: Outside <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\
             Message-ID: <{tag}.{i}@rounds.test>\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\n\r\n\
             {subject} for {to}\r\n.\r\n"
        )
        .unwrap();
        expect(&mut r, "250");
    }
    writeln!(w, "QUIT\r").unwrap();
}

/// Each user's `folder` holds exactly `expected` distinct messages and INBOX none; the users
/// for which it is not so, with what they hold.
pub async fn filed_exactly(
    stack: &Stack,
    users: &[String],
    folder: &str,
    expected: usize,
) -> Vec<String> {
    let mut problems = Vec::new();
    for u in users {
        let mut s = stack.session(u).await;
        let filed = list(&mut s, folder).await;
        let ids: std::collections::HashSet<String> = filed
            .iter()
            .filter_map(|(_, _, h)| {
                h.lines()
                    .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
                    .map(|l| l.trim().to_string())
            })
            .collect();
        let inbox = list(&mut s, "INBOX").await.len();
        if filed.len() != expected || ids.len() != expected || inbox != 0 {
            problems.push(format!(
                "{u}: {folder} {} ({} distinct), INBOX {inbox}",
                filed.len(),
                ids.len()
            ));
        }
        let _ = s.logout().await;
    }
    problems
}

/// One HTTP request to a test server on 127.0.0.1 (the OAuth2 provider): status, head and
/// JSON answer.
pub fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String, serde_json::Value) {
    use std::io::{Read, Write};
    let mut s =
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("the test OAuth2 provider runs");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let r = mailpipe::net::http::parse_response(&raw).expect("an HTTP answer");
    let head = String::from_utf8_lossy(&raw[..raw.len() - r.body.len()]).into_owned();
    (
        r.status,
        head,
        serde_json::from_slice(&r.body).unwrap_or_default(),
    )
}
