// Property: building the plugins' view of any bytes as a message never panics, for
// needs=headers and needs=bodies, and the header names in the view (msg.headers[i].name) are,
// in order, the names of the fields `HeaderBlock::parse` finds (the parser header actions
// edit with), so a plugin never sees a field that set/remove-header cannot address or vice
// versa; both views show the same fields; and every part read alone through the 0.2 message
// resource's reader (`Readable`) is that part of the whole view. Input: the raw message bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailpipe::plugin::readable::Readable;
use mailpipe::message::rewrite::HeaderBlock;
use mailpipe::message::{view, Email};
use mailpipe::model::message::Needs;

fuzz_target!(|raw: &[u8]| {
    let email = Email::new(raw.to_vec(), "INBOX", vec![]);
    let headers = view::to_view(&email, Needs::Headers);
    let bodies = view::to_view(&email, Needs::Bodies);
    assert_eq!(headers.size, raw.len() as u64);
    assert_eq!(bodies.size, raw.len() as u64);
    assert!(
        headers.text_body.is_none() && headers.attachments.is_empty(),
        "needs=headers decoded a body"
    );

    let names: Vec<&str> = headers.headers.iter().map(|h| h.name.as_str()).collect();
    let expected = HeaderBlock::parse(raw).names();
    assert_eq!(
        names, expected,
        "view header names differ from HeaderBlock's fields"
    );

    let fields = |m: &view::View| -> Vec<(String, String)> {
        m.headers
            .iter()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect()
    };
    assert_eq!(
        fields(&headers),
        fields(&bodies),
        "needs=headers and needs=bodies disagree"
    );
    assert_eq!(headers.subject, bodies.subject);
    assert_eq!(headers.message_id, bodies.message_id);
    assert_eq!(
        email.headers(),
        fields(&headers),
        "Email::headers differs from the view"
    );

    let one = Readable::new(email.clone());
    assert_eq!(one.subject(), headers.subject);
    assert_eq!(one.message_id(), headers.message_id);
    assert_eq!(one.date(), headers.date);
    let addresses = |a: &[mailpipe::model::message::Address]| -> Vec<(Option<String>, String)> {
        a.iter()
            .map(|a| (a.name.clone(), a.address.clone()))
            .collect()
    };
    assert_eq!(addresses(&one.addresses("From")), addresses(&headers.from));
    assert_eq!(addresses(&one.addresses("To")), addresses(&headers.to));
    assert_eq!(addresses(&one.addresses("Cc")), addresses(&headers.cc));
    let read: Vec<(String, String)> = one
        .headers()
        .into_iter()
        .map(|h| (h.name, h.value))
        .collect();
    assert_eq!(
        read,
        fields(&headers),
        "the resource's headers differ from the view"
    );
});
