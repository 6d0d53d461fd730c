//! One test per extension (variables, relational, imap4flags, subaddress, copy, body, regex,
//! date/index, editheader, mailbox, include, duplicate, ihave, environment, spamtest,
//! encoded-character, envelope).

use super::*;
use crate::HeaderEdit;

#[test]
fn variables() {
    let s = r#"require ["fileinto", "variables"];
        if header :matches "List-Id" "*<*.lists.*>" { set :lower "list" "${2}"; fileinto "Lists/${list}"; }"#;
    assert_eq!(folders(&outcome(s, MSG)), ["Lists/rust-users"]);
    let s = r#"require ["fileinto", "variables"];
        set "a" "x"; set :upper :length "n" "hello";
        if string :is "${a}-${n}" "x-5" { fileinto "ok"; }"#;
    assert_eq!(folders(&outcome(s, MSG)), ["ok"]);
    let s = r#"require ["fileinto", "variables", "regex"];
        if header :regex "subject" "^\\[([a-z-]+)\\] (.*)$" { fileinto "${1}/${2}"; }"#;
    assert_eq!(folders(&outcome(s, MSG)), ["rust-users/Hello World"]);
    assert!(compile(
        "require \"variables\"; set :lower :upper \"a\" \"b\";",
        &Options::default()
    )
    .is_err());
}

#[test]
fn relational_and_numeric() {
    let r = ", \"relational\", \"comparator-i;ascii-numeric\"";
    assert!(holds(
        r,
        "address :count \"ge\" :comparator \"i;ascii-numeric\" [\"to\", \"cc\"] \"3\""
    ));
    assert!(!holds(
        r,
        "address :count \"gt\" :comparator \"i;ascii-numeric\" [\"to\", \"cc\"] \"3\""
    ));
    assert!(holds(
        r,
        "header :value \"ge\" :comparator \"i;ascii-numeric\" \"x-spam-score\" \"7\""
    ));
    assert!(!holds(
        r,
        "header :value \"lt\" :comparator \"i;ascii-numeric\" \"x-spam-score\" \"7\""
    ));
    assert!(holds(r, "header :value \"gt\" \"subject\" \"0\""));
    assert!(compile(
        "if header :count \"gt\" \"to\" \"1\" { keep; }",
        &Options::default()
    )
    .is_err());
}

#[test]
fn imap4flags() {
    let s = r#"require ["imap4flags", "fileinto"];
        setflag "\\Seen"; addflag ["$Work", "\\Flagged"]; removeflag "\\Seen";
        if hasflag :contains "work" { fileinto "W"; }
        fileinto :flags "\\Answered" "X";"#;
    let o = outcome(s, MSG);
    assert_eq!(folders(&o), ["W", "X"]);
    assert_eq!(o.stores[0].flags, ["$Work", "\\Flagged"]);
    assert_eq!(o.stores[1].flags, ["\\Answered"]);
    let o = outcome(
        "require \"imap4flags\"; addflag \"x\"; addflag \"y z\";",
        MSG,
    );
    assert!(o.implicit_keep);
    assert_eq!(o.implicit_flags, ["x", "y", "z"]);
    let o = outcome("require [\"imap4flags\",\"variables\"]; addflag \"v\" \"a\"; if hasflag \"v\" \"a\" { keep :flags \"k\"; }", MSG);
    assert_eq!(o.stores[0].flags, ["k"]);
}

#[test]
fn subaddress_copy_envelope() {
    assert!(holds(
        ", \"subaddress\"",
        "address :detail \"to\" \"lists\""
    ));
    assert!(holds(", \"subaddress\"", "address :user \"to\" \"me\""));
    assert!(!holds(", \"subaddress\"", "address :detail \"cc\" \"\""));
    let o = outcome(
        "require [\"fileinto\", \"copy\"]; fileinto :copy \"A\"; redirect :copy \"x@example.net\";",
        MSG,
    );
    assert!(o.implicit_keep, ":copy keeps the implicit keep");
    assert_eq!(folders(&o), ["A"]);
    assert!(holds(
        ", \"envelope\"",
        "envelope :domain \"from\" \"example.org\""
    ));
    assert!(holds(
        ", \"envelope\"",
        "envelope :is \"to\" \"me@example.com\""
    ));
    let mut f = Fake::new(MSG);
    f.from = Some(String::new());
    let o = outcome_with("require [\"envelope\", \"fileinto\"]; if envelope :is \"from\" \"\" { fileinto \"bounce\"; }", &mut f, &Settings::default());
    assert_eq!(folders(&o), ["bounce"]);
}

#[test]
fn body() {
    assert!(holds(", \"body\"", "body :contains \"the body\""));
    assert!(holds(
        ", \"body\"",
        "body :content \"text\" :contains \"there\""
    ));
    assert!(!holds(
        ", \"body\"",
        "body :content \"image\" :contains \"there\""
    ));
    assert!(holds(", \"body\"", "body :raw :matches \"Hello*\""));
    assert!(
        compile(
            "require \"body\"; if body :contains \"x\" { keep; }",
            &Options::default()
        )
        .unwrap()
        .reads_body
    );
}

#[test]
fn date_and_index() {
    assert!(holds(
        ", \"date\"",
        "date :is \"date\" \"date\" \"2009-10-28\""
    ));
    assert!(holds(
        ", \"date\"",
        "date :zone \"+0000\" :is \"date\" \"hour\" \"13\""
    ));
    assert!(holds(
        ", \"date\"",
        "date :originalzone :is \"date\" \"hour\" \"14\""
    ));
    assert!(holds(", \"date\"", "date :is \"date\" \"weekday\" \"3\""));
    assert!(!holds(
        ", \"date\"",
        "date :is \"subject\" \"year\" \"2009\""
    ));
    assert!(holds(", \"date\"", "currentdate :is \"year\" \"2025\""));
    assert!(holds(
        ", \"date\", \"relational\"",
        "currentdate :value \"gt\" \"date\" \"2020-01-01\""
    ));
    let two = "Received: first\nReceived: second\nFrom: a@b.c\n\nx\n";
    let s = "require [\"index\", \"fileinto\"]; if header :index 2 :is \"received\" \"second\" { fileinto \"y\"; }";
    assert_eq!(folders(&outcome(s, two)), ["y"]);
    let s = "require [\"index\", \"fileinto\"]; if header :index 1 :last :is \"received\" \"second\" { fileinto \"y\"; }";
    assert_eq!(folders(&outcome(s, two)), ["y"]);
}

#[test]
fn editheader() {
    let s = r#"require ["editheader", "fileinto"];
        addheader "X-Filtered" "yes"; deleteheader :contains "cc" "carol";
        if exists "x-filtered" { fileinto "seen-own-edit"; }
        if not exists "cc" { fileinto "cc-gone"; }
        deleteheader "received";"#;
    let o = outcome(s, MSG);
    assert_eq!(folders(&o), ["seen-own-edit", "cc-gone"]);
    assert_eq!(
        o.header_edits,
        vec![
            HeaderEdit::Replace {
                name: "cc".into(),
                survivors: vec![]
            },
            HeaderEdit::Add {
                name: "X-Filtered".into(),
                value: "yes".into(),
                last: false
            },
        ]
    );
}

#[test]
fn mailbox_duplicate_environment_spamtest() {
    assert!(holds(", \"mailbox\"", "mailboxexists \"INBOX\""));
    assert!(!holds(", \"mailbox\"", "mailboxexists \"Nope\""));
    let s = "require [\"duplicate\", \"fileinto\"]; if duplicate { fileinto \"dup\"; }";
    let o = outcome(s, MSG);
    assert!(folders(&o).is_empty());
    assert_eq!(o.duplicate_marks.len(), 1);
    let mut f = Fake::new(MSG);
    f.seen.insert(o.duplicate_marks[0].0.clone());
    assert_eq!(
        folders(&outcome_with(s, &mut f, &Settings::default())),
        ["dup"]
    );
    assert!(holds(
        ", \"environment\"",
        "environment :is \"name\" \"mailpipe\""
    ));
    assert!(!holds(
        ", \"environment\"",
        "environment :is \"remote-ip\" \"\""
    ));
    let settings = Settings {
        spamtest: Some(crate::ScoreHeader {
            header: "X-Spam-Score".into(),
            max: 10.0,
        }),
        ..Settings::default()
    };
    let s = "require [\"spamtest\", \"relational\", \"comparator-i;ascii-numeric\", \"fileinto\"];
        if spamtest :value \"ge\" :comparator \"i;ascii-numeric\" \"7\" { fileinto \"Junk\"; }";
    assert_eq!(
        folders(&outcome_with(s, &mut Fake::new(MSG), &settings)),
        ["Junk"]
    );
    assert!(
        folders(&outcome(s, MSG)).is_empty(),
        "not configured: 0, not spam"
    );
}

#[test]
fn include_ihave_encoded() {
    let mut opts = Options::default();
    opts.includes.insert(
        "personal/lists".into(),
        "require [\"fileinto\", \"include\", \"variables\"]; global \"dest\"; if exists \"list-id\" { fileinto \"${dest}\"; return; } fileinto \"never\";".into(),
    );
    let s = "require [\"include\", \"variables\"]; global \"dest\"; set \"dest\" \"Lists\"; include \"lists\"; include :once \"lists\";";
    let script = compile(s, &opts).unwrap();
    let o = run(&script, &mut Fake::new(MSG), &Settings::default()).unwrap();
    assert_eq!(folders(&o), ["Lists"]);
    let s = "require [\"ihave\", \"fileinto\"]; if ihave \"x-future\" { future; } elsif ihave \"fileinto\" { fileinto \"now\"; }";
    assert_eq!(folders(&outcome(s, MSG)), ["now"]);
    let s =
        "require [\"encoded-character\", \"fileinto\"]; fileinto \"${hex:41 42}${unicode:e9}\";";
    assert_eq!(folders(&outcome(s, MSG)), ["ABé"]);
    let s = "require \"ihave\"; error \"broken\";";
    assert!(run(
        &compile(s, &Options::default()).unwrap(),
        &mut Fake::new(MSG),
        &Settings::default()
    )
    .is_err());
}

#[test]
fn enotify_with_mailto() {
    use crate::Notification;
    let s = r#"require ["enotify", "variables"];
        if header :matches "subject" "*" { set "s" "${1}"; }
        notify :importance "1" :message "Mail: ${s}" "mailto:pager@example.com?body=See%20INBOX";
        notify :message "Mail: ${s}" :importance "1" "mailto:pager@example.com?body=See%20INBOX";
        notify :from "me@example.com" "mailto:boss@example.com,ops@example.com?subject=Heads%20up";"#;
    let o = outcome(s, MSG);
    assert_eq!(
        o.notifications,
        [
            Notification {
                to: vec!["pager@example.com".into()],
                subject: Some("Mail: [rust-users] Hello World".into()),
                text: "See INBOX".into(),
                importance: 1,
                from: None,
            },
            Notification {
                to: vec!["boss@example.com".into(), "ops@example.com".into()],
                subject: Some("Heads up".into()),
                text: "New mail from Alice <alice@example.org>: [rust-users] Hello World".into(),
                importance: 2,
                from: Some("me@example.com".into()),
            },
        ],
        "the same notification twice is sent once"
    );
    // notify leaves the implicit keep alone.
    assert!(o.implicit_keep);
    // :encodeurl, for building URIs from message text.
    let s = r#"require ["enotify", "variables"];
        if header :matches "subject" "*" { set :encodeurl "s" "${1}"; }
        notify "mailto:pager@example.com?subject=${s}";"#;
    let o = outcome(s, MSG);
    assert_eq!(
        o.notifications[0].subject.as_deref(),
        Some("[rust-users] Hello World")
    );
    // The tests.
    let req = ", \"enotify\"";
    assert!(holds(req, "valid_notify_method \"mailto:a@example.com\""));
    assert!(!holds(
        req,
        "valid_notify_method [\"mailto:a@example.com\", \"xmpp:a@example.com\"]"
    ));
    assert!(!holds(req, "valid_notify_method \"mailto:?subject=x\""));
    assert!(holds(
        req,
        "notify_method_capability \"mailto:a@example.com\" \"Online\" \"maybe\""
    ));
    assert!(!holds(
        req,
        "notify_method_capability \"mailto:a@example.com\" \"online\" \"yes\""
    ));
    assert!(!holds(
        req,
        "notify_method_capability \"tel:+1555\" \"online\" \"maybe\""
    ));
    // Compile errors: unknown method, bad importance, without require.
    for bad in [
        "require \"enotify\"; notify \"xmpp:a@example.com\";",
        "require \"enotify\"; notify :importance \"4\" \"mailto:a@example.com\";",
        "notify \"mailto:a@example.com\";",
        "require \"variables\"; set :encodeurl \"x\" \"y\";",
    ] {
        assert!(compile(bad, &Options::default()).is_err(), "{bad}");
    }
    // A method that turns out bad at run time is a run-time error (the message is kept).
    let s = compile(
        "require [\"enotify\", \"variables\"]; set \"m\" \"mailto:nobody\"; notify \"${m}\";",
        &Options::default(),
    )
    .unwrap();
    assert!(run(&s, &mut Fake::new(MSG), &Settings::default()).is_err());
}

#[test]
fn reject_and_ereject_refuse_only_at_delivery() {
    let run_at = |script: &str, delivery: bool| {
        let s = compile(script, &Options::default()).unwrap_or_else(|e| panic!("{e}"));
        let mut input = Fake::new(MSG);
        input.at_delivery = delivery;
        crate::run(&s, &mut input, &Settings::default())
    };
    let s = r#"require ["reject", "variables"];
        if header :matches "subject" "*Hello*" { set "w" "${2}"; reject "No ${w}, thanks."; }"#;
    let o = run_at(s, true).unwrap();
    assert_eq!(o.reject.as_deref(), Some("No  World, thanks."));
    assert!(!o.implicit_keep, "reject cancels the implicit keep");
    // After delivery there is nobody to refuse it to: a run-time error (the message is kept).
    let e = run_at(s, false).unwrap_err();
    assert!(e.0.contains("already delivered"), "{e}");
    let o = run_at("require \"ereject\"; ereject \"go away\";", true).unwrap();
    assert_eq!(o.reject.as_deref(), Some("go away"));
    // Refused and stored, redirected or answered at once: a conflict, as in Pigeonhole.
    let plain = "From: a@example.org\nTo: me@example.com\nSubject: hi\n\nbody\n";
    for script in [
        "require \"reject\"; keep; reject \"no\";",
        "require [\"reject\", \"fileinto\"]; reject \"no\"; fileinto \"X\";",
        "require \"reject\"; redirect \"x@example.org\"; reject \"no\";",
        "require [\"reject\", \"vacation\"]; vacation \"away\"; reject \"no\";",
    ] {
        let s = compile(script, &Options::default()).unwrap();
        let mut input = Fake::new(plain);
        input.at_delivery = true;
        let e = crate::run(&s, &mut input, &Settings::default()).unwrap_err();
        assert!(e.0.contains("conflicts"), "{script}: {e}");
    }
    // discard then reject is fine (Roundcube writes both in one script).
    assert!(run_at("require \"reject\"; discard; reject \"no\";", true).is_ok());
    assert!(run_at("require \"reject\"; reject \"a\"; reject \"b\";", true).is_err());
    // environment "phase" is the plugin's to answer; the fake has none.
}
