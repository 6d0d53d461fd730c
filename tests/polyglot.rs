//! Plugins written in JavaScript, Python and C, built from source by their build scripts,
//! run in the same host through the same WIT contract and checked like the Rust ones —
//! including the host's config and key-value functions.

mod common;

use common::*;
use mailpipe::actions::OutgoingKind;
use mailpipe::pipeline::PluginStatus;
use serde_json::json;

#[tokio::test]
async fn python_auto_responder_replies_once_and_skips_lists() {
    let p = plugin(
        "vacation-py",
        "auto-responder-py",
        json!({"addresses": ["alice@example.com"], "days": 7, "subject": "Away (py)", "body": "Written in Python."}),
    );
    let t = TestPipeline::new(vec![p]).await;
    assert_eq!(t.pipeline.plugins[0].info.name, "auto-responder-py");
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
