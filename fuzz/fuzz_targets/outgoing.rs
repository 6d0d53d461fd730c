// Property: the mail the host builds from an inbound message (reply::compose,
// forward::redirect, forward::as_attachment, and ForwardSpec::build, which is what the
// pipeline sends) never panics, and its header block is what the builder meant to write: no
// header line holds a CR, LF or NUL of its own, and parsing the output again (our own line
// split, `HeaderBlock::parse` and mail-parser) gives exactly the fields the builder wrote, in
// order. An inbound Subject / Message-ID / References that decodes to "x\r\nBcc: y" must
// not add a field. A redirect starts with its Resent-* block and carries, on the wire,
// exactly the fields the host read from the original (a bare CR in the original must not
// start or end a field on the wire); an attachment forward's MIME boundary occurs nowhere
// in the attached original.
// Input: byte 0 selects the reply/identity variant (see `Variant`), the rest is the message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mail_parser::MessageParser;
use mailpipe::actions::forward;
use mailpipe::model::decision::ForwardSpec;
use mailpipe::actions::{outgoing_id, reply, LOOP_HEADER};
use mailpipe::config::Identity;
use mailpipe::model::address::validate_addr_spec;
use mailpipe::message::encode::crlf;
use mailpipe::message::rewrite::HeaderBlock;
use mailpipe::message::Email;
use mailpipe::model::decision::Reply;
use mailpipe::model::message::Header;
use mailpipe_fuzz::{body_of, first_empty_line, names, split_fields};

const NOW: [i64; 4] = [1_772_000_000_000, 0, i64::MIN, i64::MAX];

struct Variant {
    reply: Reply,
    identity: Identity,
    note: Option<&'static str>,
    now_ms: i64,
}

impl Variant {
    fn from_byte(b: u8) -> Variant {
        let mut headers = Vec::new();
        if b & 4 != 0 {
            // Valid for the action validator: not a host-owned name, no CR/LF.
            headers.push(Header {
                name: "X-Auto-Response-Suppress".into(),
                value: "All".into(),
            });
        }
        Variant {
            reply: Reply {
                subject: (b & 1 != 0).then(|| "Out of office – bis Montag".to_string()),
                text: "I am away.\nBack on Monday.\n".into(),
                html: (b & 2 != 0).then(|| "<p>I am away.</p>".to_string()),
                headers,
            },
            identity: Identity {
                address: "alice@example.com".into(),
                name: match (b >> 3) & 3 {
                    0 => None,
                    1 => Some("Alice Example".into()),
                    2 => Some("Älice \"the\" Exämple".into()),
                    _ => Some("Alice \\ \"Quote".into()),
                },
            },
            note: (b & 0x80 != 0).then_some("See below."),
            now_ms: NOW[((b >> 5) & 3) as usize],
        }
    }
}

/// The top header block of `out` (up to the first empty line), written with CRLF line ends,
/// checked line by line; returns its field names.
fn top_block(out: &[u8], what: &str) -> Vec<String> {
    let end = first_empty_line(out)
        .unwrap_or_else(|| panic!("{what}: no empty line after the header block"));
    match split_fields(&out[..end], b"\r\n") {
        Ok(fields) => names(&fields),
        Err(e) => panic!("{what}: {e}"),
    }
}

/// Field names as mail-parser reads them.
fn mail_parser_names(msg: &[u8]) -> Vec<String> {
    MessageParser::new()
        .parse_headers(msg)
        .map(|m| {
            m.headers()
                .iter()
                .map(|h| h.raw_name().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn same_names<A: AsRef<str>, B: AsRef<str>>(a: &[A], b: &[B]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.as_ref().eq_ignore_ascii_case(y.as_ref()))
}

/// A message the host built itself (reply, attachment forward): its top block on the wire
/// is exactly `expected`, for us, for HeaderBlock and for mail-parser.
fn check_built(out: &[u8], expected: &[&str], what: &str) {
    let got = top_block(out, what);
    assert!(
        same_names(&got, expected),
        "{what}: wrote fields {got:?}, expected {expected:?}"
    );
    let wire = crlf(out);
    let got = top_block(&wire, what);
    assert!(
        same_names(&got, expected),
        "{what}: on the wire fields {got:?}, expected {expected:?}"
    );
    let got = HeaderBlock::parse(&wire).names();
    assert!(
        same_names(&got, expected),
        "{what}: HeaderBlock reads {got:?}, expected {expected:?}"
    );
    let got = mail_parser_names(&wire);
    assert!(
        same_names(&got, expected),
        "{what}: mail-parser reads {got:?}, expected {expected:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&variant, raw)) = data.split_first() else {
        return;
    };
    let v = Variant::from_byte(variant);
    let email = Email::new(raw.to_vec(), "INBOX", vec![]);
    let id = outgoing_id("fuzz-message", "fuzz-plugin", 0);

    // Reply: to the sender as the pipeline finds it, if the validator would let it through.
    let to = reply::response_address(&email)
        .filter(|a| validate_addr_spec(a).is_ok())
        .unwrap_or_else(|| "bob@example.org".into());
    let out = reply::compose(&email, &v.reply, &to, &v.identity, &id, v.now_ms);
    let mut expected = vec!["From", "To", "Subject", "Date", "Message-ID"];
    // The threading pair is there when the original has a valid Message-ID: take the
    // builder's word for whether it has, and check the pair is whole.
    if top_block(&out, "reply")
        .get(5)
        .is_some_and(|n| n == "In-Reply-To")
    {
        expected.extend(["In-Reply-To", "References"]);
    }
    expected.extend(["Auto-Submitted", LOOP_HEADER]);
    expected.extend(v.reply.headers.iter().map(|h| h.name.as_str()));
    expected.extend(["MIME-Version", "Content-Type"]);
    if v.reply.html.is_none() {
        expected.push("Content-Transfer-Encoding");
    }
    check_built(&out, &expected, "reply");

    // Redirect: six Resent-*/marker fields on top of the original's fields (less its
    // Auto-Submitted), as built and as sent.
    let fwd_to = vec![
        "alice@home.example.org".to_string(),
        "dana@example.com".to_string(),
    ];
    let spec = |attach: bool| ForwardSpec {
        id: id.clone(),
        attach,
        to: fwd_to.clone(),
        note: v.note.map(str::to_string),
        from_address: v.identity.address.clone(),
        from_name: v.identity.name.clone(),
        now_ms: v.now_ms,
    };
    let top = [
        "Resent-From",
        "Resent-Date",
        "Resent-To",
        "Resent-Message-ID",
        "Auto-Submitted",
        LOOP_HEADER,
    ];
    let out = forward::redirect(&email, &fwd_to, &v.identity, &id, v.now_ms);
    assert!(
        out.ends_with(body_of(raw)),
        "redirect: the original body is not kept"
    );
    let wire = spec(false).build(&email);
    assert!(
        wire.starts_with(b"Resent-From: "),
        "redirect: the original's first lines are written above the Resent-* block: {:?}",
        String::from_utf8_lossy(&wire[..wire.len().min(200)])
    );
    let mut pos = 0;
    for _ in 0..top.len() {
        let Some(line_end) = mailpipe_fuzz::find(&wire[pos..], b"\r\n") else {
            panic!("redirect: fewer than {} lines", top.len());
        };
        pos += line_end + 2;
    }
    let fields = split_fields(&wire[..pos], b"\r\n").unwrap_or_else(|e| panic!("redirect: {e}"));
    assert_eq!(names(&fields), top, "redirect: unexpected Resent-* block");
    assert!(
        !matches!(wire.get(pos), Some(b' ' | b'\t')),
        "redirect: the original's first line {:?} folds into our {LOOP_HEADER} field",
        String::from_utf8_lossy(&wire[pos..wire.len().min(pos + 60)])
    );
    let mut expected: Vec<String> = top.iter().map(|s| s.to_string()).collect();
    expected.extend(
        HeaderBlock::parse(raw)
            .names()
            .into_iter()
            .filter(|n| !n.eq_ignore_ascii_case("Auto-Submitted")),
    );
    let got = HeaderBlock::parse(&wire).names();
    assert!(
        same_names(&got, &expected),
        "redirect: on the wire the fields are {got:?}, the host read and wrote {expected:?}"
    );
    let got = mail_parser_names(&wire);
    assert!(
        got.len() >= top.len() && same_names(&got[..top.len()], &top),
        "redirect: mail-parser reads fields {got:?}"
    );
    let block_end = first_empty_line(&wire).unwrap_or(wire.len());
    assert!(
        !wire[..block_end].contains(&0),
        "redirect: a NUL in the header block on the wire"
    );

    // Forward as attachment: a new header block, the original inside, as built and as sent.
    let expected = [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "Auto-Submitted",
        LOOP_HEADER,
        "MIME-Version",
        "Content-Type",
    ];
    let out = forward::as_attachment(&email, &fwd_to, v.note, &v.identity, &id, v.now_ms);
    check_built(&out, &expected, "forward");
    let wire = spec(true).build(&email);
    check_built(&wire, &expected, "forward (wire)");
    // The boundary the builder chose (it avoids any that occurs in the original).
    let top = HeaderBlock::parse(&wire);
    let content_type = top
        .values("Content-Type")
        .next()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .expect("forward: a Content-Type field");
    let chosen = content_type
        .split("boundary=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("forward: a multipart boundary in its Content-Type");
    assert!(chosen.starts_with(&format!("=_mailpipe_{id}")), "{chosen}");
    let boundary = format!("--{chosen}");
    assert!(
        wire.ends_with(format!("{boundary}--\r\n").as_bytes()),
        "forward: does not end with its closing boundary"
    );
    let delimiters = wire
        .split(|&b| b == b'\n')
        .filter(|l| {
            l.strip_suffix(b"\r")
                .unwrap_or(l)
                .starts_with(boundary.as_bytes())
        })
        .count();
    assert_eq!(
        delimiters, 3,
        "forward: the boundary {boundary} occurs in the attached original (RFC 2046 5.1.1)"
    );
});
