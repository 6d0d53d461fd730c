//! The mime extensions (RFC 5703): `foreverypart` and `break`, `header`/`address`/`exists`
//! with `:mime` and `:anychild`, `extracttext`; `replace`/`enclose` refused at load.

use super::*;
use crate::HeaderEdit;

/// A multipart/mixed with an alternative (plain + HTML), a PDF, and an attached message.
const MULTI: &str = "From: Alice <alice@example.org>\r\nTo: me@example.com\r\nSubject: report\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"OUT\"\r\n\r\npreamble\r\n--OUT\r\nContent-Type: multipart/alternative; boundary=\"IN\"\r\n\r\n--IN\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nCaf=E9 meeting at noon\r\n--IN\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Caf\u{e9} meeting</p>\r\n--IN--\r\n--OUT\r\nContent-Type: application/pdf; name=\"invoice.pdf\"\r\nContent-Disposition: attachment; filename=\"=?utf-8?q?Rechnung_M=C3=A4rz.pdf?=\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--OUT\r\nContent-Type: message/rfc822\r\n\r\nFrom: Bob <bob@example.net>\r\nSubject: inner\r\n\r\ninner body\r\n--OUT--\r\n";

fn run_on(script: &str, raw: &str) -> Outcome {
    outcome(script, raw)
}

#[test]
fn foreverypart_visits_every_part_depth_first() {
    let s = r#"require ["foreverypart", "mime", "variables", "editheader"];
        set "seen" "";
        foreverypart {
            if header :mime :contenttype :matches "Content-Type" "*" { set "seen" "${seen} ${1}"; }
            elsif true { set "seen" "${seen} (none)"; }
        }
        addheader "X-Seen" "${seen}";"#;
    let o = run_on(s, MULTI);
    let HeaderEdit::Add { value, .. } = &o.header_edits[0] else {
        panic!("{:?}", o.header_edits)
    };
    // The outermost loop starts with the message itself (as Pigeonhole does); the attached
    // message is a part of its own (no Content-Type: none to match).
    assert_eq!(
        value,
        " multipart/mixed multipart/alternative text/plain text/html application/pdf message/rfc822 (none)"
    );
    // A message without MIME parts: the loop runs once, on the message.
    let o = run_on(s, "Subject: x\r\n\r\nplain\r\n");
    assert!(matches!(&o.header_edits[0], HeaderEdit::Add { value, .. } if value == " (none)"));
}

#[test]
fn break_leaves_the_innermost_or_the_named_loop() {
    let s = r#"require ["foreverypart", "mime", "variables", "editheader"];
        set "seen" "";
        foreverypart :name "outer" {
            if header :mime :subtype :matches "Content-Type" "*" { set "seen" "${seen} ${1}"; }
            foreverypart {
                if header :mime :subtype "Content-Type" "plain" { break; }
                if header :mime :subtype "Content-Type" "html" { break :name "outer"; }
            }
        }
        addheader "X-Seen" "${seen}";"#;
    let o = run_on(s, MULTI);
    let HeaderEdit::Add { value, .. } = &o.header_edits[0] else {
        panic!()
    };
    // A nested loop visits the parts below the outer one's current part. Each inner loop
    // stops at the first plain part (an unnamed break leaves the inner loop only), so the
    // named break at the HTML part is never reached and the outer loop visits every part.
    assert_eq!(value, " mixed alternative plain html pdf rfc822");
    let s2 = r#"require ["foreverypart", "mime", "fileinto"];
        foreverypart :name "outer" {
            foreverypart { if header :mime :subtype "Content-Type" "html" { break :name "outer"; } }
            fileinto "after-inner";
        }"#;
    // The message itself contains the HTML part: the named break ends both loops before
    // any fileinto.
    assert!(folders(&run_on(s2, MULTI)).is_empty());
}

#[test]
fn header_mime_options() {
    let loop_with = |test: &str| {
        let s = format!(
            "require [\"foreverypart\", \"mime\", \"fileinto\"];\nforeverypart {{ if {test} {{ fileinto \"yes\"; break; }} }}"
        );
        folders(&run_on(&s, MULTI)) == ["yes"]
    };
    assert!(loop_with(
        r#"header :mime :type "Content-Type" "application""#
    ));
    assert!(loop_with(r#"header :mime :subtype "Content-Type" "PDF""#));
    assert!(loop_with(
        r#"header :mime :contenttype "Content-Type" "text/html""#
    ));
    assert!(!loop_with(
        r#"header :mime :contenttype "Content-Type" "image/png""#
    ));
    assert!(loop_with(
        r#"header :mime :param "charset" "Content-Type" "ISO-8859-1""#
    ));
    assert!(loop_with(
        r#"header :mime :param "name" "Content-Type" "invoice.pdf""#
    ));
    // Content-Disposition: :type is the disposition; parameters are decoded (RFC 2047).
    assert!(loop_with(
        r#"header :mime :type "Content-Disposition" "attachment""#
    ));
    assert!(loop_with(
        r#"header :mime :param "filename" :matches "Content-Disposition" "*März.pdf""#
    ));
    // The message itself outside a loop; :anychild reads the parts below it.
    let top = |test: &str| {
        let s = format!("require [\"mime\", \"fileinto\"];\nif {test} {{ fileinto \"yes\"; }}");
        folders(&run_on(&s, MULTI)) == ["yes"]
    };
    assert!(top(
        r#"header :mime :contenttype "Content-Type" "multipart/mixed""#
    ));
    assert!(!top(
        r#"header :mime :contenttype "Content-Type" "text/html""#
    ));
    assert!(top(
        r#"header :mime :anychild :contenttype "Content-Type" "text/html""#
    ));
    // :anychild includes the current part itself (as Pigeonhole reads it).
    assert!(top(
        r#"header :mime :anychild :contenttype "Content-Type" "multipart/mixed""#
    ));
    // A parameter the field lacks reads as "".
    assert!(top(
        r#"header :mime :param "charset" :is "Content-Type" """#
    ));
    assert!(!top(r#"header :mime :param "charset" :is "X-Absent" """#));
    assert!(top(r#"exists :mime :anychild "Content-Disposition""#));
    assert!(!top(r#"exists :mime "Content-Disposition""#));
    assert!(top(
        r#"address :mime :anychild :domain "From" "example.net""#
    ));
    assert!(!top(r#"address :mime :domain "From" "example.net""#));
}

#[test]
fn extracttext_reads_the_current_text_part() {
    let s = r#"require ["foreverypart", "mime", "extracttext", "variables", "fileinto"];
        foreverypart {
            if header :mime :subtype "Content-Type" "plain" {
                extracttext :first 4 :upper "t"; # 4 octets: "Caf" (é is two); ASCII upper
                fileinto "got-${t}";
            }
            if header :mime :subtype "Content-Type" "pdf" {
                extracttext "p";
                if string :is "${p}" "" { fileinto "pdf-is-not-text"; }
            }
        }"#;
    assert_eq!(folders(&run_on(s, MULTI)), ["got-CAF", "pdf-is-not-text"]);
    assert!(compile(s, &Options::default()).unwrap().reads_body);
}

#[test]
fn misuse_is_a_compile_error_with_a_reason() {
    for (script, says) in [
        (
            "require \"foreverypart\"; break;",
            "outside a foreverypart loop",
        ),
        (
            "require \"foreverypart\"; foreverypart :name \"a\" { break :name \"b\"; }",
            "no enclosing foreverypart loop is named \"b\"",
        ),
        (
            "require \"mime\"; if header :type \"Content-Type\" \"text\" { keep; }",
            "need :mime",
        ),
        (
            "require \"mime\"; if header :mime :type :subtype \"Content-Type\" \"text\" { keep; }",
            "only one of",
        ),
        (
            "require [\"extracttext\", \"variables\"]; extracttext \"x\";",
            "only allowed inside a foreverypart loop",
        ),
        (
            "if header :mime \"Content-Type\" \"text/plain\" { keep; }",
            "requires the \"mime\" extension",
        ),
        (
            "require [\"mime\", \"foreverypart\", \"replace\"]; foreverypart { replace \"x\"; }",
            "rewrites the message body",
        ),
        (
            "foreverypart { keep; }",
            "requires the \"foreverypart\" extension",
        ),
    ] {
        let e = compile(script, &Options::default())
            .expect_err(script)
            .to_string();
        assert!(e.contains(says), "{script}: {e}");
    }
}
