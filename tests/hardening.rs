//! Hardening, tried as an attacker would: hostile plugins (tests/../plugins/misbehaving/hostile)
//! that block, fill their state, bomb flags and headers or shout huge errors, and hostile
//! inbound mail (header injection through encoded words, odd header names, broken header
//! blocks) through the stock plugins. Each attack is bounded or contained, with an error that
//! names the limit, and the message is never lost. See docs/SECURITY.md.

mod common;

use common::*;
use mailpipe::config::PluginLimits;
use mailpipe::message::rewrite::HeaderBlock;
use mailpipe::message::Email;
use mailpipe::pipeline::{Decision, PluginStatus};
use mailpipe::plugin::CallFailure;
use serde_json::json;
use std::time::Instant;

fn hostile(attack: &str) -> mailpipe::config::PluginConfig {
    plugin("hostile", "misbehave-hostile", json!({ "attack": attack }))
}

fn failure(d: &Decision) -> CallFailure {
    match status(d, "hostile") {
        PluginStatus::Failed { error } => error,
        s => panic!("the attack was not stopped: {s:?}"),
    }
}

/// The message is kept where it was, untouched, and nothing goes out.
fn kept_untouched(d: &Decision, original: &Email) {
    assert_eq!(folders(d), ["INBOX"]);
    assert_eq!(d.email.raw, original.raw);
    assert!(d.outgoing.is_empty());
}

#[tokio::test]
async fn a_bare_trap_says_what_and_where_in_the_plugin() {
    let t = TestPipeline::new(vec![hostile("unreachable")]).await;
    let d = t.run(&sample(1), "m1").await;
    let CallFailure::Trap(text) = failure(&d) else {
        panic!("{:?}", failure(&d))
    };
    // The trap in words, and the plugin's own functions (demangled, without hashes).
    assert!(
        text.starts_with("wasm `unreachable` instruction executed (in "),
        "{text}"
    );
    assert!(
        text.contains("misbehave_hostile::deep_in_the_plugin"),
        "{text}"
    );
    assert!(!text.contains("_ZN") && !text.contains("_RN"), "{text}");
    kept_untouched(&d, &sample(1));
}

#[tokio::test]
async fn a_plugin_blocked_in_a_wasi_sleep_is_cut_off_at_its_deadline() {
    let mut p = hostile("sleep");
    p.limits.timeout_ms = 300;
    let t = TestPipeline::new(vec![p]).await;
    let started = Instant::now();
    let d = t.run(&sample(1), "m1").await;
    assert_eq!(failure(&d), CallFailure::Timeout(300));
    // The plugin asked for 12 s; the deadline ends the call long before.
    assert!(started.elapsed().as_secs() < 6, "{:?}", started.elapsed());
    kept_untouched(&d, &sample(1));
}

#[tokio::test]
async fn plugin_state_has_a_total_limit_per_plugin() {
    let mut p = hostile("kv-fill");
    p.limits = PluginLimits {
        kv_max_bytes: 20 << 20,
        ..Default::default()
    };
    let t = TestPipeline::new(vec![p]).await;
    // Each message adds 200 values of 64 KiB (12.8 MiB): the first fits, the second not.
    let first = t.run_commit(&sample(1), "m1").await;
    assert!(matches!(
        status(&first, "hostile"),
        PluginStatus::Applied { .. }
    ));
    let used = t.store.kv_usage("hostile");
    assert_eq!(used.keys, 200);
    assert!(used.bytes > 200 * 65536, "{used:?}");
    let second = t.run_commit(&sample(2), "m2").await;
    match failure(&second) {
        CallFailure::Refused(why) => {
            assert!(why.contains("kv_max_bytes = 20971520"), "{why}")
        }
        f => panic!("{f:?}"),
    }
    assert_eq!(t.store.kv_usage("hostile"), used, "nothing of m2 was kept");
}

#[tokio::test]
async fn plugin_state_has_a_key_count_limit() {
    let mut p = hostile("kv-fill");
    p.limits.kv_max_keys = 150;
    let t = TestPipeline::new(vec![p]).await;
    let d = t.run_commit(&sample(1), "m1").await;
    match failure(&d) {
        CallFailure::Refused(why) => assert!(why.contains("kv_max_keys = 150"), "{why}"),
        f => panic!("{f:?}"),
    }
    assert_eq!(t.store.kv_usage("hostile").keys, 0);
}

#[tokio::test]
async fn huge_kv_delete_keys_are_refused_with_the_hosts_reason() {
    let t = TestPipeline::new(vec![hostile("kv-delete-big")]).await;
    let d = t.run(&sample(1), "m1").await;
    match failure(&d) {
        CallFailure::Refused(why) => assert!(why.contains("kv-delete"), "{why}"),
        f => panic!("{f:?}"),
    }
}

#[tokio::test]
async fn a_flag_bomb_is_refused_as_a_whole() {
    let t = TestPipeline::new(vec![hostile("flags")]).await;
    let d = t.run(&sample(1), "m1").await;
    match failure(&d) {
        CallFailure::InvalidAction { reason, .. } => {
            assert!(reason.contains("80000 flags"), "{reason}")
        }
        f => panic!("{f:?}"),
    }
    kept_untouched(&d, &sample(1));
}

#[tokio::test]
async fn reply_headers_are_counted() {
    let t = TestPipeline::new(vec![hostile("reply-headers")]).await;
    let d = t.run(&sample(1), "m1").await;
    match failure(&d) {
        CallFailure::InvalidAction { reason, .. } => {
            assert!(reason.contains("40000 extra headers"), "{reason}")
        }
        f => panic!("{f:?}"),
    }
    assert!(d.outgoing.is_empty());
}

#[tokio::test]
async fn a_huge_error_text_is_truncated() {
    let t = TestPipeline::new(vec![hostile("big-error")]).await;
    let d = t.run(&sample(1), "m1").await;
    match failure(&d) {
        CallFailure::Returned(text) => {
            assert!(text.len() < 2200, "{} bytes kept", text.len());
            assert!(text.contains("more bytes"), "the cut is said");
        }
        f => panic!("{f:?}"),
    }
}

#[tokio::test]
async fn folder_names_of_the_mail_stores_own_files_are_refused() {
    let t = TestPipeline::new(vec![hostile("reserved-folder")]).await;
    let d = t.run(&sample(1), "m1").await;
    match failure(&d) {
        CallFailure::InvalidAction { index, reason } => {
            assert_eq!(index, 1);
            assert!(reason.contains("dovecot-keywords"), "{reason}");
        }
        f => panic!("{f:?}"),
    }
    kept_untouched(&d, &sample(1));
}

#[tokio::test]
async fn the_wasi_wall_clock_is_the_test_clock() {
    // TestPipeline fixes the clock at 1,795,737,600,000 ms.
    let t = TestPipeline::new(vec![hostile("wasi-clock")]).await;
    let d = t.run(&sample(1), "m1").await;
    assert!(
        d.flags.iter().any(|f| f == "$Secs1795737600"),
        "{:?}",
        d.flags
    );
}

/// Inbound mail from a stranger, answered by the stock auto-responder.
fn vacation() -> mailpipe::config::PluginConfig {
    plugin(
        "vacation",
        "auto-responder",
        json!({"addresses": ["alice@example.com"], "body": "I am away."}),
    )
}

fn inbound(headers: &str) -> Email {
    Email::new(
        format!(
            "From: Bob <bob@example.org>\r\nTo: alice@example.com\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n{headers}\r\n\r\nHello\r\n"
        )
        .into_bytes(),
        "INBOX",
        vec![],
    )
}

fn b64(s: &str) -> String {
    mailpipe::message::encode::base64(s.as_bytes())
}

/// Every header line of an outgoing message's top block: no CR inside, valid names only.
fn header_names(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap();
    for line in head.split("\r\n") {
        assert!(!line.contains('\r') && !line.contains('\n') && !line.contains('\0'));
    }
    HeaderBlock::parse(raw).names()
}

#[tokio::test]
async fn encoded_words_cannot_inject_headers_into_replies() {
    let injected = "<x@y>\r\nX-Injected: 1\r\n\r\nbody";
    let msg = inbound(&format!(
        "Message-ID: =?UTF-8?B?{}?=\r\nReferences: =?UTF-8?B?{}?=\r\nSubject: =?UTF-8?B?{}?=",
        b64(injected),
        b64("<a@b> <c@d>\r\nBcc: victim@example.net"),
        b64("Hi\r\nBcc: victim@example.net\r\n\r\ninjected body")
    ));
    let t = TestPipeline::new(vec![vacation()]).await;
    let d = t.run(&msg, "m1").await;
    assert_eq!(d.outgoing.len(), 1, "{:?}", d.reports);
    let raw = &d.outgoing[0].raw;
    let names = header_names(raw);
    for bad in ["X-Injected", "Bcc"] {
        assert!(
            !names.iter().any(|n| n.eq_ignore_ascii_case(bad)),
            "{names:?}"
        );
    }
    let reply = Email::new(raw.clone(), "INBOX", vec![]);
    assert_eq!(
        reply.header("In-Reply-To"),
        None,
        "the invalid msg-id is dropped"
    );
    let subject = reply.header("Subject").unwrap();
    assert!(subject.contains("Bcc: victim"), "kept as text: {subject}");
    assert!(!subject.contains('\n'));
    // The loop marker and Auto-Submitted are real header fields, not pushed into the body.
    assert!(names.iter().any(|n| n == "X-Mailpipe-Loop"));
    assert!(names.iter().any(|n| n == "Auto-Submitted"));
}

#[tokio::test]
async fn valid_threading_ids_survive_the_cleaning() {
    let msg =
        inbound("Message-ID: <m1@example.org>\r\nReferences: <r0@x> junk <r1@y>\r\nSubject: Plans");
    let t = TestPipeline::new(vec![vacation()]).await;
    let d = t.run(&msg, "m1").await;
    let reply = Email::new(d.outgoing[0].raw.clone(), "INBOX", vec![]);
    assert_eq!(
        reply.header("In-Reply-To").as_deref(),
        Some("<m1@example.org>")
    );
    assert_eq!(
        reply.header("References").as_deref(),
        Some("<r0@x> <r1@y> <m1@example.org>")
    );
}

#[tokio::test]
async fn a_non_ascii_header_name_does_not_stop_an_auto_responder() {
    let raw = b"From: bob@example.org\r\nTo: alice@example.com\r\nSubject: hi\r\nAbc\xff: x\r\nList\xc3\xa9: y\r\n\r\nbody\r\n".to_vec();
    let msg = Email::new(raw, "INBOX", vec![]);
    let t = TestPipeline::new(vec![vacation()]).await;
    let d = t.run(&msg, "m1").await;
    assert_eq!(d.failed_plugins().count(), 0, "{:?}", d.reports);
    assert_eq!(d.outgoing.len(), 1);
}

#[tokio::test]
async fn precedence_with_a_comment_is_still_bulk() {
    // A plugin that answers everything: the host's loop guard alone must stop it.
    let t = TestPipeline::new(vec![hostile("reply-always")]).await;
    let d = t.run(&inbound("Subject: hi"), "m0").await;
    assert_eq!(d.outgoing.len(), 1, "personal mail is answered");
    for h in [
        "Precedence: bulk (mass mailing)",
        "Precedence: (list) junk",
        "Auto-Submitted: auto-replied (vacation)",
    ] {
        let d = t
            .run(&inbound(&format!("Subject: news\r\n{h}")), "m1")
            .await;
        assert!(d.outgoing.is_empty(), "{h}");
    }
}

#[tokio::test]
async fn reply_bodies_and_redirected_originals_are_crlf_on_the_wire() {
    let mut fwd = plugin(
        "fwd",
        "forwarder",
        json!({"rules": [{"to": ["boss@example.com"], "mode": "redirect"}]}),
    );
    allow(&mut fwd, &["boss@example.com"]);
    let msg = Email::new(
        b"From: bob@example.org\nTo: alice@example.com\nSubject: lf\n\nline1\nline2\rline3\n"
            .to_vec(),
        "INBOX",
        vec![],
    );
    let t = TestPipeline::new(vec![fwd]).await;
    let d = t.run(&msg, "m1").await;
    assert_eq!(d.outgoing.len(), 1, "{:?}", d.reports);
    let raw = &d.outgoing[0].raw;
    for (i, b) in raw.iter().enumerate() {
        if *b == b'\n' {
            assert_eq!(raw[i - 1], b'\r', "bare LF at {i}");
        }
        if *b == b'\r' {
            assert_eq!(raw.get(i + 1), Some(&b'\n'), "bare CR at {i}");
        }
    }
    assert!(raw_text(raw).ends_with("line1\r\nline2\r\nline3\r\n"));
}

/// The header block has one definition: what a plugin sees as fields is exactly what a rewrite
/// can reach, on well-formed and broken header blocks alike.
#[test]
fn the_view_and_the_rewrite_agree_on_the_header_block() {
    let cases: &[&[u8]] = &[
        b"Subject: a\r\nX-Drop: 1\r\n\r\nbody\r\n",
        b"junk first line\r\nX-Drop: 1\r\nSubject: a\r\n\r\nbody\r\n",
        b"From mbox-line Mon Jan 1\nX-Drop: 1\n\nbody\n",
        b"Subject: a\r\nX-Drop: 1\r\n\rbody without a proper separator\r\n",
        b"Subject: a\r\nX-Drop: 1\r\n \r\nX-After: blank-ish line\r\n\r\nbody",
        b"Subject: a\r\nstray line\r\nX-Drop: 1\r\nBad Name: 2\r\n\r\n",
        b"X-Drop: 1",
        b"no header block at all\r\n",
        b"Abc\xff: x\r\nX-Drop: 1\r\n\r\nb",
    ];
    for raw in cases {
        let email = Email::new(raw.to_vec(), "INBOX", vec![]);
        let view =
            mailpipe::message::view::to_view(&email, mailpipe::model::message::Needs::Bodies);
        let names: Vec<String> = view.headers.iter().map(|h| h.name.clone()).collect();
        assert_eq!(
            names,
            HeaderBlock::parse(raw).names(),
            "{:?}",
            raw_text(raw)
        );
        // Removing a field the view shows removes it from the view.
        let removed = mailpipe::message::rewrite::edit(raw, |h| h.remove("X-Drop"));
        let after = mailpipe::message::view::to_view(
            &Email::new(removed.clone(), "INBOX", vec![]),
            mailpipe::model::message::Needs::Bodies,
        );
        assert!(
            !after
                .headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case("X-Drop")),
            "{:?} -> {:?}",
            raw_text(raw),
            raw_text(&removed)
        );
        // A set header is seen once, with its value, and the body does not change.
        let set = mailpipe::message::rewrite::edit(raw, |h| h.set("X-Set", "v"));
        let after = mailpipe::message::view::to_view(
            &Email::new(set.clone(), "INBOX", vec![]),
            mailpipe::model::message::Needs::Bodies,
        );
        let values: Vec<&str> = after
            .headers
            .iter()
            .filter(|h| h.name == "X-Set")
            .map(|h| h.value.as_str())
            .collect();
        assert_eq!(values, ["v"], "{:?} -> {:?}", raw_text(raw), raw_text(&set));
        assert_eq!(
            after.text_body,
            view.text_body,
            "{:?} -> {:?}",
            raw_text(raw),
            raw_text(&set)
        );
    }
}

#[tokio::test]
async fn a_component_for_another_contract_version_is_refused_by_name() {
    let runtime = mailpipe::plugin::PluginRuntime::new(64, None).unwrap();
    let settings = plugin("future", "misbehave-future-contract", json!({}));
    let err = match runtime.load(&settings, None).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a 0.9.0 component loaded"),
    };
    assert!(err.contains("mailpipe:plugin@0.9.0"), "{err}");
    assert!(err.contains("supports mailpipe:plugin@0.1.0"), "{err}");
}

#[tokio::test]
async fn a_from_with_a_comment_is_answered_at_its_address() {
    let msg = Email::new(
        b"From: bob@example.org (Bob Builder)\r\nTo: alice@example.com\r\nSubject: hi\r\n\r\nHello\r\n".to_vec(),
        "INBOX",
        vec![],
    );
    let t = TestPipeline::new(vec![vacation()]).await;
    let d = t.run(&msg, "m1").await;
    assert_eq!(d.failed_plugins().count(), 0, "{:?}", d.reports);
    assert_eq!(d.outgoing.len(), 1);
    assert_eq!(d.outgoing[0].rcpt_to, ["bob@example.org"]);
}

#[tokio::test]
async fn an_unusable_sender_address_suppresses_the_reply_not_the_plugin() {
    let msg = Email::new(
        b"From: \"x\" <not an address>\r\nTo: alice@example.com\r\nSubject: hi\r\n\r\nHello\r\n"
            .to_vec(),
        "INBOX",
        vec![],
    );
    let t = TestPipeline::new(vec![hostile("reply-always")]).await;
    let d = t.run(&msg, "m1").await;
    assert_eq!(d.failed_plugins().count(), 0, "{:?}", d.reports);
    assert!(d.outgoing.is_empty());
}

#[tokio::test]
async fn a_redirect_starts_with_a_field_and_bare_crs_open_no_field() {
    let mut fwd = plugin(
        "fwd",
        "forwarder",
        json!({"rules": [{"to": ["boss@example.com"], "mode": "redirect"}]}),
    );
    allow(&mut fwd, &["boss@example.com"]);
    let msg = Email::new(
        b"From mbox-line Mon Jan 1\r\nFrom: bob@example.org\r\nTo: alice@example.com\r\nSubject: a\rBcc: victim@example.net\r\n\r\nbody\r\n".to_vec(),
        "INBOX",
        vec![],
    );
    let t = TestPipeline::new(vec![fwd]).await;
    let d = t.run(&msg, "m1").await;
    assert_eq!(d.outgoing.len(), 1, "{:?}", d.reports);
    let raw = &d.outgoing[0].raw;
    assert!(raw.starts_with(b"Resent-From: "), "{}", raw_text(raw));
    let names = header_names(raw);
    assert!(
        !names.iter().any(|n| n.eq_ignore_ascii_case("Bcc")),
        "{names:?}"
    );
    assert!(raw_text(raw).contains("Subject: a Bcc: victim@example.net\r\n"));
}

#[tokio::test]
async fn expired_state_is_purged_when_a_plugin_reaches_its_limit() {
    // The stock auto-responder keeps one entry per sender for `days`.
    let mut v = plugin(
        "vacation",
        "auto-responder",
        json!({"addresses": ["alice@example.com"], "body": "away", "days": 1}),
    );
    v.limits.kv_max_keys = 2;
    let mut t = TestPipeline::new(vec![v]).await;
    let from = |who: &str| {
        Email::new(
            format!("From: {who}@example.org\r\nTo: alice@example.com\r\nSubject: hi\r\n\r\nx\r\n")
                .into_bytes(),
            "INBOX",
            vec![],
        )
    };
    for who in ["ann", "ben"] {
        let d = t.run_commit(&from(who), who).await;
        assert_eq!(d.outgoing.len(), 1, "{:?}", d.reports);
    }
    assert_eq!(t.store.kv_usage("vacation").keys, 2);
    // Two days later both entries have expired: a third sender is answered, not refused.
    t.pipeline.clock = mailpipe::plugin::Clock::Fixed(1_795_737_600_000 + 2 * 86_400_000);
    let d = t.run_commit(&from("cid"), "cid").await;
    assert_eq!(d.failed_plugins().count(), 0, "{:?}", d.reports);
    assert_eq!(d.outgoing.len(), 1);
    assert_eq!(t.store.kv_usage("vacation").keys, 1);
}

/// Plugin state is per account: the same sender writing to two accounts of one process gets
/// a vacation reply from each (the auto-responder remembers whom it answered), and what a
/// plugin kept before state was per account is copied once into each account's own (a
/// sender answered before the upgrade is not answered again by any account).
#[tokio::test]
async fn each_account_has_its_own_plugin_state_and_a_copy_of_the_shared_one() {
    let v = plugin(
        "vacation",
        "auto-responder",
        json!({"addresses": ["alice@example.com", "bob@example.com"], "body": "away", "days": 1}),
    );
    let t = TestPipeline::new(vec![v]).await;
    // As a daemon does before it works on an account (a shared store fences the commits of
    // accounts this process does not own).
    for account in ["alice", "bob"] {
        assert!(t.store.claim_account(account).unwrap());
    }
    let mail = |from: &str, to: &str| {
        Email::new(
            format!("From: {from}\r\nTo: {to}\r\nSubject: hi\r\n\r\nx\r\n").into_bytes(),
            "INBOX",
            vec![],
        )
    };
    // Before per-account state: an offline run answered ann (the plugin's own namespace).
    let d = t
        .run_commit(&mail("ann@example.org", "alice@example.com"), "offline:a/1")
        .await;
    assert_eq!(d.outgoing.len(), 1, "{:?}", d.reports);
    // ann again, now to two accounts: neither answers (their copies remember her) ...
    for (account, to) in [("alice", "alice@example.com"), ("bob", "bob@example.com")] {
        let key = format!("imap:{account}/INBOX/1/1");
        let d = t.run_commit(&mail("ann@example.org", to), &key).await;
        assert_eq!(
            d.outgoing.len(),
            0,
            "{account} answered ann twice: {:?}",
            d.reports
        );
    }
    // ... but a new sender is answered by each account once.
    for (account, to) in [("alice", "alice@example.com"), ("bob", "bob@example.com")] {
        for uid in [2, 3] {
            let key = format!("imap:{account}/INBOX/1/{uid}");
            let d = t.run_commit(&mail("cid@example.org", to), &key).await;
            assert_eq!(
                d.outgoing.len(),
                (uid == 2) as usize,
                "{account} #{uid}: {:?}",
                d.reports
            );
        }
    }
    // What the plugin keeps now counts per account; the old entry stays with the plugin.
    assert_eq!(t.store.kv_usage("vacation").keys, 1);
    assert_eq!(t.store.kv_usage("vacation\u{1}alice").keys, 2);
    assert_eq!(t.store.kv_usage("vacation\u{1}bob").keys, 2);
}

/// The notes of every plugin that ran on `d` (suppressed mail and the like).
fn notes_of(d: &Decision) -> Vec<String> {
    d.reports
        .iter()
        .flat_map(|r| match &r.status {
            PluginStatus::Applied { notes, .. } => notes.clone(),
            _ => Vec::new(),
        })
        .collect()
}

/// No automatic mail about old mail: a message that arrived before the plugin was enabled
/// for its source is not answered (the reply is noted as not sent), one that arrived after is;
/// an explicit date moves the bound, and "all" lifts it.
#[tokio::test]
async fn no_reply_about_mail_that_arrived_before_the_plugin_was_enabled() {
    use mailpipe::config::MailSince;
    const NOW: u64 = 1_795_737_600_000; // TestPipeline's fixed clock
    let letter = |who: &str, arrived: u64| {
        Email::new(
            format!("From: {who}@example.org\r\nTo: alice@example.com\r\nSubject: hi\r\n\r\nx\r\n")
                .into_bytes(),
            "INBOX",
            vec![],
        )
        .arrived_at(Some(arrived))
    };
    let t = TestPipeline::new(vec![vacation()]).await;
    assert!(t.pipeline.enable_for("imap:work").unwrap(), "first time");
    assert!(
        !t.pipeline.enable_for("imap:work").unwrap(),
        "recorded once"
    );
    let old = t
        .run(&letter("old", NOW - 86_400_000), "imap:work/INBOX/1/1")
        .await;
    assert!(old.outgoing.is_empty(), "{:?}", old.outgoing);
    let notes = notes_of(&old).join("\n");
    assert!(
        notes.contains("before this plugin was enabled here"),
        "{notes}"
    );
    let new = t
        .run(&letter("new", NOW + 1000), "imap:work/INBOX/1/2")
        .await;
    assert_eq!(new.outgoing.len(), 1, "{:?}", notes_of(&new));
    // The sender of old mail writes again: answered, since the vacation's memory of the reply
    // it was not let send is not kept. (Committed as the account's owner, on either store.)
    assert!(t.store.claim_account("work").unwrap());
    let old = t
        .run_commit(&letter("again", NOW - 86_400_000), "imap:work/INBOX/1/5")
        .await;
    assert!(old.outgoing.is_empty() && old.kv.is_empty(), "{:?}", old.kv);
    assert!(notes_of(&old).join("\n").contains("were not kept"));
    let again = t
        .run_commit(&letter("again", NOW + 2000), "imap:work/INBOX/1/6")
        .await;
    assert_eq!(again.outgoing.len(), 1, "{:?}", notes_of(&again));
    // Unknown arrival (a file handed to `mailpipe test`): not held back.
    let unknown = Email::new(
        b"From: who@example.org\r\nTo: alice@example.com\r\nSubject: hi\r\n\r\nx\r\n".to_vec(),
        "INBOX",
        vec![],
    );
    assert_eq!(
        t.run(&unknown, "imap:work/INBOX/1/3").await.outgoing.len(),
        1
    );

    // A bound of its own: ten days back.
    let mut v = vacation();
    v.send_about_mail_since = MailSince::Time(NOW - 10 * 86_400_000);
    let t = TestPipeline::new(vec![v]).await;
    t.pipeline.enable_for("imap:work").unwrap();
    let week_old = t
        .run(&letter("week", NOW - 7 * 86_400_000), "imap:work/INBOX/1/1")
        .await;
    assert_eq!(week_old.outgoing.len(), 1, "{:?}", notes_of(&week_old));
    let month_old = t
        .run(
            &letter("month", NOW - 30 * 86_400_000),
            "imap:work/INBOX/1/2",
        )
        .await;
    assert!(month_old.outgoing.is_empty());
    assert!(notes_of(&month_old)
        .join("\n")
        .contains("send_about_mail_since"));

    // "all": the user asked for it.
    let mut v = vacation();
    v.send_about_mail_since = MailSince::All;
    let t = TestPipeline::new(vec![v]).await;
    t.pipeline.enable_for("imap:work").unwrap();
    let ancient = t.run(&letter("ancient", 0), "imap:work/INBOX/1/1").await;
    assert_eq!(ancient.outgoing.len(), 1);
}

/// The auto-responder answers only inside its `start`..`end` period (the end day whole).
#[tokio::test]
async fn the_auto_responder_answers_only_inside_its_period() {
    // TestPipeline's clock: 2026-11-27 00:00 UTC.
    let cases = [
        (json!({"start": "2026-11-28"}), false, "before start"),
        (
            json!({"start": "2026-11-20", "end": "2026-11-26"}),
            false,
            "after the end day",
        ),
        (
            json!({"start": "2026-11-27", "end": "2026-11-27"}),
            true,
            "on the only day",
        ),
        (
            json!({"end": "2026-11-26T23:59:59Z"}),
            false,
            "a second after the end",
        ),
        (
            json!({"start": "2026-11-27T01:00:00+02:00"}),
            true,
            "started in another zone",
        ),
        (json!({}), true, "no period"),
    ];
    for (period, answers, what) in cases {
        let mut config = json!({"addresses": ["alice@example.com"], "body": "away"});
        config
            .as_object_mut()
            .unwrap()
            .extend(period.as_object().unwrap().clone());
        let t = TestPipeline::new(vec![plugin("vacation", "auto-responder", config)]).await;
        let d = t.run(&inbound("Subject: hi"), "m1").await;
        assert_eq!(
            d.outgoing.len(),
            usize::from(answers),
            "{what}: {:?}",
            d.reports
        );
    }
}
