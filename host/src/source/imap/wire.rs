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

use std::fmt::Debug;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Any byte stream an IMAP session can run over (plain TCP or TLS).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Debug> Io for T {}

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

/// A capability list (`* CAPABILITY ...` or a `[CAPABILITY ...]` code) without IMAP4rev1
/// gets it added: servers that leave it out still speak it, and the IMAP library refuses any
/// list without it, which would make the account unusable.
fn with_imap4rev1(line: &[u8], notes: &mut Vec<String>) -> Vec<u8> {
    let upper = line.to_ascii_uppercase();
    let at = memchr::memmem::find(&upper, b"* CAPABILITY")
        .map(|i| i + 12)
        .or_else(|| memchr::memmem::find(&upper, b"[CAPABILITY").map(|i| i + 11));
    match at {
        Some(i) if memchr::memmem::find(&upper, b" IMAP4REV1").is_none() => {
            if notes.iter().all(|n| !n.contains("IMAP4rev1")) {
                notes.push("the server's capability list lacks IMAP4rev1; assumed".into());
            }
            let mut fixed = line[..i].to_vec();
            fixed.extend_from_slice(b" IMAP4rev1");
            fixed.extend_from_slice(&line[i..]);
            fixed
        }
        _ => line.to_vec(),
    }
}

/// What the watch has seen, shared with the session's owner.
/// The server-to-client direction: whole lines are held until complete (so they can be
/// checked and, for a few known defects, repaired before async-imap parses them); literal
/// bytes pass straight through.
#[derive(Debug, Default)]
struct Inbound {
    line: Vec<u8>,
    literal_left: u64,
    /// The current line continues a response after a literal.
    continued: bool,
}

#[derive(Debug, Default)]
pub struct WireState {
    out: Framer,
    inp: Inbound,
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
    /// Responses carrying a COPYUID code (RFC 4315) seen so far.
    copyuids: u64,
    /// Server defects repaired or skipped on the way in, for the user to see.
    notes: Vec<String>,
    /// The last `* NAMESPACE` response (the IMAP library cannot parse it, so it is taken
    /// here and not passed on).
    namespace_line: Option<String>,
    /// The account's personal namespace, once known (see `namespace`).
    pub namespace: super::namespace::Namespace,
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

    /// Take bytes from the server; returns the bytes async-imap gets, or an error when a
    /// literal over the limit is announced.
    fn received(&mut self, mut data: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(data.len());
        while !data.is_empty() {
            if self.inp.literal_left > 0 {
                let n = self.inp.literal_left.min(data.len() as u64) as usize;
                out.extend_from_slice(&data[..n]);
                self.inp.literal_left -= n as u64;
                data = &data[n..];
                continue;
            }
            let (part, rest, complete) = match memchr::memchr(b'\n', data) {
                Some(i) => (&data[..=i], &data[i + 1..], true),
                None => (data, &data[data.len()..], false),
            };
            data = rest;
            self.inp.line.extend_from_slice(part);
            if !complete {
                continue;
            }
            let line = std::mem::take(&mut self.inp.line);
            let literal = literal_size(&line[line.len().saturating_sub(TAIL)..]);
            if let Some(n) = literal {
                if self.max_literal > 0 && n > self.max_literal {
                    self.refused_literal = Some(n);
                    return Err(format!(
                        "the server announced a literal of {n} bytes, over the limit of {} bytes",
                        self.max_literal
                    ));
                }
            }
            let start = !self.inp.continued;
            self.inp.continued = literal.is_some();
            self.inp.literal_left = literal.unwrap_or(0);
            if start {
                if let Some(fixed) = self.response(&line, literal.is_none()) {
                    out.extend_from_slice(&fixed);
                }
            } else {
                out.extend_from_slice(&line);
            }
        }
        Ok(out)
    }

    /// A line that starts a response: note what it says, and return what async-imap should
    /// see of it (None: nothing).
    fn response(&mut self, line: &[u8], whole: bool) -> Option<Vec<u8>> {
        if memchr::memmem::find(line, b"[COPYUID ").is_some() {
            self.copyuids += 1;
        }
        if let Some(rest) = line.strip_prefix(b"* ") {
            let word = rest
                .split(|&b| b == b' ' || b == b'\r')
                .next()
                .unwrap_or_default();
            if word.eq_ignore_ascii_case(b"BYE") {
                self.bye = Some(readable(line));
            }
            if word.eq_ignore_ascii_case(b"NAMESPACE") && whole {
                self.namespace_line = Some(String::from_utf8_lossy(line).into_owned());
                return None;
            }
            // A folder listed under a name that is not UTF-8 cannot be used (or parsed by
            // the IMAP library, which would fail the whole command): skip it, say so.
            let list = word.eq_ignore_ascii_case(b"LIST") || word.eq_ignore_ascii_case(b"LSUB");
            if list && whole && std::str::from_utf8(line).is_err() {
                self.notes.push(format!(
                    "skipped a folder whose name is not UTF-8: {}",
                    readable(line)
                ));
                return None;
            }
        } else if !line.starts_with(b"+") {
            let mut words = line.splitn(3, |&b| b == b' ');
            if let (Some(tag), Some(status)) = (words.next(), words.next()) {
                let status = status.strip_suffix(b"\r\n").unwrap_or(status);
                let how = if status.eq_ignore_ascii_case(b"OK") {
                    Some(Completion::Ok)
                } else if status.eq_ignore_ascii_case(b"NO") || status.eq_ignore_ascii_case(b"BAD")
                {
                    Some(Completion::Refused(readable(line)))
                } else {
                    None
                };
                if let Some(how) = how {
                    self.last_done = Some((String::from_utf8_lossy(tag).into_owned(), how));
                }
            }
        }
        Some(with_imap4rev1(line, &mut self.notes))
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

    /// The last NAMESPACE response line received, taken.
    pub fn take_namespace_line(&mut self) -> Option<String> {
        self.namespace_line.take()
    }

    /// Server defects repaired or skipped since the last call.
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// How many responses with a COPYUID code arrived so far.
    pub fn copyuids(&self) -> u64 {
        self.copyuids
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
    /// Bytes checked and ready for async-imap.
    ready: Vec<u8>,
    ready_pos: usize,
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
            ready: Vec::new(),
            ready_pos: 0,
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
        loop {
            if self.ready_pos < self.ready.len() {
                let n = (self.ready.len() - self.ready_pos).min(buf.remaining());
                let start = self.ready_pos;
                buf.put_slice(&self.ready[start..start + n]);
                self.ready_pos += n;
                if self.ready_pos == self.ready.len() {
                    self.ready.clear();
                    self.ready_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 16 * 1024];
            let mut tmp = ReadBuf::new(&mut chunk);
            match Pin::new(&mut self.inner).poll_read(cx, &mut tmp) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    let got = tmp.filled();
                    if got.is_empty() {
                        // End of the connection: hand over a partial line as it is.
                        let rest = std::mem::take(&mut self.state().inp.line);
                        if rest.is_empty() {
                            return Poll::Ready(Ok(()));
                        }
                        self.ready = rest;
                        continue;
                    }
                    let passed = self.state().received(got);
                    match passed {
                        Ok(bytes) => self.ready = bytes,
                        Err(e) => return Poll::Ready(Err(std::io::Error::other(e))),
                    }
                }
            }
        }
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
        assert_eq!(w.received(&resp).unwrap(), resp, "passed on unchanged");
        assert_eq!(
            w.last_completion(),
            None,
            "text inside a literal is no response"
        );
        // Split across reads, like a real socket.
        assert!(
            w.received(b"A0001 N").unwrap().is_empty(),
            "held until the line ends"
        );
        assert!(w.received(b"O [CANNOT] refused\r\n").is_ok());
        assert!(
            matches!(w.last_completion(), Some(Completion::Refused(t)) if t.contains("refused"))
        );
        w.sent(b"A0002 UID STORE 1 +FLAGS.SILENT (\\Seen)\r\n");
        assert_eq!(w.last_completion(), None, "a new command is not done yet");
        assert!(w.received(b"A0002 OK done\r\n").is_ok());
        assert_eq!(w.last_completion(), Some(Completion::Ok));
    }

    #[test]
    fn idle_done_and_append_literals_keep_the_tag() {
        let mut w = state(0);
        w.sent(b"A0003 APPEND INBOX {5+}\r\nA0009 x\r\n");
        w.sent(b"DONE\r\n");
        assert!(w.received(b"A0003 OK appended\r\n").is_ok());
        assert_eq!(w.last_completion(), Some(Completion::Ok));
    }

    #[test]
    fn bye_and_oversized_literals_are_seen() {
        let mut w = state(1000);
        w.sent(b"A0004 UID FETCH 1 BODY.PEEK[]\r\n");
        assert!(w.received(b"* BYE going away\r\n").is_ok());
        assert!(w.bye().is_some());
        assert!(w.received(b"* 1 FETCH (BODY[] {500000000}\r\n").is_err());
        assert_eq!(w.refused_literal(), Some(500_000_000));
    }

    #[test]
    fn known_server_defects_are_repaired_or_skipped() {
        let mut w = state(0);
        let out = w
            .received(b"* LIST () \"/\" \"ok\"\r\n* LIST () \"/\" \"a\xffb\"\r\n* CAPABILITY MOVE IDLE\r\n")
            .unwrap();
        assert_eq!(
            out,
            b"* LIST () \"/\" \"ok\"\r\n* CAPABILITY IMAP4rev1 MOVE IDLE\r\n".to_vec()
        );
        let notes = w.take_notes();
        assert_eq!(notes.len(), 2, "{notes:?}");
        let ok = w
            .received(b"A1 OK [CAPABILITY IMAP4rev1 IDLE] done\r\n")
            .unwrap();
        assert_eq!(ok, b"A1 OK [CAPABILITY IMAP4rev1 IDLE] done\r\n".to_vec());
    }

    #[test]
    fn readable_escapes_bytes() {
        assert_eq!(
            readable(b"* LIST () \"/\" \"a\xffb\"\r\n"),
            "* LIST () \\\"/\\\" \\\"a\\xffb\\\""
        );
    }
}
