// Property: the POP3 client's reading of a server (source/pop3/wire.rs) never panics or hangs
// on anything a server sends; a status line is +OK, -ERR or an error; a multi-line answer is
// never longer than its limit; UIDL/LIST lines parse or give an error.
// Input: the bytes a server sends, as they are (greeting, then answers).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailpipe::source::pop3::wire::{numbered_lines, Conn};
use tokio::io::AsyncWriteExt;

const MAX: u64 = 4096;

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, mut server) = tokio::io::duplex(1 << 20);
        let input = data.to_vec();
        let write = async move {
            let _ = server.write_all(&input).await;
            let _ = server.shutdown().await;
            server
        };
        let read = async move {
            let mut c = Conn::new(Box::new(client), std::time::Duration::from_secs(5));
            if c.status("greeting").await.is_err() {
                return;
            }
            for _ in 0..4 {
                match c.multiline("RETR 1", MAX).await {
                    Ok(body) => {
                        assert!(body.len() as u64 <= MAX, "over the limit: {}", body.len());
                        let _ = numbered_lines(&body, "UIDL");
                    }
                    Err(_) => return,
                }
                if c.status("next").await.is_err() {
                    return;
                }
            }
        };
        tokio::join!(write, read);
    });
});
