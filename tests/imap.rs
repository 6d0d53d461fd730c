//! End-to-end against the real Dovecot and Postfix of tests/mailstack: messages seeded into a
//! mailbox over IMAP are filed, flagged and rewritten as the plugins say (checked over IMAP),
//! replies and forwards go through Postfix into the right users' mailboxes, a second run does
//! nothing, and TLS is verified. Each test works in mailboxes of its own.

mod common;

use common::mailstack::*;
use mailpipe::run::{run_accounts_once, RunOptions};
use std::time::Duration;

const OPTS: RunOptions = RunOptions {
    dry_run: false,
    json: true,
    retry_failed: false,
    jobs: 1,
};

fn pipeline_toml(folder_root: &str) -> String {
    plugin_toml(
        "filer",
        "rules-filer",
        &format!(
            r#"[plugin.config]
rules = [
  {{ name = "list", folder = "{folder_root}/Listen-Ü", conditions = [ {{ header = "List-Id", op = "exists" }} ] }},
  {{ name = "boss", flags = ["\\Flagged", "$Boss"], conditions = [ {{ address = "from", op = "equals", value = "dana@example.test" }} ] }},
]"#
        ),
    ) + &plugin_toml("tagger", "subject-tagger", "[plugin.config]\ntag = \"[EXT]\"\nwhen_from_not = [\"*@example.test\"]")
        + &plugin_toml("vacation", "auto-responder", "send_about_mail_since = \"all\"\n[plugin.config]\naddresses = [\"alice@example.test\"]\nsubject = \"Away\"\nbody = \"I am away.\"")
}

#[tokio::test]
async fn files_flags_rewrites_and_replies_over_imap_and_smtp() {
    let stack = Stack::get();
    let tag = unique("msg");
    let (mut s, box_) = fresh_mailbox(&stack, "alice", "T-main").await;
    // 1: from bob (internal, direct) -> reply; 2: list mail from outside -> tagged + filed;
    // 3: from dana -> flagged, kept; 4: bulk -> tagged, kept, no reply.
    append(
        &mut s,
        &box_,
        &message(
            "Bob <bob@example.test>",
            "alice@example.test",
            &format!("lunch {tag}"),
            &format!("1.{tag}@example.test"),
            "",
        ),
    )
    .await;
    append(
        &mut s,
        &box_,
        &message(
            "Hiro <hiro@example.net>",
            "rust-users@lists.example.org",
            &format!("borrowck {tag}"),
            &format!("2.{tag}@example.net"),
            "List-Id: <rust-users.lists.example.org>\r\nPrecedence: list\r\n",
        ),
    )
    .await;
    append(
        &mut s,
        &box_,
        &message(
            "Dana <dana@example.test>",
            "alice@example.test",
            &format!("contract {tag}"),
            &format!("3.{tag}@example.test"),
            "",
        ),
    )
    .await;
    append(
        &mut s,
        &box_,
        &message(
            "News <newsletter@example.net>",
            "alice@example.test",
            &format!("weekly {tag}"),
            &format!("4.{tag}@example.net"),
            "Precedence: bulk\r\n",
        ),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[state]\ndir = \"{}\"\n{}{}",
        dir.path().join("state").display(),
        stack.account_toml("alice", &[&box_], ""),
        pipeline_toml(&box_)
    );
    let cfg = config(dir.path(), &text);
    let r = run_accounts_once(&cfg, &OPTS).await.unwrap();
    assert_eq!((r.processed, r.plugin_failures), (4, 0));
    // bob exists; dana@example.test does not, so Postfix refuses that reply for good (550):
    // it is kept as failed and reported, never retried or dropped silently.
    assert_eq!(r.outbox.sent.len(), 1, "{:?}", r.outbox);
    assert_eq!(r.outbox.failed.len(), 1, "{:?}", r.outbox);
    assert!(r.outbox.failed[0].1.contains("550"), "{:?}", r.outbox);

    let inbox = list(&mut s, &box_).await;
    assert_eq!(inbox.len(), 3, "{inbox:#?}");
    // A UTF-8 folder name, created and filled through modified UTF-7 on the wire.
    let lists = list(&mut s, &format!("{box_}/Listen-Ü")).await;
    assert_eq!(lists.len(), 1);
    assert!(
        lists[0]
            .2
            .contains(&format!("Subject: [EXT] borrowck {tag}")),
        "rewritten: {}",
        lists[0].2
    );
    assert!(lists[0]
        .2
        .contains(&format!("Message-ID: <2.{tag}@example.net>")));
    let dana = inbox
        .iter()
        .find(|(_, _, h)| h.contains(&format!("contract {tag}")))
        .unwrap();
    assert!(
        dana.1.iter().any(|f| f.contains("Flagged")) && dana.1.iter().any(|f| f.contains("$Boss")),
        "{:?}",
        dana.1
    );
    assert_eq!(
        count(&inbox, &format!("Subject: [EXT] weekly {tag}")),
        1,
        "the rewritten copy replaced the original"
    );
    assert_eq!(count(&inbox, &format!("weekly {tag}")), 1);

    // The reply went through Postfix into bob's INBOX with threading and loop headers.
    let reply = wait_for(
        &stack,
        "bob",
        "INBOX",
        &format!("In-Reply-To: <1.{tag}@example.test>"),
        Duration::from_secs(20),
    )
    .await
    .expect("reply delivered to bob");
    assert!(reply.contains("Auto-Submitted: auto-replied"), "{reply}");
    assert!(reply.contains(&format!("References: <1.{tag}@example.test>")));
    assert!(reply.contains("Subject: Away"));
    assert!(reply.contains("X-Mailpipe-Loop: alice@example.test"));
    assert!(
        reply.contains("Return-Path: <>"),
        "null envelope sender: {reply}"
    );

    // A second run finds nothing new (our rewritten copy is recognised) and sends nothing.
    let r = run_accounts_once(&cfg, &OPTS).await.unwrap();
    assert_eq!(r.processed, 0, "{r:?}");
    assert!(r.outbox.sent.is_empty() && r.outbox.failed.is_empty());
    let store = mailpipe::state::Store::open(&cfg.state_dir).unwrap();
    let failed: Vec<_> = store
        .outbox_all()
        .unwrap()
        .into_iter()
        .filter(|e| e.status == mailpipe::state::OutboxStatus::Failed)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].rcpt_to, ["dana@example.test"]);
    drop(store);
    let mut b = stack.session("bob").await;
    assert_eq!(
        count(
            &list(&mut b, "INBOX").await,
            &format!("In-Reply-To: <1.{tag}@example.test>")
        ),
        1,
        "no reply sent twice"
    );
}

#[tokio::test]
async fn forwards_arrive_through_postfix() {
    let stack = Stack::get();
    let tag = unique("fwd");
    let (mut s, box_) = fresh_mailbox(&stack, "alice", "T-fwd").await;
    append(
        &mut s,
        &box_,
        &message(
            "Dana <dana@example.test>",
            "alice@example.test",
            &format!("urgent {tag}"),
            &format!("f.{tag}@example.test"),
            "",
        ),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[state]\ndir = \"{}\"\n{}{}",
        dir.path().join("state").display(),
        stack.account_toml("alice", &[&box_], ""),
        plugin_toml(
            "fwd",
            "forwarder",
            "send_about_mail_since = \"all\"\nallow_send_to = [\"carol@example.test\"]\n[plugin.config]\nrules = [ { from = \"dana@example.test\", to = [\"carol@example.test\"] } ]"
        )
    );
    let r = run_accounts_once(&config(dir.path(), &text), &OPTS)
        .await
        .unwrap();
    assert_eq!(r.outbox.sent.len(), 1);
    let got = wait_for(
        &stack,
        "carol",
        "INBOX",
        &format!("Message-ID: <f.{tag}@example.test>"),
        Duration::from_secs(20),
    )
    .await
    .expect("forward delivered to carol");
    assert!(got.contains("Resent-To: <carol@example.test>"), "{got}");
    assert!(got.contains("Auto-Submitted: auto-generated"));
    assert_eq!(
        list(&mut s, &box_).await.len(),
        1,
        "forwarding keeps the message"
    );
}

/// Lines that start with a dot, and an original with bare LF line ends, arrive intact through
/// the real Postfix: SMTP dot-stuffing and CRLF on the wire are right, for a redirect (the
/// original's bytes) and for a reply (a body the host builds).
#[tokio::test]
async fn dots_and_line_ends_survive_the_smtp_wire() {
    let stack = Stack::get();
    let tag = unique("dots");
    let (mut s, box_) = fresh_mailbox(&stack, "alice", "T-dots").await;
    let raw = format!(
        "From: Bob <bob@example.test>\nTo: alice@example.test\nSubject: dots {tag}\nMessage-ID: <d.{tag}@example.test>\nDate: Thu, 26 Nov 2026 10:00:00 +0000\n\nfirst\n.\n.hidden\n..two\nlast\n"
    );
    append(&mut s, &box_, raw.as_bytes()).await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[state]\ndir = \"{}\"\n{}{}{}",
        dir.path().join("state").display(),
        stack.account_toml("alice", &[&box_], ""),
        plugin_toml(
            "fwd",
            "forwarder",
            "send_about_mail_since = \"all\"\nallow_send_to = [\"carol@example.test\"]\n[plugin.config]\nrules = [ { from = \"bob@example.test\", to = [\"carol@example.test\"] } ]"
        ),
        plugin_toml(
            "vacation",
            "auto-responder",
            &format!("send_about_mail_since = \"all\"\n[plugin.config]\naddresses = [\"alice@example.test\"]\nsubject = \"Away {tag}\"\nbody = \"Away.\\n.\\n.dot\\n..two\\nend\""),
        )
    );
    let r = run_accounts_once(&config(dir.path(), &text), &OPTS)
        .await
        .unwrap();
    assert_eq!(r.outbox.sent.len(), 2, "{:?}", r.outbox);
    let fwd = wait_for_full(
        &stack,
        "carol",
        "INBOX",
        &format!("Message-ID: <d.{tag}@example.test>"),
        Duration::from_secs(20),
    )
    .await
    .expect("redirect delivered to carol");
    let fwd = String::from_utf8_lossy(&fwd);
    assert!(
        fwd.ends_with("\r\n\r\nfirst\r\n.\r\n.hidden\r\n..two\r\nlast\r\n"),
        "{fwd:?}"
    );
    let reply = wait_for_full(
        &stack,
        "bob",
        "INBOX",
        &format!("Subject: Away {tag}"),
        Duration::from_secs(20),
    )
    .await
    .expect("reply delivered to bob");
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.ends_with("\r\n\r\nAway.\r\n.\r\n.dot\r\n..two\r\nend\r\n"),
        "{reply:?}"
    );
}

#[tokio::test]
async fn tls_is_verified_against_the_configured_ca() {
    let stack = Stack::get();
    let mut good = stack.imap("alice");
    assert!(mailpipe::source::imap::connect::connect(&good)
        .await
        .is_ok());
    good.tls = mailpipe::config::TlsMode::Starttls;
    good.port = stack.port("IMAP");
    assert!(
        mailpipe::source::imap::connect::connect(&good)
            .await
            .is_ok(),
        "STARTTLS with the right CA"
    );

    let mut wrong = stack.imap("alice");
    wrong.ca_file = Some(stack.wrong_ca());
    let err = mailpipe::source::imap::connect::connect(&wrong)
        .await
        .expect_err("wrong CA must fail")
        .to_string();
    assert!(
        err.contains("TLS handshake") && err.to_lowercase().contains("certificate"),
        "{err}"
    );
    // The built-in web roots do not know the test CA either.
    let mut public = stack.imap("alice");
    public.ca_file = None;
    assert!(mailpipe::source::imap::connect::connect(&public)
        .await
        .is_err());

    let mut bad_pw = stack.imap("alice");
    bad_pw.password = Some(mailpipe::config::PasswordSource::Command(
        "echo wrong".into(),
    ));
    let err = mailpipe::source::imap::connect::connect(&bad_pw)
        .await
        .expect_err("bad password")
        .to_string();
    assert!(err.contains("login as alice@example.test failed"), "{err}");
    assert!(
        !err.contains("wrong"),
        "the password is not in the error: {err}"
    );
}

#[tokio::test]
async fn a_uidvalidity_change_is_detected_and_nothing_is_rerun() {
    let stack = Stack::get();
    let (mut s, box_) = fresh_mailbox(&stack, "alice", "T-uidv").await;
    append(
        &mut s,
        &box_,
        &message(
            "Bob <bob@example.test>",
            "alice@example.test",
            "x",
            &unique("u"),
            "",
        ),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[state]\ndir = \"{}\"\n{}{}",
        dir.path().join("state").display(),
        stack.account_toml("alice", &[&box_], ""),
        pipeline_toml(&box_)
    );
    let cfg = config(dir.path(), &text);
    {
        // Pretend an earlier run saw this mailbox under another UIDVALIDITY.
        let store = mailpipe::state::Store::open(&cfg.state_dir).unwrap();
        store
            .set_checkpoint(
                &format!("alice/{box_}"),
                mailpipe::state::UidMark {
                    validity: 1,
                    uid: 99,
                },
            )
            .unwrap();
    }
    let workers = mailpipe::run::account_workers(&cfg, &OPTS).await.unwrap();
    let r = workers[0].once().await.unwrap();
    assert_eq!(r.processed, 0);
    assert!(
        r.warnings.iter().any(|w| w.contains("UIDVALIDITY changed")),
        "{:?}",
        r.warnings
    );
    // New mail after that is processed normally.
    append(
        &mut s,
        &box_,
        &message(
            "Bob <bob@example.test>",
            "alice@example.test",
            "y",
            &unique("u"),
            "",
        ),
    )
    .await;
    assert_eq!(workers[0].once().await.unwrap().processed, 1);
}

#[tokio::test]
async fn headers_only_plugins_fetch_headers_and_bodies_survive_a_rewrite() {
    let stack = Stack::get();
    let tag = unique("h");
    let (mut s, box_) = fresh_mailbox(&stack, "alice", "T-hdr").await;
    let mut raw = message(
        "Eve <eve@example.net>",
        "alice@example.test",
        &format!("report {tag}"),
        &format!("h.{tag}@example.net"),
        "",
    );
    raw.extend_from_slice("A body line with ümlauts that must survive.\r\n".as_bytes());
    append(&mut s, &box_, &raw).await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[state]\ndir = \"{}\"\n{}{}",
        dir.path().join("state").display(),
        stack.account_toml("alice", &[&box_], ""),
        plugin_toml(
            "tagger",
            "subject-tagger",
            "[plugin.config]\ntag = \"[EXT]\"\nwhen_from_not = [\"*@example.test\"]"
        )
    );
    let cfg = config(dir.path(), &text);
    let workers = mailpipe::run::account_workers(&cfg, &OPTS).await.unwrap();
    assert_eq!(
        workers[0].pipeline.needs(),
        mailpipe::model::message::Needs::Headers
    );
    assert_eq!(workers[0].once().await.unwrap().processed, 1);
    s.select(mailpipe::model::folder::encode(&box_))
        .await
        .unwrap();
    let stream = s.uid_fetch("1:*", "BODY.PEEK[]").await.unwrap();
    let items: Vec<_> = futures::TryStreamExt::try_collect(stream).await.unwrap();
    assert_eq!(items.len(), 1);
    let full = String::from_utf8_lossy(items[0].body().unwrap()).into_owned();
    assert!(
        full.contains(&format!("Subject: [EXT] report {tag}")),
        "{full}"
    );
    assert!(
        full.contains("A body line with ümlauts that must survive."),
        "{full}"
    );
}

#[tokio::test]
async fn several_accounts_run_concurrently() {
    let stack = Stack::get();
    let tag = unique("multi");
    let folder = format!("T-{tag}");
    let mut toml = String::new();
    for user in ["alice", "carol"] {
        let mut s = stack.session(user).await;
        create(&mut s, &folder).await;
        append(
            &mut s,
            &folder,
            &message(
                "Bob <bob@example.test>",
                &format!("{user}@example.test"),
                &format!("{tag} for {user}"),
                &format!("{user}.{tag}@example.test"),
                "",
            ),
        )
        .await;
        toml += &stack.account_toml(user, &[&folder], "");
    }
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[state]\ndir = \"{}\"\n{toml}{}",
        dir.path().join("state").display(),
        plugin_toml("filer", "rules-filer", &format!("[plugin.config]\nrules = [ {{ name = \"t\", flags = [\"$Seen-By-Mailpipe\"], conditions = [ {{ subject = true, op = \"contains\", value = \"{tag}\" }} ] }} ]"))
    );
    let r = run_accounts_once(&config(dir.path(), &text), &OPTS)
        .await
        .unwrap();
    assert_eq!(r.processed, 2);
    for user in ["alice", "carol"] {
        let mut s = stack.session(user).await;
        let msgs = list(&mut s, &folder).await;
        assert_eq!(msgs.len(), 1);
        assert!(
            msgs[0].1.iter().any(|f| f.contains("$Seen-By-Mailpipe")),
            "{user}: {:?}",
            msgs[0].1
        );
    }
}

#[tokio::test]
async fn check_connect_logs_in_to_imap_and_smtp() {
    let stack = Stack::get();
    let dir = tempfile::tempdir().unwrap();
    let good = format!(
        "[state]\ndir = \"{}\"\n{}",
        dir.path().join("state").display(),
        stack.account_toml("alice", &["INBOX"], "")
    );
    let file = dir.path().join("check.toml");
    std::fs::write(&file, &good).unwrap();
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_mailpipe"))
            .args(["check", "--connect", "-c", file.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("IMAP localhost:")
            && stdout.contains("SMTP localhost:")
            && stdout.contains("ok"),
        "{stdout}"
    );
    // A wrong SMTP password is reported, without the password.
    let idx = good
        .rfind("password_command = \"echo secret-alice\"")
        .unwrap();
    let bad = format!(
        "{}password_command = \"echo not-the-password\"{}",
        &good[..idx],
        &good[idx + "password_command = \"echo secret-alice\"".len()..]
    );
    std::fs::write(&file, &bad).unwrap();
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAILED") && stdout.contains("SMTP"),
        "{stdout}"
    );
    assert!(!stdout.contains("not-the-password"), "{stdout}");
}

/// SMTP over implicit TLS (port "submissions", RFC 8314) with our own verified TLS; several
/// messages over the one kept connection; and a server certificate from an unknown CA is
/// refused, as a transient error (the mail stays queued).
#[tokio::test]
async fn smtp_over_implicit_tls_reuses_one_verified_connection() {
    use mailpipe::config::{PasswordSource, ServerConfig, TlsMode};
    use mailpipe::sink::outbox::Transport;
    use mailpipe::sink::smtp::SmtpSink;
    use mailpipe::state::OutboxEntry;

    let stack = Stack::get();
    let tag = unique("smtps");
    let server = |ca| ServerConfig {
        host: "localhost".into(),
        port: stack.port("SUBMISSIONS"),
        tls: TlsMode::Implicit,
        ca_file: Some(ca),
        tls_pin: None,
        username: Some("alice@example.test".into()),
        password: Some(PasswordSource::Command("echo secret-alice".into())),
        auth: mailpipe::config::Auth::Password,
        oauth2: None,
    };
    let sink = SmtpSink::new(&server(stack.ca()), "example.test")
        .await
        .unwrap();
    for i in 0..3 {
        let raw = message(
            "alice@example.test",
            "bob@example.test",
            &format!("{tag} #{i}"),
            &format!("{i}.{tag}@example.test"),
            "",
        );
        let entry = OutboxEntry::new(
            &format!("{tag}-{i}"),
            "m",
            "test",
            "alice@example.test",
            vec!["bob@example.test".into()],
            0,
        );
        sink.send_raw(&entry, &raw, &|| {}).await.unwrap();
    }
    sink.close().await;
    for i in 0..3 {
        wait_for(
            &stack,
            "bob",
            "INBOX",
            &format!("Message-ID: <{i}.{tag}@example.test>"),
            Duration::from_secs(20),
        )
        .await
        .unwrap_or_else(|| panic!("message {i} delivered"));
    }

    let wrong = SmtpSink::new(&server(stack.wrong_ca()), "example.test")
        .await
        .unwrap();
    let entry = OutboxEntry::new("x", "m", "test", "", vec!["bob@example.test".into()], 0);
    let err = wrong
        .send_raw(&entry, b"Subject: x\r\n\r\nx\r\n", &|| {})
        .await
        .unwrap_err();
    assert!(!err.is_permanent(), "{err:?}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
}

/// Pinned certificates (`tls_fingerprint` / `tls_cert`), for self-signed servers: a refused
/// certificate's error names its fingerprint and the line that pins it; that line then works,
/// for IMAP and for SMTP (STARTTLS), without any CA; a wrong pin is refused.
#[tokio::test]
async fn a_pinned_certificate_is_trusted_and_a_refused_one_says_how_to_pin_it() {
    use mailpipe::config::{PasswordSource, ServerConfig, TlsMode};
    use mailpipe::model::endpoint::Fingerprint;
    use mailpipe::sink::outbox::Transport;
    use mailpipe::sink::smtp::SmtpSink;
    use mailpipe::source::imap::connect::connect;
    use mailpipe::state::OutboxEntry;

    let stack = Stack::get();
    let leaf = Fingerprint::of_pem_file(&stack.dir.join("tls/server.pem")).unwrap();
    let mut imap = stack.imap("alice");
    imap.ca_file = None;
    // No CA: the web roots refuse the test bed's certificate, and the error says how to pin.
    let err = match connect(&imap).await {
        Ok(_) => panic!("an unknown CA was trusted"),
        Err(e) => e.to_string(),
    };
    let suggested = format!("tls_fingerprint = \"{leaf}\"");
    assert!(err.contains(&suggested), "{err}");
    // The suggested pin works, with no CA at all.
    imap.tls_pin = Some(leaf);
    let mut s = connect(&imap).await.expect("pinned certificate accepted");
    let _ = s.logout().await;
    // Any other pin is refused.
    imap.tls_pin = Some(Fingerprint::of(b"another certificate"));
    let err = match connect(&imap).await {
        Ok(_) => panic!("a wrong pin was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("not the pinned one"), "{err}");

    // SMTP submission with STARTTLS, pinned the same way.
    let tag = unique("pin");
    let smtp = |pin| ServerConfig {
        host: "localhost".into(),
        port: stack.port("SUBMISSION"),
        tls: TlsMode::Starttls,
        ca_file: None,
        tls_pin: Some(pin),
        username: Some("alice@example.test".into()),
        password: Some(PasswordSource::Command("echo secret-alice".into())),
        auth: mailpipe::config::Auth::Password,
        oauth2: None,
    };
    let entry = OutboxEntry::new(
        &tag,
        "m",
        "test",
        "alice@example.test",
        vec!["bob@example.test".into()],
        0,
    );
    let raw = message(
        "alice@example.test",
        "bob@example.test",
        &tag,
        &format!("{tag}@example.test"),
        "",
    );
    let wrong = SmtpSink::new(&smtp(Fingerprint::of(b"x")), "example.test")
        .await
        .unwrap();
    let err = wrong.send_raw(&entry, &raw, &|| {}).await.unwrap_err();
    assert!(err.to_string().contains("not the pinned one"), "{err}");
    let sink = SmtpSink::new(&smtp(leaf), "example.test").await.unwrap();
    sink.send_raw(&entry, &raw, &|| {})
        .await
        .expect("sent over the pinned connection");
    sink.close().await;
    wait_for(
        &stack,
        "bob",
        "INBOX",
        &format!("Message-ID: <{tag}@example.test>"),
        Duration::from_secs(20),
    )
    .await
    .expect("delivered");
}

/// The offline mail store is a Maildir++ a real Dovecot reads with its default layout
/// (`mail_location = maildir:DIR`, nothing else): every folder, flag and keyword of the demo
/// run is there, in the right folder.
#[tokio::test]
async fn the_offline_store_is_a_maildir_dovecot_reads_as_it_is() {
    let stack = Stack::get();
    let dir = tempfile::tempdir().unwrap();
    let text = common::demo_toml(dir.path());
    let cfg = config(dir.path(), &text);
    let s = mailpipe::run::run_offline(&cfg, &OPTS).await.unwrap();
    assert_eq!(s.processed, 14);
    // Dovecot reads mail as the mail user of the test bed.
    let mail = dir.path().join("mail");
    for cmd in [
        format!("chmod -R o+rX {}", dir.path().display()),
        format!(
            "chown -R {uid}:{uid} {}",
            mail.display(),
            uid = stack
                .vars
                .get("MAILSTACK_VMAIL_UID")
                .map_or("5000", String::as_str)
        ),
    ] {
        assert!(std::process::Command::new("sh")
            .args(["-c", &cmd])
            .status()
            .unwrap()
            .success());
    }
    let doveadm = |args: &[&str]| {
        let out = std::process::Command::new("doveadm")
            .arg("-c")
            .arg(stack.dir.join("dovecot/dovecot.conf"))
            .arg("-o")
            .arg(format!("mail_location=maildir:{}", mail.display()))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let boxes = doveadm(&["mailbox", "list", "-u", "alice@example.test"]);
    for b in [
        "INBOX",
        "Lists/rust-users",
        "Newsletters",
        "Finance/Invoices",
    ] {
        assert!(boxes.lines().any(|l| l == b), "{b} in {boxes}");
    }
    let fetched = doveadm(&["fetch", "-u", "alice@example.test", "mailbox flags", "all"]);
    // Records: a "mailbox: X" line, then its "flags: ..." line.
    let mut records: Vec<(String, String)> = Vec::new();
    for line in fetched.lines() {
        if let Some(m) = line.strip_prefix("mailbox: ") {
            records.push((m.to_string(), String::new()));
        } else if let (Some(f), Some(last)) = (line.strip_prefix("flags: "), records.last_mut()) {
            last.1 = f.to_string();
        }
    }
    let per = |mailbox: &str| {
        records
            .iter()
            .filter(|(m, _)| m == mailbox)
            .map(|(_, f)| f.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(per("INBOX").len(), 10, "{fetched}");
    assert_eq!(per("Lists/rust-users").len(), 1);
    assert_eq!(per("Newsletters").len(), 2);
    let invoice = per("Finance/Invoices");
    assert_eq!(invoice.len(), 1);
    assert!(invoice[0].contains("$Invoice"), "the keyword: {invoice:?}");
    assert!(
        per("INBOX").iter().any(|m| m.contains("\\Flagged")),
        "{fetched}"
    );
}
