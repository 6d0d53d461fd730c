//! POP3 on the wire (RFC 1939): one status line per command (`+OK` / `-ERR`), and the
//! multi-line answers of CAPA, UIDL, LIST, RETR and TOP, ended by a lone "." and
//! dot-stuffed. Everything read is bounded: a status line by `STATUS_LINE`, a multi-line
//! answer by what the caller allows, so a server that sends without end cannot make
//! mailpipe hold more than that; and every read has the command deadline, so a silent
//! server is noticed.

use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use super::Pop3Error;

/// The longest status line read (RFC 1939 allows 512 octets; servers put more in -ERR text).
const STATUS_LINE: usize = 4096;

/// A byte stream to a POP3 server: TCP, or TLS over it.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> Io for T {}

/// One connection: reads lines, writes commands, with a deadline for each.
pub struct Conn {
    io: BufReader<Box<dyn Io>>,
    deadline: Duration,
}

impl Conn {
    pub fn new(io: Box<dyn Io>, deadline: Duration) -> Conn {
        Conn {
            io: BufReader::new(io),
            deadline,
        }
    }

    /// The stream underneath (for STLS: the TLS handshake takes it over).
    pub fn into_inner(self) -> Box<dyn Io> {
        self.io.into_inner()
    }

    /// Whether the server sent bytes nobody asked for yet (after STLS: an injection).
    pub fn has_buffered(&self) -> bool {
        !self.io.buffer().is_empty()
    }

    /// The server's status line: `Ok(text after +OK)`, or `Refused` with its -ERR text.
    pub async fn status(&mut self, context: &str) -> Result<String, Pop3Error> {
        let line = self.line(context, STATUS_LINE).await?;
        parse_status(&line, context)
    }

    /// Send one command line (CRLF added) and read its status.
    pub async fn command(&mut self, line: &str, context: &str) -> Result<String, Pop3Error> {
        self.send(line, context).await?;
        self.status(context).await
    }

    /// Send one line without reading the answer (AUTH's continuation lines).
    pub async fn send(&mut self, line: &str, context: &str) -> Result<(), Pop3Error> {
        if line.contains(['\r', '\n']) {
            return Err(Pop3Error::protocol(context, "a line break in a command"));
        }
        let io = self.io.get_mut();
        let write = async {
            io.write_all(line.as_bytes()).await?;
            io.write_all(b"\r\n").await?;
            io.flush().await
        };
        match tokio::time::timeout(self.deadline, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Pop3Error::protocol(context, e)),
            Err(_) => Err(Pop3Error::timeout(context, self.deadline)),
        }
    }

    /// A `+ challenge` line (SASL) or a status line.
    pub async fn challenge_or_status(
        &mut self,
        context: &str,
    ) -> Result<Result<String, String>, Pop3Error> {
        let line = self.line(context, STATUS_LINE).await?;
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.starts_with("+ ") || text == "+" {
            return Ok(Err(text[1..].trim().to_string()));
        }
        parse_status(&line, context).map(Ok)
    }

    /// The body of a multi-line answer (after its +OK line), dot-stuffing undone, lines
    /// ending as the server sent them; an error when it is longer than `limit` bytes (the
    /// connection is of no further use then: the rest is still coming).
    pub async fn multiline(&mut self, context: &str, limit: u64) -> Result<Vec<u8>, Pop3Error> {
        let mut out = Vec::new();
        loop {
            let room = (limit as usize).saturating_sub(out.len()).saturating_add(3);
            let too_large = || Pop3Error::TooLarge {
                context: context.into(),
                limit,
            };
            let Some(line) = self.bounded_line(context, room.max(STATUS_LINE)).await? else {
                return Err(too_large());
            };
            let bare = trim_eol(&line);
            if bare == b"." {
                return Ok(out);
            }
            let line = if line.starts_with(b".") {
                &line[1..]
            } else {
                &line[..]
            };
            if (out.len() + line.len()) as u64 > limit {
                return Err(too_large());
            }
            out.extend_from_slice(line);
        }
    }

    /// One line with its end, at most `max` bytes; the connection ending first is an error.
    async fn line(&mut self, context: &str, max: usize) -> Result<Vec<u8>, Pop3Error> {
        self.bounded_line(context, max)
            .await?
            .ok_or_else(|| Pop3Error::protocol(context, format!("a line longer than {max} bytes")))
    }

    /// One line with its end; None when it is longer than `max` bytes.
    async fn bounded_line(
        &mut self,
        context: &str,
        max: usize,
    ) -> Result<Option<Vec<u8>>, Pop3Error> {
        let mut buf = Vec::new();
        let read = async {
            loop {
                let chunk = self.io.fill_buf().await?;
                if chunk.is_empty() {
                    return Ok::<bool, std::io::Error>(false);
                }
                let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
                    Some(i) => (i + 1, true),
                    None => (chunk.len(), false),
                };
                let take = take.min(max.saturating_sub(buf.len()) + 1);
                buf.extend_from_slice(&chunk[..take]);
                self.io.consume(take);
                if done && buf.ends_with(b"\n") {
                    return Ok(true);
                }
                if buf.len() > max {
                    return Ok(true);
                }
            }
        };
        match tokio::time::timeout(self.deadline, read).await {
            Err(_) => Err(Pop3Error::timeout(context, self.deadline)),
            Ok(Err(e)) => Err(Pop3Error::protocol(context, e)),
            Ok(Ok(false)) => Err(Pop3Error::protocol(
                context,
                "the server closed the connection",
            )),
            Ok(Ok(true)) if buf.len() > max => Ok(None),
            Ok(Ok(true)) => Ok(Some(buf)),
        }
    }
}

/// A status line: `Ok(text after +OK)`, `Refused` with the -ERR text, or not POP3.
fn parse_status(line: &[u8], context: &str) -> Result<String, Pop3Error> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches(['\r', '\n']);
    if let Some(rest) = strip_prefix_ci(text, "+OK") {
        return Ok(rest.trim_start().to_string());
    }
    if let Some(rest) = strip_prefix_ci(text, "-ERR") {
        return Err(Pop3Error::Refused {
            context: context.into(),
            message: readable(rest.trim_start().as_bytes()),
        });
    }
    Err(Pop3Error::protocol(
        context,
        format!("not a POP3 answer: {}", readable(text.as_bytes())),
    ))
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = &text[prefix.len()..];
    // "+OKAY" is not "+OK".
    (rest.is_empty() || rest.starts_with(' ')).then_some(rest)
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Server text for an error message: printable, control bytes escaped, at most 200 bytes.
pub fn readable(bytes: &[u8]) -> String {
    let mut s: String = bytes
        .iter()
        .take(200)
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    if bytes.len() > 200 {
        s.push('…');
    }
    s
}

/// The `n id` / `n size` lines of UIDL and LIST: (message number, the rest).
pub fn numbered_lines(body: &[u8], context: &str) -> Result<Vec<(u32, String)>, Pop3Error> {
    let text = String::from_utf8_lossy(body);
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (n, rest) = line.split_once(' ').unwrap_or((line, ""));
        let n: u32 = n.parse().map_err(|_| {
            Pop3Error::protocol(
                context,
                format!("not a numbered line: {}", readable(line.as_bytes())),
            )
        })?;
        out.push((n, rest.trim().to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(server: &'static [u8]) -> Conn {
        let (client, mut far) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move {
            let _ = far.write_all(server).await;
            // Keep the far end open a while, then close.
            tokio::time::sleep(Duration::from_millis(200)).await;
        });
        Conn::new(Box::new(client), Duration::from_secs(2))
    }

    #[tokio::test]
    async fn status_lines_ok_err_and_garbage() {
        let mut c = conn(b"+OK ready <1.2@x>\r\n-ERR no such message\r\n* BAD\r\n+OKAY\r\n");
        assert_eq!(c.status("greeting").await.unwrap(), "ready <1.2@x>");
        let e = c.status("RETR").await.unwrap_err();
        assert!(matches!(e, Pop3Error::Refused { .. }), "{e}");
        assert!(e.to_string().contains("no such message"), "{e}");
        assert!(c.status("x").await.is_err());
        assert!(c.status("x").await.is_err(), "+OKAY is not +OK");
    }

    #[tokio::test]
    async fn multiline_undoes_dot_stuffing_and_keeps_line_ends() {
        let mut c = conn(b"Subject: a\r\n\r\n..leading dot\r\n.\r\nnext\r\n");
        let body = c.multiline("RETR 1", 1000).await.unwrap();
        assert_eq!(body, b"Subject: a\r\n\r\n.leading dot\r\n");
        let mut c = conn(b"0123456789\r\n0123456789\r\n.\r\n");
        let e = c.multiline("RETR 1", 15).await.unwrap_err();
        assert!(matches!(e, Pop3Error::TooLarge { .. }), "{e}");
        // One line longer than the limit is the message being too large, too.
        static LONG: [u8; 10_000] = [b'x'; 10_000];
        let mut c = conn(&LONG);
        let e = c.multiline("RETR 1", 5000).await.unwrap_err();
        assert!(matches!(e, Pop3Error::TooLarge { .. }), "{e}");
    }

    #[tokio::test]
    async fn a_connection_that_ends_mid_answer_is_an_error_not_a_short_message() {
        let mut c = conn(b"Subject: a\r\n\r\nhalf a mess");
        let e = c.multiline("RETR 1", 1000).await.unwrap_err();
        assert!(e.to_string().contains("closed"), "{e}");
    }

    #[tokio::test]
    async fn an_endless_line_and_silence_end_in_errors() {
        static LONG: [u8; 10_000] = [b'a'; 10_000];
        let mut c = conn(&LONG);
        let e = c.status("greeting").await.unwrap_err();
        assert!(e.to_string().contains("longer than"), "{e}");
        let (client, _far) = tokio::io::duplex(64);
        let mut c = Conn::new(Box::new(client), Duration::from_millis(100));
        let e = c.status("greeting").await.unwrap_err();
        assert!(matches!(e, Pop3Error::Timeout { .. }), "{e}");
    }

    #[test]
    fn numbered_lines_of_uidl_and_list() {
        let l = numbered_lines(b"1 abc\r\n2 d e\r\n", "UIDL").unwrap();
        assert_eq!(l, vec![(1, "abc".into()), (2, "d e".into())]);
        assert!(numbered_lines(b"x y\r\n", "UIDL").is_err());
    }
}
