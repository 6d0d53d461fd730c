//! Plugins written in JavaScript, Python and C, built from source by their build scripts,
//! run in the same host through the same WIT contract and checked like the Rust ones —
//! including the host's config and key-value functions.

mod common;
mod crlf_subject;

use common::*;
use mailpipe::actions::OutgoingKind;
use mailpipe::pipeline::PluginStatus;
use serde_json::json;

#[tokio::test]
async fn python_auto_responder_names_the_keys_of_a_broken_config() {
    let p = plugin(
        "vacation-py",
        "auto-responder-py",
        json!({"addresses": "alice@example.com", "days": 0}),
    );
    let t = TestPipeline::new(vec![p]).await;
    let keys: Vec<_> = t.pipeline.plugins[0]
        .config_problems
        .iter()
        .map(|p| p.key.as_deref().unwrap_or("-"))
        .collect();
    assert_eq!(keys, ["addresses", "body", "days"]);
}

#[tokio::test]
async fn python_auto_responder_replies_once_and_skips_lists() {
    let p = plugin(
        "vacation-py",
        "auto-responder-py",
        json!({"addresses": ["alice@example.com"], "days": 7, "subject": "Away (py)", "body": "Written in Python."}),
    );
    let t = TestPipeline::new(vec![p]).await;
    assert_eq!(t.pipeline.plugins[0].info.name, "auto-responder-py");
    assert_eq!(t.pipeline.plugins[0].contract(), "0.2.0");
    assert!(t.pipeline.plugins[0].config_problems.is_empty());
    let d = t.run_commit(&sample(1), "1").await;
    assert!(
        matches!(status(&d, "vacation-py"), PluginStatus::Applied { .. }),
        "{:?}",
        d.reports
    );
    assert_eq!(d.outgoing.len(), 1);
    assert_eq!(d.outgoing[0].kind, OutgoingKind::Reply);
    assert_eq!(d.outgoing[0].rcpt_to, ["bob@example.org"]);
    assert_eq!(
        header_of(&d.outgoing[0].raw, "Subject").as_deref(),
        Some("Away (py)")
    );
    assert!(raw_text(&d.outgoing[0].raw).contains("Written in Python."));
    // The KV memory (host function) makes the second message from bob go unanswered.
    assert!(t.run_commit(&sample(1), "1b").await.outgoing.is_empty());
    for n in [3, 5] {
        assert!(
            t.run(&sample(n), &format!("{n}")).await.outgoing.is_empty(),
            "message {n}"
        );
    }
}

#[tokio::test]
async fn python_auto_responder_reply_to_a_crlf_subject_is_sent_one_line() {
    // Default subject: "Auto: " + the inbound one, which decodes to CR/LF and a fake Bcc.
    let p = plugin(
        "vacation-py",
        "auto-responder-py",
        json!({"addresses": ["alice@example.com"], "body": "Written in Python."}),
    );
    let t = TestPipeline::new(vec![p]).await;
    let d = t.run(&crlf_subject::message(), "crlf").await;
    let out = crlf_subject::assert_one_clean_reply(&d, "vacation-py");
    assert_eq!(
        header_of(&out.raw, "Subject").as_deref(),
        Some(crlf_subject::SAFE_AUTO_SUBJECT)
    );
}

#[tokio::test]
async fn javascript_rules_filer_files_flags_and_counts_in_kv() {
    let p = plugin(
        "js-filer",
        "rules-filer-js",
        json!({"rules": [
            {"name": "rust", "header": "List-Id", "contains": "RUST-users", "folder": "Lists/rust", "flags": ["$Label1"]},
            {"name": "dana", "from": "*@example.com", "folder": "People/dana"},
        ]}),
    );
    let t = TestPipeline::new(vec![p]).await;
    assert_eq!(t.pipeline.plugins[0].info.name, "rules-filer-js");
    assert_eq!(t.pipeline.plugins[0].contract(), "0.1.0");
    let d = t.run_commit(&sample(3), "3").await;
    assert!(
        matches!(status(&d, "js-filer"), PluginStatus::Applied { .. }),
        "{:?}",
        d.reports
    );
    assert_eq!(folders(&d), ["Lists/rust"]);
    assert_eq!(d.flags, ["$Label1"]);
    // The counter lives in the host's KV store, per plugin, and survives between messages.
    let count = |t: &TestPipeline| {
        t.store
            .kv_get("js-filer", "count:rust", 0)
            .unwrap()
            .map(|v| String::from_utf8(v).unwrap())
    };
    assert_eq!(count(&t).as_deref(), Some("1"));
    t.run_commit(&sample(3), "3b").await;
    assert_eq!(count(&t).as_deref(), Some("2"));
    assert_eq!(folders(&t.run(&sample(9), "9").await), ["People/dana"]);
    assert_eq!(folders(&t.run(&sample(1), "1").await), ["INBOX"]);

    // A broken config is the plugin's error, reported; the message stays where it was.
    let bad = plugin(
        "js-filer",
        "rules-filer-js",
        json!({"rules": [{"name": "x", "heade": "List-Id", "folder": "X"}]}),
    );
    let t = TestPipeline::new(vec![bad]).await;
    let d = t.run(&sample(3), "3").await;
    match status(&d, "js-filer") {
        PluginStatus::Failed { error: f } => assert!(f.to_string().contains("heade"), "{f}"),
        s => panic!("{s:?}"),
    }
    assert_eq!(folders(&d), ["INBOX"]);
}

#[tokio::test]
async fn c_header_tagger_tags_and_flags_by_header() {
    let p = plugin(
        "c-tagger",
        "header-tagger-c",
        json!({"header": "X-Spam-Flag", "value": "YES", "tag": "[SPAM]", "flag": "$Junk"}),
    );
    let t = TestPipeline::new(vec![p]).await;
    assert_eq!(t.pipeline.plugins[0].contract(), "0.2.0");
    assert_eq!(t.pipeline.plugins[0].info.name, "header-tagger-c");
    let spam = mailpipe::message::Email::new(
        b"From: x@example.net\r\nTo: alice@example.com\r\nSubject: Cheap watches\r\nX-Spam-Flag: yes\r\n\r\nbuy\r\n".to_vec(),
        "INBOX",
        vec![],
    );
    let d = t.run(&spam, "spam").await;
    assert!(
        matches!(status(&d, "c-tagger"), PluginStatus::Applied { .. }),
        "{:?}",
        d.reports
    );
    assert_eq!(
        d.email.header("Subject").as_deref(),
        Some("[SPAM] Cheap watches")
    );
    assert_eq!(d.flags, ["$Junk"]);
    let d = t.run(&sample(1), "1").await;
    assert!(!d.rewritten && d.flags.is_empty());
    // A subject that decodes to CR/LF and a fake header is tagged on one line.
    let crlf_spam = mailpipe::message::Email::new(
        b"From: x@example.net\r\nTo: alice@example.com\r\nSubject: =?UTF-8?B?VXJsYXViPw0KQmNjOiB2aWN0aW1AZXhhbXBsZS5uZXQNCg0KaW5qZWN0ZWQgYm9keQ==?=\r\nX-Spam-Flag: YES\r\n\r\nbuy\r\n".to_vec(),
        "INBOX",
        vec![],
    );
    let d = t.run(&crlf_spam, "crlf").await;
    assert!(
        matches!(status(&d, "c-tagger"), PluginStatus::Applied { .. }),
        "{:?}",
        d.reports
    );
    assert_eq!(
        d.email.header("Subject").as_deref(),
        Some("[SPAM] Urlaub? Bcc: victim@example.net injected body")
    );
    assert!(d.email.header("Bcc").is_none());
    // Without its required config it says which keys are missing when loaded (so a run does
    // not start), and a call reports an error instead of guessing.
    let t = TestPipeline::new(vec![plugin(
        "c-tagger",
        "header-tagger-c",
        json!({"header": "X-Spam-Flag"}),
    )])
    .await;
    let missing: Vec<_> = t.pipeline.plugins[0]
        .config_problems
        .iter()
        .map(|p| p.key.as_deref().unwrap_or("-"))
        .collect();
    assert_eq!(missing, ["value", "tag"]);
    assert!(matches!(
        status(&t.run(&spam, "s").await, "c-tagger"),
        PluginStatus::Failed { .. }
    ));
}
