//! The whole offline job (`mailpipe run` on a Maildir): every message ends up somewhere,
//! generated mail lands in the outbox once, a second run does nothing, and a run that died
//! half-way is completed without duplicates.

mod common;

use common::*;
use mailpipe::config::Config;
use mailpipe::run::{run_offline, RunOptions};
use mailpipe::source::maildir::MaildirSource;
use std::path::Path;
use std::process::Command;

/// The demo config with its paths moved into `dir`.
fn demo_config(dir: &Path, source: &Path) -> Config {
    let text = demo_toml(dir).replace(
        &format!("{:?}", root().join("examples/maildir")),
        &format!("{:?}", source),
    );
    let file = dir.join("demo.toml");
    std::fs::write(&file, &text).unwrap();
    Config::load(&file).unwrap()
}

fn messages_in(mail: &Path) -> Vec<std::path::PathBuf> {
    files_under(mail)
        .into_iter()
        .filter(|p| {
            matches!(
                p.parent()
                    .and_then(|d| d.file_name())
                    .and_then(|n| n.to_str()),
                Some("cur" | "new")
            )
        })
        .collect()
}

/// Where a folder lives in the default Maildir++ layout: INBOX is the root, "A/B" is ".A.B".
fn folder_dir(mail: &Path, folder: &str) -> std::path::PathBuf {
    if folder == "INBOX" {
        mail.to_path_buf()
    } else {
        mail.join(format!(".{}", folder.replace('/', ".")))
    }
}

/// The messages of one folder (not of its subfolders).
fn folder_messages(mail: &Path, folder: &str) -> Vec<std::path::PathBuf> {
    let dir = folder_dir(mail, folder);
    let mut out: Vec<_> = ["cur", "new"]
        .iter()
        .filter_map(|sub| std::fs::read_dir(dir.join(sub)).ok())
        .flat_map(|rd| rd.flatten().map(|e| e.path()))
        .collect();
    out.sort();
    out
}

/// What a run does to message 1 before it would commit: process it and store it.
async fn first_message_stored(
    config: &Config,
    dir: &Path,
) -> (
    mailpipe::pipeline::Decision,
    std::sync::Arc<mailpipe::state::Store>,
) {
    first_message_stored_with(config, dir, &[]).await
}

/// The same, the stored copy carrying `extra` flags too (a decision that came out otherwise).
async fn first_message_stored_with(
    config: &Config,
    dir: &Path,
    extra: &[&str],
) -> (
    mailpipe::pipeline::Decision,
    std::sync::Arc<mailpipe::state::Store>,
) {
    let store = std::sync::Arc::new(mailpipe::state::Store::open(&config.state_dir).unwrap());
    let pipeline =
        mailpipe::run::build_pipeline(config, Some(store.clone()), mailpipe::plugin::Clock::System)
            .await
            .unwrap();
    let source =
        mailpipe::source::maildir::MaildirSource::new(&config.offline.as_ref().unwrap().source);
    let entry = source
        .list()
        .unwrap()
        .into_iter()
        .find(|e| e.label().contains("1700000001."))
        .unwrap();
    let msg = source.read(&entry).unwrap();
    let d = pipeline.process(&msg.email, &msg.key).await;
    let mut stored = d.clone();
    stored.flags.extend(extra.iter().map(|f| f.to_string()));
    mailpipe::sink::mailstore::MailStore::new(&dir.join("mail"), Default::default())
        .deliver(&stored)
        .unwrap();
    (d, store)
}

const OPTS: RunOptions = RunOptions {
    dry_run: false,
    json: true,
    retry_failed: false,
    jobs: 4,
};

#[tokio::test]
async fn demo_run_files_everything_and_sends_each_mail_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path(), &root().join("examples/maildir"));
    let s = run_offline(&config, &OPTS).await.unwrap();
    assert_eq!((s.processed, s.skipped, s.plugin_failures), (14, 0, 0));

    // Nothing lost: each of the 14 messages is stored exactly once (no copies configured).
    let mail = dir.path().join("mail");
    let stored = messages_in(&mail);
    assert_eq!(stored.len(), 14, "{stored:#?}");
    let in_folder = |f: &str| folder_messages(&mail, f).len();
    assert_eq!(in_folder("Lists/rust-users"), 1);
    // The newsletter, and our own earlier auto-reply coming back (Precedence: bulk).
    assert_eq!(in_folder("Newsletters"), 2);
    assert_eq!(in_folder("Finance/Invoices"), 1);
    assert_eq!(in_folder("INBOX"), 10);
    // Flags are in the file names: dana's mail is flagged, the invoice has a keyword.
    let invoice = &folder_messages(&mail, "Finance/Invoices")[0];
    assert!(invoice.to_string_lossy().ends_with(":2,a"));
    assert_eq!(
        std::fs::read_to_string(folder_dir(&mail, "Finance/Invoices").join("dovecot-keywords"))
            .unwrap(),
        "0 $Invoice\n"
    );

    // The outbox: replies to people only, one forward of dana's mail, each with an envelope.
    let outbox = dir.path().join("outbox");
    let emls: Vec<_> = files_under(&outbox)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    assert_eq!(emls.len(), s.outbox.sent.len());
    let mut rcpts = Vec::new();
    for eml in &emls {
        let raw = std::fs::read(eml).unwrap();
        let env: serde_json::Value =
            serde_json::from_slice(&std::fs::read(eml.with_extension("json")).unwrap()).unwrap();
        assert!(header_of(&raw, "Auto-Submitted").is_some_and(|v| v.starts_with("auto-")));
        assert_eq!(
            header_of(&raw, "X-Mailpipe-Loop").as_deref(),
            Some("alice@example.com")
        );
        for r in env["rcpt_to"].as_array().unwrap() {
            rcpts.push(r.as_str().unwrap().to_string());
        }
    }
    rcpts.sort();
    for robot in [
        "newsletter@example.net",
        "MAILER-DAEMON@mx.example.net",
        "noreply@billing.example.net",
        "carol@example.org",
    ] {
        assert!(
            !rcpts.iter().any(|r| r.eq_ignore_ascii_case(robot)),
            "{robot} got mail: {rcpts:?}"
        );
    }
    assert_eq!(rcpts.iter().filter(|r| *r == "bob@example.org").count(), 1);
    assert_eq!(
        rcpts
            .iter()
            .filter(|r| *r == "alice@home.example.org")
            .count(),
        1,
        "dana's mail forwarded once"
    );

    // Run again: everything is remembered.
    let s2 = run_offline(&config, &OPTS).await.unwrap();
    assert_eq!((s2.processed, s2.skipped), (0, 14));
    assert_eq!(messages_in(&mail).len(), 14);
    assert_eq!(files_under(&outbox).len(), emls.len() * 2);
}

/// The default, as scripts/demo.sh shows it: a first run over a mailbox files what is there
/// but sends no reply or forward about it, however much a plugin wants to (Bob's, Frank's and
/// Grace's mail would be answered); mail that arrives afterwards is answered and forwarded.
#[tokio::test]
async fn first_run_sends_nothing_about_mail_already_there() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("maildir");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(src.join(sub)).unwrap();
    }
    let sample = root().join("examples/maildir");
    let deliver = |name: &str| {
        std::fs::copy(sample.join(name), src.join(name)).unwrap();
    };
    deliver("cur/1700000012.M12P100.demo:2,S");
    deliver("cur/1700000013.M13P100.demo:2,FS");
    deliver("new/1700000001.M1P100.demo");
    let text =
        demo_toml_as_shipped(dir.path()).replace(&format!("{:?}", sample), &format!("{:?}", src));
    assert!(!text.contains("send_about_mail_since = \"all\""));
    let file = dir.path().join("demo.toml");
    std::fs::write(&file, &text).unwrap();
    let config = Config::load(&file).unwrap();

    let first = run_offline(&config, &OPTS).await.unwrap();
    assert_eq!(first.processed, 3);
    assert_eq!(
        messages_in(&dir.path().join("mail")).len(),
        3,
        "filed all the same"
    );
    assert!(
        first.outbox.sent.is_empty() && !dir.path().join("outbox").exists(),
        "nothing sent about mail that was there before the first run: {:?}",
        first.outbox
    );

    // New mail: Björn writes, and Dana (answered, and forwarded home).
    deliver("new/1700000008.M8P100.demo");
    deliver("new/1700000009.M9P100.demo");
    let second = run_offline(&config, &OPTS).await.unwrap();
    assert_eq!((second.processed, second.skipped), (2, 3));
    let mut rcpts: Vec<String> = files_under(&dir.path().join("outbox"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .flat_map(|p| {
            let env: serde_json::Value =
                serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
            env["rcpt_to"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    rcpts.sort();
    assert_eq!(
        rcpts,
        [
            "alice@home.example.org",
            "bjorn@example.org",
            "dana@example.com"
        ],
        "the new mail is answered (and Dana's forwarded), the old is not"
    );

    // A config that asks for it answers the old mail too, once, on a fresh state.
    let all = dir.path().join("all");
    std::fs::create_dir_all(&all).unwrap();
    let text_all = text
        .replace(
            "auto-responder.wasm\"\n",
            "auto-responder.wasm\"\nsend_about_mail_since = \"all\"\n",
        )
        .replace(
            &format!("{:?}", dir.path().join("state")),
            &format!("{:?}", all.join("state")),
        )
        .replace(
            &format!("{:?}", dir.path().join("mail")),
            &format!("{:?}", all.join("mail")),
        )
        .replace(
            &format!("{:?}", dir.path().join("outbox")),
            &format!("{:?}", all.join("outbox")),
        );
    let file_all = all.join("demo.toml");
    std::fs::write(&file_all, &text_all).unwrap();
    let s = run_offline(&Config::load(&file_all).unwrap(), &OPTS)
        .await
        .unwrap();
    assert_eq!(s.processed, 5);
    let answered = files_under(&all.join("outbox"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    for who in ["bob@example.org", "frank@example.net", "grace@example.org"] {
        assert!(
            answered.contains(who),
            "{who} answered with \"all\": {answered}"
        );
    }
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path(), &root().join("examples/maildir"));
    let s = run_offline(
        &config,
        &RunOptions {
            dry_run: true,
            json: true,
            retry_failed: false,
            jobs: 4,
        },
    )
    .await
    .unwrap();
    assert_eq!(s.processed, 14);
    assert!(messages_in(&dir.path().join("mail")).is_empty());
    assert!(!dir.path().join("outbox").exists());
    let s = run_offline(&config, &OPTS).await.unwrap();
    assert_eq!(s.processed, 14, "a dry run remembers nothing");
}

#[tokio::test]
async fn a_copy_stored_with_other_flags_before_a_crash_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path(), &root().join("examples/maildir"));
    // The run that died had stored message 1 flagged and tagged; this run decides it without.
    first_message_stored_with(&config, dir.path(), &["\\Flagged", "$Earlier"]).await;
    let mail = dir.path().join("mail");
    let before = messages_in(&mail);
    assert_eq!(before.len(), 1, "{before:#?}");
    let s = run_offline(&config, &OPTS).await.unwrap();
    assert_eq!(s.processed, 14);
    let after = messages_in(&mail);
    assert_eq!(after.len(), 14, "{after:#?}");
    assert!(!after.contains(&before[0]), "the earlier copy is gone");
    // Every delivery of this run is settled: nothing would be searched for after a restart.
    let unsettled: Vec<_> = files_under(&mail)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".unsettled"))
        .collect();
    assert!(unsettled.is_empty(), "{unsettled:#?}");
}

#[tokio::test]
async fn a_run_killed_after_delivery_is_completed_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path(), &root().join("examples/maildir"));
    // Simulate the first run dying between storing message 1 and committing it: deliver,
    // then stop (no commit, no outbox).
    let (d, _) = first_message_stored(&config, dir.path()).await;
    assert_eq!(d.outgoing.len(), 1);
    let s = run_offline(&config, &OPTS).await.unwrap();
    assert_eq!(s.processed, 14);
    assert_eq!(
        messages_in(&dir.path().join("mail")).len(),
        14,
        "re-delivery replaced, not duplicated"
    );
    let to_bob = files_under(&dir.path().join("outbox"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .contains("bob@example.org")
        })
        .count();
    assert_eq!(to_bob, 1);
}

#[tokio::test]
async fn queued_mail_of_a_dead_run_is_sent_by_the_next_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path(), &root().join("examples/maildir"));
    // The first run committed message 1 (reply queued) and died before sending.
    let id;
    {
        let (d, store) = first_message_stored(&config, dir.path()).await;
        id = d.outgoing[0].id.clone();
        store
            .commit_message(&mailpipe::pipeline::commit_for(&d, 1))
            .unwrap();
        assert_eq!(store.outbox_pending().unwrap().len(), 1);
    }
    let s = run_offline(&config, &OPTS).await.unwrap();
    assert_eq!(s.processed, 13, "message 1 is not processed again");
    assert!(
        s.outbox.sent.contains(&id),
        "the queued reply goes out first"
    );
    assert!(dir
        .path()
        .join("outbox")
        .join(format!("{id}.eml"))
        .is_file());
    let s = run_offline(&config, &OPTS).await.unwrap();
    assert!(s.outbox.sent.is_empty());
}

#[tokio::test]
async fn malformed_mail_is_stored_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let source = root().join("examples/malformed");
    let mut config = demo_config(dir.path(), &source);
    // Only the filer (which never rewrites): what is stored must equal what came in.
    config.plugins.retain(|p| p.name == "filer");
    let s = run_offline(&config, &OPTS).await.unwrap();
    let inputs: Vec<_> = files_under(&source)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    assert_eq!(s.processed, inputs.len());
    assert_eq!(s.plugin_failures, 0);
    let mut stored: Vec<Vec<u8>> = messages_in(&dir.path().join("mail"))
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let mut expected: Vec<Vec<u8>> = inputs.iter().map(|p| std::fs::read(p).unwrap()).collect();
    stored.sort();
    expected.sort();
    assert_eq!(stored, expected);
}

#[tokio::test]
async fn malformed_mail_survives_rewriting_plugins() {
    let dir = tempfile::tempdir().unwrap();
    let source = root().join("examples/malformed");
    let config = demo_config(dir.path(), &source);
    let s = run_offline(&config, &OPTS).await.unwrap();
    let inputs: Vec<_> = files_under(&source)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    assert_eq!(s.processed, inputs.len());
    assert_eq!(
        messages_in(&dir.path().join("mail")).len(),
        inputs.len(),
        "nothing lost"
    );
    for p in messages_in(&dir.path().join("mail")) {
        let raw = std::fs::read(&p).unwrap();
        let parsed = mail_parser::MessageParser::new().parse(&raw);
        assert!(
            parsed.is_some() || raw.is_empty(),
            "{} unreadable after rewrite",
            p.display()
        );
    }
}

/// A folder the mail store cannot write (here a file sits where the folder's directory would
/// go) affects only the message filed there: it is kept in its own mailbox, reported, and the
/// run goes on with every other message.
#[tokio::test]
async fn a_folder_the_store_cannot_write_affects_only_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path(), &root().join("examples/maildir"));
    let mail = dir.path().join("mail");
    std::fs::create_dir_all(&mail).unwrap();
    std::fs::write(folder_dir(&mail, "Finance/Invoices"), "not a folder").unwrap();
    let s = run_offline(&config, &OPTS).await.unwrap();
    assert_eq!((s.processed, s.store_failures), (14, 1));
    assert_eq!(messages_in(&mail).len(), 14, "nothing lost");
    assert_eq!(
        folder_messages(&mail, "INBOX").len(),
        11,
        "the invoice stayed in INBOX"
    );
    let again = run_offline(&config, &OPTS).await.unwrap();
    assert_eq!((again.processed, again.skipped), (0, 14));
}

/// Defence in depth: a panic inside the host while one message is handled (injected here)
/// is contained to that message: it is kept unchanged in its mailbox, reported as an
/// internal error, and the process carries on with the others and exits normally.
#[test]
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "the fault is injected through a test hook: cargo test --features test-hooks (scripts/test.sh)"
)]
fn a_panic_while_handling_one_message_is_contained_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path(), &root().join("examples/maildir"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailpipe"))
        .args(["run", "--once", "--json", "-c"])
        .arg(&config.file)
        .env("MAILPIPE_FAULT_PANIC_KEY", "1700000012.")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 14, "{stdout}");
    let hit: Vec<_> = lines
        .iter()
        .filter(|l| l.to_string().contains("internal error in mailpipe"))
        .collect();
    assert_eq!(hit.len(), 1, "{stdout}");
    assert!(hit[0]["source"].as_str().unwrap().contains("1700000012."));
    assert!(hit[0]["outgoing"].as_array().unwrap().is_empty());
    let mail = dir.path().join("mail");
    assert_eq!(messages_in(&mail).len(), 14, "nothing lost");
    assert_eq!(hit[0]["deliveries"][0]["folder"], "INBOX");
    let original =
        std::fs::read(root().join("examples/maildir/cur/1700000012.M12P100.demo:2,S")).unwrap();
    let kept = folder_messages(&mail, "INBOX")
        .into_iter()
        .any(|p| std::fs::read(p).unwrap() == original);
    assert!(kept, "message 12 is in INBOX, unchanged");
}

/// `layout = "fs"` keeps one plain Maildir per folder, INBOX included.
#[tokio::test]
async fn the_fs_layout_is_still_there_for_who_wants_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path(), &root().join("examples/maildir"));
    let text = std::fs::read_to_string(&config.file)
        .unwrap()
        .replace("[offline]\n", "[offline]\nlayout = \"fs\"\n");
    std::fs::write(&config.file, text).unwrap();
    let config = Config::load(&config.file).unwrap();
    run_offline(&config, &OPTS).await.unwrap();
    let mail = dir.path().join("mail");
    assert_eq!(messages_in(&mail.join("INBOX")).len(), 10);
    assert_eq!(messages_in(&mail.join("Finance/Invoices")).len(), 1);
    assert!(!mail.join("cur").exists(), "nothing at the root");
}

/// A mailbox where the same senders write again and again (the auto-responder's memory is
/// read and written by many messages), with list mail, invoices and the boss's mail.
fn busy_maildir(dir: &Path, n: usize) -> std::path::PathBuf {
    let md = dir.join("busy");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(md.join(sub)).unwrap();
    }
    for i in 0..n {
        // Two, then three messages in a row from one sender: decided at the same time.
        let from = match (i * 2 / 5) % 9 {
            0 => "dana@example.com".to_string(),
            1 => "newsletter@shop.example".to_string(),
            k => format!("person{k}@example.net"),
        };
        let mut head = format!(
            "From: <{from}>\r\nTo: Alice <alice@example.com>\r\nSubject: {} {i}\r\n\
             Message-ID: <busy{i}@example.net>\r\nDate: Mon, 30 Nov 2026 09:{:02}:00 +0000\r\n",
            if i % 4 == 0 { "Your invoice" } else { "Note" },
            i % 60
        );
        if i % 5 == 0 {
            head.push_str("List-Id: Rust users <rust-users.lists.example.org>\r\n");
        }
        let raw = format!("{head}\r\nMessage {i}.\r\n");
        std::fs::write(md.join(format!("new/{:05}.busy", i)), raw).unwrap();
    }
    md
}

/// What a run left behind, with the times that differ from run to run taken out: each
/// message's record, the mail store, the outbox and the plugins' state totals.
fn outcome(dir: &Path, config: &Config, keys: &[String]) -> Vec<String> {
    let store = mailpipe::state::Store::open(&config.state_dir).unwrap();
    let mut out = Vec::new();
    for k in keys {
        let s = store.processed_summary(k).unwrap().expect("processed");
        let mut v: serde_json::Value = serde_json::from_str(&s).unwrap();
        v.as_object_mut().unwrap().remove("at_ms");
        out.push(format!("{k}: {v}"));
    }
    for p in files_under(dir) {
        let rel = p.strip_prefix(dir).unwrap().display().to_string();
        if rel.starts_with("state") || rel.ends_with(".toml") {
            continue;
        }
        let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap())
            .lines()
            .filter(|l| !l.starts_with("Date:") && !l.starts_with("Resent-Date:"))
            .collect::<Vec<_>>()
            .join("\n");
        out.push(format!("{rel}: {text}"));
    }
    for plugin in ["filer", "tagger", "vacation", "forward-boss"] {
        out.push(format!("{plugin}: {:?}", store.kv_usage(plugin)));
    }
    out
}

/// Deciding messages at the same time on several cores gives exactly what deciding them one
/// after the other gives: the same decisions, mail store, outgoing mail and plugin state, on
/// a mailbox where many messages depend on what earlier ones wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_decisions_equal_sequential_ones() {
    let corpus = tempfile::tempdir().unwrap();
    let source = busy_maildir(corpus.path(), 180);
    let mut outcomes = Vec::new();
    for jobs in [1, 4] {
        let dir = tempfile::tempdir().unwrap();
        let config = demo_config(dir.path(), &source);
        let s = run_offline(&config, &RunOptions { jobs, ..OPTS })
            .await
            .unwrap();
        assert_eq!(s.processed, 180, "jobs {jobs}");
        let listed = MaildirSource::new(&source);
        let keys: Vec<String> = listed
            .list()
            .unwrap()
            .iter()
            .map(|e| listed.key(e))
            .collect();
        outcomes.push(outcome(dir.path(), &config, &keys));
    }
    // The vacation plugin answered each of the 9 senders at most once (its memory, written
    // by one message and read by the next ones from the same sender, was respected).
    let replies = outcomes[0]
        .iter()
        .filter(|l| l.split(':').next().is_some_and(|p| p.ends_with(".eml")))
        .filter(|l| l.contains("Subject: Out of office"))
        .count();
    assert!(
        (1..=9).contains(&replies),
        "{replies} replies: {:#?}",
        outcomes[0]
    );
    assert_eq!(outcomes[0].len(), outcomes[1].len());
    for (a, b) in outcomes[0].iter().zip(&outcomes[1]) {
        assert_eq!(a, b);
    }
}

/// `mailpipe run --once` SIGKILLed at five moments over 3,000 messages from 40 senders, then
/// run to the end: every message is stored exactly once (no copy lost, none twice, whatever
/// flags it was stored with), and each sender is answered once (the vacation plugin's 7 days).
#[test]
fn sigkill_mid_run_stores_each_message_once_and_answers_each_sender_once() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(src.join(sub)).unwrap();
    }
    const N: usize = 3000;
    const SENDERS: usize = 40;
    for i in 0..N {
        let s = i % SENDERS;
        // Every seventh is an invoice (filed, flagged $Invoice), every fifth read already.
        let subject = if i % 7 == 0 {
            format!("Your invoice {i}")
        } else {
            format!("Note {i}")
        };
        let raw = format!(
            "From: Sender {s} <sender{s}@example.org>\r\nTo: Alice <alice@example.com>\r\n\
             Subject: {subject}\r\nMessage-ID: <m{i}@example.org>\r\n\
             Date: Mon, 7 Dec 2026 01:00:00 +0000\r\n\r\nBody {i}\r\n"
        );
        let (sub, name) = if i % 5 == 0 {
            ("cur", format!("17000{i:06}.M{i}P1.test:2,S"))
        } else {
            ("new", format!("17000{i:06}.M{i}P1.test"))
        };
        std::fs::write(src.join(sub).join(name), raw).unwrap();
    }
    let config = demo_config(dir.path(), &src);
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_mailpipe"))
            .args(["run", "--once", "--json", "-c"])
            .arg(&config.file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut killed = 0;
    for pause_ms in [400u64, 150, 700, 250, 550] {
        let mut child = run();
        std::thread::sleep(std::time::Duration::from_millis(pause_ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
    }
    assert!(killed >= 3, "the run was too quick to be killed mid-way");
    let status = run().wait().unwrap();
    assert!(status.success());

    let mail = dir.path().join("mail");
    let mut ids: Vec<String> = messages_in(&mail)
        .iter()
        .map(|p| header_of(&std::fs::read(p).unwrap(), "Message-ID").unwrap())
        .collect();
    assert_eq!(ids.len(), N, "stored copies");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), N, "distinct messages stored");
    assert_eq!(
        folder_messages(&mail, "Finance/Invoices").len(),
        N.div_ceil(7)
    );
    let mut answered: Vec<String> = files_under(&dir.path().join("outbox"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert_eq!(
        answered.len(),
        SENDERS,
        "one reply per sender: {answered:#?}"
    );
    answered.sort();
    answered.dedup();
    assert_eq!(answered.len(), SENDERS);
    for s in 0..SENDERS {
        let to = format!("\"sender{s}@example.org\"");
        assert_eq!(
            answered.iter().filter(|a| a.contains(&to)).count(),
            1,
            "sender{s}"
        );
    }
    assert!(
        !files_under(&mail)
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".unsettled")),
        "every delivery settled"
    );
}

/// A run that dies after its batch is durable but before its stored copies are settled (the
/// window a kill -9 hit in CI) leaves markers; the next run finds those messages processed
/// and removes their markers, without storing or answering anything again.
#[test]
fn markers_left_between_commit_and_settle_are_removed_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path(), &root().join("examples/maildir"));
    let run = |fault: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mailpipe"));
        cmd.args(["run", "--once", "-c"]).arg(&config.file);
        if let Some(at) = fault {
            cmd.env("MAILPIPE_FAULT_ABORT_AT", at);
        }
        cmd.output().unwrap()
    };
    let mail = dir.path().join("mail");
    let markers = || {
        files_under(&mail)
            .into_iter()
            .filter(|p| p.to_string_lossy().ends_with(".unsettled"))
            .count()
    };
    let out = run(Some("synced"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fault injected"), "{err}");
    assert_eq!(messages_in(&mail).len(), 14);
    assert!(
        markers() >= 14,
        "the run died before settling: {}",
        markers()
    );
    let answered = || files_under(&dir.path().join("outbox")).len();
    let before = answered();
    let out = run(None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(messages_in(&mail).len(), 14, "nothing stored again");
    assert_eq!(markers(), 0, "stale markers removed");
    // What the first run queued was sent by the second, once; nothing new was decided.
    let after = answered();
    assert!(after >= before);
    let out = run(None);
    assert!(out.status.success());
    assert_eq!(answered(), after, "nothing sent twice");
}

/// `mailpipe run` polling a Maildir handles signals as the daemon does (issue 27): SIGHUP
/// reloads the config between passes (a broken one is reported and the running one kept),
/// SIGTERM in the middle of a pass ends it after the message it is on, and SIGINT while it
/// waits ends it at once; every time with a log line and exit code 0. What the stopped pass
/// left is done by the next run, and nothing is filed twice.
#[test]
fn polling_handles_signals_like_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cur = d.join("src/cur");
    std::fs::create_dir_all(&cur).unwrap();
    std::fs::create_dir_all(d.join("src/new")).unwrap();
    let n = 3000;
    for i in 0..n {
        std::fs::write(
            cur.join(format!("{i}.eml")),
            format!(
                "From: a{i}@example.net\r\nSubject: sig {i}\r\nMessage-ID: <{i}@x>\r\n\r\nhi\r\n"
            ),
        )
        .unwrap();
    }
    let config = d.join("m.toml");
    let good = "[identity]\naddress = \"me@example.com\"\n[offline]\nsource = \"src\"\nmailstore = \"mail\"\noutbox = \"out\"\n";
    std::fs::write(&config, good).unwrap();
    let log = d.join("run.log");
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_mailpipe"))
            .args(["run", "--interval", "1", "-c"])
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap()
    };
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    let kill = |sig: &str, pid: u32| {
        assert!(Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
            .success())
    };
    let wait_for = |what: &str| {
        for _ in 0..300 {
            if text().contains(what) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("no {what:?} in:\n{}", text());
    };

    // SIGTERM during the first pass: it ends early, cleanly.
    let mut child = start();
    for _ in 0..500 {
        if !messages_in(&d.join("mail")).is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    kill("-TERM", child.id());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", text());
    assert!(text().contains("stopped"), "{}", text());
    let filed = messages_in(&d.join("mail")).len();
    assert!(
        filed > 0 && filed < n,
        "stopped mid-pass: {filed} of {n}\n{}",
        text()
    );

    // The next run does the rest; SIGHUP with a broken config keeps it running, with a good
    // one reloads; SIGINT while it waits ends it.
    let mut child = start();
    wait_for("processed");
    std::fs::write(&config, "[offline\n").unwrap();
    kill("-HUP", child.id());
    wait_for("the running config is kept");
    assert!(child.try_wait().unwrap().is_none(), "{}", text());
    std::fs::write(&config, good).unwrap();
    kill("-HUP", child.id());
    wait_for("config reloaded");
    kill("-INT", child.id());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", text());
    assert!(text().contains("SIGINT"), "{}", text());
    // Every message filed once.
    assert_eq!(messages_in(&d.join("mail")).len(), n, "{}", text());
}
