//! The example plugins doing their jobs on the sample mail in examples/maildir, through the
//! real host pipeline (wasmtime, the WIT contract, validation, loop guard, state store).

mod common;
mod crlf_subject;

use common::*;
use mailpipe::actions::OutgoingKind;
use mailpipe::pipeline::PluginStatus;
use mailpipe::plugin::Clock;
use serde_json::json;

fn vacation() -> mailpipe::config::PluginConfig {
    plugin(
        "vacation",
        "auto-responder",
        json!({
            "addresses": ["alice@example.com", "alice@home.example.org"],
            "days": 7,
            "subject": "Away until December",
            "body": "I am away. Grüße, Alice",
        }),
    )
}

#[tokio::test]
async fn vacation_replies_with_threading_and_loop_headers() {
    let t = TestPipeline::new(vec![vacation()]).await;
    let orig = sample(1);
    let d = t.run(&orig, "m1").await;
    assert_eq!(d.outgoing.len(), 1, "{:?}", d.reports);
    let out = &d.outgoing[0];
    assert_eq!(out.kind, OutgoingKind::Reply);
    assert_eq!(out.rcpt_to, ["bob@example.org"]);
    assert_eq!(out.mail_from, "", "RFC 3834: null reverse-path");
    let orig_id = orig.header("Message-ID").unwrap();
    assert_eq!(header_of(&out.raw, "In-Reply-To").unwrap(), orig_id);
    assert!(header_of(&out.raw, "References")
        .unwrap()
        .ends_with(&orig_id));
    assert_eq!(
        header_of(&out.raw, "Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    assert_eq!(
        header_of(&out.raw, "X-Mailpipe-Loop").as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(
        header_of(&out.raw, "Subject").as_deref(),
        Some("Away until December")
    );
    assert!(header_of(&out.raw, "From")
        .unwrap()
        .contains("alice@example.com"));
    // The reply body is non-ASCII, so base64 UTF-8; it must decode back.
    let parsed = mail_parser::MessageParser::new().parse(&out.raw).unwrap();
    assert_eq!(
        parsed.body_text(0).unwrap().trim(),
        "I am away. Grüße, Alice"
    );
    // The original message itself is kept, untouched.
    assert_eq!(folders(&d), ["INBOX"]);
    assert!(!d.rewritten);
}

#[tokio::test]
async fn vacation_answers_each_sender_once_per_period() {
    let day = 86_400_000;
    let t0 = 1_795_737_600_000;
    let t = TestPipeline::with_clock(vec![vacation()], Clock::Fixed(t0)).await;
    let first = t.run_commit(&sample(1), "a").await;
    assert_eq!(first.outgoing.len(), 1);
    let again = t.run_commit(&sample(1), "b").await;
    assert!(
        again.outgoing.is_empty(),
        "a second message from bob within 7 days gets no reply"
    );

    // Same store, 8 days later: bob is answered again.
    let mut later = TestPipeline::with_clock(vec![vacation()], Clock::Fixed(t0 + 8 * day)).await;
    later.pipeline.store = Some(t.store.clone());
    later.store = t.store.clone();
    let d = later.run(&sample(1), "c").await;
    assert_eq!(d.outgoing.len(), 1, "the memory expires after `days`");
}

#[tokio::test]
async fn vacation_stays_silent_for_lists_robots_bcc_and_loops() {
    let t = TestPipeline::new(vec![vacation()]).await;
    // 2: alice only in Bcc; 3: list; 4: bulk; 5: auto-replied; 6: bounce; 7: noreply;
    // 11: carries our loop marker; 14: owner- sender.
    for n in [2, 3, 4, 5, 6, 7, 11, 14] {
        let d = t.run(&sample(n), &format!("m{n}")).await;
        assert!(
            d.outgoing.is_empty(),
            "message {n} got a reply: {:?}",
            d.outgoing
        );
        assert!(
            matches!(status(&d, "vacation"), PluginStatus::Applied { .. }),
            "message {n}"
        );
        assert_eq!(folders(&d), ["INBOX"], "message {n} is kept");
    }
    // Encoded-word sender and personal mail to alice in To/Cc are answered.
    for n in [8, 9, 13] {
        assert_eq!(
            t.run(&sample(n), &format!("m{n}")).await.outgoing.len(),
            1,
            "message {n}"
        );
    }
}

#[tokio::test]
async fn host_loop_guard_blocks_replies_even_when_a_plugin_asks() {
    // The rules-filer cannot reply, so use the auto-responder with robots allowed by its own
    // logic removed: message 11 has our loop marker; even a reply the plugin makes would be
    // suppressed. We check the host note by feeding a message the plugin answers but the
    // host must not: a personal message that carries X-Mailpipe-Loop.
    let t = TestPipeline::new(vec![vacation()]).await;
    let raw = mailpipe::message::rewrite::edit(&sample(1).raw, |h| {
        h.add("X-Mailpipe-Loop", "someone@example.net")
    });
    let email = mailpipe::message::Email::new(raw, "INBOX", vec![]);
    let d = t.run(&email, "loop").await;
    assert!(d.outgoing.is_empty());
    match status(&d, "vacation") {
        PluginStatus::Applied { actions, notes } => {
            assert_eq!(actions.len(), 1, "the plugin itself wanted to reply");
            assert!(notes[0].contains("loop marker"), "{notes:?}");
        }
        s => panic!("{s:?}"),
    }
}

#[tokio::test]
async fn vacation_reply_to_a_crlf_subject_is_sent_one_line() {
    // Default subject: "Auto: " + the inbound one, which decodes to CR/LF and a fake Bcc.
    let p = plugin(
        "vacation",
        "auto-responder",
        json!({"addresses": ["alice@example.com"], "body": "I am away."}),
    );
    let t = TestPipeline::new(vec![p]).await;
    let d = t.run(&crlf_subject::message(), "crlf").await;
    let out = crlf_subject::assert_one_clean_reply(&d, "vacation");
    assert_eq!(
        header_of(&out.raw, "Subject").as_deref(),
        Some(crlf_subject::SAFE_AUTO_SUBJECT)
    );
    assert_eq!(folders(&d), ["INBOX"]);
}

#[tokio::test]
async fn subject_tagger_keeps_a_crlf_subject_one_line() {
    let tagger = plugin(
        "tagger",
        "subject-tagger",
        json!({"tag": "[EXT]", "when_from_not": ["*@example.com"], "header": "X-External"}),
    );
    let t = TestPipeline::new(vec![tagger]).await;
    let d = t.run(&crlf_subject::message(), "crlf").await;
    assert!(
        matches!(status(&d, "tagger"), PluginStatus::Applied { .. }),
        "{:?}",
        d.reports
    );
    assert!(d.rewritten);
    assert_eq!(
        d.email.header("Subject").as_deref(),
        Some("[EXT] Urlaub? Bcc: victim@example.net injected body")
    );
    assert_eq!(d.email.header("X-External").as_deref(), Some("yes"));
    // No field was injected, and the body is still the original one (no injected empty line
    // moved header text into it).
    let (fields, body) = crlf_subject::fields_and_body(&d.email.raw);
    assert!(fields
        .iter()
        .all(|(name, _)| !name.eq_ignore_ascii_case("bcc")));
    let (_, original_body) = crlf_subject::fields_and_body(&crlf_subject::message().raw);
    assert_eq!(body, original_body);
}

fn filer() -> mailpipe::config::PluginConfig {
    plugin(
        "filer",
        "rules-filer",
        json!({"rules": [
            {"name": "rust", "folder": "Lists/rust-users", "conditions": [
                {"header": "List-Id", "op": "contains", "value": "rust-users.lists.example.org"}]},
            {"name": "news", "folder": "Newsletters", "match": "any", "conditions": [
                {"header": "Precedence", "op": "equals", "value": "bulk"},
                {"address": "from", "op": "regex", "value": "^newsletter@"}]},
            {"name": "invoices", "folder": "Finance/Invoices", "flags": ["$Invoice"], "conditions": [
                {"subject": true, "op": "contains", "value": "INVOICE"}]},
            {"name": "boss", "flags": ["\\Flagged"], "conditions": [
                {"address": "from", "op": "equals", "value": "dana@example.com"}]},
            {"name": "csv", "folder": "Reports", "conditions": [
                {"body": true, "op": "contains", "value": "quarterly"}]},
        ]}),
    )
}

#[tokio::test]
async fn rules_filer_files_and_flags() {
    let t = TestPipeline::new(vec![filer()]).await;
    assert_eq!(
        t.pipeline.plugins[0].info.needs,
        mailpipe::model::message::Needs::Bodies,
        "a body rule needs bodies"
    );
    let d = t.run(&sample(3), "3").await;
    assert_eq!(
        folders(&d),
        ["Lists/rust-users"],
        "file-into cancels the implicit keep"
    );
    let d = t.run(&sample(4), "4").await;
    assert_eq!(folders(&d), ["Newsletters"]);
    let d = t.run(&sample(7), "7").await;
    assert_eq!(folders(&d), ["Finance/Invoices"]);
    assert!(d.flags.contains(&"$Invoice".to_string()));
    let d = t.run(&sample(9), "9").await;
    assert_eq!(folders(&d), ["INBOX"]);
    assert!(d.flags.contains(&"\\Flagged".to_string()));
    let d = t.run(&sample(1), "1").await;
    assert_eq!(folders(&d), ["INBOX"]);
    assert!(d.flags.is_empty());
    // Flags already on the message stay (message 13 is \Flagged \Seen in cur/).
    let d = t.run(&sample(13), "13").await;
    assert!(d.flags.contains(&"\\Seen".to_string()) && d.flags.contains(&"\\Flagged".to_string()));
}

#[tokio::test]
async fn rules_filer_reports_a_bad_rule_by_name() {
    let p = plugin(
        "filer",
        "rules-filer",
        json!({"rules": [{"name": "broken", "folder": "X", "conditions": [
        {"subject": true, "op": "regex", "value": "(unclosed"}]}]}),
    );
    let t = TestPipeline::new(vec![p]).await;
    let filer = &t.pipeline.plugins[0];
    if filer.contract() == "0.1.0" {
        // Contract 0.1 has no way to say so at load: every message fails, and is kept.
        assert!(filer.config_problems.is_empty());
        let d = t.run(&sample(1), "1").await;
        match status(&d, "filer") {
            PluginStatus::Failed { error: f } => assert!(f.to_string().contains("broken"), "{f}"),
            s => panic!("a bad regex must fail the plugin, got {s:?}"),
        }
        assert_eq!(folders(&d), ["INBOX"], "the message is kept");
    } else {
        // From 0.2 the plugin says it when loaded, about the key, and `run` refuses to start.
        let [problem] = &filer.config_problems[..] else {
            panic!("one problem expected: {:?}", filer.config_problems)
        };
        assert_eq!(problem.key.as_deref(), Some("rules.0.conditions.0"));
        assert!(
            problem.message.contains("broken") && problem.message.contains("regex"),
            "{}",
            problem.message
        );
    }
}

#[tokio::test]
async fn subject_tagger_rewrites_and_later_plugins_see_it() {
    let tagger = plugin(
        "tagger",
        "subject-tagger",
        json!({"tag": "[EXT]", "when_from_not": ["*@example.com"], "header": "X-External"}),
    );
    // A filer rule on the tag proves the second plugin sees the rewritten subject.
    let filer = plugin(
        "filer",
        "rules-filer",
        json!({"rules": [{"name": "ext", "folder": "External", "conditions": [
        {"subject": true, "op": "contains", "value": "[EXT]"}]}]}),
    );
    let t = TestPipeline::new(vec![tagger, filer]).await;

    let d = t.run(&sample(8), "8").await;
    assert!(d.rewritten);
    assert_eq!(
        d.email.header("Subject").as_deref(),
        Some("[EXT] Grüße aus München – Rückmeldung")
    );
    assert_eq!(d.email.header("X-External").as_deref(), Some("yes"));
    assert_eq!(folders(&d), ["External"]);
    // Only the header block changed: the body is byte for byte the same.
    let body = |raw: &[u8]| {
        raw.windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| raw[i..].to_vec())
            .unwrap()
    };
    assert_eq!(body(&d.email.raw), body(&sample(8).raw));

    let d = t.run(&sample(9), "9").await; // from dana@example.com: internal
    assert!(!d.rewritten);
    assert_eq!(folders(&d), ["INBOX"]);
}

#[tokio::test]
async fn forwarder_redirects_with_resent_headers_when_allowed() {
    let mut fwd = plugin(
        "fwd",
        "forwarder",
        json!({"rules": [{"from": "dana@example.com", "to": ["alice@home.example.org"]}]}),
    );
    allow(&mut fwd, &["alice@home.example.org"]);
    let t = TestPipeline::new(vec![fwd]).await;
    let orig = sample(9);
    let d = t.run(&orig, "9").await;
    assert_eq!(d.outgoing.len(), 1, "{:?}", d.reports);
    let out = &d.outgoing[0];
    assert_eq!(out.kind, OutgoingKind::Redirect);
    assert_eq!(out.rcpt_to, ["alice@home.example.org"]);
    assert_eq!(out.mail_from, "alice@example.com");
    assert_eq!(
        header_of(&out.raw, "Resent-To").as_deref(),
        Some("<alice@home.example.org>")
    );
    assert_eq!(
        header_of(&out.raw, "Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    assert!(header_of(&out.raw, "X-Mailpipe-Loop").is_some());
    assert!(
        out.raw.ends_with(&orig.raw[orig.raw.len() - 200..]),
        "the original follows unchanged"
    );
    assert_eq!(folders(&d), ["INBOX"], "forwarding keeps the message");
    assert!(
        t.run(&sample(1), "1").await.outgoing.is_empty(),
        "only dana's mail is forwarded"
    );
}

#[tokio::test]
async fn forwarding_to_an_address_the_config_does_not_allow_is_refused() {
    // Same plugin, but allow_send_to left at its default ($sender only).
    let fwd = plugin(
        "fwd",
        "forwarder",
        json!({"rules": [{"from": "dana@example.com", "to": ["alice@home.example.org"]}]}),
    );
    let t = TestPipeline::new(vec![fwd]).await;
    let d = t.run(&sample(9), "9").await;
    assert!(d.outgoing.is_empty());
    match status(&d, "fwd") {
        PluginStatus::Failed { error: f } => assert!(f.to_string().contains("not allowed"), "{f}"),
        s => panic!("{s:?}"),
    }
}

#[tokio::test]
async fn attachment_forward_wraps_the_original() {
    let mut fwd = plugin(
        "fwd",
        "forwarder",
        json!({"rules": [{"from": "*@example.org", "to": ["archive@example.com"], "mode": "attachment", "note": "FYI"}]}),
    );
    allow(&mut fwd, &["*@example.com"]);
    let t = TestPipeline::new(vec![fwd]).await;
    let d = t.run(&sample(10), "10").await;
    let out = &d.outgoing[0];
    assert_eq!(out.kind, OutgoingKind::ForwardAttachment);
    let parsed = mail_parser::MessageParser::new().parse(&out.raw).unwrap();
    assert!(parsed.subject().unwrap().starts_with("Fwd: "));
    assert_eq!(parsed.body_text(0).unwrap().trim(), "FYI");
    let inner = parsed
        .attachments()
        .next()
        .and_then(|a| a.nested())
        .expect("message/rfc822 part");
    assert_eq!(
        inner.message_id(),
        mail_parser::MessageParser::new()
            .parse(&sample(10).raw)
            .unwrap()
            .message_id()
    );
}

#[tokio::test]
async fn stop_ends_the_pipeline_and_the_outgoing_cap_holds() {
    let stopper = plugin(
        "filer",
        "rules-filer",
        json!({"rules": [{"name": "lists", "folder": "Lists", "stop": true, "conditions": [
        {"header": "List-Id", "op": "exists"}]}]}),
    );
    let tagger = plugin(
        "tagger",
        "subject-tagger",
        json!({"tag": "[EXT]", "when_from_not": []}),
    );
    let t = TestPipeline::new(vec![stopper, tagger]).await;
    let d = t.run(&sample(3), "3").await;
    assert_eq!(d.stopped_by.as_deref(), Some("filer"));
    assert!(matches!(status(&d, "tagger"), PluginStatus::Skipped));
    assert!(!d.rewritten);
    let d = t.run(&sample(1), "1").await;
    assert!(d.rewritten, "no stop for other mail");

    let mut fwd = plugin(
        "fwd",
        "forwarder",
        json!({"rules": [
        {"to": ["a@example.com"]}, {"to": ["b@example.com"]}, {"to": ["c@example.com"]}]}),
    );
    allow(&mut fwd, &["*@example.com"]);
    let mut t = TestPipeline::new(vec![vacation(), fwd]).await;
    t.pipeline.limits.max_outgoing_per_message = 2;
    let d = t.run(&sample(1), "1").await;
    assert_eq!(d.outgoing.len(), 2, "reply + one forward, then the cap");
    match status(&d, "fwd") {
        PluginStatus::Applied { notes, .. } => {
            assert_eq!(notes.iter().filter(|n| n.contains("cap")).count(), 2)
        }
        s => panic!("{s:?}"),
    }
}

/// `account_sieve = true` (issue 23) in one running pipeline: each account's active script
/// from the store decides its mail; a new version takes effect on the very next message (no
/// restart, no reload); an account without an active script, and mail of no account, get no
/// decision from it; a script that stopped compiling fails the step, and the message stays.
#[tokio::test]
async fn each_accounts_active_script_decides_and_a_change_takes_effect_on_the_next_message() {
    use mailpipe::config::{PluginConfig, PluginKind};
    use mailpipe::message::Email;
    use mailpipe::state::scripts::{self, ScriptLimits};
    let plugin = PluginConfig {
        kind: PluginKind::AccountSieve,
        name: "rules".into(),
        path: "account-sieve".into(),
        limits: Default::default(),
        allow_send_to: Vec::new(),
        forward_automated: false,
        send_about_mail_since: Default::default(),
        fresh_instance: false,
        config: serde_json::json!({"script": "", "script_name": "account", "includes": {}, "global_includes": {}}),
    };
    let t = TestPipeline::new(vec![plugin]).await;
    let limits = ScriptLimits::default();
    let mail = Email::new(
        b"From: shop@example.net\r\nTo: alice@example.test\r\nSubject: invoice 7\r\nMessage-ID: <i7@x>\r\n\r\nPay.\r\n".to_vec(),
        "INBOX",
        vec![],
    );
    let file = |f: &str| {
        format!("require \"fileinto\";\nif header :contains \"subject\" \"invoice\" {{ fileinto \"{f}\"; }}\n")
    };
    // No script yet: nothing decided.
    let d = t.run(&mail, "imap:alice/INBOX/1/1").await;
    assert_eq!(folders(&d), ["INBOX"]);
    scripts::put(&t.store, "alice", "main", &file("Bills"), &limits).unwrap();
    scripts::put(&t.store, "bob", "main", &file("Bob-Bills"), &limits).unwrap();
    // Stored but not active: still nothing.
    assert_eq!(
        folders(&t.run(&mail, "imap:alice/INBOX/1/2").await),
        ["INBOX"]
    );
    scripts::set_active(&t.store, "alice", Some("main")).unwrap();
    scripts::set_active(&t.store, "bob", Some("main")).unwrap();
    let d = t.run(&mail, "imap:alice/INBOX/1/3").await;
    assert_eq!(folders(&d), ["Bills"]);
    // The decision names the script and its version (`explain`).
    let report = d.reports.iter().find(|r| r.plugin == "rules").unwrap();
    let label = report.script.as_deref().unwrap_or_default();
    assert!(
        label.starts_with("Sieve script \"main\" version "),
        "{label}"
    );
    assert!(label.ends_with(" of account alice"), "{label}");
    let brief = mailpipe::pipeline::decisions_brief(&d);
    assert!(
        brief[0].starts_with(&format!("rules ({label}): file-into Bills")),
        "{brief:?}"
    );
    // Each account its own script.
    assert_eq!(
        folders(&t.run(&mail, "imap:bob/INBOX/1/1").await),
        ["Bob-Bills"]
    );
    // Offline mail belongs to no account.
    assert_eq!(
        folders(&t.run(&mail, "offline:/tmp/maildir/x").await),
        ["INBOX"]
    );
    // A new version, the next message.
    scripts::put(&t.store, "alice", "main", &file("Receipts"), &limits).unwrap();
    assert_eq!(
        folders(&t.run(&mail, "imap:alice/INBOX/1/4").await),
        ["Receipts"]
    );
    // An include the active script needs is gone (deleted behind its back): the step fails,
    // the message stays where it is.
    scripts::put(&t.store, "alice", "lib", "stop;", &limits).unwrap();
    scripts::put(
        &t.store,
        "alice",
        "main",
        "require \"include\";\ninclude :personal \"lib\";\n",
        &limits,
    )
    .unwrap();
    assert!(matches!(
        status(&t.run(&mail, "imap:alice/INBOX/1/5").await, "rules"),
        PluginStatus::Applied { .. }
    ));
    scripts::delete(&t.store, "alice", "lib").unwrap();
    let d = t.run(&mail, "imap:alice/INBOX/1/6").await;
    assert_eq!(folders(&d), ["INBOX"]);
    match status(&d, "rules") {
        PluginStatus::Failed { error } => {
            assert!(error.to_string().contains("does not compile"), "{error}")
        }
        other => panic!("{other:?}"),
    } // That version fails again on the next message (what it gave is kept, not loaded again),
      // and the include put back is seen on the message after.
    assert!(matches!(
        status(&t.run(&mail, "imap:alice/INBOX/1/7").await, "rules"),
        PluginStatus::Failed { .. }
    ));
    scripts::put(&t.store, "alice", "lib", "stop;", &limits).unwrap();
    assert!(matches!(
        status(&t.run(&mail, "imap:alice/INBOX/1/8").await, "rules"),
        PluginStatus::Applied { .. }
    ));
}

/// Sieve's enotify (contract 0.3's `notify`) through the whole pipeline: a notification goes
/// out as a new message marked `Auto-Submitted: auto-notified`, with the null reverse-path,
/// to an address `allow_send_to` allows; an address it does not allow voids the result (the
/// message stays); mail that is automatic, or carries our loop marker, is never notified
/// about; the notification about a message is the same one however often it is decided.
#[tokio::test]
async fn sieve_notify_sends_a_marked_notification_within_the_host_rules() {
    use mailpipe::config::{PluginConfig, PluginKind};
    use mailpipe::message::Email;
    let sieve = |script: &str| PluginConfig {
        kind: PluginKind::Sieve,
        name: "rules".into(),
        path: "rules.sieve".into(),
        limits: Default::default(),
        allow_send_to: vec![
            mailpipe::config::RecipientPattern::parse("pager@example.test").unwrap(),
        ],
        forward_automated: false,
        send_about_mail_since: Default::default(),
        fresh_instance: false,
        config: serde_json::json!({"script": script, "script_name": "rules", "includes": {}, "global_includes": {}}),
    };
    let notify = r#"require ["enotify", "variables"];
        if header :matches "subject" "*" { set "s" "${1}"; }
        notify :importance "1" :message "Boss: ${s}" "mailto:pager@example.test";"#;
    let t = TestPipeline::new(vec![sieve(notify)]).await;
    let mail = |extra: &str| {
        Email::new(
            format!("From: boss@example.net\r\nTo: alice@example.test\r\n{extra}Subject: budget\r\nMessage-ID: <b@x>\r\n\r\nNow.\r\n").into_bytes(),
            "INBOX",
            vec![],
        )
    };
    let d = t.run(&mail(""), "n1").await;
    assert_eq!(folders(&d), ["INBOX"], "notify keeps the message");
    assert_eq!(d.outgoing.len(), 1, "{:?}", d.reports);
    let out = &d.outgoing[0];
    assert_eq!(out.kind, OutgoingKind::Notify);
    assert_eq!(out.mail_from, "", "the null reverse-path");
    assert_eq!(out.rcpt_to, ["pager@example.test"]);
    let raw = String::from_utf8_lossy(&out.raw);
    for field in [
        "To: <pager@example.test>\r\n",
        "Subject: Boss: budget\r\n",
        "Auto-Submitted: auto-notified\r\n",
        "X-Mailpipe-Loop: ",
        "Importance: high\r\n",
    ] {
        assert!(raw.contains(field), "{field:?} in\n{raw}");
    }
    assert!(!raw.contains("In-Reply-To"), "{raw}");
    // Decided again (a crash before the commit): the same outbox id, so it is sent once.
    let again = t.run(&mail(""), "n1").await;
    assert_eq!(again.outgoing[0].id, out.id);
    // Never about automatic mail or mail with our loop marker.
    for extra in [
        "Auto-Submitted: auto-replied\r\n",
        "X-Mailpipe-Loop: alice@example.test\r\n",
    ] {
        let d = t.run(&mail(extra), "n2").await;
        assert!(d.outgoing.is_empty(), "{extra}");
        match status(&d, "rules") {
            PluginStatus::Applied { notes, .. } => {
                assert!(notes.iter().any(|n| n.starts_with("not sent")), "{notes:?}")
            }
            s => panic!("{s:?}"),
        }
    }
    // An address the config does not allow: the plugin's result is void, the message stays.
    let t = TestPipeline::new(vec![sieve(
        "require \"enotify\"; notify \"mailto:stranger@example.org\"; discard;",
    )])
    .await;
    let d = t.run(&mail(""), "n3").await;
    assert!(d.outgoing.is_empty());
    assert_eq!(folders(&d), ["INBOX"]);
    match status(&d, "rules") {
        PluginStatus::Failed { error } => {
            assert!(error.to_string().contains("not allowed"), "{error}")
        }
        s => panic!("{s:?}"),
    }
}
