// Property: building the plugins' view of any bytes as a message never panics, for
// needs=headers and needs=bodies, and the header names in the view (msg.headers[i].name) are,
// in order, the names of the fields `HeaderBlock::parse` finds (the parser header actions
// edit with), so a plugin never sees a field that set/remove-header cannot address or vice
// versa; both views show the same fields. Input: the raw message bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailpipe::message::rewrite::HeaderBlock;
use mailpipe::message::{view, Email};
use mailpipe::plugin::bindings::Needs;

fuzz_target!(|raw: &[u8]| {
    let email = Email::new(raw.to_vec(), "INBOX", vec![]);
    let headers = view::to_wit(&email, Needs::Headers);
    let bodies = view::to_wit(&email, Needs::Bodies);
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

    let fields = |m: &mailpipe::plugin::bindings::Message| -> Vec<(String, String)> {
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
});
