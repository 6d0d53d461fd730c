//! A watch on the IMAP connection's bytes, below async-imap. async-imap ends a command's
//! response stream at its tagged completion *or* at the end of the connection, and ignores
//! the completion's status (OK / NO / BAD) for FETCH, SEARCH, STORE and EXPUNGE. Mail is lost
//! when either goes unnoticed (a FETCH cut short looked like a complete one; a refused STORE
//! looked done). So every byte in both directions passes through `Watched`, which follows the
//! protocol's framing (lines, and literals `{n}` whose bytes are skipped, so nothing inside a
//! message can pose as a server response) and records the tag of each command sent and the
//! status of each tagged completion received. `Session::completed` then says whether the last
//! command really finished with OK. It also refuses a literal larger than the limit before
//! async-imap allocates a buffer for it, so memory follows the bytes really received.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::connect::Io;

/// Bytes of a logical line kept to read its tag and status.
const HEAD: usize = 160;
/// Bytes kept of a line's end, to find a literal announcement `{n}` or `{n+}`.
const TAIL: usize = 32;

/// How a tagged command completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    Ok,
    /// NO or BAD, with the server's text (escaped, truncated).
    Refused(String),
}

/// One direction's framing state.
#[derive(Debug, Default)]
struct Framer {
    head: Vec<u8>,
    tail: Vec<u8>,
    literal_left: u64,
    /// The current line continues a logical line after a literal.
    continued: bool,
}

impl Framer {
    /// Feed bytes; `on_line` gets the head of each complete logical line (after any
    /// literals), `on_literal` each literal's announced size (it may refuse it).
    fn feed(
        &mut self,
        mut data: &[u8],
        on_line: &mut dyn FnMut(&[u8]),
        on_literal: &mut dyn FnMut(u64) -> bool,
    ) -> bool {
        while !data.is_empty() {
            if self.literal_left > 0 {
                let n = (self.literal_left.min(data.len() as u64)) as usize;
                self.literal_left -= n as u64;
                data = &data[n..];
                continue;
            }
            let (line, rest, complete) = match memchr::memchr(b'\n', data) {
                Some(i) => (&data[..=i], &data[i + 1..], true),
                None => (data, &data[data.len()..], false),
            };
            data = rest;
            if !self.continued && self.head.len() < HEAD {
                let take = (HEAD - self.head.len()).min(line.len());
                self.head.extend_from_slice(&line[..take]);
            }
            self.tail.extend_from_slice(line);
            if self.tail.len() > TAIL {
                self.tail.drain(..self.tail.len() - TAIL);
            }
            if !complete {
                continue;
            }
            match literal_size(&self.tail) {
                Some(n) => {
                    if !on_literal(n) {
                        return false;
                    }
                    self.literal_left = n;
                    self.continued = true;
                }
                None => {
                    on_line(&self.head);
                    self.head.clear();
                    self.continued = false;
                }
            }
            self.tail.clear();
        }
        true
    }
}

/// The size of a literal announced at the end of a line: `{123}\r\n` or `{123+}\r\n`.
fn literal_size(line_end: &[u8]) -> Option<u64> {
    let s = line_end.strip_suffix(b"\n")?;
    let s = s.strip_suffix(b"\r").unwrap_or(s);
    let s = s.strip_suffix(b"}")?;
    let s = s.strip_suffix(b"+").unwrap_or(s);
    let open = s.iter().rposition(|&b| b == b'{')?;
    let digits = &s[open + 1..];
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// What the watch has seen, shared with the session's owner.
#[derive(Debug, Default)]
pub struct WireState {
    out: Framer,
    inp: Framer,
    /// Tag of the last command sent.
    last_tag: Option<String>,
    /// The last tagged completion received: (tag, how).
    last_done: Option<(String, Completion)>,
    /// The server said BYE.
    bye: Option<String>,
    /// Largest literal accepted from the server.
    max_literal: u64,
    /// A literal over `max_literal` was announced (its size).
    refused_literal: Option<u64>,
}

/// Text from the server as a person can read it: printable ASCII kept, the rest escaped,
/// at most 200 bytes.
pub fn readable(bytes: &[u8]) -> String {
    let text: String = bytes
        .iter()
        .take(200)
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    let text = text.trim_end_matches("\\r\\n").trim_end_matches("\\n");
    if bytes.len() > 200 {
        format!("{text}…")
    } else {
        text.to_string()
    }
}

impl WireState {
    fn sent(&mut self, data: &[u8]) {
        let mut tag = None;
        self.out.feed(
            data,
            &mut |line| {
                // "TAG COMMAND ...": a tag is letters and digits; "DONE" (ends IDLE) and
                // continuation data have no command after them.
                let mut words = line.split(|&b| b == b' ');
                let first = words.next().unwrap_or_default();
                if !first.is_empty()
                    && first.iter().all(u8::is_ascii_alphanumeric)
                    && words.next().is_some_and(|w| !w.is_empty())
                {
                    tag = Some(String::from_utf8_lossy(first).into_owned());
                }
            },
            &mut |_| true,
        );
        if let Some(t) = tag {
            self.last_tag = Some(t);
        }
    }

    /// Returns false when a literal over the limit is announced.
    fn received(&mut self, data: &[u8]) -> bool {
        let (mut done, mut bye) = (None, None);
        let max = self.max_literal;
        let mut refused = None;
        let ok = self.inp.feed(
            data,
            &mut |line| {
                if let Some(rest) = line.strip_prefix(b"* ") {
                    if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(b"BYE") {
                        bye = Some(readable(line));
                    }
                    return;
                }
                if line.starts_with(b"+") {
                    return;
                }
                let mut words = line.splitn(3, |&b| b == b' ');
                let (Some(tag), Some(status)) = (words.next(), words.next()) else {
                    return;
                };
                let how = if status.eq_ignore_ascii_case(b"OK") {
                    Completion::Ok
                } else if status.eq_ignore_ascii_case(b"NO") || status.eq_ignore_ascii_case(b"BAD")
                {
                    Completion::Refused(readable(line))
                } else {
                    return;
                };
                done = Some((String::from_utf8_lossy(tag).into_owned(), how));
            },
            &mut |n| {
                if max > 0 && n > max {
                    refused = Some(n);
                    false
                } else {
                    true
                }
            },
        );
        if done.is_some() {
            self.last_done = done;
        }
        if bye.is_some() {
            self.bye = bye;
        }
        if refused.is_some() {
            self.refused_literal = refused;
        }
        ok
    }

    /// How the last command sent completed: None when no tagged completion for it arrived
    /// (the connection ended or the server said BYE first).
    pub fn last_completion(&self) -> Option<Completion> {
        let tag = self.last_tag.as_ref()?;
        match &self.last_done {
            Some((t, how)) if t == tag => Some(how.clone()),
            _ => None,
        }
    }

    pub fn bye(&self) -> Option<&str> {
        self.bye.as_deref()
    }

    pub fn refused_literal(&self) -> Option<u64> {
        self.refused_literal
    }
}

/// The connection's byte stream with the watch on it.
#[derive(Debug)]
pub struct Watched {
    inner: Box<dyn Io>,
    state: Arc<Mutex<WireState>>,
}

impl Watched {
    /// `max_literal`: the largest literal the server may send (0: no limit).
    pub fn new(inner: Box<dyn Io>, max_literal: u64) -> Watched {
        Watched {
            inner,
            state: Arc::new(Mutex::new(WireState {
                max_literal,
                ..Default::default()
            })),
        }
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, WireState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                let new = new.to_vec();
                let mut st = self.state();
                if !st.received(&new) {
                    let n = st.refused_literal.unwrap_or_default();
                    return Poll::Ready(Err(std::io::Error::other(format!(
                        "the server announced a literal of {n} bytes, over the limit of {} bytes",
                        st.max_literal
                    ))));
                }
            }
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.state().sent(&buf[..n]);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(max: u64) -> WireState {
        WireState {
            max_literal: max,
            ..Default::default()
        }
    }

    #[test]
    fn completions_follow_the_last_tag_and_skip_literals() {
        let mut w = state(0);
        w.sent(b"A0001 UID FETCH 1:2 (BODY.PEEK[])\r\n");
        assert_eq!(w.last_completion(), None);
        // A message body holding a line that looks like our tag's completion.
        let body = b"Subject: x\r\n\r\nA0001 OK fooled you\r\n";
        let mut resp = format!("* 1 FETCH (UID 1 BODY[] {{{}}}\r\n", body.len()).into_bytes();
        resp.extend_from_slice(body);
        resp.extend_from_slice(b")\r\n");
        assert!(w.received(&resp));
        assert_eq!(
            w.last_completion(),
            None,
            "text inside a literal is no response"
        );
        // Split across reads, like a real socket.
        assert!(w.received(b"A0001 N"));
        assert!(w.received(b"O [CANNOT] refused\r\n"));
        assert!(
            matches!(w.last_completion(), Some(Completion::Refused(t)) if t.contains("refused"))
        );
        w.sent(b"A0002 UID STORE 1 +FLAGS.SILENT (\\Seen)\r\n");
        assert_eq!(w.last_completion(), None, "a new command is not done yet");
        assert!(w.received(b"A0002 OK done\r\n"));
        assert_eq!(w.last_completion(), Some(Completion::Ok));
    }

    #[test]
    fn idle_done_and_append_literals_keep_the_tag() {
        let mut w = state(0);
        w.sent(b"A0003 APPEND INBOX {5+}\r\nA0009 x\r\n");
        w.sent(b"DONE\r\n");
        assert!(w.received(b"A0003 OK appended\r\n"));
        assert_eq!(w.last_completion(), Some(Completion::Ok));
    }

    #[test]
    fn bye_and_oversized_literals_are_seen() {
        let mut w = state(1000);
        w.sent(b"A0004 UID FETCH 1 BODY.PEEK[]\r\n");
        assert!(w.received(b"* BYE going away\r\n"));
        assert!(w.bye().is_some());
        assert!(!w.received(b"* 1 FETCH (BODY[] {500000000}\r\n"));
        assert_eq!(w.refused_literal(), Some(500_000_000));
    }

    #[test]
    fn readable_escapes_bytes() {
        assert_eq!(
            readable(b"* LIST () \"/\" \"a\xffb\"\r\n"),
            "* LIST () \\\"/\\\" \\\"a\\xffb\\\""
        );
    }
}
