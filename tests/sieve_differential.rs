//! Differential test of the Sieve interpreter: every script of tests/sieve/scripts on every
//! message of tests/sieve/messages, once through `mailpipe test SCRIPT.sieve MSG... --json`
//! and once through Dovecot Pigeonhole's `sieve-test` (the reference), both reduced to the
//! same canonical decision lines:
//!
//! ```text
//! store FOLDER[ create][ flags=a,b]   the message is stored there (keep = store INBOX)
//! discard                             the message is stored nowhere
//! redirect ADDR                       notify mailto:ADDR          reject
//! vacation to=ADDR subject=TEXT       a vacation reply is sent (after RFC 5230 checks)
//! addheader name: value               deleteheader name (an occurrence was deleted)
//! error compile                       error runtime (plus the implicit keep: store INBOX)
//! ```
//!
//! Pairs listed in tests/sieve/known-differences.txt (explained in KNOWN-DIFFERENCES.md)
//! may differ. sieve-test must be installed (Debian: dovecot-sieve), and libfaketime
//! (Debian: libfaketime) so that `currentdate` sees the same fixed time as `--now-ms`.
//!
//! SIEVE_DIFF_FILTER=text runs only the scripts whose name contains `text`;
//! SIEVE_DIFF_NO_CACHE=1 ignores the cache of sieve-test results (they depend only on the
//! script, the messages and sieve-test, and are kept in the target directory); the full list
//! of mismatches is written to target/tmp/sieve-differential/report.txt.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// The time both sides see: 2024-06-15T12:00:00Z (`--now-ms` and libfaketime).
const NOW_MS: i64 = 1_718_452_800_000;
const FAKETIME: &str = "@2024-06-15 12:00:00";
/// The envelope when a message has no Return-Path / Delivered-To field.
const DEFAULT_SENDER: &str = "sender@example.org";
const DEFAULT_RECIPIENT: &str = "me@example.com";
/// Extensions Pigeonhole 0.5 has but does not enable by default.
const EXTRA_EXTENSIONS: &str =
    "+editheader +vacation-seconds +spamtest +spamtestplus +virustest +vnd.dovecot.environment";
/// Extra arguments of every `mailpipe test` run (see mailpipe_script for the others).
const MAILPIPE_EXTRA_ARGS: &[&str] = &[];
const WORKERS: usize = 2;
const SHOWN_MISMATCHES: usize = 30;
/// Bump when the canonical form of sieve-test results changes (invalidates the cache).
const CACHE_VERSION: u32 = 1;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_owned()
}

/// One side's decision for one (script, message): canonical lines, and a note for humans
/// (an error message) that is shown in diffs but not compared.
#[derive(Clone, Debug, Default, PartialEq)]
struct Outcome {
    lines: BTreeSet<String>,
    note: String,
}

impl Outcome {
    fn of(lines: &[&str], note: &str) -> Outcome {
        Outcome {
            lines: lines.iter().map(|s| s.to_string()).collect(),
            note: note.to_string(),
        }
    }
}

struct Message {
    name: String,
    path: PathBuf,
    raw: Vec<u8>,
    /// None: the null reverse-path (`Return-Path: <>`).
    sender: Option<String>,
    recipient: String,
}

struct Ctx {
    tmp: PathBuf,
    sieve_test: PathBuf,
    faketime: PathBuf,
    root_user: bool,
    messages: Vec<Message>,
    corpus_hash: u64,
    cache_dir: Option<PathBuf>,
    exec_counter: AtomicUsize,
}

struct Mismatch {
    script: String,
    message: String,
    oracle: Outcome,
    ours: Outcome,
}

#[derive(Default)]
struct Tally {
    pairs: usize,
    equal: usize,
    known: usize,
    mismatches: Vec<Mismatch>,
    known_used: BTreeSet<usize>,
    cached_scripts: usize,
}

#[test]
fn sieve_decisions_match_pigeonhole() {
    differential(None);
}

/// Scripts generated at random from the grammar (tests/sieve/gen_random.py) on the same
/// messages: SIEVE_RANDOM_SEED (default 22, the same scripts on every run, so CI is
/// repeatable; any other seed explores further) and SIEVE_RANDOM_COUNT (default 100).
#[test]
fn random_scripts_match_pigeonhole() {
    let seed: u64 = std::env::var("SIEVE_RANDOM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(22);
    let count: u32 = std::env::var("SIEVE_RANDOM_COUNT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let dir = TempDir::new();
    let status = Command::new("python3")
        .arg(root().join("tests/sieve/gen_random.py"))
        .arg(seed.to_string())
        .arg(count.to_string())
        .arg(&dir.0)
        .status()
        .expect("python3 runs tests/sieve/gen_random.py");
    assert!(status.success(), "gen_random.py failed");
    println!("random scripts: seed {seed}, {count} scripts");
    differential(Some(&dir.0));
}

/// Every script (of tests/sieve/scripts, or of `generated`) on every message, through both.
fn differential(generated: Option<&Path>) {
    let started = Instant::now();
    let sieve_test = find_sieve_test().unwrap_or_else(|| {
        panic!(
            "sieve-test (Dovecot Pigeonhole) is not installed: this test compares mailpipe's Sieve \
             interpreter with it. Install it (Debian/Ubuntu: apt-get install dovecot-sieve) or set \
             SIEVE_TEST=/path/to/sieve-test."
        )
    });
    let faketime = find_faketime().unwrap_or_else(|| {
        panic!(
            "libfaketime is not installed: sieve-test's `currentdate` must see the fixed time \
             mailpipe gets from --now-ms. Install it (Debian/Ubuntu: apt-get install libfaketime) \
             or set SIEVE_DIFF_FAKETIME=/path/to/libfaketime.so.1."
        )
    });
    let corpus = root().join("tests/sieve");
    let filter = std::env::var("SIEVE_DIFF_FILTER").unwrap_or_default();
    let script_dir = generated.map_or(corpus.join("scripts"), Path::to_path_buf);
    let scripts: Vec<String> = list(&script_dir, ".sieve")
        .into_iter()
        .filter(|s| s.contains(&filter))
        .collect();
    assert!(!scripts.is_empty(), "no script name contains {filter:?}");
    let known = read_known_differences(&corpus.join("known-differences.txt"));

    let tmp = TempDir::new();
    let root_user = effective_uid() == Some(0);
    copy_tree(&corpus.join("scripts"), &tmp.0.join("scripts"));
    if let Some(dir) = generated {
        for name in &scripts {
            let file = format!("{name}.sieve");
            std::fs::copy(dir.join(&file), tmp.0.join("scripts").join(&file)).unwrap();
        }
    }
    copy_tree(&corpus.join("messages"), &tmp.0.join("messages"));
    for w in 0..WORKERS {
        std::fs::create_dir_all(tmp.0.join(format!("home{w}"))).unwrap();
    }
    if root_user {
        // sieve-test refuses to run as root: it runs as nobody (mail_uid), who must be able
        // to read the copies and write its home.
        open_permissions(&tmp.0);
    }
    let mut messages = Vec::new();
    let mut hasher = DefaultHasher::new();
    CACHE_VERSION.hash(&mut hasher);
    hash_file_meta(&sieve_test, &mut hasher);
    for sub in ["scripts/include", "scripts/global"] {
        for name in list(&corpus.join(sub), ".sieve") {
            name.hash(&mut hasher);
            std::fs::read(corpus.join(sub).join(format!("{name}.sieve")))
                .unwrap()
                .hash(&mut hasher);
        }
    }
    for name in list(&corpus.join("messages"), ".eml") {
        let path = tmp.0.join("messages").join(format!("{name}.eml"));
        let raw = std::fs::read(&path).unwrap();
        name.hash(&mut hasher);
        raw.hash(&mut hasher);
        let (sender, recipient) = envelope(&raw);
        messages.push(Message {
            name: format!("{name}.eml"),
            path,
            raw,
            sender,
            recipient,
        });
    }
    let cache_dir = std::env::var_os("SIEVE_DIFF_NO_CACHE").is_none().then(|| {
        let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sieve-differential/cache");
        let _ = std::fs::create_dir_all(&d);
        d
    });
    let ctx = Ctx {
        tmp: tmp.0.clone(),
        sieve_test,
        faketime,
        root_user,
        messages,
        corpus_hash: hasher.finish(),
        cache_dir,
        exec_counter: AtomicUsize::new(0),
    };

    let next = AtomicUsize::new(0);
    let tally = Mutex::new(Tally::default());
    std::thread::scope(|s| {
        for worker in 0..WORKERS {
            let (ctx, scripts, known, next, tally) = (&ctx, &scripts, &known, &next, &tally);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(script) = scripts.get(i) else { break };
                let (oracle, cached) = oracle_script(ctx, worker, script);
                let ours = mailpipe_script(ctx, script);
                let mut t = tally.lock().unwrap();
                t.cached_scripts += usize::from(cached);
                for ((m, o), p) in ctx.messages.iter().zip(oracle).zip(ours) {
                    let o = flags_per_message(undeliverable_is_a_failure(o));
                    t.pairs += 1;
                    if o.lines == p.lines {
                        t.equal += 1;
                    } else if let Some(k) = known.iter().position(|k| k.covers(script, &m.name)) {
                        t.known += 1;
                        t.known_used.insert(k);
                    } else {
                        t.mismatches.push(Mismatch {
                            script: script.clone(),
                            message: m.name.clone(),
                            oracle: o,
                            ours: p,
                        });
                    }
                }
            });
        }
    });
    let mut t = tally.into_inner().unwrap();
    t.mismatches
        .sort_by(|a, b| (&a.script, &a.message).cmp(&(&b.script, &b.message)));
    let report = render_report(&t, &known, &filter);
    let report_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(match generated {
        Some(_) => "sieve-differential/report-random.txt",
        None => "sieve-differential/report.txt",
    });
    let _ = std::fs::create_dir_all(report_path.parent().unwrap());
    let _ = std::fs::write(&report_path, &report.full);
    println!(
        "sieve differential: {} scripts x {} messages = {} pairs in {:.1}s ({} scripts' sieve-test \
         results from the cache): {} equal, {} known differences, {} mismatches (full report: {})",
        scripts.len(),
        ctx.messages.len(),
        t.pairs,
        started.elapsed().as_secs_f64(),
        t.cached_scripts,
        t.equal,
        t.known,
        t.mismatches.len(),
        report_path.display()
    );
    print!("{}", report.unused_known);
    if !t.mismatches.is_empty() {
        panic!(
            "{} of {} (script, message) pairs differ from Pigeonhole's sieve-test and are not in \
             tests/sieve/known-differences.txt; the first {}:\n{}",
            t.mismatches.len(),
            t.pairs,
            SHOWN_MISMATCHES.min(t.mismatches.len()),
            report.shown
        );
    }
}

struct Report {
    shown: String,
    full: String,
    unused_known: String,
}

fn render_report(t: &Tally, known: &[Known], filter: &str) -> Report {
    let mut shown = String::new();
    let mut full = String::new();
    for (i, m) in t.mismatches.iter().enumerate() {
        let mut block = format!("--- {} x {}\n", m.script, m.message);
        for l in m.oracle.lines.difference(&m.ours.lines) {
            let _ = writeln!(block, "  sieve-test only: {l}");
        }
        for l in m.ours.lines.difference(&m.oracle.lines) {
            let _ = writeln!(block, "  mailpipe only:   {l}");
        }
        let common: Vec<&String> = m.oracle.lines.intersection(&m.ours.lines).collect();
        if !common.is_empty() {
            let _ = writeln!(
                block,
                "  both:            {}",
                common
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
        }
        for (who, note) in [("sieve-test", &m.oracle.note), ("mailpipe", &m.ours.note)] {
            if !note.is_empty() {
                let _ = writeln!(block, "  ({who}: {})", truncate(note, 300));
            }
        }
        if i < SHOWN_MISMATCHES {
            shown.push_str(&block);
        }
        full.push_str(&block);
    }
    // Per script prefix (the feature), how many pairs differ: where to look first.
    let mut by_feature: BTreeMap<&str, usize> = BTreeMap::new();
    for m in &t.mismatches {
        *by_feature
            .entry(m.script.split('-').next().unwrap_or(""))
            .or_default() += 1;
    }
    if !by_feature.is_empty() {
        let summary = by_feature
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let line = format!("mismatches by feature: {summary}\n");
        shown.push_str(&line);
        full.insert_str(0, &line);
    }
    let mut unused_known = String::new();
    if filter.is_empty() {
        for (i, k) in known.iter().enumerate() {
            if !t.known_used.contains(&i) {
                let _ = writeln!(
                    unused_known,
                    "note: known-differences.txt line {} ({} {}) matched no differing pair",
                    k.line, k.script, k.message
                );
            }
        }
    }
    Report {
        shown,
        full,
        unused_known,
    }
}

// ---------------------------------------------------------------------------------------
// The reference: Pigeonhole's sieve-test.
// ---------------------------------------------------------------------------------------

/// sieve-test's results for `script` on every message (from the cache when it has them),
/// and whether they came from the cache.
fn oracle_script(ctx: &Ctx, worker: usize, script: &str) -> (Vec<Outcome>, bool) {
    let path = ctx.tmp.join("scripts").join(format!("{script}.sieve"));
    let text = std::fs::read(&path).unwrap();
    let mut h = DefaultHasher::new();
    ctx.corpus_hash.hash(&mut h);
    text.hash(&mut h);
    let cache_file = ctx
        .cache_dir
        .as_ref()
        .map(|d| d.join(format!("{script}-{:016x}.txt", h.finish())));
    if let Some(cached) = cache_file.as_ref().and_then(|f| read_cache(f, ctx)) {
        return (cached, true);
    }
    let home = ctx.tmp.join(format!("home{worker}"));
    let trace = String::from_utf8_lossy(&text).contains("editheader");
    let mut out = Vec::new();
    for (i, m) in ctx.messages.iter().enumerate() {
        let mut args = envelope_args(m);
        if trace {
            args.extend(["-t", "-", "-T", "level=commands"].map(String::from));
        }
        let run = run_sieve_test(ctx, &home, &args, &path, &m.path);
        let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
        if i == 0 && !run.status.success() && stderr.contains("failed to compile") {
            let note = stderr
                .lines()
                .find(|l| l.contains("error:"))
                .unwrap_or("")
                .to_string();
            out = vec![Outcome::of(&["error compile"], &note); ctx.messages.len()];
            break;
        }
        out.push(oracle_message(ctx, worker, &path, m, &args, run));
    }
    // A crash is sieve-test's answer; other oracle-* lines may be passing trouble.
    let transient = |l: &String| l.starts_with("oracle-") && l != "oracle-crashed";
    if let Some(f) = cache_file {
        if !out.iter().any(|o| o.lines.iter().any(transient)) {
            write_cache(&f, ctx, &out);
        }
    }
    (out, false)
}

fn oracle_message(
    ctx: &Ctx,
    worker: usize,
    script: &Path,
    m: &Message,
    args: &[String],
    run: Output,
) -> Outcome {
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    let Some(code) = run.status.code() else {
        let why = stderr
            .lines()
            .find(|l| l.contains("Panic") || l.contains("Fatal"))
            .unwrap_or("killed by a signal");
        return Outcome::of(&["oracle-crashed"], why);
    };
    if stderr.contains("final result: failed") {
        // A run-time error: Pigeonhole drops every action and keeps the message in INBOX.
        let note = stderr
            .lines()
            .find(|l| l.contains("error"))
            .unwrap_or("")
            .to_string();
        return Outcome::of(&["error runtime", "store INBOX"], &note);
    }
    let Some((trace, result)) = stdout.split_once("\nPerformed actions:\n") else {
        return Outcome::of(
            &["oracle-unparsed"],
            &format!("exit {code}: {}", truncate(&stderr, 200)),
        );
    };
    let (mut lines, vacation) = parse_performed_actions(result);
    for l in parse_trace(trace) {
        lines.insert(l);
    }
    if !lines.iter().any(|l| l.starts_with("store ")) {
        lines.insert("discard".into());
    }
    let mut note = String::new();
    if vacation {
        // Without -e sieve-test only says a vacation action was decided; with -e it runs the
        // RFC 5230 checks (lists, Auto-Submitted, "is the message addressed to me", ...) and
        // prints the reply it would send. -e also stores the message, so every folder of the
        // result must exist: a fresh mail directory with them is made for the run.
        let (vac, n) = oracle_vacation(ctx, worker, script, m, args, &lines);
        lines.extend(vac);
        note = n;
    }
    Outcome { lines, note }
}

fn run_sieve_test(ctx: &Ctx, home: &Path, args: &[String], script: &Path, msg: &Path) -> Output {
    let mut cmd = Command::new(&ctx.sieve_test);
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", home)
        .env("TZ", "UTC")
        .env("LD_PRELOAD", &ctx.faketime)
        .env("FAKETIME", FAKETIME)
        // Dovecot clears its environment at start-up but for these.
        .env("DOVECOT_PRESERVE_ENVS", "TZ FAKETIME LD_PRELOAD")
        .stdin(Stdio::null());
    // -O: no dovecot.conf at all (no doveconf run, so 3x faster); the settings it needs follow.
    cmd.arg("-O");
    if ctx.root_user {
        cmd.args(["-o", "mail_uid=65534", "-o", "mail_gid=65534"]);
    }
    cmd.args(["-o", "first_valid_uid=0", "-o", "first_valid_gid=0"]);
    let include = ctx.tmp.join("scripts/include");
    let global = ctx.tmp.join("scripts/global");
    for o in [
        // An absolute path: with -O, "~" is not always $HOME.
        format!(
            "mail_location=maildir:{}/Maildir:LAYOUT=fs:UTF-8",
            home.display()
        ),
        "mail_fsync=never".to_string(),
        "log_path=/dev/stderr".to_string(),
        format!("plugin/sieve=file:{}", include.display()),
        format!("plugin/sieve_global={}", global.display()),
        "plugin/sieve_spamtest_status_type=score".to_string(),
        "plugin/sieve_spamtest_status_header=X-Spam-Score".to_string(),
        "plugin/sieve_spamtest_max_value=10".to_string(),
        // The user's own address (vacation's "addressed to me" check), as mailpipe's
        // `addresses`.
        format!("plugin/sieve_user_email={DEFAULT_RECIPIENT}"),
    ] {
        cmd.arg("-o").arg(o);
    }
    cmd.args(["-x", EXTRA_EXTENSIONS]);
    cmd.args(args).arg(script).arg(msg);
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", ctx.sieve_test.display()))
}

/// -f (envelope sender), -a/-r (original and final recipient), -m (default mailbox).
/// sieve-test cannot be given the null sender: without -f it takes Return-Path, which for
/// `<>` falls back to Sender, then From (see KNOWN-DIFFERENCES.md).
fn envelope_args(m: &Message) -> Vec<String> {
    let mut a = Vec::new();
    if let Some(s) = &m.sender {
        a.extend(["-f".to_string(), s.clone()]);
    }
    for flag in ["-a", "-r"] {
        a.extend([flag.to_string(), m.recipient.clone()]);
    }
    a.extend(["-m".to_string(), "INBOX".to_string()]);
    a
}

/// The "Performed actions" and "Implicit keep" sections: canonical lines, and whether a
/// vacation action was decided.
fn parse_performed_actions(text: &str) -> (BTreeSet<String>, bool) {
    let mut actions: Vec<(String, Vec<String>)> = Vec::new();
    let mut in_message = false;
    for l in text.lines() {
        if in_message {
            in_message = l != "END MESSAGE";
            continue;
        }
        if l == "START MESSAGE" {
            in_message = true;
        } else if let Some(a) = l.strip_prefix(" * ") {
            actions.push((a.to_string(), Vec::new()));
        } else if l.starts_with("Implicit keep:") {
            actions.push(("#implicit keep".into(), Vec::new()));
        } else if !l.trim().is_empty() {
            if let Some(last) = actions.last_mut() {
                last.1.push(l.trim().to_string());
            }
        }
    }
    let mut lines = BTreeSet::new();
    let mut vacation = false;
    for (head, details) in actions {
        if let Some(folder) = head.strip_prefix("store message in folder: ") {
            let create = details
                .iter()
                .any(|d| d == "+ create mailbox if it does not exist");
            let flags: Vec<String> = details
                .iter()
                .filter_map(|d| d.strip_prefix("+ add IMAP flags:"))
                .flat_map(|f| f.split_whitespace().map(String::from))
                .collect();
            lines.insert(store_line(folder, create, &flags));
        } else if head == "keep" {
            lines.insert(store_line("INBOX", false, &[]));
        } else if let Some(to) = head.strip_prefix("redirect message to: ") {
            lines.insert(format!("redirect {}", strip_angle(to)));
        } else if head == "send vacation message:" {
            vacation = true;
        } else if head.starts_with("reject message with reason") {
            lines.insert("reject".into());
        } else if head.starts_with("send notification with method") {
            for d in &details {
                for field in ["+ To: ", "+ Cc: ", "+ Bcc: "] {
                    if let Some(r) = d.strip_prefix(field) {
                        lines.insert(format!("notify mailto:{}", r.trim()));
                    }
                }
            }
        } else if head == "discard" || head == "#implicit keep" || head.contains("duplicate") {
            // "discard" only cancels the implicit keep: `discard` is derived from there
            // being no store at all; duplicate tracking is no decision.
        } else {
            lines.insert(format!("oracle-unknown-action {head}"));
        }
    }
    (lines, vacation)
}

/// editheader's effects, from the trace of `-T level=commands`.
fn parse_trace(trace: &str) -> BTreeSet<String> {
    let mut lines = BTreeSet::new();
    let mut current: Option<String> = None;
    for l in trace.lines() {
        let t = l.trim_start();
        let t = t
            .split_once(": ")
            .filter(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .map_or(t, |(_, rest)| rest.trim_start());
        if let Some(rest) = t.strip_prefix("addheader \"") {
            if let Some((name, value)) = rest.strip_suffix('"').and_then(|r| r.split_once(": ")) {
                lines.insert(format!(
                    "addheader {}: {}",
                    name.to_ascii_lowercase(),
                    value
                ));
            }
        } else if let Some(rest) = t.strip_prefix("deleting matching occurrences of header `") {
            current = rest.split('\'').next().map(str::to_string);
        } else if t.starts_with("deleting header with value `") {
            if let Some(name) = &current {
                lines.insert(format!("deleteheader {}", name.to_ascii_lowercase()));
            }
        } else if let Some(rest) = t.strip_prefix("deleted ") {
            // "deleted N occurrences of header `NAME'"
            if let Some((n, name)) = rest.split_once(" occurrences of header `") {
                if n.parse::<u32>().is_ok_and(|n| n > 0) {
                    let name = name.trim_end_matches('\'');
                    lines.insert(format!("deleteheader {}", name.to_ascii_lowercase()));
                }
            }
        }
    }
    lines
}

/// The vacation reply sieve-test sends with -e, if it sends one: (lines, note).
fn oracle_vacation(
    ctx: &Ctx,
    worker: usize,
    script: &Path,
    m: &Message,
    args: &[String],
    lines: &BTreeSet<String>,
) -> (Vec<String>, String) {
    let n = ctx.exec_counter.fetch_add(1, Ordering::SeqCst);
    let home = ctx.tmp.join(format!("exec-{worker}-{n}"));
    let mut folders = vec![String::new()];
    for l in lines {
        if let Some(rest) = l.strip_prefix("store ") {
            let folder = rest.split(" create").next().unwrap_or("");
            let folder = folder.split(" flags=").next().unwrap_or("");
            if folder != "INBOX" && !folder.split('/').any(|p| p.is_empty() || p == "..") {
                folders.push(folder.to_string());
            }
        }
    }
    for f in &folders {
        for d in ["cur", "new", "tmp"] {
            let _ = std::fs::create_dir_all(home.join("Maildir").join(f).join(d));
        }
    }
    if ctx.root_user {
        open_permissions(&home);
    }
    let mut args = args.to_vec();
    args.push("-e".into());
    let run = run_sieve_test(ctx, &home, &args, script, &m.path);
    let _ = std::fs::remove_dir_all(&home);
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    const SENT: &str = "sent vacation response to <";
    if let Some(i) = stderr.find(SENT) {
        let to = stderr[i + SENT.len()..].split('>').next().unwrap_or("");
        let subject = vacation_subject(&stdout).unwrap_or_else(|| "(none)".into());
        return (
            vec![one_line(&format!("vacation to={to} subject={subject}"))],
            String::new(),
        );
    }
    let why = stderr
        .lines()
        .find(|l| l.contains("vacation"))
        .unwrap_or("")
        .to_string();
    if why.contains("discard") || why.contains("not sending") {
        (Vec::new(), why)
    } else {
        (
            vec!["oracle-vacation-failed".into()],
            truncate(&stderr, 300).to_string(),
        )
    }
}

/// The Subject of the vacation reply among the messages sieve-test -e printed (each starts
/// with its X-Sieve field; the reply is the one marked "auto-replied (vacation)").
fn vacation_subject(stdout: &str) -> Option<String> {
    let mut blocks: Vec<String> = Vec::new();
    for l in stdout.lines() {
        if l.starts_with("X-Sieve: ") || blocks.is_empty() {
            blocks.push(String::new());
        }
        let b = blocks.last_mut().unwrap();
        b.push_str(l);
        b.push('\n');
    }
    blocks
        .iter()
        .map(|b| b.split("\n\n").next().unwrap_or(""))
        .find(|h| h.contains("Auto-Submitted: auto-replied (vacation)"))
        .and_then(|h| header_field(h.as_bytes(), "subject"))
        .map(|s| decode_rfc2047(&s))
}

// ---------------------------------------------------------------------------------------
// Ours: mailpipe test SCRIPT MSG... --json.
// ---------------------------------------------------------------------------------------

fn mailpipe_script(ctx: &Ctx, script: &str) -> Vec<Outcome> {
    // mailpipe reads `include :personal` scripts from the script's folder (at most 256 of
    // them): each script gets a folder of its own with the scripts of scripts/include.
    let dir = ctx.tmp.join("mailpipe").join(script);
    std::fs::create_dir_all(&dir).unwrap();
    let include = ctx.tmp.join("scripts/include");
    for name in list(&include, ".sieve") {
        let file = format!("{name}.sieve");
        std::fs::copy(include.join(&file), dir.join(&file)).unwrap();
    }
    let path = dir.join(format!("{script}.sieve"));
    std::fs::copy(
        ctx.tmp.join("scripts").join(format!("{script}.sieve")),
        &path,
    )
    .unwrap();
    let now = NOW_MS.to_string();
    let global = format!(
        "global_dir=\"{}\"",
        ctx.tmp.join("scripts/global").display()
    );
    let addresses = format!("addresses=[\"{DEFAULT_RECIPIENT}\"]");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mailpipe"));
    cmd.arg("test")
        .arg(&path)
        .args(ctx.messages.iter().map(|m| &m.path))
        .args(["--json", "--now-ms", now.as_str(), "--allow-send-to", "*@*"])
        // The settings sieve-test gets (see run_sieve_test).
        .args(["--config", global.as_str(), "--config", addresses.as_str()])
        .args(["--config", "spamtest_header=\"X-Spam-Score\""])
        .args(["--config", "spamtest_max=10.0"])
        .args(MAILPIPE_EXTRA_ARGS)
        .env("TZ", "UTC")
        .stdin(Stdio::null());
    // sieve-test runs a script as at delivery, where reject refuses the message; mailpipe
    // decides so with --delivery (elsewhere, as after delivery: environment "phase" says
    // "post" as sieve-test's does).
    let source = std::fs::read_to_string(&path).unwrap_or_default();
    if source.contains("reject") {
        cmd.arg("--delivery");
    }
    cmd.env("TZ", "UTC").stdin(Stdio::null());
    let out = cmd.output().expect("running mailpipe test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let n = ctx.messages.len();
    match out.status.code() {
        Some(2) => {
            let note = stderr.lines().next().unwrap_or("").to_string();
            return vec![Outcome::of(&["error compile"], &note); n];
        }
        Some(0) | Some(1) => {}
        other => {
            let note = format!("exit {other:?}: {}", truncate(&stderr, 300));
            return vec![Outcome::of(&["mailpipe-failed"], &note); n];
        }
    }
    let mut results = Vec::new();
    for v in serde_json::Deserializer::from_str(&stdout).into_iter::<serde_json::Value>() {
        match v {
            Ok(v) => results.push(v),
            Err(e) => {
                let note = format!("unreadable JSON: {e}");
                return vec![Outcome::of(&["mailpipe-bad-json"], &note); n];
            }
        }
    }
    ctx.messages
        .iter()
        .enumerate()
        .map(|(i, m)| match results.get(i) {
            None => Outcome::of(&["mailpipe-no-result"], truncate(&stderr, 300)),
            Some(v) => {
                let source = v["source"].as_str().unwrap_or("");
                if !source.is_empty() && !source.ends_with(&m.name) {
                    let note = format!("result {i} is for {source}");
                    Outcome::of(&["mailpipe-out-of-order"], &note)
                } else {
                    mailpipe_outcome(v, m)
                }
            }
        })
        .collect()
}

/// docs/JSON.md's object in canonical lines.
fn mailpipe_outcome(v: &serde_json::Value, m: &Message) -> Outcome {
    let mut lines = BTreeSet::new();
    let report = &v["reports"][0];
    let failed = report["status"] == "failed";
    let mut note = String::new();
    if failed {
        lines.insert("error runtime".to_string());
        note = report["error"].as_str().unwrap_or("").to_string();
    }
    let strings = |x: &serde_json::Value| -> Vec<String> {
        x.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let global_flags = strings(&v["flags"]);
    for d in v["deliveries"].as_array().into_iter().flatten() {
        let folder = d["folder"].as_str().unwrap_or("");
        // Per-delivery flags when the JSON has them (`fileinto :flags`), else the message's.
        let flags = if d["flags"].is_array() {
            strings(&d["flags"])
        } else {
            global_flags.clone()
        };
        lines.insert(store_line(
            &sanitize(folder, 128),
            d["create"] == true,
            &flags,
        ));
    }
    if !lines.iter().any(|l| l.starts_with("store ")) {
        lines.insert("discard".into());
    }
    if v["refused"].is_object() {
        lines.insert("reject".into());
    }
    for o in v["outgoing"].as_array().into_iter().flatten() {
        let kind = o["kind"].as_str().unwrap_or("");
        let rcpts = strings(&o["rcpt_to"]);
        match kind {
            "reply" => {
                let raw = o["raw"].as_str().unwrap_or("");
                let subject = header_field(raw.as_bytes(), "subject")
                    .map(|s| decode_rfc2047(&s))
                    .unwrap_or_else(|| "(none)".into());
                lines.insert(one_line(&format!(
                    "vacation to={} subject={subject}",
                    rcpts.join(",")
                )));
            }
            "redirect" => {
                for r in rcpts {
                    lines.insert(format!("redirect {r}"));
                }
            }
            "notify" => {
                for r in rcpts {
                    lines.insert(format!("notify mailto:{r}"));
                }
            }
            _ => {
                for r in rcpts {
                    lines.insert(format!("outgoing {kind} {r}"));
                }
            }
        }
    }
    if !failed {
        let actions = report["actions"].as_array().cloned().unwrap_or_default();
        lines.extend(header_edit_lines(&actions, &m.raw));
    }
    Outcome {
        lines: lines.into_iter().map(|l| one_line(&l)).collect(),
        note,
    }
}

/// Header edits by their net effect on the message's fields, as sieve-test's trace shows
/// them: `deleteheader name` when an original occurrence is gone, `addheader name: value` for
/// each value that was not there before. (The plugin turns `deleteheader :index` or with
/// value patterns into remove-header plus add-header of the occurrences that stay.)
fn header_edit_lines(actions: &[serde_json::Value], raw: &[u8]) -> BTreeSet<String> {
    let original = header_fields(raw);
    let text = |v: &str| decode_rfc2047(v.trim());
    // Lowercase name -> (values before, values after).
    let mut fields: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for a in actions {
        let (action, name, value) = match a["action"].as_str().unwrap_or("") {
            "set-subject" => ("set-header", "subject", a["subject"].as_str()),
            x @ ("add-header" | "set-header" | "remove-header") => {
                (x, a["name"].as_str().unwrap_or(""), a["value"].as_str())
            }
            _ => continue,
        };
        let lname = name.to_ascii_lowercase();
        let entry = fields.entry(lname.clone()).or_insert_with(|| {
            let before: Vec<String> = original
                .iter()
                .filter(|(n, _)| *n == lname)
                .map(|(_, v)| text(&String::from_utf8_lossy(v)))
                .collect();
            (before.clone(), before)
        });
        let value = value.unwrap_or("").to_string();
        match action {
            "add-header" => entry.1.push(value),
            "set-header" => entry.1 = vec![value],
            _ => entry.1.clear(),
        }
    }
    let mut lines = BTreeSet::new();
    for (name, (before, after)) in fields {
        let name = sanitize(&name, 80);
        let mut added = after;
        let mut removed = false;
        for b in &before {
            match added.iter().position(|a| text(a) == *b) {
                Some(i) => {
                    added.remove(i);
                }
                None => removed = true,
            }
        }
        if removed {
            lines.insert(format!("deleteheader {name}"));
        }
        for a in added {
            lines.insert(format!("addheader {name}: {}", sanitize(&a, 80)));
        }
    }
    lines
}

// ---------------------------------------------------------------------------------------
// Shared helpers.
// ---------------------------------------------------------------------------------------

/// sieve-test prints a store into any folder name without trying it. mailpipe's host refuses
/// names it will not create for any plugin (actions/validate.rs: an empty, "." or ".." level,
/// a level with outer spaces, a control character, `\\`, `*` or `%`, more than 255 bytes)
/// before anything happens, and keeps the message, reporting the failure ("error runtime" +
/// "store INBOX"). Such a store on sieve-test's side is compared as that failure
/// (docs/SIEVE.md, "Differences").
fn undeliverable_is_a_failure(o: Outcome) -> Outcome {
    let bad = |folder: &str| {
        folder.len() > 255
            || folder
                .split('/')
                .any(|l| l.is_empty() || l == "." || l == ".." || l.trim() != l)
            || folder
                .chars()
                .any(|c| c.is_control() || matches!(c, '\\' | '*' | '%'))
    };
    let undeliverable = o.lines.iter().any(|l| {
        l.strip_prefix("store ")
            .map(|rest| rest.split(" create").next().unwrap_or(rest))
            .map(|rest| rest.split(" flags=").next().unwrap_or(rest))
            .is_some_and(bad)
    });
    if undeliverable {
        Outcome::of(
            &["error runtime", "store INBOX"],
            "sieve-test printed a store into a folder that cannot exist",
        )
    } else {
        o
    }
}

/// The plugin contract has one flag set per message (`add-flags`), given to every folder the
/// message is stored in; Pigeonhole flags each stored copy on its own. sieve-test's stores are
/// compared with the union of their flags on each (docs/SIEVE.md, "Flags"), so a difference
/// in which flags are set at all still shows.
fn flags_per_message(o: Outcome) -> Outcome {
    let split = |l: &str| -> Option<(String, Vec<String>)> {
        let rest = l.strip_prefix("store ")?;
        Some(match rest.split_once(" flags=") {
            Some((head, f)) => (head.to_string(), f.split(',').map(String::from).collect()),
            None => (rest.to_string(), Vec::new()),
        })
    };
    let stores: Vec<(String, Vec<String>)> = o.lines.iter().filter_map(|l| split(l)).collect();
    let union: BTreeSet<String> = stores.iter().flat_map(|(_, f)| f.iter().cloned()).collect();
    if stores.iter().all(|(_, f)| f.len() == union.len()) {
        return o;
    }
    let mut lines: BTreeSet<String> = o
        .lines
        .iter()
        .filter(|l| !l.starts_with("store "))
        .cloned()
        .collect();
    for (head, _) in stores {
        lines.insert(format!(
            "store {head} flags={}",
            union.iter().cloned().collect::<Vec<_>>().join(",")
        ));
    }
    Outcome {
        lines,
        note: o.note,
    }
}

fn store_line(folder: &str, create: bool, flags: &[String]) -> String {
    let folder = if folder.eq_ignore_ascii_case("INBOX") {
        "INBOX"
    } else {
        folder
    };
    let mut line = format!("store {folder}");
    if create {
        line.push_str(" create");
    }
    let flags: BTreeSet<String> = flags.iter().map(|f| f.to_lowercase()).collect();
    if !flags.is_empty() {
        line.push_str(" flags=");
        line.push_str(&flags.into_iter().collect::<Vec<_>>().join(","));
    }
    line
}

/// Dovecot's str_sanitize(): control characters become '?', and text longer than `max`
/// bytes is cut (on a character boundary) to leave room for "...". sieve-test prints folder
/// names (128) and added headers (80) this way, so ours are printed the same way.
fn sanitize(s: &str, max: usize) -> String {
    let clean: String = s
        .chars()
        .map(|c| if (c as u32) < 0x20 { '?' } else { c })
        .collect();
    if clean.len() <= max {
        return clean;
    }
    let mut cut = max.saturating_sub(3);
    while !clean.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &clean[..cut])
}

fn one_line(s: &str) -> String {
    s.replace('\r', "\\r").replace('\n', "\\n")
}

fn strip_angle(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('<')
        .and_then(|x| x.strip_suffix('>'))
        .unwrap_or(s)
}

fn truncate(s: &str, max: usize) -> &str {
    let s = s.trim();
    if s.len() <= max {
        return s;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

/// The header block of a message (up to the first empty line), as (lowercase name, unfolded
/// raw value) pairs; lines without a colon are skipped.
fn header_fields(raw: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut fields: Vec<(String, Vec<u8>)> = Vec::new();
    for line in raw.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some(last) = fields.last_mut() {
                last.1.push(b' ');
                last.1.extend_from_slice(trim(line));
            }
        } else if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = String::from_utf8_lossy(trim(&line[..colon])).to_ascii_lowercase();
            fields.push((name, trim(&line[colon + 1..]).to_vec()));
        }
    }
    fields
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

/// The first field `name` (lowercase) of a header block, unfolded.
fn header_field(raw: &[u8], name: &str) -> Option<String> {
    header_fields(raw)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| String::from_utf8_lossy(&v).into_owned())
}

/// The envelope both sides are given: the first Return-Path (its address; `<>` is the null
/// sender) and the first Delivered-To, else DEFAULT_SENDER and DEFAULT_RECIPIENT; an
/// unusable address counts as absent.
fn envelope(raw: &[u8]) -> (Option<String>, String) {
    let sender = match header_field(raw, "return-path") {
        None => Some(DEFAULT_SENDER.to_string()),
        Some(v) => {
            // Comments, even inside the brackets, are not part of the address.
            let v = without_comments(&v);
            let a = match (v.find('<'), v.rfind('>')) {
                (Some(i), Some(j)) if i < j => v[i + 1..j].trim().to_string(),
                _ => v.trim().to_string(),
            };
            if a.is_empty() {
                None
            } else if plausible_address(&a) {
                Some(a)
            } else {
                Some(DEFAULT_SENDER.to_string())
            }
        }
    };
    let recipient = header_field(raw, "delivered-to")
        .map(|v| strip_angle(&v).to_string())
        .filter(|a| plausible_address(a))
        .unwrap_or_else(|| DEFAULT_RECIPIENT.to_string());
    (sender, recipient)
}

/// `text` without RFC 5322 comments (nested parentheses).
fn without_comments(text: &str) -> String {
    let mut depth = 0usize;
    text.chars()
        .filter(|c| {
            match c {
                '(' => depth += 1,
                ')' if depth > 0 => {
                    depth -= 1;
                    return false;
                }
                _ => {}
            }
            depth == 0
        })
        .collect()
}

fn plausible_address(a: &str) -> bool {
    match a.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_graphic() && !"<>()[]\\,;:\"".contains(c))
                && domain
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        }
        None => false,
    }
}

/// RFC 2047 encoded words (UTF-8, US-ASCII, ISO-8859-1; others are left as they are).
/// Adjacent encoded words of one charset are joined before decoding, so a character split
/// over two words survives; white space between encoded words is dropped.
fn decode_rfc2047(s: &str) -> String {
    let mut out = String::new();
    let mut pending: Option<(String, Vec<u8>)> = None;
    let mut rest = s;
    let flush = |out: &mut String, pending: &mut Option<(String, Vec<u8>)>| {
        if let Some((cs, bytes)) = pending.take() {
            out.push_str(&decode_charset(&cs, &bytes));
        }
    };
    loop {
        let Some(start) = rest.find("=?") else {
            flush(&mut out, &mut pending);
            out.push_str(rest);
            break;
        };
        let Some(word) = parse_encoded_word(&rest[start..]) else {
            flush(&mut out, &mut pending);
            out.push_str(&rest[..start + 2]);
            rest = &rest[start + 2..];
            continue;
        };
        let between = &rest[..start];
        let joins = pending.is_some() && between.chars().all(char::is_whitespace);
        if !joins {
            flush(&mut out, &mut pending);
            out.push_str(between);
        }
        let (charset, bytes, len) = word;
        let same = joins
            && pending
                .as_ref()
                .is_some_and(|(cs, _)| cs.eq_ignore_ascii_case(&charset));
        if same {
            if let Some((_, b)) = pending.as_mut() {
                b.extend(bytes);
            }
        } else {
            flush(&mut out, &mut pending);
            pending = Some((charset, bytes));
        }
        rest = &rest[start + len..];
    }
    out
}

/// `=?charset?B|Q?text?=` at the start of `s`: (charset, decoded bytes, length in `s`).
fn parse_encoded_word(s: &str) -> Option<(String, Vec<u8>, usize)> {
    let body = s.strip_prefix("=?")?;
    let (charset, rest) = body.split_once('?')?;
    let (enc, rest) = rest.split_once('?')?;
    let end = rest.find("?=")?;
    let text = &rest[..end];
    if charset.is_empty() || text.contains(char::is_whitespace) {
        return None;
    }
    let charset = charset.split('*').next().unwrap_or(charset).to_string();
    let bytes = match enc {
        "B" | "b" => base64_decode(text)?,
        "Q" | "q" => q_decode(text),
        _ => return None,
    };
    let len = 2 + body.len() - rest.len() + end + 2;
    Some((charset, bytes, len))
}

fn decode_charset(charset: &str, bytes: &[u8]) -> String {
    let cs = charset.to_ascii_lowercase();
    if cs == "iso-8859-1" || cs == "latin1" {
        bytes.iter().map(|&b| b as char).collect()
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    }
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn q_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'_' => out.push(b' '),
            b'=' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'='),
            },
            c => out.push(c),
        }
        i += 1;
    }
    out
}

// ---------------------------------------------------------------------------------------
// Known differences, cache, files.
// ---------------------------------------------------------------------------------------

struct Known {
    line: usize,
    script: String,
    message: String,
}

impl Known {
    fn covers(&self, script: &str, message: &str) -> bool {
        let stem = message.strip_suffix(".eml").unwrap_or(message);
        (glob(&self.script, script) || glob(&self.script, &format!("{script}.sieve")))
            && (glob(&self.message, message) || glob(&self.message, stem))
    }
}

/// `script_glob message_glob reason...` per line; `#` comments and empty lines are skipped.
fn read_known_differences(path: &Path) -> Vec<Known> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let mut parts = l.split_whitespace();
        let (Some(script), Some(message), Some(_reason)) =
            (parts.next(), parts.next(), parts.next())
        else {
            panic!(
                "{} line {}: expected `script_glob message_glob reason`",
                path.display(),
                i + 1
            );
        };
        out.push(Known {
            line: i + 1,
            script: script.to_string(),
            message: message.to_string(),
        });
    }
    out
}

/// `*` (any run) and `?` (one character) globs.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Cache file: per message `@@ NAME`, then its lines, then `## NOTE` when there is one.
fn read_cache(path: &Path, ctx: &Ctx) -> Option<Vec<Outcome>> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut out: Vec<Outcome> = Vec::new();
    let mut names = Vec::new();
    for l in text.lines() {
        if let Some(name) = l.strip_prefix("@@ ") {
            names.push(name.to_string());
            out.push(Outcome::default());
        } else if let Some(note) = l.strip_prefix("## ") {
            out.last_mut()?.note = note.to_string();
        } else {
            out.last_mut()?.lines.insert(l.to_string());
        }
    }
    let expected: Vec<&String> = ctx.messages.iter().map(|m| &m.name).collect();
    (names.iter().collect::<Vec<_>>() == expected).then_some(out)
}

fn write_cache(path: &Path, ctx: &Ctx, outcomes: &[Outcome]) {
    let mut text = String::new();
    for (m, o) in ctx.messages.iter().zip(outcomes) {
        let _ = writeln!(text, "@@ {}", m.name);
        for l in &o.lines {
            let _ = writeln!(text, "{l}");
        }
        if !o.note.is_empty() {
            let _ = writeln!(text, "## {}", one_line(&o.note));
        }
    }
    let tmp = path.with_extension("tmp");
    if std::fs::write(&tmp, text).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}

fn hash_file_meta(path: &Path, h: &mut DefaultHasher) {
    if let Ok(meta) = std::fs::metadata(path) {
        meta.len().hash(h);
        if let Ok(t) = meta.modified() {
            t.hash(h);
        }
    }
}

/// File stems in `dir` with the suffix `ext`, sorted.
fn list(dir: &Path, ext: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().is_file())
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_suffix(ext))
                        .map(String::from)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_tree(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// Everyone may read and write under `dir` (only for a root run: sieve-test then runs as
/// nobody).
fn open_permissions(dir: &Path) {
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777));
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            open_permissions(&p);
        } else {
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666));
        }
    }
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn find_sieve_test() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SIEVE_TEST") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join("sieve-test"))
        .find(|p| p.is_file())
}

fn find_faketime() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SIEVE_DIFF_FAKETIME") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
        "/usr/lib64/faketime/libfaketime.so.1",
        "/usr/local/lib/faketime/libfaketime.so.1",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// A private directory under the system temp dir, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let p = std::env::temp_dir().join(format!(
            "mailpipe-sieve-diff-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod helpers {
    use super::*;

    #[test]
    fn rfc2047_words_are_decoded_and_joined() {
        assert_eq!(decode_rfc2047("=?utf-8?b?SGVsbG8gw6l0w6k=?="), "Hello été");
        assert_eq!(
            decode_rfc2047("Auto: Hello =?utf-8?b?w6l0w6k=?="),
            "Auto: Hello été"
        );
        assert_eq!(
            decode_rfc2047("=?UTF-8?Q?Gr=C3?= =?UTF-8?Q?=BC=C3=9Fe?="),
            "Grüße"
        );
        assert_eq!(
            decode_rfc2047("=?ISO-8859-1?Q?Caf=E9_au_lait?="),
            "Café au lait"
        );
        assert_eq!(decode_rfc2047("a =?x?q?y?= b"), "a y b");
        assert_eq!(
            decode_rfc2047("plain =? not encoded"),
            "plain =? not encoded"
        );
    }

    #[test]
    fn sieve_test_results_are_read() {
        let text = " * store message in folder: Spam\n        + add IMAP flags: \\seen $Label1\n \
                    * redirect message to: <bob@example.com>\n        + preserve implicit keep\n \
                    * send vacation message:\n    => seconds : 86400\n\nSTART MESSAGE\n * not an \
                    action\nEND MESSAGE\n\nImplicit keep:\n\n * store message in folder: INBOX\n";
        let (lines, vacation) = parse_performed_actions(text);
        assert!(vacation);
        let want: BTreeSet<String> = [
            "store Spam flags=$label1,\\seen",
            "redirect bob@example.com",
            "store INBOX",
        ]
        .map(String::from)
        .into();
        assert_eq!(lines, want);
        let trace =
            "   2: addheader \"X-Test: one\"\n   4: deleteheader command\n   4:   deleting \
                     header `Subject'\n   4:   deleted 1 occurrences of header `Subject'\n   5:   \
                     deleted 0 occurrences of header `X-None'\n";
        let want: BTreeSet<String> = ["addheader x-test: one", "deleteheader subject"]
            .map(String::from)
            .into();
        assert_eq!(parse_trace(trace), want);
    }

    #[test]
    fn header_edits_are_compared_by_their_net_effect() {
        let raw = b"X-Category: work\r\nX-Category: urgent\r\nSubject: s\r\n\r\nbody";
        let actions: Vec<serde_json::Value> = serde_json::from_str(
            r#"[{"action": "remove-header", "name": "X-Category"},
                {"action": "add-header", "name": "X-Category", "value": "work"},
                {"action": "add-header", "name": "X-New", "value": "1"}]"#,
        )
        .unwrap();
        let want: BTreeSet<String> = ["deleteheader x-category", "addheader x-new: 1"]
            .map(String::from)
            .into();
        assert_eq!(header_edit_lines(&actions, raw), want);
    }

    #[test]
    fn helpers_behave() {
        assert!(glob("vacation-*", "vacation-basic"));
        assert!(glob("*", "x"));
        assert!(glob("bounce-0?-*", "bounce-01-dsn.eml"));
        assert!(!glob("list-*", "plain-01-hello.eml"));
        assert_eq!(sanitize("a\tb", 80), "a?b");
        assert_eq!(sanitize("abcde", 4), "a...");
        let raw = b"Return-Path: <>\r\nDelivered-To: me+x@example.com\r\n\r\nbody";
        assert_eq!(envelope(raw), (None, "me+x@example.com".to_string()));
        assert_eq!(
            envelope(b"From: a@b.c\n\nx"),
            (
                Some(DEFAULT_SENDER.to_string()),
                DEFAULT_RECIPIENT.to_string()
            )
        );
    }
}
