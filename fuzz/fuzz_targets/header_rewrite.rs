// Property: a set/add/remove-header edit (`mailpipe::message::rewrite::edit`) of any message,
// with any name and value, never panics; keeps the body (everything from the first empty line
// on) byte for byte at the end of the output; adds exactly the one field asked for and
// removes exactly the fields of that name, whatever CR/LF/NUL the value or name holds (no
// header injection); after remove(name) no field called name is left when the output is
// parsed again; after set(name, value) with a valid name there is exactly one such field and
// it reads back as the cleaned value (`model::text::clean_text`, trimmed).
// Input: byte 0 the operation (set/add/remove), byte 1 the name and byte 2 the value: below
// 0x80 one of NAMES / VALUES, else a line taken from the input; then the message bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailpipe::model::text::clean_text;
use mailpipe::message::rewrite::{edit, HeaderBlock};
use mailpipe::message::Email;
use mailpipe_fuzz::body_of;

const NAMES: &[&str] = &[
    "Subject",
    "subject",
    "From",
    "To",
    "X-Tag",
    "Received",
    "Message-ID",
    "Auto-Submitted",
    "x-mailpipe-loop",
    "Content-Type",
    "A",
    "X-Spam-Status",
];

const VALUES: &[&str] = &[
    "",
    "new",
    "Grüße aus Köln",
    "  spaced   value  ",
    "=?UTF-8?B?Zm9v?=",
    "a very long value a very long value a very long value a very long value a very long value a very long value a very long value",
    "Ünïcödé über fünfundvierzig Bytes, damit mehrere encoded words entstehen – äöüß€",
    "x\r\nBcc: evil@example.net",
    "x\r\n\r\nbody",
    "tab\there",
    "<id@example.org>",
];

/// Take a name or value: from `table` by `choice`, or the next line of `data` (its bytes
/// up to LF, so CR and NUL can be in it).
fn pick(choice: u8, table: &[&str], data: &mut &[u8]) -> String {
    if choice < 0x80 {
        return table[choice as usize % table.len()].to_string();
    }
    let end = data
        .iter()
        .take(200)
        .position(|&b| b == b'\n')
        .unwrap_or(data.len().min(200));
    let s = String::from_utf8_lossy(&data[..end]).into_owned();
    *data = &data[(end + 1).min(data.len())..];
    s
}

/// What the action validator accepts as a header name (actions/validate.rs `header_name`).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 76
        && name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

fuzz_target!(|data: &[u8]| {
    let [op, name_choice, value_choice, ..] = *data else {
        return;
    };
    let mut rest = &data[3..];
    let name = pick(name_choice, NAMES, &mut rest);
    let value = pick(value_choice, VALUES, &mut rest);
    let raw = rest;

    let before = HeaderBlock::parse(raw);
    let fields_before = before.names().len();
    let named_before = before.values(&name).count();
    let out = match op % 3 {
        0 => edit(raw, |h| h.set(&name, &value)),
        1 => edit(raw, |h| h.add(&name, &value)),
        _ => edit(raw, |h| h.remove(&name)),
    };

    let body = body_of(raw);
    assert!(
        out.ends_with(body),
        "the body ({} bytes from the first empty line) is not kept at the end of the output",
        body.len()
    );

    let after = HeaderBlock::parse(&out);
    let fields_after = after.names().len();
    let named_after = after.values(&name).count();
    match op % 3 {
        0 => {
            assert_eq!(
                fields_after,
                fields_before - named_before + 1,
                "set({name:?}, {value:?}): {fields_before} fields, {named_before} of that name, became {fields_after}"
            );
            if valid_name(&name) {
                assert_eq!(
                    named_after, 1,
                    "set({name:?}) left {named_after} fields of that name"
                );
                let read = Email::new(out.clone(), "INBOX", vec![]).header(&name);
                assert_eq!(
                    read,
                    // clean_text trims leading ASCII space only, the reader any Unicode
                    // whitespace ("\u{1680}b" reads back as "b"): compare trimmed.
                    Some(clean_text(&value).trim().to_string()),
                    "set({name:?}, {value:?}) reads back differently"
                );
            }
        }
        1 => {
            assert_eq!(
                fields_after,
                fields_before + 1,
                "add({name:?}, {value:?}) went from {fields_before} to {fields_after} fields"
            );
            if valid_name(&name) {
                assert_eq!(named_after, named_before + 1, "add({name:?})");
            }
        }
        _ => {
            assert_eq!(
                named_after, 0,
                "{named_after} field(s) called {name:?} left after remove"
            );
            assert_eq!(
                fields_after,
                fields_before - named_before,
                "remove({name:?}) removed other fields"
            );
        }
    }
});
