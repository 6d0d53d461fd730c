//! Old plugins keep working: the example plugins as built for contract 0.1 (kept unchanged in
//! tests/fixtures/contract-0.1) and as built today for 0.2 decide the same on the same mail:
//! same folders, flags, rewritten bytes, outgoing mail, plugin state and reports. Also: both
//! versions load side by side in one pipeline (with the 0.3 Sieve interpreter), the 0.2 message resource gives what the 0.1
//! record gave, and `check-config` stops a plugin from running with a configuration it rejects.

mod common;

use common::*;
use mailpipe::config::PluginConfig;
use mailpipe::message::Email;
use serde_json::{json, Value};

fn fixture(name: &str) -> std::path::PathBuf {
    root()
        .join("tests/fixtures/contract-0.1")
        .join(format!("{name}.wasm"))
}

/// The same plugin settings, once with the 0.1 build and once with today's.
fn both(name: &str, wasm: &str, config: Value, allow_to: &[&str]) -> [PluginConfig; 2] {
    let mut new = plugin(name, wasm, config);
    allow(&mut new, allow_to);
    let mut old = new.clone();
    old.path = fixture(wasm);
    [old, new]
}

/// A corpus that exercises every path of the example plugins: the sample mailbox, plus mail
/// from the same senders again and again (state of the auto-responder), lists, robots,
/// bounces, encoded and CR/LF subjects, bodies and attachments, and broken messages.
fn corpus() -> Vec<Email> {
    let mut mails: Vec<Email> = (1..=14).map(sample).collect();
    let senders = [
        "Bob <bob@example.org>",
        "carol@example.com",
        "newsletter@shop.example.net",
        "MAILER-DAEMON@example.org",
        "=?UTF-8?B?SsO8cmdlbg==?= <juergen@example.de>",
        "dana@example.com",
    ];
    let extras = [
        "",
        "List-Id: <rust-users.lists.example.org>\r\n",
        "Precedence: bulk\r\n",
        "Auto-Submitted: auto-generated\r\n",
        "Return-Path: <>\r\n",
        "Return-Path: <bounce@example.org>\r\nDelivered-To: alice@example.com\r\n",
        "Cc: alice@example.com\r\n",
        "X-Spam-Flag:  yes \r\n",
    ];
    let subjects = [
        "Your invoice 42",
        "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?= and an INVOICE",
        "=?UTF-8?B?aGkNCkJjYzogZXZlQGV2aWwuZXhhbXBsZQ==?=",
        "[EXT] already tagged",
        "quarterly numbers",
        "",
    ];
    for i in 0..84 {
        let from = senders[i % senders.len()];
        let extra = extras[(i / 2) % extras.len()];
        let subject = subjects[(i / 3) % subjects.len()];
        let to = if i % 5 == 0 {
            "team@example.com"
        } else {
            "Alice <alice@example.com>"
        };
        let body = if i % 4 == 0 {
            "--B\r\nContent-Type: text/plain\r\n\r\nthe quarterly report\r\n--B\r\n\
             Content-Type: text/csv; name=q.csv\r\nContent-Disposition: attachment; \
             filename=q.csv\r\n\r\na,b\r\n--B--\r\n"
                .to_string()
        } else {
            format!("Hello {i}\r\n")
        };
        let content_type = if i % 4 == 0 {
            "Content-Type: multipart/mixed; boundary=B\r\n"
        } else {
            ""
        };
        let raw = format!(
            "{extra}From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\n\
             Message-ID: <c{i}@example.test>\r\nDate: Mon, 30 Nov 2026 10:{:02}:00 +0000\r\n\
             MIME-Version: 1.0\r\n{content_type}\r\n{body}",
            i % 60
        );
        mails.push(Email::new(raw.into_bytes(), "INBOX", vec![]));
    }
    for broken in [
        &b""[..],
        b"\0\xff\xfe garbage",
        b"no header block at all\r\n",
    ] {
        mails.push(Email::new(broken.to_vec(), "INBOX", vec![]));
    }
    mails
}

/// What a decision means, without the time it took.
fn meaning(d: &mailpipe::pipeline::Decision) -> Value {
    let mut v = mailpipe::report::decision_json("m", d);
    if let Some(reports) = v.get_mut("reports").and_then(Value::as_array_mut) {
        for r in reports {
            r.as_object_mut().unwrap().remove("elapsed_us");
        }
    }
    json!({"decision": v, "kv": format!("{:?}", d.kv)})
}

async fn decide_all(settings: PluginConfig, mails: &[Email]) -> (String, Vec<Value>) {
    let t = TestPipeline::new(vec![settings]).await;
    let contract = t.pipeline.plugins[0].contract().to_string();
    let mut out = Vec::new();
    for (i, m) in mails.iter().enumerate() {
        out.push(meaning(&t.run_commit(m, &format!("k{i}")).await));
    }
    (contract, out)
}

/// `min_acted`: on how many messages the plugin must at least have acted, so that the
/// comparison means something.
async fn same_decisions(
    name: &str,
    wasm: &str,
    config: Value,
    allow_to: &[&str],
    min_acted: usize,
) {
    let mails = corpus();
    let [old, new] = both(name, wasm, config, allow_to);
    let (old_contract, old_decisions) = decide_all(old, &mails).await;
    let (new_contract, new_decisions) = decide_all(new, &mails).await;
    assert_eq!(old_contract, "0.1.0", "the fixture is a 0.1 component");
    assert_eq!(new_contract, "0.2.0", "today's build is a 0.2 component");
    let mut acted = 0;
    for (i, (a, b)) in old_decisions.iter().zip(&new_decisions).enumerate() {
        assert_eq!(
            a, b,
            "{wasm}: message #{i} is decided differently by 0.1 and 0.2"
        );
        let actions = &a["decision"]["reports"][0]["actions"];
        acted += usize::from(actions.as_array().is_some_and(|a| !a.is_empty()));
    }
    assert!(acted >= min_acted, "{wasm}: acted on only {acted} messages");
}

#[tokio::test]
async fn the_auto_responder_answers_the_same_in_both_contracts() {
    same_decisions(
        "vacation",
        "auto-responder",
        json!({"addresses": ["alice@example.com"], "body": "I am away.", "days": 7}),
        &["$sender"],
        // One reply per sender and week: the senders who write directly, not robots or lists.
        5,
    )
    .await;
}

#[tokio::test]
async fn the_rules_filer_files_the_same_in_both_contracts() {
    same_decisions(
        "filer",
        "rules-filer",
        json!({"rules": [
            {"name": "rust", "folder": "Lists/rust", "conditions": [
                {"header": "List-Id", "op": "contains", "value": "rust-users"}]},
            {"name": "news", "folder": "News", "match": "any", "conditions": [
                {"header": "Precedence", "op": "equals", "value": "bulk"},
                {"address": "from", "op": "regex", "value": "^newsletter@"}]},
            {"name": "invoices", "folder": "Invoices", "flags": ["$Invoice"], "conditions": [
                {"subject": true, "op": "contains", "value": "invoice"}]},
            {"name": "cc", "flags": ["$Cc"], "conditions": [
                {"address": "cc", "op": "exists"}]},
            {"name": "report", "folder": "Reports", "stop": true, "conditions": [
                {"body": true, "op": "contains", "value": "quarterly"}]},
        ]}),
        &[],
        10,
    )
    .await;
}

#[tokio::test]
async fn the_subject_tagger_rewrites_the_same_in_both_contracts() {
    same_decisions(
        "tagger",
        "subject-tagger",
        json!({"tag": "[EXT]", "when_from_not": ["*@example.com"], "header": "X-External"}),
        &[],
        10,
    )
    .await;
}

#[tokio::test]
async fn the_forwarder_forwards_the_same_in_both_contracts() {
    same_decisions(
        "forwarder",
        "forwarder",
        json!({"rules": [
            {"from": "*@example.org", "to": ["archive@example.com"], "mode": "attachment",
             "note": "from the org"},
            {"subject_contains": "invoice", "to": ["books@example.com"]},
        ]}),
        &["archive@example.com", "books@example.com"],
        10,
    )
    .await;
}

#[tokio::test]
async fn the_c_header_tagger_tags_the_same_in_both_contracts() {
    same_decisions(
        "c-tagger",
        "header-tagger-c",
        json!({"header": "X-Spam-Flag", "value": "YES", "tag": "[SPAM]", "flag": "$Junk"}),
        &[],
        5,
    )
    .await;
}

#[tokio::test]
async fn plugins_of_both_contracts_run_in_one_pipeline_and_see_each_others_changes() {
    // A 0.1 tagger rewrites the subject, a 0.2 filer files on the rewritten subject, and the
    // 0.1 C tagger after them still sees both.
    let [old_tagger, _] = both(
        "tagger",
        "subject-tagger",
        json!({"tag": "[EXT]", "when_from_not": ["*@example.com"]}),
        &[],
    );
    let [_, new_filer] = both(
        "filer",
        "rules-filer",
        json!({"rules": [{"name": "ext", "folder": "External", "conditions": [
            {"subject": true, "op": "contains", "value": "[ext]"}]}]}),
        &[],
    );
    let mut c_tagger = plugin(
        "c-tagger",
        "header-tagger-c",
        json!({"header": "X-Mark", "value": "yes", "tag": "[C]", "flag": "$C"}),
    );
    c_tagger.path = fixture("header-tagger-c");
    // The built-in Sieve interpreter is a 0.4 component (it may return `notify` and
    // `refuse`); its 0.3 build (tests/fixtures/contract-0.3) still loads and runs. Both read
    // the same message through the same resource code.
    let sieve = PluginConfig {
        kind: mailpipe::config::PluginKind::Sieve,
        name: "sieve".into(),
        path: "rules.sieve".into(),
        config: json!({"script": "require \"imap4flags\"; if header :contains \"subject\" \"[C]\" { addflag \"$Sieve\"; }", "script_name": "rules", "includes": {}, "global_includes": {}}),
        ..plugin("sieve", "subject-tagger", json!({}))
    };
    let mut sieve_0_3 = plugin(
        "sieve-0.3",
        "subject-tagger",
        json!({"script": "require \"imap4flags\"; if header :contains \"subject\" \"[C]\" { addflag \"$Sieve03\"; }", "script_name": "old", "includes": {}, "global_includes": {}}),
    );
    sieve_0_3.path = root().join("tests/fixtures/contract-0.3/sieve.wasm");
    let t = TestPipeline::new(vec![old_tagger, new_filer, c_tagger, sieve, sieve_0_3]).await;
    let versions: Vec<_> = t.pipeline.plugins.iter().map(|p| p.contract()).collect();
    assert_eq!(versions, ["0.1.0", "0.2.0", "0.1.0", "0.4.0", "0.3.0"]);
    let mail = Email::new(
        b"From: bob@example.org\r\nTo: alice@example.com\r\nSubject: hello\r\nX-Mark: yes\r\n\r\nhi\r\n"
            .to_vec(),
        "INBOX",
        vec![],
    );
    let d = t.run(&mail, "1").await;
    for r in &d.reports {
        assert!(
            matches!(r.status, mailpipe::pipeline::PluginStatus::Applied { .. }),
            "{}: {:?}",
            r.plugin,
            r.status
        );
    }
    assert_eq!(
        folders(&d),
        ["External"],
        "the 0.2 filer saw the 0.1 rewrite"
    );
    let subject = header_of(&d.email.raw, "Subject").unwrap();
    assert!(
        subject.contains("[C]") && subject.contains("[EXT] hello"),
        "the C plugin saw the rewritten subject: {subject}"
    );
    assert!(d.flags.contains(&"$C".to_string()), "{:?}", d.flags);
    assert!(d.flags.contains(&"$Sieve".to_string()), "{:?}", d.flags);
    assert!(d.flags.contains(&"$Sieve03".to_string()), "{:?}", d.flags);
}

#[tokio::test]
async fn a_plugin_that_rejects_its_configuration_is_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[state]\ndir = {state:?}\n\n[identity]\naddress = \"alice@example.com\"\n\n[offline]\nsource = {src:?}\nmailstore = {mail:?}\noutbox = {out:?}\n\n\
         [[plugin]]\nname = \"vacation\"\npath = {wasm:?}\n[plugin.config]\naddresses = []\nbody = \"away\"\ndays = 0\n",
        state = dir.path().join("state"),
        src = root().join("examples/maildir"),
        mail = dir.path().join("mail"),
        out = dir.path().join("outbox"),
        wasm = plugin_path("auto-responder"),
    );
    let file = dir.path().join("m.toml");
    std::fs::write(&file, toml).unwrap();
    let config = mailpipe::config::Config::load(&file).unwrap();
    let err =
        match mailpipe::run::build_pipeline(&config, None, mailpipe::plugin::Clock::System).await {
            Ok(_) => panic!("a plugin that rejects its configuration must not run"),
            Err(e) => format!("{e:#}"),
        };
    let file = file.display().to_string();
    // Each problem at the line of its key: `addresses` is line 16, `days` line 18.
    assert!(
        err.contains(&format!(
            "{file}:16: plugin vacation: `addresses`: is empty"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{file}:18: plugin vacation: `days`: must be at least 1"
        )),
        "{err}"
    );
    assert!(!dir.path().join("mail").exists(), "nothing was delivered");
}
