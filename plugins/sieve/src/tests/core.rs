//! RFC 5228: control, actions, the implicit keep, the core tests and match types.

use super::*;

#[test]
fn implicit_keep_and_its_cancellation() {
    let o = outcome("", MSG);
    assert!(o.implicit_keep && o.stores.is_empty());
    let o = outcome("discard;", MSG);
    assert!(!o.implicit_keep && o.discarded);
    let o = outcome(
        "require \"fileinto\"; fileinto \"A\"; fileinto \"A\"; fileinto \"B\";",
        MSG,
    );
    assert!(!o.implicit_keep);
    assert_eq!(folders(&o), ["A", "B"], "a folder is stored into once");
    let o = outcome("keep; discard;", MSG);
    assert_eq!(
        folders(&o),
        ["<keep>"],
        "discard does not undo an explicit keep"
    );
    // The local part is case-sensitive, the domain is not (Pigeonhole redirects to both).
    let o = outcome(
        "redirect \"x@example.net\"; redirect \"x@EXAMPLE.net\"; redirect \"X@example.net\";",
        MSG,
    );
    assert_eq!(o.redirects, ["x@example.net", "X@example.net"]);
    assert!(!o.implicit_keep);
}

#[test]
fn control_flow() {
    let s = r#"require "fileinto";
        if false { fileinto "a"; } elsif true { fileinto "b"; stop; } else { fileinto "c"; }
        fileinto "never";"#;
    assert_eq!(folders(&outcome(s, MSG)), ["b"]);
    let s = r#"require "fileinto"; if not true { fileinto "a"; } else { fileinto "c"; }"#;
    assert_eq!(folders(&outcome(s, MSG)), ["c"]);
}

#[test]
fn header_address_exists_size() {
    assert!(holds("", "header :contains \"subject\" \"hello\""));
    assert!(!holds("", "header :is \"subject\" \"hello\""));
    assert!(holds(
        "",
        "header :is :comparator \"i;octet\" \"Subject\" \"[rust-users] Hello World\""
    ));
    assert!(!holds(
        "",
        "header :contains :comparator \"i;octet\" \"subject\" \"hello\""
    ));
    assert!(holds("", "address :domain \"to\" \"example.net\""));
    assert!(holds("", "address :localpart :is \"from\" \"ALICE\""));
    assert!(holds(
        "",
        "address :all :is [\"to\", \"cc\"] \"carol@example.com\""
    ));
    assert!(!holds("", "address :is \"from\" \"Alice\""));
    assert!(holds("", "exists [\"from\", \"list-id\"]"));
    assert!(!holds("", "exists [\"from\", \"x-nope\"]"));
    assert!(holds("", "size :over 100"));
    assert!(holds("", "size :under 1M"));
    assert!(!holds("", "size :over 1K"));
    assert!(holds("", "allof (true, exists \"to\")"));
    assert!(!holds("", "anyof (false, not true)"));
}

#[test]
fn wildcards() {
    assert!(holds("", "header :matches \"subject\" \"*hello*\""));
    assert!(holds("", "header :matches \"subject\" \"[*]?hello*\""));
    assert!(!holds("", "header :matches \"subject\" \"hello*\""));
    assert!(holds("", "header :matches \"x-spam-score\" \"7.?\""));
    assert!(holds("", "header :matches \"x-spam-score\" \"7\\\\.5\""));
}

#[test]
fn run_time_limits() {
    let many: String = (0..10)
        .map(|i| format!("redirect \"u{i}@example.net\";"))
        .collect();
    let s = compile(&many, &Options::default()).unwrap();
    let err = run(&s, &mut Fake::new(MSG), &Settings::default()).unwrap_err();
    assert!(err.0.contains("redirects"), "{err}");
}
