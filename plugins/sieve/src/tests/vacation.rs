//! RFC 5230 vacation and RFC 6131 vacation-seconds: whom it answers, with what.

use super::*;

const V: &str = "require \"vacation\"; vacation :subject \"Away\" \"I am away\";";

fn to_me(extra: &str) -> String {
    format!("From: bob@example.org\nTo: me@example.com\nSubject: hi\n{extra}\nbody\n")
}

#[test]
fn answers_a_person_who_wrote_to_me() {
    let o = outcome(V, &to_me(""));
    let v = o.vacation.expect("a reply");
    assert_eq!(v.to, "sender@example.org", "the envelope sender");
    assert_eq!(v.subject, "Away");
    assert_eq!(v.period_seconds, 7 * 86_400);
    assert!(o.implicit_keep, "vacation keeps the message");
    let o = outcome("require \"vacation\"; vacation \"x\";", &to_me(""));
    assert_eq!(o.vacation.unwrap().subject, "Auto: hi");
}

#[test]
fn stays_silent_for_lists_robots_bounces_and_bcc() {
    assert!(outcome(V, &to_me("List-Id: <l.example.org>"))
        .vacation
        .is_none());
    assert!(outcome(V, &to_me("Precedence: bulk")).vacation.is_none());
    assert!(outcome(V, &to_me("Auto-Submitted: auto-replied"))
        .vacation
        .is_none());
    assert!(outcome(V, &to_me("Auto-Submitted: no")).vacation.is_some());
    let not_to_me = "From: bob@example.org\nTo: other@example.com\nSubject: hi\n\nbody\n";
    assert!(outcome(V, not_to_me).vacation.is_none());
    let mut f = Fake::new(&to_me(""));
    f.from = Some(String::new());
    assert!(outcome_with(V, &mut f, &Settings::default())
        .vacation
        .is_none());
    f.from = Some("MAILER-DAEMON@example.org".into());
    assert!(outcome_with(V, &mut f, &Settings::default())
        .vacation
        .is_none());
    f.from = Some("owner-list@example.org".into());
    assert!(outcome_with(V, &mut f, &Settings::default())
        .vacation
        .is_none());
}

#[test]
fn addresses_periods_and_handles() {
    let s = "require \"vacation\"; vacation :addresses \"alias@example.com\" :days 2 \"x\";";
    let m = "From: bob@example.org\nTo: alias@example.com\nSubject: hi\n\nbody\n";
    assert_eq!(outcome(s, m).vacation.unwrap().period_seconds, 2 * 86_400);
    let s =
        "require [\"vacation\", \"vacation-seconds\"]; vacation :seconds 60 :handle \"h\" \"x\";";
    let v = outcome(s, &to_me("")).vacation.unwrap();
    assert_eq!((v.period_seconds, v.handle.as_str()), (60, "h"));
    assert!(compile(
        "require \"vacation\"; vacation :seconds 60 \"x\";",
        &Options::default()
    )
    .is_err());
    assert!(compile(
        "require [\"vacation\",\"vacation-seconds\"]; vacation :days 1 :seconds 60 \"x\";",
        &Options::default()
    )
    .is_err());
}
