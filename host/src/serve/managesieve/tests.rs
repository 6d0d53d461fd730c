//! A ManageSieve session driven over an in-memory stream, as a client would: every command,
//! the response codes, and the hostile cases (oversized literals, bad names, guessing
//! passwords, another account's scripts, plaintext where it is not allowed).

use super::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, DuplexStream};

/// alice/secret (or alice@example.test/secret) -> account "alice", bob/hunter2 -> "bob",
/// carol@example.test with the token ya29.carol -> "carol".
struct Fixed;

impl Authenticator for Fixed {
    fn authenticate<'a>(
        &'a self,
        user: &'a str,
        credential: Credential<'a>,
    ) -> BoxFuture<'a, Result<Option<String>, String>> {
        Box::pin(async move {
            Ok(match (user, credential) {
                ("alice" | "alice@example.test", Credential::Password("secret")) => {
                    Some("alice".into())
                }
                ("bob", Credential::Password("hunter2")) => Some("bob".into()),
                ("carol@example.test", Credential::Bearer("ya29.carol", _)) => Some("carol".into()),
                _ => None,
            })
        })
    }
}

/// Failed logins heard by the hook, over all tests of this file.
static FAILED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

struct Client {
    r: BufReader<tokio::io::ReadHalf<DuplexStream>>,
    w: tokio::io::WriteHalf<DuplexStream>,
}

impl Client {
    async fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).await.unwrap();
    }

    /// Everything up to and including the next OK/NO/BYE line; literals read whole.
    async fn answer(&mut self) -> String {
        let mut out = String::new();
        loop {
            let mut line = String::new();
            if self.r.read_line(&mut line).await.unwrap() == 0 {
                out.push_str("<closed>");
                return out;
            }
            out.push_str(&line);
            let t = line.trim_end();
            if let Some(n) = t
                .strip_suffix('}')
                .and_then(|x| x.rsplit_once('{'))
                .and_then(|(_, n)| n.parse::<usize>().ok())
            {
                let mut buf = vec![0; n];
                self.r.read_exact(&mut buf).await.unwrap();
                out.push_str(&String::from_utf8_lossy(&buf));
                continue;
            }
            if t.starts_with("OK") || t.starts_with("NO") || t.starts_with("BYE") {
                return out;
            }
        }
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.answer().await
    }
}

/// AUTHENTICATE PLAIN as `user`: the server's answer.
async fn login(c: &mut Client, user: &str, password: &str) -> String {
    c.cmd(&format!(
        "AUTHENTICATE \"PLAIN\" \"{}\"",
        plain(user, password)
    ))
    .await
}

fn plain(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"))
}

fn server(dir: &std::path::Path) -> Arc<Server> {
    Arc::new(Server {
        store: Arc::new(Store::open(dir).unwrap()),
        limits: ScriptLimits {
            max_scripts: 3,
            max_bytes: 200,
        },
        auth: Arc::new(Fixed),
        global: BTreeMap::new(),
        guard: LoginGuard::new(Duration::ZERO),
        idle: Duration::from_secs(5),
        login_idle: Duration::from_secs(5),
        on_login: Some(Arc::new(|ok| {
            if !ok {
                FAILED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        })),
    })
}

async fn connect(s: &Arc<Server>, plaintext_ok: bool) -> (Client, String) {
    connect_from(s, plaintext_ok, None).await
}

async fn connect_from(
    s: &Arc<Server>,
    plaintext_ok: bool,
    peer: Option<std::net::IpAddr>,
) -> (Client, String) {
    let (a, b) = tokio::io::duplex(1 << 16);
    let s = s.clone();
    tokio::spawn(async move {
        s.serve(
            b,
            Connection {
                plaintext_ok,
                starttls: false,
                peer,
            },
        )
        .await
    });
    let (r, w) = tokio::io::split(a);
    let mut c = Client {
        r: BufReader::new(r),
        w,
    };
    let hello = c.answer().await;
    (c, hello)
}

#[tokio::test]
async fn every_command_as_a_client_sends_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path());
    let (mut c, hello) = connect(&s, true).await;
    assert!(
        hello.contains("\"SASL\" \"PLAIN OAUTHBEARER XOAUTH2\""),
        "{hello}"
    );
    assert!(hello.contains("\"SIEVE\" \"fileinto "), "{hello}");
    assert!(hello.contains("\"VERSION\" \"1.0\""), "{hello}");
    assert!(
        hello.contains(" enotify") && hello.contains("\"NOTIFY\" \"mailto\"\r\n"),
        "{hello}"
    );
    assert!(
        hello.ends_with("OK \"mailpipe ManageSieve ready\"\r\n"),
        "{hello}"
    );

    assert!(
        c.cmd("LISTSCRIPTS").await.starts_with("NO"),
        "not before a login"
    );
    let a = login(&mut c, "alice", "wrong").await;
    assert!(a.starts_with("NO \"authentication failed\""), "{a}");
    // The PLAIN response after an empty challenge, as a literal.
    c.send(b"AUTHENTICATE \"PLAIN\"\r\n").await;
    let mut challenge = String::new();
    c.r.read_line(&mut challenge).await.unwrap();
    assert_eq!(challenge, "\"\"\r\n");
    let p = plain("alice", "secret");
    c.send(format!("{{{}+}}\r\n{p}\r\n", p.len()).as_bytes())
        .await;
    assert!(c.answer().await.starts_with("OK"));
    let caps = c.cmd("CAPABILITY").await;
    assert!(
        caps.contains("\"OWNER\" \"alice\"") && !caps.contains("SASL"),
        "{caps}"
    );

    let script =
        "require \"fileinto\";\r\nif header :contains \"subject\" \"x\" { fileinto \"X\"; }\r\n";
    let put = format!("PUTSCRIPT \"main\" {{{}+}}\r\n{script}", script.len());
    assert!(c.cmd(&put).await.starts_with("OK"));
    // The interpreter's own error, with line and column; nothing stored.
    let broken = "require \"fileinto\";\r\nfileinto \"X\"\r\n";
    let a = c
        .cmd(&format!(
            "PUTSCRIPT \"bad\" {{{}+}}\r\n{broken}",
            broken.len()
        ))
        .await;
    assert!(a.starts_with("NO") && a.contains("bad:3:1: error:"), "{a}");
    let a = c
        .cmd(&format!("CHECKSCRIPT {{{}+}}\r\n{broken}", broken.len()))
        .await;
    assert!(a.starts_with("NO") && a.contains(":3:1: error:"), "{a}");
    assert!(c.cmd("CHECKSCRIPT \"keep;\"").await.starts_with("OK"));
    // CHECKSCRIPT sees every stored script, whatever the names.
    assert!(c
        .cmd("PUTSCRIPT \"script\" \"keep;\"")
        .await
        .starts_with("OK"));
    let inc = "require \"include\"; include :personal \"script\";";
    let a = c
        .cmd(&format!("CHECKSCRIPT {{{}+}}\r\n{inc}", inc.len()))
        .await;
    assert!(a.starts_with("OK"), "{a}");
    assert!(c.cmd("DELETESCRIPT \"script\"").await.starts_with("OK"));
    assert!(c
        .cmd("STARTTLS")
        .await
        .starts_with("NO \"STARTTLS is not offered here"));
    assert!(c.cmd("SETACTIVE \"main\"").await.starts_with("OK"));
    assert_eq!(
        c.cmd("LISTSCRIPTS").await,
        "\"main\" ACTIVE\r\nOK \"listscripts completed\"\r\n"
    );
    let got = c.cmd("GETSCRIPT \"main\"").await;
    assert_eq!(
        got,
        format!(
            "{{{}}}\r\n{script}\r\nOK \"getscript completed\"\r\n",
            script.len()
        )
    );
    assert!(c
        .cmd("GETSCRIPT \"nope\"")
        .await
        .starts_with("NO (NONEXISTENT)"));
    assert!(c
        .cmd("DELETESCRIPT \"main\"")
        .await
        .starts_with("NO (ACTIVE)"));
    assert!(c
        .cmd("PUTSCRIPT \"other\" \"keep;\"")
        .await
        .starts_with("OK"));
    assert!(c
        .cmd("RENAMESCRIPT \"other\" \"main\"")
        .await
        .starts_with("NO (ALREADYEXISTS)"));
    assert!(c
        .cmd("RENAMESCRIPT \"other\" \"spare\"")
        .await
        .starts_with("OK"));
    assert!(c.cmd("HAVESPACE \"x\" 100").await.starts_with("OK"));
    assert!(c
        .cmd("HAVESPACE \"x\" 201")
        .await
        .starts_with("NO (QUOTA/MAXSIZE)"));
    assert!(c
        .cmd("PUTSCRIPT \"third\" \"keep;\"")
        .await
        .starts_with("OK"));
    assert!(c
        .cmd("PUTSCRIPT \"fourth\" \"keep;\"")
        .await
        .starts_with("NO (QUOTA/MAXSCRIPTS)"));
    for bad in ["a/b", "..", ".x", ""] {
        let a = c.cmd(&format!("PUTSCRIPT \"{bad}\" \"keep;\"")).await;
        assert!(
            a.starts_with("NO") && a.contains("invalid script name"),
            "{bad}: {a}"
        );
    }
    let a = c.cmd("PUTSCRIPT {5+}\r\na\0b/c \"keep;\"").await;
    assert!(a.starts_with("NO"), "{a}");
    assert!(c.cmd("SETACTIVE \"\"").await.starts_with("OK"));
    assert!(c.cmd("DELETESCRIPT \"main\"").await.starts_with("OK"));
    assert!(c.cmd("NOOP \"t1\"").await.starts_with("OK (TAG \"t1\")"));
    assert!(c
        .cmd("FROB")
        .await
        .starts_with("NO \"unknown command FROB\""));
    assert!(c.cmd("UNAUTHENTICATE").await.starts_with("OK"));
    assert!(c.cmd("LISTSCRIPTS").await.starts_with("NO"));

    // Another account sees none of alice's scripts.
    let a = login(&mut c, "bob", "hunter2").await;
    assert!(a.starts_with("OK"), "{a}");
    assert_eq!(
        c.cmd("LISTSCRIPTS").await,
        "OK \"listscripts completed\"\r\n"
    );
    assert!(c
        .cmd("GETSCRIPT \"spare\"")
        .await
        .starts_with("NO (NONEXISTENT)"));
    assert_eq!(c.cmd("LOGOUT").await, "OK \"logout\"\r\n");
    assert_eq!(c.answer().await, "<closed>");
    // What the session stored is what the store holds.
    let set = scripts::list(&s.store, "alice").unwrap();
    let names: Vec<&str> = set.scripts.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["spare", "third"]);
}

#[tokio::test]
async fn hostile_clients_are_refused_and_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path());
    // Plaintext where the listener says it is not allowed.
    let (mut c, _) = connect(&s, false).await;
    let a = login(&mut c, "alice", "secret").await;
    assert!(a.starts_with("NO (ENCRYPT-NEEDED)"), "{a}");
    // ...where no mechanism is offered either.
    let caps = c.cmd("CAPABILITY").await;
    assert!(caps.contains("\"SASL\" \"\"\r\n"), "{caps}");
    // Guessing passwords: three failures end the session.
    let (mut c, _) = connect(&s, true).await;
    for i in 0..3 {
        let a = login(&mut c, "alice", &format!("guess{i}")).await;
        if i < 2 {
            assert!(a.starts_with("NO"), "{a}");
        } else {
            assert!(a.starts_with("BYE"), "{a}");
        }
    }
    assert_eq!(c.answer().await, "<closed>");
    assert!(
        FAILED.load(std::sync::atomic::Ordering::SeqCst) >= 3,
        "the hook hears failures"
    );
    // Acting for another user is refused.
    let (mut c, _) = connect(&s, true).await;
    let p = base64::engine::general_purpose::STANDARD.encode("bob\0alice\0secret");
    assert!(c
        .cmd(&format!("AUTHENTICATE \"PLAIN\" \"{p}\""))
        .await
        .starts_with("NO"));
    // An oversized literal: BYE before reading it.
    let (mut c, _) = connect(&s, true).await;
    assert!(login(&mut c, "alice", "secret").await.starts_with("OK"));
    let a = c.cmd("PUTSCRIPT \"big\" {100000000+}").await;
    assert!(a.starts_with("BYE (QUOTA/MAXSIZE)"), "{a}");
    assert_eq!(c.answer().await, "<closed>");
    // A client that stops in the middle of a literal, then goes away: nothing stored.
    let (mut c, _) = connect(&s, true).await;
    assert!(login(&mut c, "alice", "secret").await.starts_with("OK"));
    c.send(b"PUTSCRIPT \"half\" {50+}\r\nkeep;").await;
    drop(c);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(scripts::list(&s.store, "alice").unwrap().scripts.is_empty());
    // A line with junk: NO, and the session goes on.
    let (mut c, _) = connect(&s, true).await;
    assert!(c.cmd("NOOP \"open").await.starts_with("NO"));
    assert!(c.cmd("NOOP").await.starts_with("OK"));
}

#[tokio::test]
async fn a_client_that_stops_mid_literal_is_cut_off_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Arc::into_inner(server(dir.path())).unwrap();
    s.idle = Duration::from_millis(200);
    s.login_idle = Duration::from_millis(200);
    let s = Arc::new(s);
    let (mut c, _) = connect(&s, true).await;
    c.send(b"CHECKSCRIPT {50+}\r\nkeep;").await;
    let started = std::time::Instant::now();
    let a = c.answer().await;
    assert!(a.starts_with("BYE \"idle for too long\""), "{a}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(c.answer().await, "<closed>");
    // One that never answers the SASL challenge is cut off too.
    let (mut c, _) = connect(&s, true).await;
    c.send(b"AUTHENTICATE \"PLAIN\"\r\n").await;
    let started = std::time::Instant::now();
    assert_eq!(c.answer().await, "\"\"\r\n<closed>");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn owner_is_the_login_name_and_havespace_wants_a_number() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path());
    let (mut c, _) = connect(&s, true).await;
    let a = login(&mut c, "alice@example.test", "secret").await;
    assert!(a.starts_with("OK"), "{a}");
    let caps = c.cmd("CAPABILITY").await;
    assert!(caps.contains("\"OWNER\" \"alice@example.test\""), "{caps}");
    let a = c.cmd("HAVESPACE \"x\" \"lots\"").await;
    assert!(a.starts_with("NO \"HAVESPACE"), "{a}");
    // A number too large for any quota is a number all the same.
    let a = c.cmd("HAVESPACE \"x\" 99999999999999999999999").await;
    assert!(a.starts_with("NO (QUOTA/MAXSIZE)"), "{a}");
    // UNAUTHENTICATE forgets the owner.
    assert!(c.cmd("UNAUTHENTICATE").await.starts_with("OK"));
    assert!(!c.cmd("CAPABILITY").await.contains("OWNER"));
}

#[tokio::test]
async fn before_a_login_a_command_carries_little() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path());
    let (mut c, _) = connect(&s, true).await;
    // A script-sized literal is taken only after a login (the quota here is 200 bytes, the
    // bound before a login 16 KiB: ask for more than that).
    let a = c.cmd("CHECKSCRIPT {20000+}").await;
    assert!(a.starts_with("BYE (QUOTA/MAXSIZE)"), "{a}");
    assert_eq!(c.answer().await, "<closed>");
    // Several literals each under the bound, together over it.
    let (mut c, _) = connect(&s, true).await;
    let chunk = "x".repeat(9000);
    c.send(format!("NOOP {{9000+}}\r\n{chunk} {{9000+}}\r\n").as_bytes())
        .await;
    let a = c.answer().await;
    assert!(a.starts_with("BYE (QUOTA/MAXSIZE)"), "{a}");
}

#[tokio::test]
async fn password_guessing_is_counted_across_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path());
    let peer: std::net::IpAddr = "192.0.2.44".parse().unwrap();
    // Reconnecting after each failure gives no fresh allowance.
    for i in 0..guard::MAX_FAILURES_PER_PEER {
        let (mut c, _) = connect_from(&s, true, Some(peer)).await;
        let a = login(&mut c, "alice", &format!("guess{i}")).await;
        assert!(a.starts_with("NO \"authentication failed\""), "{i}: {a}");
    }
    // Now even the right password is refused from that address, without a check...
    let (mut c, _) = connect_from(&s, true, Some(peer)).await;
    let a = login(&mut c, "alice", "secret").await;
    assert!(a.starts_with("NO \"too many failed logins"), "{a}");
    // ...while the user logs in from elsewhere.
    let (mut c, _) = connect_from(&s, true, Some("192.0.2.45".parse().unwrap())).await;
    let a = login(&mut c, "alice", "secret").await;
    assert!(a.starts_with("OK"), "{a}");
}

#[tokio::test]
async fn a_password_with_a_line_break_fails_like_any_wrong_password() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path());
    let (mut c, _) = connect(&s, true).await;
    for (user, pw) in [
        ("alice", "secret\r\nA1 LOGOUT"),
        ("nobody", "x\ny"),
        ("alice", ""),
    ] {
        let a = login(&mut c, user, pw).await;
        assert!(
            a.starts_with("NO \"authentication failed\"\r\n") || a.starts_with("BYE"),
            "{user}: {a}"
        );
    }
}

#[tokio::test]
async fn oauth2_tokens_log_in_with_either_mechanism() {
    use crate::net::auth::sasl::initial_response;
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path());
    let b64 = |m: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(m);
    for (mech, name) in [
        (Auth::Oauthbearer, "OAUTHBEARER"),
        (Auth::Xoauth2, "XOAUTH2"),
    ] {
        let (mut c, _) = connect(&s, true).await;
        let good = initial_response(mech, "carol@example.test", "h", 4190, "ya29.carol").unwrap();
        let a = c
            .cmd(&format!("AUTHENTICATE \"{name}\" \"{}\"", b64(good)))
            .await;
        assert!(a.starts_with("OK"), "{name}: {a}");
        assert!(c
            .cmd("CAPABILITY")
            .await
            .contains("\"OWNER\" \"carol@example.test\""));
        let (mut c, _) = connect(&s, true).await;
        let wrong = initial_response(mech, "carol@example.test", "h", 4190, "ya29.stolen").unwrap();
        let a = c
            .cmd(&format!("AUTHENTICATE \"{name}\" \"{}\"", b64(wrong)))
            .await;
        assert!(a.starts_with("NO \"authentication failed\""), "{name}: {a}");
        // A token is a password: not where passwords may not be sent.
        let (mut c, _) = connect(&s, false).await;
        let good = initial_response(mech, "carol@example.test", "h", 4190, "ya29.carol").unwrap();
        let a = c
            .cmd(&format!("AUTHENTICATE \"{name}\" \"{}\"", b64(good)))
            .await;
        assert!(a.starts_with("NO (ENCRYPT-NEEDED)"), "{name}: {a}");
    }
    // A password is not a token.
    let (mut c, _) = connect(&s, true).await;
    let a = login(&mut c, "carol@example.test", "ya29.carol").await;
    assert!(a.starts_with("NO"), "{a}");
    let a = c.cmd("AUTHENTICATE \"CRAM-MD5\"").await;
    assert!(a.starts_with("NO \"the mechanisms offered are"), "{a}");
}

#[tokio::test]
async fn thousands_of_scripts_stop_at_the_quota() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path());
    let (mut c, _) = connect(&s, true).await;
    let a = login(&mut c, "alice", "secret").await;
    assert!(a.starts_with("OK"), "{a}");
    // Pipelined, as a hostile client would send them.
    let mut batch = String::new();
    for i in 0..3000 {
        batch += &format!("PUTSCRIPT \"s{i}\" \"keep;\"\r\n");
    }
    c.send(batch.as_bytes()).await;
    let mut refused = 0;
    for _ in 0..3000 {
        let a = c.answer().await;
        if a.starts_with("NO (QUOTA/MAXSCRIPTS)") {
            refused += 1;
        } else {
            assert!(a.starts_with("OK"), "{a}");
        }
    }
    assert_eq!(refused, 3000 - 3);
    assert_eq!(scripts::list(&s.store, "alice").unwrap().scripts.len(), 3);
    assert!(c.cmd("NOOP").await.starts_with("OK"));
}

/// Counts the credential checks running at once.
struct Slow {
    now: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}

impl Authenticator for Slow {
    fn authenticate<'a>(
        &'a self,
        _user: &'a str,
        _credential: Credential<'a>,
    ) -> BoxFuture<'a, Result<Option<String>, String>> {
        use std::sync::atomic::Ordering::SeqCst;
        Box::pin(async move {
            let n = self.now.fetch_add(1, SeqCst) + 1;
            self.most.fetch_max(n, SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.now.fetch_sub(1, SeqCst);
            Ok(None)
        })
    }
}

#[tokio::test]
async fn a_login_flood_reaches_the_imap_servers_a_few_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let auth = Arc::new(Slow {
        now: Default::default(),
        most: Default::default(),
    });
    let mut s = Arc::into_inner(server(dir.path())).unwrap();
    s.auth = auth.clone();
    let s = Arc::new(s);
    let mut flood = Vec::new();
    for i in 0..60u8 {
        let s = s.clone();
        flood.push(tokio::spawn(async move {
            // Many addresses, so that none is refused outright: every attempt is checked.
            let peer = std::net::IpAddr::from([198, 51, 100, i]);
            let (mut c, _) = connect_from(&s, true, Some(peer)).await;
            login(&mut c, &format!("user{i}"), "guess").await
        }));
    }
    for f in flood {
        let a = f.await.unwrap();
        assert!(a.starts_with("NO \"authentication failed\""), "{a}");
    }
    let most = auth.most.load(std::sync::atomic::Ordering::SeqCst);
    assert!((1..=4).contains(&most), "{most} checks at once");
}
