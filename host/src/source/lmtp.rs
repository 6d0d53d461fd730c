//! LMTP (RFC 2033): how a mail server (Postfix's `lmtp:` transport, Exim's `lmtp`
//! transport) hands mail over at delivery time. This file speaks the protocol only: it
//! reads the envelope and the message, asks `Deliveries` (the job layer, `run::lmtp`)
//! whether a recipient is taken and to deliver, and answers once per accepted recipient,
//! in order, as LMTP requires. PIPELINING, ENHANCEDSTATUSCODES, 8BITMIME and SIZE are
//! offered; a command line is at most 4 KiB, a message at most `max_message_bytes`, a
//! transaction at most `max_recipients`, and a silent client is dropped after 5 minutes.

use futures::future::BoxFuture;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// One reply line: the code, its enhanced status code (RFC 3463) and text.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: String,
    pub text: String,
}

impl Reply {
    pub fn new(code: u16, enhanced: &str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: enhanced.to_string(),
            text: text.into(),
        }
    }

    fn line(&self) -> String {
        // The text goes on one line, whatever a caller put in it.
        let text: String = self
            .text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(400)
            .collect();
        format!("{} {} {}\r\n", self.code, self.enhanced, text)
    }
}

/// What the server delivers to (the job layer).
pub trait Deliveries: Send + Sync {
    /// At RCPT TO: None when mail for `recipient` is taken, else the refusal to answer.
    fn refuse_recipient(&self, recipient: &str) -> Option<Reply>;
    /// After the message's end: deliver `raw` from `sender` ("" for the null sender) to
    /// `recipient`; the reply for this recipient (250 only once it is durably stored).
    fn deliver<'a>(
        &'a self,
        sender: &'a str,
        recipient: &'a str,
        raw: bytes::Bytes,
    ) -> BoxFuture<'a, Reply>;
}

/// The limits of one session.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_message_bytes: u64,
    pub max_recipients: usize,
    pub idle: std::time::Duration,
}

/// The longest command line taken (RFC 5321 allows 512 octets; parameters make more).
const MAX_LINE: usize = 4096;

/// Serve one LMTP session on `stream` until QUIT, an error, or silence.
pub async fn session<S>(stream: S, hostname: &str, limits: &Limits, deliveries: &dyn Deliveries)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (r, mut w) = tokio::io::split(stream);
    let mut r = BufReader::new(r);
    let mut out = String::new();
    out += &format!("220 {hostname} LMTP mailpipe ready\r\n");
    let mut greeted = false;
    let mut sender: Option<String> = None;
    let mut recipients: Vec<String> = Vec::new();
    loop {
        // Replies wait while the client has pipelined more commands (RFC 2920).
        if r.buffer().is_empty() && !out.is_empty() {
            if w.write_all(out.as_bytes()).await.is_err() || w.flush().await.is_err() {
                return;
            }
            out.clear();
        }
        let line = match tokio::time::timeout(limits.idle, read_line(&mut r, MAX_LINE)).await {
            Err(_) => {
                out += "421 4.4.2 idle too long, closing\r\n";
                break;
            }
            Ok(Err(_)) | Ok(Ok(Line::Eof)) => return,
            Ok(Ok(Line::TooLong)) => {
                out += "500 5.5.2 line too long\r\n";
                continue;
            }
            Ok(Ok(Line::Text(l))) => l,
        };
        let (verb, rest) = match line.split_once(' ') {
            Some((v, r)) => (v.to_ascii_uppercase(), r.trim()),
            None => (line.to_ascii_uppercase(), ""),
        };
        match verb.as_str() {
            "LHLO" if !rest.is_empty() => {
                greeted = true;
                sender = None;
                recipients.clear();
                out += &format!(
                    "250-{hostname}\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250 SIZE {}\r\n",
                    limits.max_message_bytes
                );
            }
            "LHLO" => out += "501 5.5.4 LHLO needs a domain\r\n",
            "HELO" | "EHLO" => out += "500 5.5.1 this is LMTP: say LHLO\r\n",
            "MAIL" if !greeted => out += "503 5.5.1 LHLO first\r\n",
            "MAIL" if sender.is_some() => out += "503 5.5.1 nested MAIL command\r\n",
            "MAIL" => match parse_path(rest, "FROM:") {
                None => out += "501 5.5.4 syntax: MAIL FROM:<address>\r\n",
                Some((path, params)) => {
                    let too_big = params.iter().any(|p| {
                        p.to_ascii_uppercase()
                            .strip_prefix("SIZE=")
                            .and_then(|n| n.parse::<u64>().ok())
                            .is_some_and(|n| n > limits.max_message_bytes)
                    });
                    if too_big {
                        out += "552 5.3.4 message larger than this server takes\r\n";
                    } else {
                        sender = Some(path);
                        out += "250 2.1.0 sender ok\r\n";
                    }
                }
            },
            "RCPT" if sender.is_none() => out += "503 5.5.1 MAIL first\r\n",
            "RCPT" => match parse_path(rest, "TO:").filter(|(p, _)| !p.is_empty()) {
                None => out += "501 5.5.4 syntax: RCPT TO:<address>\r\n",
                Some((path, _)) => {
                    if recipients.len() >= limits.max_recipients {
                        out += "452 4.5.3 too many recipients\r\n";
                    } else if let Some(refusal) = deliveries.refuse_recipient(&path) {
                        out += &refusal.line();
                    } else {
                        recipients.push(path);
                        out += "250 2.1.5 recipient ok\r\n";
                    }
                }
            },
            "DATA" if recipients.is_empty() => out += "503 5.5.1 no valid recipients\r\n",
            "DATA" => {
                out += "354 go ahead, end with <CRLF>.<CRLF>\r\n";
                if w.write_all(out.as_bytes()).await.is_err() || w.flush().await.is_err() {
                    return;
                }
                out.clear();
                let data = match tokio::time::timeout(
                    limits.idle,
                    read_data(&mut r, limits.max_message_bytes),
                )
                .await
                {
                    Err(_) | Ok(Err(_)) => return,
                    Ok(Ok(d)) => d,
                };
                let from = sender.take().unwrap_or_default();
                for rcpt in std::mem::take(&mut recipients) {
                    let reply = match &data {
                        None => Reply::new(552, "5.3.4", "message larger than this server takes"),
                        Some(raw) => deliveries.deliver(&from, &rcpt, raw.clone()).await,
                    };
                    out += &reply.line();
                }
            }
            "RSET" => {
                sender = None;
                recipients.clear();
                out += "250 2.0.0 ok\r\n";
            }
            "NOOP" => out += "250 2.0.0 ok\r\n",
            "VRFY" => out += "252 2.5.0 cannot verify, but will take the message\r\n",
            "QUIT" => {
                out += "221 2.0.0 bye\r\n";
                break;
            }
            _ => out += "500 5.5.2 unknown command\r\n",
        }
    }
    let _ = w.write_all(out.as_bytes()).await;
    let _ = w.flush().await;
}

enum Line {
    Text(String),
    TooLong,
    Eof,
}

/// One line without its end; a longer one than `max` is read to its end and reported.
async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R, max: usize) -> std::io::Result<Line> {
    let mut buf = Vec::new();
    let mut too_long = false;
    loop {
        let chunk = r.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(Line::Eof);
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if !too_long {
            buf.extend_from_slice(&chunk[..take]);
            if buf.len() > max {
                too_long = true;
                buf.clear();
            }
        }
        r.consume(take);
        if done {
            break;
        }
    }
    if too_long {
        return Ok(Line::TooLong);
    }
    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        buf.pop();
    }
    Ok(Line::Text(String::from_utf8_lossy(&buf).into_owned()))
}

/// The message up to the lone "." line, dots unstuffed, CRLF kept; None when it was larger
/// than `max` (read to its end all the same, to stay in step with the client).
async fn read_data<R: AsyncBufRead + Unpin>(
    r: &mut R,
    max: u64,
) -> std::io::Result<Option<bytes::Bytes>> {
    let mut data: Vec<u8> = Vec::new();
    let mut over = false;
    let mut line = Vec::new();
    let mut at_line_start = true;
    loop {
        line.clear();
        // A line is read in pieces of at most 64 KiB, so a line without end costs no memory
        // beyond the message limit.
        let n = tokio::io::AsyncReadExt::take(&mut *r, 64 * 1024)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        // Only a piece that starts a line can end the data or carry a stuffed dot.
        let starts_line = std::mem::replace(&mut at_line_start, line.ends_with(b"\n"));
        if starts_line && (line == b".\r\n" || line == b".\n") {
            break;
        }
        let body = if starts_line && line.starts_with(b".") {
            &line[1..]
        } else {
            &line[..]
        };
        if !over {
            if (data.len() + body.len()) as u64 > max {
                over = true;
                data = Vec::new();
            } else {
                data.extend_from_slice(body);
            }
        }
    }
    Ok((!over).then(|| data.into()))
}

/// `FROM:<path> PARAMS` / `TO:<path> PARAMS`: the path (without <>) and the parameters.
fn parse_path(rest: &str, prefix: &str) -> Option<(String, Vec<String>)> {
    let head = rest.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = rest[prefix.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    let path = rest[..end].trim();
    if path.chars().any(|c| c.is_control() || c == ' ') {
        return None;
    }
    // A source route (RFC 5321 4.1.2) is dropped.
    let path = path.rsplit_once(':').map_or(path, |(_, p)| p);
    let params = rest[end + 1..]
        .split_whitespace()
        .map(str::to_string)
        .collect();
    Some((path.to_string(), params))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::io::AsyncReadExt;

    /// Takes mail for *@ok.test; remembers what it delivered; 451 for temp@ok.test.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<(String, String, Vec<u8>)>>);

    impl Deliveries for Recorder {
        fn refuse_recipient(&self, r: &str) -> Option<Reply> {
            (!r.ends_with("@ok.test"))
                .then(|| Reply::new(550, "5.1.1", format!("no such user {r}")))
        }
        fn deliver<'a>(
            &'a self,
            s: &'a str,
            r: &'a str,
            raw: bytes::Bytes,
        ) -> BoxFuture<'a, Reply> {
            Box::pin(async move {
                if r.starts_with("temp@") {
                    return Reply::new(451, "4.3.0", "try later");
                }
                self.0
                    .lock()
                    .unwrap()
                    .push((s.into(), r.into(), raw.to_vec()));
                Reply::new(250, "2.0.0", "delivered")
            })
        }
    }

    async fn talk(input: &str, limits: Limits) -> (String, Vec<(String, String, Vec<u8>)>) {
        let (client, server) = tokio::io::duplex(1 << 20);
        let rec = Recorder::default();
        let (mut cr, mut cw) = tokio::io::split(client);
        let input = input.to_string();
        let writer = async move {
            cw.write_all(input.as_bytes()).await.unwrap();
            cw
        };
        let serve = async {
            session(server, "mx.test", &limits, &rec).await;
        };
        let mut out = String::new();
        let reader = cr.read_to_string(&mut out);
        let (_cw, _, _) = tokio::join!(writer, serve, reader);
        let got = rec.0.lock().unwrap().clone();
        (out, got)
    }

    fn limits() -> Limits {
        Limits {
            max_message_bytes: 1000,
            max_recipients: 3,
            idle: std::time::Duration::from_secs(5),
        }
    }

    fn codes(out: &str) -> Vec<String> {
        out.lines().map(|l| l[..3].to_string()).collect()
    }

    #[tokio::test]
    async fn one_reply_per_recipient_in_order_pipelined() {
        let (out, got) = talk(
            "LHLO mta.test\r\nMAIL FROM:<bob@x.test> SIZE=100 BODY=8BITMIME\r\nRCPT TO:<a@ok.test>\r\n\
             RCPT TO:<nobody@else.test>\r\nRCPT TO:<temp@ok.test>\r\nRCPT TO:<b@ok.test>\r\nDATA\r\n\
             Subject: hi\r\n\r\n..dot line\r\nend\r\n.\r\nQUIT\r\n",
            limits(),
        )
        .await;
        assert_eq!(
            codes(&out),
            // The greeting, LHLO's five lines, MAIL, four RCPTs, DATA, three answers, QUIT.
            [
                "220", "250", "250", "250", "250", "250", "250", "250", "550", "250", "250", "354",
                "250", "451", "250", "221"
            ],
            "{out}"
        );
        assert!(
            out.contains("SIZE 1000") && out.contains("PIPELINING"),
            "{out}"
        );
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].0.as_str(), got[0].1.as_str()),
            ("bob@x.test", "a@ok.test")
        );
        assert_eq!(got[1].1, "b@ok.test");
        assert_eq!(got[0].2, b"Subject: hi\r\n\r\n.dot line\r\nend\r\n");
    }

    #[tokio::test]
    async fn order_sizes_and_limits_are_enforced() {
        let big = "x".repeat(1200);
        let (out, got) = talk(
            &format!(
                "MAIL FROM:<a@b>\r\nHELO x\r\nLHLO x\r\nDATA\r\nRCPT TO:<a@ok.test>\r\nMAIL FROM:<>\r\n\
                 MAIL FROM:<a@b>\r\nRCPT TO:<1@ok.test>\r\nRCPT TO:<2@ok.test>\r\nRCPT TO:<3@ok.test>\r\n\
                 RCPT TO:<4@ok.test>\r\nDATA\r\n{big}\r\n.\r\nMAIL FROM:<a@b> SIZE=5000\r\nMAIL FROM:<a@b\r\n\
                 RCPT TO:<1@ok.test>\r\nRSET\r\nNOOP\r\nVRFY x\r\nFOO\r\n{}\r\nQUIT\r\n",
                "y".repeat(5000)
            ),
            limits(),
        )
        .await;
        let mut want = vec![
            "220", "503", "500", "250", "250", "250", "250", "250", "503", "503",
        ];
        want.extend([
            "250", "503", "250", "250", "250", "452", "354", "552", "552", "552",
        ]);
        want.extend([
            "552", "501", "503", "250", "250", "252", "500", "500", "221",
        ]);
        assert_eq!(codes(&out), want, "{out}");
        // Nothing delivered; every recipient of the oversized message refused; the session
        // still in step after the long data.
        assert!(got.is_empty());
        assert_eq!(out.matches("552 5.3.4").count(), 4, "{out}");
        assert!(
            out.contains("452 4.5.3") && out.contains("500 5.5.1 this is LMTP"),
            "{out}"
        );
        assert!(out.contains("500 5.5.2 line too long"), "{out}");
        assert!(out.ends_with("221 2.0.0 bye\r\n"), "{out}");
    }

    #[tokio::test]
    async fn a_line_longer_than_a_read_piece_is_one_line() {
        // 64 KiB of x, then ".": the "." ends a line, it does not end the data.
        let mut l = limits();
        l.max_message_bytes = 1 << 20;
        let long = format!("{}.", "x".repeat(64 * 1024 - 1));
        let (out, got) = talk(
            &format!("LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<a@ok.test>\r\nDATA\r\nS: x\r\n\r\n{long}\r\nmore\r\n.\r\nQUIT\r\n"),
            l,
        )
        .await;
        assert!(
            out.ends_with("250 2.0.0 delivered\r\n221 2.0.0 bye\r\n"),
            "{out}"
        );
        assert_eq!(
            got[0].2,
            format!("S: x\r\n\r\n{long}\r\nmore\r\n").into_bytes()
        );
    }

    #[tokio::test]
    async fn a_silent_client_is_dropped() {
        let (client, server) = tokio::io::duplex(1024);
        let rec = Recorder::default();
        let mut l = limits();
        l.idle = std::time::Duration::from_millis(100);
        session(server, "mx.test", &l, &rec).await;
        let mut out = String::new();
        let (mut cr, _cw) = tokio::io::split(client);
        cr.read_to_string(&mut out).await.unwrap();
        assert!(
            out.ends_with("421 4.4.2 idle too long, closing\r\n"),
            "{out}"
        );
    }
}
