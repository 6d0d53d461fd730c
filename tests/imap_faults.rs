//! IMAP passes against a misbehaving server (tests/badserver): a connection dropped in the
//! middle of a FETCH, BYE instead of a SEARCH answer, UIDs that do not exist, a refused
//! STORE, a MOVE that says OK and does nothing, a literal announced at 500 MB, bad UTF-8 in
//! a LIST, no IMAP4rev1, a slow server and one that never answers. Each test seeds INBOX
//! with personal mail and runs passes with rules-filer filing everything into "Done" (or
//! only flagging it), then checks what mailpipe did: no message lost, skipped or acted on
//! twice, every failure reported, readably. Each test states the expected behaviour; on
//! failure it lists every unmet expectation and the server's transcript. No mail stack is
//! needed: the server runs in-process on 127.0.0.1.

mod badserver;
mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use badserver::{BadServer, Fault, Script, When};
use common::mailstack::{config, message, plugin_toml};
use mailpipe::config::Config;
use mailpipe::run::{account_workers, run_accounts_once, RunOptions, RunSummary};

const OPTS: RunOptions = RunOptions {
    dry_run: false,
    json: true,
    retry_failed: false,
    jobs: 1,
};

/// Messages seeded into INBOX (UIDs 1..=COUNT).
const COUNT: u32 = 20;

const FILE_ALL: &str = r#"rules = [ { name = "all", folder = "Done", conditions = [] } ]"#;
const FLAG_ALL: &str = r#"rules = [ { name = "all", flags = ["$Filed"], conditions = [] } ]"#;

/// The memory test must run alone: the other tests' plugin loading would blur its RSS.
static MEMORY: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

fn personal(i: u32) -> Vec<u8> {
    message(
        &format!("Friend {i} <friend{i}@example.net>"),
        "alice@example.test",
        &format!("note {i}"),
        &message_id(i),
        "",
    )
}

fn message_id(i: u32) -> String {
    format!("{i}.faults@example.net")
}

fn seeded() -> Script {
    Script::new().mailbox("INBOX", (1..=COUNT).map(personal).collect())
}

/// Deadline of each IMAP command in these tests (the account's `timeout_seconds`).
const TIMEOUT_SECONDS: u64 = 3;

/// A config with one account on `server` (plain text to loopback, commands timing out after
/// TIMEOUT_SECONDS) and rules-filer.
fn account(server: &BadServer, rules: &str, dir: &Path) -> Config {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    // Compiled plugins are shared with the other tests (as TestPipeline does).
    let cache = common::root().join("target/test-compiled");
    std::fs::create_dir_all(&cache).unwrap();
    let _ = std::os::unix::fs::symlink(&cache, state.join("compiled"));
    std::fs::write(dir.join("pw"), "any\n").unwrap();
    let text = format!(
        r#"[state]
dir = "{state}"

[[account]]
name = "bad"
address = "alice@example.test"
mailboxes = ["INBOX"]
timeout_seconds = {timeout}
[account.imap]
host = "127.0.0.1"
port = {port}
tls = "none"
username = "alice"
password_file = "pw"
{plugin}"#,
        state = state.display(),
        port = server.port(),
        timeout = TIMEOUT_SECONDS,
        plugin = plugin_toml("filer", "rules-filer", &format!("[plugin.config]\n{rules}")),
    );
    config(dir, &text)
}

async fn pass(cfg: &Config) -> anyhow::Result<RunSummary> {
    run_accounts_once(cfg, &OPTS).await
}

fn outcome(r: &anyhow::Result<RunSummary>) -> String {
    match r {
        Ok(s) => format!(
            "Ok(processed {}, skipped {}, plugin failures {})",
            s.processed, s.skipped, s.plugin_failures
        ),
        Err(e) => format!("Err({e:#})"),
    }
}

/// Expectations checked one after the other; all failures are reported together, with the
/// server's transcript.
struct Verdict<'a> {
    server: &'a BadServer,
    failed: Vec<String>,
    notes: Vec<String>,
}

impl<'a> Verdict<'a> {
    fn new(server: &'a BadServer) -> Self {
        Verdict {
            server,
            failed: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn check(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.failed.push(what.into());
        }
    }

    fn note(&mut self, what: impl Into<String>) {
        let what = what.into();
        eprintln!("note: {what}");
        self.notes.push(what);
    }

    /// Panic with every failed expectation. MAILPIPE_SHOW_TRANSCRIPT=1 prints the server's
    /// transcript even when all is well.
    fn done(self) {
        let transcript: Vec<String> = self
            .server
            .transcript()
            .iter()
            .map(|l| l.chars().take(160).collect())
            .collect();
        if self.failed.is_empty() {
            if std::env::var_os("MAILPIPE_SHOW_TRANSCRIPT").is_some() {
                eprintln!("server transcript:\n    {}", transcript.join("\n    "));
            }
            return;
        }
        panic!(
            "{} expectation(s) failed:\n  - {}\nobserved:\n  - {}\nserver transcript:\n    {}",
            self.failed.len(),
            self.failed.join("\n  - "),
            self.notes.join("\n  - "),
            transcript.join("\n    ")
        );
    }
}

/// How the seeded messages `1..=last` ended up: every one in Done exactly once, none left in
/// INBOX. Returns what is wrong.
fn filing_problems(server: &BadServer, last: u32) -> Vec<String> {
    let count = |mailbox: &str| {
        let mut n: HashMap<String, usize> = HashMap::new();
        for m in server.messages(mailbox) {
            *n.entry(m.header("Message-ID").unwrap_or_default())
                .or_default() += 1;
        }
        n
    };
    let (done, inbox) = (count("Done"), count("INBOX"));
    let (mut missing, mut twice, mut left) = (Vec::new(), Vec::new(), Vec::new());
    for i in 1..=last {
        let id = format!("<{}>", message_id(i));
        match done.get(&id).copied().unwrap_or(0) {
            0 => missing.push(i),
            1 => {}
            _ => twice.push(i),
        }
        if inbox.contains_key(&id) {
            left.push(i);
        }
    }
    let mut out = Vec::new();
    if !missing.is_empty() {
        out.push(format!("not in Done: {missing:?}"));
    }
    if !twice.is_empty() {
        out.push(format!("in Done more than once: {twice:?}"));
    }
    if !left.is_empty() {
        out.push(format!("left in INBOX: {left:?}"));
    }
    out
}

fn check_filed(v: &mut Verdict, server: &BadServer, last: u32) {
    let problems = filing_problems(server, last);
    v.check(
        problems.is_empty(),
        format!(
            "messages 1..={last} each filed into Done exactly once: {}",
            problems.join("; ")
        ),
    );
}

/// The UID sets of a command (`UID FETCH 1:5,9 (...)`, `UID SEARCH UID 4:*`): ranges with
/// `*` as u64::MAX; a part that is no number is kept as None.
fn uid_sets(command: &str) -> Vec<Option<(u64, u64)>> {
    let words: Vec<&str> = command.split_whitespace().collect();
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    let mut sets = Vec::new();
    match upper.get(..2).map(|x| x.join(" ")).as_deref() {
        Some("UID FETCH" | "UID STORE" | "UID COPY" | "UID MOVE" | "UID EXPUNGE") => {
            sets.extend(words.get(2).copied());
        }
        Some("UID SEARCH") => {
            for (i, w) in upper.iter().enumerate().skip(2) {
                if w == "UID" {
                    sets.extend(words.get(i + 1).copied());
                }
            }
        }
        _ => {}
    }
    let num = |x: &str| {
        if x == "*" {
            Some(u64::MAX)
        } else {
            x.parse::<u64>().ok()
        }
    };
    sets.iter()
        .flat_map(|s| s.split(','))
        .map(|part| {
            let (a, b) = part.split_once(':').unwrap_or((part, part));
            Some((num(a)?, num(b)?))
        })
        .collect()
}

fn is_action(command: &str) -> bool {
    let c = command.to_ascii_uppercase();
    ["UID STORE", "UID COPY", "UID MOVE", "UID EXPUNGE"]
        .iter()
        .any(|p| c.starts_with(p))
}

/// The process's resident set now and its peak, in KiB (/proc/self/status).
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// No decimal byte array ("[66, 97, 100, 255, ...]") in a message meant for people.
fn readable(text: &str) -> bool {
    !regex::Regex::new(r"\[\d{1,3}(, \d{1,3}){3,}")
        .unwrap()
        .is_match(text)
}

// ---- The control: a server that behaves ----

#[tokio::test]
async fn control_a_healthy_server_gets_everything_filed_once() {
    let _shared = MEMORY.read().await;
    let server = BadServer::start(seeded()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = account(&server, FILE_ALL, dir.path());
    let first = pass(&cfg).await;
    eprintln!("first pass: {}", outcome(&first));
    eprintln!("transcript:\n  {}", server.transcript().join("\n  "));
    let mark = server.commands().len();
    let second = pass(&cfg).await;

    let mut v = Verdict::new(&server);
    v.check(
        matches!(&first, Ok(s) if s.processed == COUNT as usize),
        format!("first pass processes {COUNT}: {}", outcome(&first)),
    );
    check_filed(&mut v, &server, COUNT);
    v.check(
        matches!(&second, Ok(s) if s.processed == 0),
        format!("second pass processes nothing: {}", outcome(&second)),
    );
    let later = server.commands()[mark..].to_vec();
    v.check(
        !later.iter().any(|c| is_action(c)),
        format!("second pass changes nothing: {later:?}"),
    );
    v.done();
}

// ---- The server itself: literals, case, garbage ----

/// Send `bytes`, then read until a line starting with `until` (a tag, or "+"); all read.
async fn exchange(s: &mut tokio::net::TcpStream, bytes: &[u8], until: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(bytes).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if text.split("\r\n").any(|l| l.starts_with(until)) && text.ends_with("\r\n") {
            return text;
        }
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {until:?} line; got {text:?}"))
            .unwrap();
        assert!(n > 0, "connection closed; got {text:?}");
        got.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn control_the_server_speaks_imap_and_survives_garbage() {
    let server = BadServer::start(seeded()).await;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .unwrap();
    let greeting = exchange(&mut s, b"", "* OK").await;
    assert!(greeting.starts_with("* OK"), "{greeting}");
    let r = exchange(&mut s, b"a1 login alice \"pw\"\r\n", "a1 ").await;
    assert!(r.contains("a1 OK"), "{r}");
    let r = exchange(&mut s, b"a2 select inbox\r\n", "a2 ").await;
    assert!(
        r.contains("* 20 EXISTS") && r.contains("[UIDNEXT 21]") && r.contains("a2 OK"),
        "{r}"
    );
    // A synchronizing literal waits for the continuation; LITERAL+ does not.
    let r = exchange(&mut s, b"a3 APPEND \"INBOX\" (\\Seen) {8}\r\n", "+").await;
    assert!(r.starts_with("+"), "{r}");
    let r = exchange(&mut s, b"x: 1\r\n\r\n\r\n", "a3 ").await;
    assert!(r.contains("a3 OK [APPENDUID 7 21]"), "{r}");
    let r = exchange(&mut s, b"a4 append INBOX {8+}\r\ny: 2\r\n\r\n\r\n", "a4 ").await;
    assert!(r.contains("a4 OK [APPENDUID 7 22]"), "{r}");
    let r = exchange(&mut s, b"a5 uid search uid 21:* larger 7\r\n", "a5 ").await;
    assert!(
        r.contains("* SEARCH 21 22\r\n") && !r.contains("BAD"),
        "{r}"
    );
    let r = exchange(&mut s, b"a6 UID SEARCH UID 23:*\r\n", "a6 ").await;
    assert!(
        r.contains("* SEARCH 22\r\n"),
        "n:* past the end means the last: {r}"
    );
    let r = exchange(
        &mut s,
        b"a7 UID FETCH 21:22 (UID FLAGS RFC822.SIZE BODY.PEEK[TEXT])\r\n",
        "a7 ",
    )
    .await;
    assert!(
        r.contains("UID 21 FLAGS (\\Seen) RFC822.SIZE 8 BODY[TEXT] {0}\r\n)")
            && r.contains("UID 22 FLAGS () RFC822.SIZE 8 BODY[TEXT] {0}\r\n)"),
        "{r}"
    );
    // Garbage is answered with BAD; the connection lives on.
    for (line, tag) in [
        (&b")))\r\n"[..], "* BAD"),
        (b"\xff\xfe\r\n", "\u{fffd}"),
        (b"a8 FETCH \"unterminated\r\n", "* BAD"),
        (b"a9 UID FETCH 0:* (UID)\r\n", "a9 BAD"),
        (b"a10 UID FETCH 1 (UID BODY[1.2.3]<0.10>)\r\n", "a10 BAD"),
        (b"a11 UID STORE 1 FLAGS\r\n", "a11 OK"),
        (b"a12 FROBNICATE\r\n", "a12 BAD"),
        (b"a13 UID\r\n", "a13 BAD"),
        (b"a14 COPY 1 \"Nowhere\"\r\n", "a14 NO [TRYCREATE]"),
    ] {
        let r = exchange(&mut s, line, tag.split(' ').next().unwrap()).await;
        assert!(
            r.contains(tag),
            "{:?} -> {r}",
            String::from_utf8_lossy(line)
        );
    }
    let r = exchange(&mut s, b"a15 NOOP\r\n", "a15 ").await;
    assert!(r.contains("a15 OK"), "{r}");
    let r = exchange(&mut s, b"a16 IDLE\r\n", "+").await;
    assert!(r.starts_with("+"), "{r}");
    let r = exchange(&mut s, b"DONE\r\n", "a16 ").await;
    assert!(r.contains("a16 OK"), "{r}");
    let r = exchange(&mut s, b"a17 LOGOUT\r\n", "a17 ").await;
    assert!(r.contains("* BYE") && r.contains("a17 OK"), "{r}");
    let commands = server.commands();
    assert!(
        commands.contains(&"select inbox".to_string()),
        "{commands:?}"
    );
    assert!(
        commands.contains(&"APPEND \"INBOX\" (\\Seen) {8}".to_string()),
        "{commands:?}"
    );
}

// ---- a. The connection drops in the middle of a FETCH ----

/// Expected: the pass fails (it did not see 10 of the 20 messages); the next pass, against a
/// healthy server, files all 20, each exactly once.
#[tokio::test]
async fn a_fetch_dropped_mid_chunk_fails_the_pass_and_loses_nothing() {
    let _shared = MEMORY.read().await;
    let script = seeded().fault(Fault::FetchDropAfter { n: 10, bye: true }, When::Nth(1));
    let server = BadServer::start(script).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = account(&server, FILE_ALL, dir.path());

    let first = pass(&cfg).await;
    let mut v = Verdict::new(&server);
    v.note(format!(
        "first pass (drop after 10 FETCH responses): {}",
        outcome(&first)
    ));
    let after_first = (
        server.messages("INBOX").len(),
        server.messages("Done").len(),
    );
    v.note(format!(
        "after it: {} in INBOX, {} in Done",
        after_first.0, after_first.1
    ));
    let second = pass(&cfg).await;
    v.note(format!("second pass (healthy): {}", outcome(&second)));

    v.check(
        first.is_err(),
        format!("the interrupted pass returns an error: {}", outcome(&first)),
    );
    v.check(
        second.is_ok(),
        format!("the healthy pass succeeds: {}", outcome(&second)),
    );
    check_filed(&mut v, &server, COUNT);
    v.done();
}

// ---- b. BYE instead of a SEARCH answer ----

/// Expected: the pass fails; it does not report "0 processed". The next pass files all.
#[tokio::test]
async fn b_search_answered_with_bye_fails_the_pass() {
    let _shared = MEMORY.read().await;
    let server = BadServer::start(seeded().fault(Fault::SearchBye, When::Nth(1))).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = account(&server, FILE_ALL, dir.path());

    let first = pass(&cfg).await;
    let mut v = Verdict::new(&server);
    v.note(format!(
        "first pass (BYE to UID SEARCH): {}",
        outcome(&first)
    ));
    let second = pass(&cfg).await;
    v.note(format!("second pass (healthy): {}", outcome(&second)));

    v.check(
        first.is_err(),
        format!(
            "a SEARCH answered with BYE fails the pass: {}",
            outcome(&first)
        ),
    );
    check_filed(&mut v, &server, COUNT);
    v.done();
}

/// Expected: a server whose SEARCH LARGER names every message is not believed alone: the
/// sizes it gives for the same messages (RFC822.SIZE) are within the limit, so every message
/// is filed, and the disagreement is reported.
#[tokio::test]
async fn b_search_larger_that_names_everything_leaves_nothing_unprocessed() {
    let _shared = MEMORY.read().await;
    let server = BadServer::start(seeded().fault(Fault::LargerEverything, When::Always)).await;
    // One message really is over the limit: that one alone is left in place.
    let mut big = personal(COUNT + 1);
    big.extend(std::iter::repeat_n(b'x', 1100 << 10));
    big.extend_from_slice(b"\r\n");
    server.append("INBOX", big);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = account(&server, FILE_ALL, dir.path());
    cfg.accounts[0].max_message_bytes = 1 << 20;

    let first = pass(&cfg).await;
    let mut v = Verdict::new(&server);
    v.note(format!("first pass (LARGER lies): {}", outcome(&first)));
    v.check(
        matches!(&first, Ok(s) if s.processed == COUNT as usize),
        format!(
            "every message within the limit is processed: {}",
            outcome(&first)
        ),
    );
    v.check(
        server.commands().iter().any(|c| c.contains("RFC822.SIZE")),
        "the sizes were asked for",
    );
    check_filed(&mut v, &server, COUNT);
    let left: Vec<_> = server
        .messages("INBOX")
        .iter()
        .filter_map(|m| m.header("Message-ID"))
        .collect();
    v.check(
        left == vec![format!("<{}>", message_id(COUNT + 1))],
        format!("the one message over max_message_mb stays in INBOX, alone: {left:?}"),
    );
    v.done();
}

// ---- c. UIDs that do not exist ----

/// Expected: with 4294967295 and 0 added to every SEARCH answer and a FETCH response for
/// each in every FETCH answer, all real messages are filed, including one (21) that arrives
/// between two passes; no command names UID 0; nothing is done to a UID that was not
/// requested.
#[tokio::test]
async fn c_phantom_uids_do_not_derail_later_passes() {
    let _shared = MEMORY.read().await;
    let script = seeded().fault(Fault::ExtraUids(vec![u32::MAX, 0]), When::Always);
    let server = BadServer::start(script).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = account(&server, FILE_ALL, dir.path());

    let first = pass(&cfg).await;
    let mut v = Verdict::new(&server);
    v.note(format!("first pass: {}", outcome(&first)));
    let uid = server.append("INBOX", personal(COUNT + 1));
    v.note(format!("message {} appended as UID {uid}", COUNT + 1));
    let second = pass(&cfg).await;
    v.note(format!("second pass: {}", outcome(&second)));

    check_filed(&mut v, &server, COUNT + 1);
    let commands = server.commands();
    let zero: Vec<&String> = commands
        .iter()
        .filter(|c| {
            uid_sets(c)
                .iter()
                .any(|r| matches!(r, Some((a, b)) if *a == 0 || *b == 0))
        })
        .collect();
    v.check(zero.is_empty(), format!("no command names UID 0: {zero:?}"));
    // What was asked for, per connection (= per pass): an action may only name those UIDs.
    let mut requested: Vec<(u64, u64)> = Vec::new();
    let mut unrequested = Vec::new();
    for line in server.transcript() {
        if line.starts_with("-- connection") {
            requested.clear();
            continue;
        }
        let c = line.split_once(' ').map_or("", |x| x.1);
        if c.to_ascii_uppercase().starts_with("UID FETCH") {
            requested.extend(uid_sets(c).into_iter().flatten());
        } else if is_action(c) {
            for r in uid_sets(c) {
                let ok = r.is_some_and(|(a, b)| {
                    let (lo, hi) = (a.min(b), a.max(b));
                    hi - lo < 100_000
                        && (lo..=hi).all(|u| {
                            requested
                                .iter()
                                .any(|&(x, y)| x.min(y) <= u && u <= x.max(y))
                        })
                });
                if !ok {
                    unrequested.push(c.to_string());
                    break;
                }
            }
        }
    }
    v.check(
        unrequested.is_empty(),
        format!("actions name only UIDs the pass fetched: {unrequested:?}"),
    );
    v.done();
}

// ---- d. The server refuses a STORE ----

/// Expected: the refused STORE is not reported as done: the pass fails, or the plan stays
/// pending and the STORE is sent again by the next pass; in the end every message has the
/// flag.
#[tokio::test]
async fn d_refused_store_is_retried() {
    let _shared = MEMORY.read().await;
    let server = BadServer::start(seeded().fault(Fault::StoreNo, When::Nth(1))).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = account(&server, FLAG_ALL, dir.path());

    let first = pass(&cfg).await;
    let mut v = Verdict::new(&server);
    v.note(format!("first pass (NO to UID STORE): {}", outcome(&first)));
    let mark = server.commands().len();
    let second = pass(&cfg).await;
    v.note(format!("second pass (healthy): {}", outcome(&second)));

    let stores_again: Vec<String> = server.commands()[mark..]
        .iter()
        .filter(|c| c.to_ascii_uppercase().starts_with("UID STORE"))
        .cloned()
        .collect();
    v.note(format!("STOREs of the second pass: {stores_again:?}"));
    v.check(
        !stores_again.is_empty(),
        "the second pass sends the refused STORE again",
    );
    let unflagged: Vec<u32> = server
        .messages("INBOX")
        .iter()
        .filter(|m| !m.has_flag("$Filed"))
        .map(|m| m.uid)
        .collect();
    v.check(
        unflagged.is_empty(),
        format!("every message ends up flagged $Filed; not: {unflagged:?}"),
    );
    v.done();
}

// ---- e. MOVE says OK and does nothing ----

/// Expected: the pass notices (error, or a warning in its report): the server sent neither
/// COPYUID nor EXPUNGE, which it does for every real MOVE (see the control test's server).
#[tokio::test]
async fn e_move_that_did_nothing_is_reported() {
    let _shared = MEMORY.read().await;
    let server = BadServer::start(seeded().fault(Fault::MoveOkButNothing, When::Nth(1))).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = account(&server, FILE_ALL, dir.path());
    let workers = account_workers(&cfg, &OPTS).await.unwrap();

    let first = workers[0].once().await;
    let mut v = Verdict::new(&server);
    match &first {
        Ok(r) => v.note(format!(
            "pass: Ok(processed {}, moved {}, warnings {:?})",
            r.processed, r.moved, r.warnings
        )),
        Err(e) => v.note(format!("pass: Err({e})")),
    }
    v.note(format!(
        "server: {} in INBOX, {} in Done",
        server.messages("INBOX").len(),
        server.messages("Done").len()
    ));
    v.check(
        match &first {
            Err(_) => true,
            Ok(r) => !r.warnings.is_empty(),
        },
        "a MOVE that moved nothing is reported (error or warning)",
    );
    v.done();
}

// ---- f. A literal announced at 500 MB, then silence ----

/// Expected: the pass ends with an error within the command deadline, and the announced
/// size is not allocated: the process grows by less than 100 MiB.
#[tokio::test]
async fn f_huge_literal_neither_allocates_nor_hangs() {
    let _alone = MEMORY.write().await;
    let server =
        BadServer::start(seeded().fault(Fault::HugeLiteral(500_000_000), When::Always)).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = account(&server, FILE_ALL, dir.path());
    // Plugins are loaded before measuring: only the IMAP pass counts.
    let workers = account_workers(&cfg, &OPTS).await.unwrap();

    let _ = std::fs::write("/proc/self/clear_refs", "5"); // resets VmHWM
    let (rss_before, _) = rss_kib();
    let peak = Arc::new(AtomicU64::new(rss_before));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib().0, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let started = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(90), workers[0].once()).await;
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let (_, hwm) = rss_kib();
    let grew_mib = (peak.load(Ordering::Relaxed).max(hwm)).saturating_sub(rss_before) / 1024;

    let mut v = Verdict::new(&server);
    let what = match &r {
        Err(_) => "still running after 90 s".to_string(),
        Ok(Ok(rep)) => format!("Ok(processed {})", rep.processed),
        Ok(Err(e)) => format!("Err({e})"),
    };
    v.note(format!(
        "pass: {what} after {:.1} s; RSS before {} MiB, peak growth {grew_mib} MiB",
        took.as_secs_f64(),
        rss_before / 1024
    ));
    v.check(
        matches!(r, Ok(Err(_))),
        format!("the pass ends with an error: {what}"),
    );
    v.check(
        took < Duration::from_secs(TIMEOUT_SECONDS + 10),
        format!(
            "it ends within the {TIMEOUT_SECONDS} s deadline plus 10 s, not {:.1} s",
            took.as_secs_f64()
        ),
    );
    v.check(
        grew_mib < 100,
        format!("the process grows by less than 100 MiB, not {grew_mib} MiB"),
    );
    v.done();
}

// ---- g. Bad UTF-8 in a LIST answer; no IMAP4rev1 ----

fn check_works_and_reads_well(v: &mut Verdict, server: &BadServer, r: &anyhow::Result<RunSummary>) {
    if let Err(e) = r {
        let text = format!("{e:#}");
        v.check(
            readable(&text),
            format!(
                "the error text has no decimal byte arrays: {}",
                text.chars().take(300).collect::<String>()
            ),
        );
    }
    v.check(
        matches!(r, Ok(s) if s.processed == COUNT as usize),
        format!("the pass works: {}", outcome(r)),
    );
    check_filed(v, server, COUNT);
}

/// Expected: a mailbox name that is not UTF-8 affects that mailbox only: the pass over INBOX
/// works; if something fails, its message is readable.
#[tokio::test]
async fn g_list_with_bad_utf8_spoils_nothing_else() {
    let _shared = MEMORY.read().await;
    let server = BadServer::start(seeded().fault(Fault::ListBadUtf8, When::Always)).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = account(&server, FILE_ALL, dir.path());
    let r = pass(&cfg).await;
    let mut v = Verdict::new(&server);
    v.note(format!("pass: {}", outcome(&r)));
    check_works_and_reads_well(&mut v, &server, &r);
    v.done();
}

/// Expected: a server that does not say IMAP4rev1 (but answers like one) is used anyway, or
/// refused with a readable reason.
#[tokio::test]
async fn g_server_without_imap4rev1_still_works() {
    let _shared = MEMORY.read().await;
    let server = BadServer::start(seeded().fault(Fault::NoImap4rev1, When::Always)).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = account(&server, FILE_ALL, dir.path());
    let r = pass(&cfg).await;
    let mut v = Verdict::new(&server);
    v.note(format!("pass: {}", outcome(&r)));
    check_works_and_reads_well(&mut v, &server, &r);
    v.done();
}

// ---- h. A slow server, and one that never answers ----

/// A FETCH answered after 1.5 s, below the 3 s deadline, is no failure.
#[tokio::test]
async fn h_slow_answers_below_the_timeout_are_tolerated() {
    let _shared = MEMORY.read().await;
    let tarpit = Fault::Tarpit {
        command: "UID FETCH".into(),
        ms: 1500,
    };
    let server = BadServer::start(seeded().fault(tarpit, When::Nth(1))).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = account(&server, FILE_ALL, dir.path());
    let started = Instant::now();
    let r = pass(&cfg).await;
    let mut v = Verdict::new(&server);
    v.note(format!(
        "pass: {} in {:.1} s",
        outcome(&r),
        started.elapsed().as_secs_f64()
    ));
    v.check(
        matches!(&r, Ok(s) if s.processed == COUNT as usize),
        format!("the pass works: {}", outcome(&r)),
    );
    check_filed(&mut v, &server, COUNT);
    v.done();
}

/// `command` is never answered on its first occurrence. Expected: the pass fails within the
/// account's deadline (plus slack) saying so; the next pass, against a server that answers,
/// files every message exactly once.
async fn never_answered(command: &str) {
    let _shared = MEMORY.read().await;
    let tarpit = Fault::Tarpit {
        command: command.into(),
        ms: 3_600_000,
    };
    let server = BadServer::start(seeded().fault(tarpit, When::Nth(1))).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = account(&server, FILE_ALL, dir.path());
    let started = Instant::now();
    let first = tokio::time::timeout(Duration::from_secs(60), pass(&cfg)).await;
    let took = started.elapsed();
    let mut v = Verdict::new(&server);
    let first = match first {
        Ok(r) => r,
        Err(_) => Err(anyhow::anyhow!("still running after 60 s")),
    };
    v.note(format!(
        "first pass ({command} never answered): {} after {:.1} s",
        outcome(&first),
        took.as_secs_f64()
    ));
    let second = pass(&cfg).await;
    v.note(format!("second pass: {}", outcome(&second)));

    v.check(
        first
            .as_ref()
            .is_err_and(|e| format!("{e:#}").contains("no answer within")),
        format!("the first pass fails with a timeout: {}", outcome(&first)),
    );
    v.check(
        first.as_ref().is_err_and(|e| {
            format!("{e:#}").contains(&format!("no answer within {TIMEOUT_SECONDS} s"))
        }),
        format!(
            "the error names the account's deadline ({TIMEOUT_SECONDS} s): {}",
            outcome(&first)
        ),
    );
    v.check(
        took < Duration::from_secs(TIMEOUT_SECONDS + 10),
        format!(
            "it fails within the {TIMEOUT_SECONDS} s deadline plus 10 s, not {:.1} s",
            took.as_secs_f64()
        ),
    );
    v.check(
        second.is_ok(),
        format!("the second pass works: {}", outcome(&second)),
    );
    check_filed(&mut v, &server, COUNT);
    v.done();
}

#[tokio::test]
async fn h_fetch_never_answered_times_out() {
    never_answered("UID FETCH").await;
}

#[tokio::test]
async fn h_move_never_answered_times_out() {
    never_answered("UID MOVE").await;
}

/// A loopback server for the TLS-handshake test: with `greet`, it says hello in plain text
/// and answers STARTTLS with OK; then (or at once, without `greet`) it goes silent.
async fn silent_server(greet: bool) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                if greet {
                    let _ = s.write_all(b"* OK silent IMAP ready\r\n").await;
                    let mut buf = [0u8; 512];
                    if let Ok(n) = s.read(&mut buf).await {
                        let tag = buf[..n].split(|&b| b == b' ').next().unwrap_or_default();
                        let mut ok = tag.to_vec();
                        ok.extend_from_slice(b" OK begin TLS\r\n");
                        let _ = s.write_all(&ok).await;
                    }
                }
                std::future::pending::<()>().await;
            });
        }
    });
    port
}

/// Class 5: a TLS handshake that never completes (a server that accepts STARTTLS, or the
/// connection for implicit TLS, and then sends nothing) ends at the account's deadline
/// with a clear error instead of hanging.
#[tokio::test]
async fn tls_handshakes_with_a_silent_server_time_out() {
    use mailpipe::config::{PasswordSource, ServerConfig, TlsMode};
    use mailpipe::source::imap::connect::{connect, with_deadline};

    for (tls, port) in [
        (TlsMode::Starttls, silent_server(true).await),
        (TlsMode::Implicit, silent_server(false).await),
    ] {
        let server = ServerConfig {
            host: "127.0.0.1".into(),
            port,
            tls,
            ca_file: None,
            tls_pin: None,
            username: Some("alice".into()),
            password: Some(PasswordSource::Command("echo secret".into())),
            auth: mailpipe::config::Auth::Password,
            oauth2: None,
        };
        let started = Instant::now();
        let r = with_deadline(Duration::from_secs(2), connect(&server)).await;
        let took = started.elapsed();
        let err = match r {
            Ok(_) => panic!("{tls:?}: a silent server gave a session"),
            Err(e) => e.to_string(),
        };
        assert!(took < Duration::from_secs(8), "{tls:?}: took {took:?}");
        assert!(err.contains("no answer within 2 s"), "{tls:?}: {err}");
    }
}

/// Any IMAP server's folder names (issue "real servers", part 2): on a Cyrus-style server
/// (personal folders under "INBOX.", "." between levels; names outside refused with
/// "Permission denied", "/" refused as invalid) folders are still written one way in configs
/// and plugins, UTF-8 with "/" between levels, and mapped through NAMESPACE. A name the server
/// cannot hold ("v1.2" holds its separator) fails only its messages, which stay in place.
#[tokio::test]
async fn folder_names_are_mapped_into_the_servers_namespace() {
    let _shared = MEMORY.read().await;
    file_all_into_rechnungen_on_cyrus_layout("Finance/Rechnungen-Ü").await;

    // A name with the server's separator in a segment cannot be created there.
    let server = BadServer::start(seeded().namespace("INBOX.", '.')).await;
    let dir = tempfile::tempdir().unwrap();
    let rules = r#"rules = [ { name = "all", folder = "v1.2", conditions = [] } ]"#;
    let cfg = account(&server, rules, dir.path());
    let r = pass(&cfg).await;
    let mut v = Verdict::new(&server);
    v.check(
        matches!(&r, Ok(s) if s.processed == COUNT as usize),
        format!("the pass goes on: {}", outcome(&r)),
    );
    v.check(
        server.messages("INBOX").len() == COUNT as usize,
        "the messages stay in INBOX".to_string(),
    );
    v.check(
        !server
            .commands()
            .iter()
            .any(|c| c.contains("v1.2") || c.contains("v1")),
        "no command with the unrepresentable name is sent".to_string(),
    );
    v.done();
}

/// Expected: on a Cyrus-style server (folders under "INBOX.", "." between levels) a name as
/// the server itself shows it, which is what the user's mail client shows, means that folder:
/// a rule filing into "INBOX.Finance.Rechnungen-Ü" files there (created once, like the same
/// folder written "Finance/Rechnungen-Ü"), on the first attempt, with no warning.
#[tokio::test]
async fn folder_names_as_the_server_shows_them_mean_those_folders() {
    let _shared = MEMORY.read().await;
    let server = file_all_into_rechnungen_on_cyrus_layout("INBOX.Finance.Rechnungen-Ü").await;
    let mut v = Verdict::new(&server);
    let creates = server
        .commands()
        .iter()
        .filter(|c| c.to_ascii_uppercase().starts_with("CREATE "))
        .count();
    v.check(
        creates == 1,
        format!("the folder is created once ({creates} CREATE)"),
    );
    v.done();
}

/// One pass on a Cyrus-style server (folders under "INBOX.", "." between levels) with a rule
/// filing everything into the folder written `folder`: all of it must land in the server's
/// INBOX.Finance.Rechnungen-Ü and none stay in INBOX.
async fn file_all_into_rechnungen_on_cyrus_layout(folder: &str) -> BadServer {
    let server = BadServer::start(seeded().namespace("INBOX.", '.')).await;
    let dir = tempfile::tempdir().unwrap();
    let rules = format!(r#"rules = [ {{ name = "all", folder = "{folder}", conditions = [] }} ]"#);
    let cfg = account(&server, &rules, dir.path());
    let r = pass(&cfg).await;
    let mut v = Verdict::new(&server);
    v.check(
        matches!(&r, Ok(s) if s.processed == COUNT as usize),
        format!("{folder}: the pass files everything: {}", outcome(&r)),
    );
    let names = server.mailbox_names();
    v.check(
        server.messages("INBOX.Finance.Rechnungen-&ANw-").len() == COUNT as usize,
        format!("{folder}: all {COUNT} in INBOX.Finance.Rechnungen-Ü: {names:?}"),
    );
    v.check(
        server.messages("INBOX").is_empty(),
        format!("{folder}: none left in INBOX"),
    );
    v.done();
    server
}
