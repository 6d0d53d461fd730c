//! A scriptable, misbehaving IMAP server for tests (tests/imap_faults.rs). It exists because
//! the Dovecot of tests/mailstack always behaves: real servers drop connections in the middle
//! of a FETCH, answer with BYE, report UIDs that do not exist, refuse a STORE, say OK to a
//! MOVE that did nothing, announce absurd literals, put bad UTF-8 in mailbox names, leave out
//! capabilities, or never answer. This server speaks enough correct IMAP4rev1 (RFC 3501 with
//! UIDPLUS, MOVE, IDLE and LITERAL+) in plain text on 127.0.0.1 for mailpipe to run a pass,
//! keeps one account's mailboxes in memory, logs every command line it receives (the
//! transcript), and injects the faults its `Script` asks for, each at chosen occurrences of
//! the command it is about.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// Every mailbox has this UIDVALIDITY.
pub const UID_VALIDITY: u32 = 7;
/// INTERNALDATE of every message.
pub const INTERNAL_DATE: &str = "26-Nov-2026 10:00:00 +0000";
pub const DEFAULT_CAPABILITIES: &[&str] = &["IMAP4rev1", "UIDPLUS", "MOVE", "IDLE", "LITERAL+"];

/// Longest command line and literal accepted from the client; more closes the connection.
const MAX_LINE: usize = 1 << 20;
const MAX_LITERAL: usize = 64 << 20;
/// How much of a `HugeLiteral` is really sent before the server stalls.
const HUGE_LITERAL_SENT: usize = 4096;

/// A way to misbehave. Each fault is about one kind of command (its trigger, below); the
/// `When` it is armed with picks which occurrences of that command (counted over all
/// connections) it applies to.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Trigger: a FETCH of message content (any BODY[..], BODY.PEEK[..] or RFC822 item).
    /// Send `n` complete FETCH responses, then `* BYE` if `bye`, then close the connection
    /// without the tagged answer.
    FetchDropAfter { n: usize, bye: bool },
    /// Trigger: SEARCH / UID SEARCH. Answer `* BYE` and close the connection.
    SearchBye,
    /// Trigger: UID SEARCH and content UID FETCH (counted together). These UIDs (which do
    /// not exist) are added to every search result, and every content UID FETCH answer also
    /// carries a FETCH response, with a body, for each of them, whether requested or not.
    ExtraUids(Vec<u32>),
    /// Trigger: STORE / UID STORE. Answer `NO [CANNOT] refused`; nothing changes.
    StoreNo,
    /// Trigger: MOVE / UID MOVE. Answer a bare OK (no COPYUID, no EXPUNGE); nothing moves.
    MoveOkButNothing,
    /// Trigger: a FETCH of message content. The first message's content is announced as a
    /// literal of this many bytes, a few KB of it are sent, then the server stalls: it keeps
    /// the connection open and sends nothing more.
    HugeLiteral(u64),
    /// Trigger: LIST. One more mailbox is listed whose quoted name holds a raw 0xFF byte.
    ListBadUtf8,
    /// Trigger: CAPABILITY. IMAP4rev1 is left out of the list.
    NoImap4rev1,
    /// Trigger: SEARCH / UID SEARCH. Every LARGER key matches every message, whatever its
    /// size (RFC822.SIZE still tells the truth).
    LargerEverything,
    /// Trigger: the named command ("SELECT", "UID FETCH", ..., case-insensitive). Wait `ms`
    /// milliseconds before answering it.
    Tarpit { command: String, ms: u64 },
}

/// Which occurrences of its trigger command a fault applies to (1 = the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Always,
    Nth(usize),
    From(usize),
}

impl When {
    fn applies(self, occurrence: usize) -> bool {
        match self {
            When::Always => true,
            When::Nth(n) => occurrence == n,
            When::From(n) => occurrence >= n,
        }
    }
}

/// What the server starts with: mailboxes and their messages, capabilities, faults.
#[derive(Debug, Clone)]
pub struct Script {
    capabilities: Vec<String>,
    /// Personal namespace (prefix, hierarchy delimiter), Cyrus-style when set: NAMESPACE is
    /// answered and advertised, LIST shows that delimiter, and CREATE refuses names outside
    /// the prefix ("Permission denied") or holding "/" ("Invalid mailbox name").
    namespace: Option<(String, char)>,
    mailboxes: Vec<(String, Vec<Vec<u8>>)>,
    faults: Vec<(Fault, When)>,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            capabilities: DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect(),
            namespace: None,
            mailboxes: vec![("INBOX".into(), Vec::new())],
            faults: Vec::new(),
        }
    }
}

impl Script {
    pub fn new() -> Script {
        Script::default()
    }

    /// Serve a personal namespace like Cyrus's default: `prefix` (e.g. "INBOX.") and `delim`.
    pub fn namespace(mut self, prefix: &str, delim: char) -> Script {
        self.namespace = Some((prefix.to_string(), delim));
        self.capabilities.push("NAMESPACE".into());
        self
    }

    /// Replace the advertised capabilities.
    pub fn capabilities(mut self, caps: &[&str]) -> Script {
        self.capabilities = caps.iter().map(|c| c.to_string()).collect();
        self
    }

    /// A mailbox (created if new) with these messages appended, UIDs from 1.
    pub fn mailbox(mut self, name: &str, messages: Vec<Vec<u8>>) -> Script {
        let name = canonical(name);
        match self.mailboxes.iter_mut().find(|(n, _)| *n == name) {
            Some((_, m)) => m.extend(messages),
            None => self.mailboxes.push((name, messages)),
        }
        self
    }

    pub fn fault(mut self, fault: Fault, when: When) -> Script {
        self.faults.push((fault, when));
        self
    }
}

/// One stored message.
#[derive(Debug, Clone)]
pub struct Message {
    pub uid: u32,
    pub flags: Vec<String>,
    pub raw: Vec<u8>,
}

impl Message {
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
    }

    /// Value of the first header field `name` (unfolded, trimmed).
    pub fn header(&self, name: &str) -> Option<String> {
        header_fields(header_block(&self.raw))
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

#[derive(Debug, Default)]
struct Mailbox {
    messages: Vec<Message>,
    uid_next: u32,
}

impl Mailbox {
    fn add(&mut self, raw: Vec<u8>, flags: Vec<String>) -> u32 {
        let uid = self.uid_next.max(1);
        self.uid_next = uid + 1;
        self.messages.push(Message { uid, flags, raw });
        uid
    }

    fn max_uid(&self) -> u64 {
        self.messages.last().map_or(0, |m| u64::from(m.uid))
    }
}

struct Armed {
    fault: Fault,
    when: When,
    seen: usize,
}

struct State {
    capabilities: Vec<String>,
    namespace: Option<(String, char)>,
    mailboxes: BTreeMap<String, Mailbox>,
    faults: Vec<Armed>,
    transcript: Vec<String>,
    connections: usize,
    tasks: Vec<AbortHandle>,
}

impl State {
    /// Count this command against every armed fault it triggers; the faults that apply now.
    fn fire(&mut self, name: &str, content_fetch: bool) -> Vec<Fault> {
        let mut out = Vec::new();
        for a in &mut self.faults {
            if triggers(&a.fault, name, content_fetch) {
                a.seen += 1;
                if a.when.applies(a.seen) {
                    out.push(a.fault.clone());
                }
            }
        }
        out
    }
}

fn triggers(fault: &Fault, name: &str, content_fetch: bool) -> bool {
    let fetch = (name == "FETCH" || name == "UID FETCH") && content_fetch;
    match fault {
        Fault::FetchDropAfter { .. } | Fault::HugeLiteral(_) => fetch,
        Fault::SearchBye | Fault::LargerEverything => name == "SEARCH" || name == "UID SEARCH",
        Fault::ExtraUids(_) => name == "UID SEARCH" || (name == "UID FETCH" && content_fetch),
        Fault::StoreNo => name == "STORE" || name == "UID STORE",
        Fault::MoveOkButNothing => name == "MOVE" || name == "UID MOVE",
        Fault::ListBadUtf8 => name == "LIST",
        Fault::NoImap4rev1 => name == "CAPABILITY",
        Fault::Tarpit { command, .. } => command.eq_ignore_ascii_case(name),
    }
}

type Shared = Arc<Mutex<State>>;

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // A panicking test thread must not take the server down with it.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running server; stopped (listener and connections) when dropped.
pub struct BadServer {
    port: u16,
    shared: Shared,
}

impl BadServer {
    pub async fn start(script: Script) -> BadServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local address").port();
        let mut mailboxes = BTreeMap::new();
        for (name, messages) in script.mailboxes {
            let mb: &mut Mailbox = mailboxes.entry(name).or_default();
            for raw in messages {
                mb.add(raw, Vec::new());
            }
        }
        let shared = Arc::new(Mutex::new(State {
            capabilities: script.capabilities,
            namespace: script.namespace,
            mailboxes,
            faults: script
                .faults
                .into_iter()
                .map(|(fault, when)| Armed {
                    fault,
                    when,
                    seen: 0,
                })
                .collect(),
            transcript: Vec::new(),
            connections: 0,
            tasks: Vec::new(),
        }));
        let accept_shared = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = accept_shared.clone();
                let id = {
                    let mut s = lock(&shared);
                    s.connections += 1;
                    s.connections
                };
                let task = tokio::spawn(serve(shared.clone(), stream, id));
                lock(&shared).tasks.push(task.abort_handle());
            }
        });
        lock(&shared).tasks.push(accept.abort_handle());
        BadServer { port, shared }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every command line received, in order, tags included (`A3 UID FETCH 1:20 (...)`);
    /// a literal shows as its `{n}` marker. Connections are marked `-- connection n`.
    pub fn transcript(&self) -> Vec<String> {
        lock(&self.shared).transcript.clone()
    }

    /// The transcript's command lines without their tags or connection markers.
    pub fn commands(&self) -> Vec<String> {
        self.transcript()
            .iter()
            .filter(|l| !l.starts_with("-- "))
            .map(|l| l.split_once(' ').map_or(l.as_str(), |x| x.1).to_string())
            .collect()
    }

    pub fn connections(&self) -> usize {
        lock(&self.shared).connections
    }

    /// Drop every fault: from now on the server behaves.
    pub fn disarm(&self) {
        lock(&self.shared).faults.clear();
    }

    pub fn arm(&self, fault: Fault, when: When) {
        lock(&self.shared).faults.push(Armed {
            fault,
            when,
            seen: 0,
        });
    }

    /// Append a message as another client would; returns its UID.
    pub fn append(&self, mailbox: &str, raw: Vec<u8>) -> u32 {
        lock(&self.shared)
            .mailboxes
            .entry(canonical(mailbox))
            .or_default()
            .add(raw, Vec::new())
    }

    /// The messages of `mailbox` now (empty when it does not exist).
    pub fn messages(&self, mailbox: &str) -> Vec<Message> {
        lock(&self.shared)
            .mailboxes
            .get(&canonical(mailbox))
            .map(|m| m.messages.clone())
            .unwrap_or_default()
    }

    pub fn mailbox_names(&self) -> Vec<String> {
        lock(&self.shared).mailboxes.keys().cloned().collect()
    }
}

impl Drop for BadServer {
    fn drop(&mut self) {
        for t in lock(&self.shared).tasks.drain(..) {
            t.abort();
        }
    }
}

fn canonical(name: &str) -> String {
    if name.eq_ignore_ascii_case("INBOX") {
        "INBOX".into()
    } else {
        name.to_string()
    }
}

// ---- Reading commands ----

/// A command as the client sent it: text with the literals cut out, in order.
enum Piece {
    Text(Vec<u8>),
    Literal(Vec<u8>),
}

/// One token of a command.
#[derive(Debug, Clone)]
enum Arg {
    Atom(String),
    Str(Vec<u8>),
    List(Vec<Arg>),
}

impl Arg {
    /// An astring's text (atom, quoted string or literal).
    fn text(&self) -> Option<String> {
        match self {
            Arg::Atom(a) => Some(a.clone()),
            Arg::Str(s) => Some(String::from_utf8_lossy(s).into_owned()),
            Arg::List(_) => None,
        }
    }

    fn upper(&self) -> String {
        self.text().unwrap_or_default().to_ascii_uppercase()
    }
}

struct Request {
    tag: String,
    /// Upper case; "UID FETCH" etc. for UID commands.
    name: String,
    args: Vec<Arg>,
}

/// `{n}` or `{n+}` at the end of a line: (where it starts, n, non-synchronizing).
fn literal_marker(line: &[u8]) -> Option<(usize, usize, bool)> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let spec = &inner[open + 1..];
    let (digits, plus) = match spec.strip_suffix(b"+") {
        Some(d) => (d, true),
        None => (spec, false),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((open, n, plus))
}

fn tokenize(pieces: &[Piece]) -> Result<Vec<Arg>, String> {
    let mut stack: Vec<Vec<Arg>> = vec![Vec::new()];
    for piece in pieces {
        let t = match piece {
            Piece::Literal(bytes) => {
                stack
                    .last_mut()
                    .ok_or("parser stack empty")?
                    .push(Arg::Str(bytes.clone()));
                continue;
            }
            Piece::Text(t) => t,
        };
        let mut i = 0;
        while i < t.len() {
            match t[i] {
                b' ' => i += 1,
                b'(' => {
                    stack.push(Vec::new());
                    i += 1;
                }
                b')' => {
                    if stack.len() < 2 {
                        return Err("unbalanced ')'".into());
                    }
                    let list = stack.pop().unwrap_or_default();
                    stack
                        .last_mut()
                        .ok_or("parser stack empty")?
                        .push(Arg::List(list));
                    i += 1;
                }
                b'"' => {
                    let mut s = Vec::new();
                    i += 1;
                    loop {
                        match t.get(i) {
                            None => return Err("unterminated quoted string".into()),
                            Some(b'"') => break,
                            Some(b'\\') => {
                                let c = *t.get(i + 1).ok_or("unterminated quoted string")?;
                                s.push(c);
                                i += 2;
                            }
                            Some(&c) => {
                                s.push(c);
                                i += 1;
                            }
                        }
                    }
                    i += 1;
                    stack
                        .last_mut()
                        .ok_or("parser stack empty")?
                        .push(Arg::Str(s));
                }
                _ => {
                    // An atom; a [section] inside it may hold spaces and parentheses.
                    let start = i;
                    let mut depth = 0usize;
                    while i < t.len() {
                        match t[i] {
                            b'[' => depth += 1,
                            b']' => depth = depth.saturating_sub(1),
                            b' ' | b'(' | b')' | b'"' if depth == 0 => break,
                            _ => {}
                        }
                        i += 1;
                    }
                    let atom = String::from_utf8_lossy(&t[start..i]).into_owned();
                    stack
                        .last_mut()
                        .ok_or("parser stack empty")?
                        .push(Arg::Atom(atom));
                }
            }
        }
    }
    if stack.len() != 1 {
        return Err("unbalanced '('".into());
    }
    Ok(stack.pop().unwrap_or_default())
}

fn request(pieces: &[Piece]) -> Result<Request, (String, String)> {
    let args = tokenize(pieces).map_err(|e| ("*".to_string(), e))?;
    let mut it = args.into_iter();
    let tag = match it.next() {
        Some(Arg::Atom(t)) if !t.is_empty() && t != "*" && t != "+" => t,
        _ => return Err(("*".into(), "no tag".into())),
    };
    let mut name = match it.next() {
        Some(Arg::Atom(c)) => c.to_ascii_uppercase(),
        _ => return Err((tag, "no command".into())),
    };
    if name == "UID" {
        match it.next() {
            Some(Arg::Atom(c)) => name = format!("UID {}", c.to_ascii_uppercase()),
            _ => return Err((tag, "UID what?".into())),
        }
    }
    Ok(Request {
        tag,
        name,
        args: it.collect(),
    })
}

// ---- Sequence sets and search ----

/// A sequence or UID set; `u64::MAX` stands for `*`.
#[derive(Debug, Clone)]
struct Set(Vec<(u64, u64)>);

impl Set {
    fn parse(s: &str) -> Option<Set> {
        let num = |x: &str| -> Option<u64> {
            if x == "*" {
                return Some(u64::MAX);
            }
            if x.is_empty() || !x.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // RFC 3501 nz-number: 1..=4294967295.
            x.parse::<u64>()
                .ok()
                .filter(|n| (1..=u64::from(u32::MAX)).contains(n))
        };
        let mut out = Vec::new();
        for part in s.split(',') {
            let (a, b) = part.split_once(':').unwrap_or((part, part));
            out.push((num(a)?, num(b)?));
        }
        Some(Set(out))
    }

    fn contains(&self, n: u64, star: u64) -> bool {
        self.0.iter().any(|&(a, b)| {
            let a = if a == u64::MAX { star } else { a };
            let b = if b == u64::MAX { star } else { b };
            a.min(b) <= n && n <= a.max(b)
        })
    }
}

/// Compress ascending UIDs into a set: 1:3,7.
fn uid_set_text(uids: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end.wrapping_add(1) {
            i += 1;
            end = uids[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        });
        i += 1;
    }
    parts.join(",")
}

#[derive(Debug)]
enum Key {
    All,
    Uid(Set),
    Seq(Set),
    Larger(u64),
    Smaller(u64),
    Flag(String, bool),
    Header(String, String),
    Not(Box<Key>),
    Or(Box<Key>, Box<Key>),
    And(Vec<Key>),
}

fn parse_key(it: &mut std::iter::Peekable<std::slice::Iter<'_, Arg>>) -> Result<Key, String> {
    let arg = it.next().ok_or("search key missing")?;
    if let Arg::List(items) = arg {
        let mut inner = items.iter().peekable();
        let mut keys = Vec::new();
        while inner.peek().is_some() {
            keys.push(parse_key(&mut inner)?);
        }
        return Ok(Key::And(keys));
    }
    let word = arg.upper();
    let mut value = |what: &str| -> Result<String, String> {
        it.next()
            .and_then(Arg::text)
            .ok_or_else(|| format!("{what} needs an argument"))
    };
    let number = |v: String| v.parse::<u64>().map_err(|_| format!("bad number {v:?}"));
    let flag = |f: &str, has: bool| Ok(Key::Flag(f.into(), has));
    match word.as_str() {
        "ALL" => Ok(Key::All),
        "UID" => Set::parse(&value("UID")?)
            .map(Key::Uid)
            .ok_or_else(|| "invalid UID set".into()),
        "LARGER" => Ok(Key::Larger(number(value("LARGER")?)?)),
        "SMALLER" => Ok(Key::Smaller(number(value("SMALLER")?)?)),
        "SEEN" => flag("\\Seen", true),
        "UNSEEN" => flag("\\Seen", false),
        "DELETED" => flag("\\Deleted", true),
        "UNDELETED" => flag("\\Deleted", false),
        "FLAGGED" => flag("\\Flagged", true),
        "UNFLAGGED" => flag("\\Flagged", false),
        "ANSWERED" => flag("\\Answered", true),
        "UNANSWERED" => flag("\\Answered", false),
        "KEYWORD" => Ok(Key::Flag(value("KEYWORD")?, true)),
        "UNKEYWORD" => Ok(Key::Flag(value("UNKEYWORD")?, false)),
        "HEADER" => {
            let name = value("HEADER")?;
            Ok(Key::Header(name, value("HEADER")?))
        }
        "NOT" => Ok(Key::Not(Box::new(parse_key(it)?))),
        "OR" => {
            let a = parse_key(it)?;
            Ok(Key::Or(Box::new(a), Box::new(parse_key(it)?)))
        }
        _ => match Set::parse(&word) {
            Some(s) => Ok(Key::Seq(s)),
            None => Err(format!("unsupported search key {word:?}")),
        },
    }
}

fn parse_search(args: &[Arg]) -> Result<Key, String> {
    let mut args = args;
    if args.first().is_some_and(|a| a.upper() == "CHARSET") {
        args = args.get(2..).ok_or("CHARSET needs an argument")?;
    }
    let mut it = args.iter().peekable();
    let mut keys = Vec::new();
    while it.peek().is_some() {
        keys.push(parse_key(&mut it)?);
    }
    if keys.is_empty() {
        return Err("no search key".into());
    }
    Ok(Key::And(keys))
}

/// `key` with every LARGER key matching all messages (`Fault::LargerEverything`).
fn larger_is_everything(key: Key) -> Key {
    match key {
        Key::Larger(_) => Key::All,
        Key::Not(k) => Key::Not(Box::new(larger_is_everything(*k))),
        Key::Or(a, b) => Key::Or(
            Box::new(larger_is_everything(*a)),
            Box::new(larger_is_everything(*b)),
        ),
        Key::And(ks) => Key::And(ks.into_iter().map(larger_is_everything).collect()),
        k => k,
    }
}

fn matches(key: &Key, m: &Message, seq: u64, mb: &Mailbox) -> bool {
    match key {
        Key::All => true,
        Key::Uid(s) => s.contains(u64::from(m.uid), mb.max_uid()),
        Key::Seq(s) => s.contains(seq, mb.messages.len() as u64),
        Key::Larger(n) => m.raw.len() as u64 > *n,
        Key::Smaller(n) => (m.raw.len() as u64) < *n,
        Key::Flag(f, has) => m.has_flag(f) == *has,
        Key::Header(name, value) => {
            let value = value.to_ascii_lowercase();
            header_fields(header_block(&m.raw)).iter().any(|(n, v)| {
                n.eq_ignore_ascii_case(name) && v.to_ascii_lowercase().contains(&value)
            })
        }
        Key::Not(k) => !matches(k, m, seq, mb),
        Key::Or(a, b) => matches(a, m, seq, mb) || matches(b, m, seq, mb),
        Key::And(ks) => ks.iter().all(|k| matches(k, m, seq, mb)),
    }
}

// ---- Message parts ----

/// The header block, blank line included.
fn header_block(raw: &[u8]) -> &[u8] {
    if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
        return &raw[..i + 4];
    }
    if let Some(i) = raw.windows(2).position(|w| w == b"\n\n") {
        return &raw[..i + 2];
    }
    raw
}

fn text_part(raw: &[u8]) -> &[u8] {
    &raw[header_block(raw).len()..]
}

fn header_fields(block: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(block);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((n, v)) = line.split_once(':') {
            out.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Section {
    Full,
    Header,
    Text,
}

#[derive(Clone)]
enum Item {
    Uid,
    Flags,
    InternalDate,
    Size,
    Content {
        section: Section,
        sets_seen: bool,
        name: &'static str,
    },
}

fn fetch_items(arg: Option<&Arg>) -> Result<Vec<Item>, String> {
    let words: Vec<String> = match arg {
        Some(Arg::List(items)) => items.iter().map(Arg::upper).collect(),
        Some(a) => vec![a.upper()],
        None => return Err("FETCH needs items".into()),
    };
    let mut out = Vec::new();
    for w in words {
        if w == "FAST" {
            out.extend([Item::Flags, Item::InternalDate, Item::Size]);
            continue;
        }
        let content = |section, sets_seen, name| Item::Content {
            section,
            sets_seen,
            name,
        };
        out.push(match w.as_str() {
            "UID" => Item::Uid,
            "FLAGS" => Item::Flags,
            "INTERNALDATE" => Item::InternalDate,
            "RFC822.SIZE" => Item::Size,
            "BODY.PEEK[]" => content(Section::Full, false, "BODY[]"),
            "BODY[]" => content(Section::Full, true, "BODY[]"),
            "BODY.PEEK[HEADER]" => content(Section::Header, false, "BODY[HEADER]"),
            "BODY[HEADER]" => content(Section::Header, true, "BODY[HEADER]"),
            "BODY.PEEK[TEXT]" => content(Section::Text, false, "BODY[TEXT]"),
            "BODY[TEXT]" => content(Section::Text, true, "BODY[TEXT]"),
            "RFC822" => content(Section::Full, true, "RFC822"),
            "RFC822.HEADER" => content(Section::Header, false, "RFC822.HEADER"),
            "RFC822.TEXT" => content(Section::Text, true, "RFC822.TEXT"),
            other => return Err(format!("unsupported FETCH item {other:?}")),
        });
    }
    Ok(out)
}

fn is_content_fetch(req: &Request) -> bool {
    if req.name != "FETCH" && req.name != "UID FETCH" {
        return false;
    }
    let words: Vec<String> = match req.args.get(1) {
        Some(Arg::List(items)) => items.iter().map(Arg::upper).collect(),
        Some(a) => vec![a.upper()],
        None => Vec::new(),
    };
    words.iter().any(|w| {
        w.starts_with("BODY[")
            || w.starts_with("BODY.PEEK[")
            || w.starts_with("RFC822") && w != "RFC822.SIZE"
    })
}

fn literal(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
}

/// A mailbox name or other string as a quoted string, or a literal when it cannot be one.
fn astring(out: &mut Vec<u8>, s: &[u8]) {
    if s.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        out.push(b'"');
        for &b in s {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        literal(out, s);
    }
}

/// One `* seq FETCH (...)` response. `uid_first`: a UID command (UID always included).
fn fetch_response(out: &mut Vec<u8>, seq: u64, m: &Message, items: &[Item], uid_first: bool) {
    out.extend_from_slice(format!("* {seq} FETCH (").as_bytes());
    let mut parts: Vec<Vec<u8>> = Vec::new();
    if uid_first {
        parts.push(format!("UID {}", m.uid).into_bytes());
    }
    for item in items {
        let mut p = Vec::new();
        match item {
            Item::Uid if uid_first => continue,
            Item::Uid => p.extend_from_slice(format!("UID {}", m.uid).as_bytes()),
            Item::Flags => p.extend_from_slice(format!("FLAGS ({})", m.flags.join(" ")).as_bytes()),
            Item::InternalDate => {
                p.extend_from_slice(format!("INTERNALDATE \"{INTERNAL_DATE}\"").as_bytes())
            }
            Item::Size => p.extend_from_slice(format!("RFC822.SIZE {}", m.raw.len()).as_bytes()),
            Item::Content { section, name, .. } => {
                p.extend_from_slice(name.as_bytes());
                p.push(b' ');
                let bytes = match section {
                    Section::Full => &m.raw[..],
                    Section::Header => header_block(&m.raw),
                    Section::Text => text_part(&m.raw),
                };
                literal(&mut p, bytes);
            }
        }
        parts.push(p);
    }
    out.extend_from_slice(&parts.join(&b' '));
    out.extend_from_slice(b")\r\n");
}

/// The stand-in for a UID that does not exist (`Fault::ExtraUids`).
fn phantom(uid: u32) -> Message {
    Message {
        uid,
        flags: Vec::new(),
        raw: format!(
            "From: Phantom <phantom@example.net>\r\n\
             To: alice@example.test\r\n\
             Subject: phantom {uid}\r\n\
             Message-ID: <phantom-{uid}@badserver.test>\r\n\
             Date: Thu, 26 Nov 2026 10:00:00 +0000\r\n\
             \r\n\
             I do not exist.\r\n"
        )
        .into_bytes(),
    }
}

// ---- Serving a connection ----

enum Flow {
    Continue,
    Close,
    /// Send nothing more; keep the connection open until the client goes.
    Stall,
}

struct Conn {
    rd: BufReader<OwnedReadHalf>,
    wr: OwnedWriteHalf,
    shared: Shared,
    logged_in: bool,
    /// Selected mailbox and whether it is read-only (EXAMINE).
    selected: Option<(String, bool)>,
}

async fn serve(shared: Shared, stream: TcpStream, id: usize) {
    let _ = stream.set_nodelay(true);
    lock(&shared).transcript.push(format!("-- connection {id}"));
    let (rd, wr) = stream.into_split();
    let mut conn = Conn {
        rd: BufReader::new(rd),
        wr,
        shared,
        logged_in: false,
        selected: None,
    };
    match conn.run().await {
        Ok(Flow::Stall) => {
            let mut sink = [0u8; 4096];
            while let Ok(n) = conn.rd.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        }
        Ok(_) | Err(_) => {
            let _ = conn.wr.shutdown().await;
        }
    }
}

impl Conn {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared)
    }

    async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.wr.write_all(bytes).await?;
        self.wr.flush().await
    }

    /// One line, CRLF (or LF) stripped; None at EOF. Overlong lines are an error.
    async fn line(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut buf = Vec::new();
        let n = (&mut self.rd)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut buf)
            .await?;
        if n == 0 {
            return Ok(None);
        }
        if buf.last() != Some(&b'\n') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "line too long or cut",
            ));
        }
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        Ok(Some(buf))
    }

    /// The next command with its literals read (a "+" continuation is sent for each
    /// synchronizing literal); None at EOF.
    async fn read_command(&mut self) -> io::Result<Option<(Vec<Piece>, String)>> {
        let mut pieces = Vec::new();
        let mut shown = String::new();
        loop {
            let Some(line) = self.line().await? else {
                return Ok(None);
            };
            shown.push_str(&String::from_utf8_lossy(&line));
            match literal_marker(&line) {
                None => {
                    pieces.push(Piece::Text(line));
                    return Ok(Some((pieces, shown)));
                }
                Some((_, n, _)) if n > MAX_LITERAL => {
                    self.send(b"* BYE literal too large\r\n").await?;
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "literal too large",
                    ));
                }
                Some((at, n, non_sync)) => {
                    pieces.push(Piece::Text(line[..at].to_vec()));
                    if !non_sync {
                        self.send(b"+ go ahead\r\n").await?;
                    }
                    let mut data = vec![0u8; n];
                    self.rd.read_exact(&mut data).await?;
                    pieces.push(Piece::Literal(data));
                }
            }
        }
    }

    async fn run(&mut self) -> io::Result<Flow> {
        self.send(b"* OK badserver ready\r\n").await?;
        loop {
            let Some((pieces, shown)) = self.read_command().await? else {
                return Ok(Flow::Close);
            };
            self.state().transcript.push(shown);
            let req = match request(&pieces) {
                Ok(r) => r,
                Err((tag, why)) => {
                    self.send(format!("{tag} BAD {why}\r\n").as_bytes()).await?;
                    continue;
                }
            };
            let faults = self.state().fire(&req.name, is_content_fetch(&req));
            for f in &faults {
                if let Fault::Tarpit { ms, .. } = f {
                    tokio::time::sleep(Duration::from_millis(*ms)).await;
                }
            }
            let flow = self.handle(&req, &faults).await?;
            if !matches!(flow, Flow::Continue) {
                return Ok(flow);
            }
        }
    }

    async fn reply(&mut self, req: &Request, status: &str, text: &str) -> io::Result<Flow> {
        self.send(format!("{} {status} {text}\r\n", req.tag).as_bytes())
            .await?;
        Ok(Flow::Continue)
    }

    async fn handle(&mut self, req: &Request, faults: &[Fault]) -> io::Result<Flow> {
        let name = req.name.as_str();
        match name {
            "CAPABILITY" => {
                let caps: Vec<String> = self
                    .state()
                    .capabilities
                    .iter()
                    .filter(|c| {
                        !(faults.contains(&Fault::NoImap4rev1)
                            && c.eq_ignore_ascii_case("IMAP4rev1"))
                    })
                    .cloned()
                    .collect();
                self.send(format!("* CAPABILITY {}\r\n", caps.join(" ")).as_bytes())
                    .await?;
                return self.reply(req, "OK", "CAPABILITY completed").await;
            }
            "NOOP" | "CHECK" => return self.reply(req, "OK", "done").await,
            "LOGOUT" => {
                self.send(b"* BYE logging out\r\n").await?;
                self.reply(req, "OK", "LOGOUT completed").await?;
                return Ok(Flow::Close);
            }
            "LOGIN" => {
                if req.args.len() != 2 {
                    return self
                        .reply(req, "BAD", "LOGIN needs user and password")
                        .await;
                }
                self.logged_in = true;
                return self.reply(req, "OK", "LOGIN completed").await;
            }
            _ => {}
        }
        if !self.logged_in {
            return self.reply(req, "BAD", "log in first").await;
        }
        match name {
            "SELECT" | "EXAMINE" => self.select(req, name == "EXAMINE").await,
            "CREATE" => self.create(req).await,
            "LIST" => self.list(req, faults).await,
            "NAMESPACE" => {
                let ns = self.state().namespace.clone();
                let line = match ns {
                    Some((prefix, delim)) => {
                        format!("* NAMESPACE ((\"{prefix}\" \"{delim}\")) NIL NIL\r\n")
                    }
                    None => "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n".to_string(),
                };
                self.send(line.as_bytes()).await?;
                self.reply(req, "OK", "NAMESPACE completed").await
            }
            "STATUS" => self.status(req).await,
            "APPEND" => self.append(req).await,
            "IDLE" => self.idle(req).await,
            _ if self.selected.is_none() => self.selected_command(req, faults, true).await,
            _ => self.selected_command(req, faults, false).await,
        }
    }

    async fn selected_command(
        &mut self,
        req: &Request,
        faults: &[Fault],
        none_selected: bool,
    ) -> io::Result<Flow> {
        let known = [
            "FETCH",
            "UID FETCH",
            "SEARCH",
            "UID SEARCH",
            "STORE",
            "UID STORE",
            "COPY",
            "UID COPY",
            "MOVE",
            "UID MOVE",
            "EXPUNGE",
            "UID EXPUNGE",
            "CLOSE",
            "UNSELECT",
        ];
        if !known.contains(&req.name.as_str()) {
            return self.reply(req, "BAD", "unknown command").await;
        }
        if none_selected {
            return self.reply(req, "BAD", "no mailbox selected").await;
        }
        match req.name.as_str() {
            "FETCH" | "UID FETCH" => self.fetch(req, faults).await,
            "SEARCH" | "UID SEARCH" => self.search(req, faults).await,
            "STORE" | "UID STORE" => self.store(req, faults).await,
            "COPY" | "UID COPY" | "MOVE" | "UID MOVE" => self.copy(req, faults).await,
            "EXPUNGE" | "UID EXPUNGE" => self.expunge(req).await,
            _ => {
                // CLOSE expunges silently; UNSELECT does not.
                if req.name == "CLOSE" {
                    if let Some((mb, false)) = self.selected.clone() {
                        if let Some(m) = self.state().mailboxes.get_mut(&mb) {
                            m.messages.retain(|x| !x.has_flag("\\Deleted"));
                        }
                    }
                }
                self.selected = None;
                self.reply(req, "OK", "done").await
            }
        }
    }

    fn mailbox_arg(req: &Request, i: usize) -> Option<String> {
        req.args.get(i).and_then(Arg::text).map(|n| canonical(&n))
    }

    async fn select(&mut self, req: &Request, read_only: bool) -> io::Result<Flow> {
        self.selected = None;
        let Some(name) = Self::mailbox_arg(req, 0) else {
            return self.reply(req, "BAD", "mailbox name missing").await;
        };
        let info = self
            .state()
            .mailboxes
            .get(&name)
            .map(|m| (m.messages.len(), m.uid_next.max(1)));
        let Some((exists, uid_next)) = info else {
            return self.reply(req, "NO", "[NONEXISTENT] no such mailbox").await;
        };
        let text = format!(
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n\
             * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted.\r\n\
             * {exists} EXISTS\r\n\
             * 0 RECENT\r\n\
             * OK [UIDVALIDITY {UID_VALIDITY}] UIDs valid\r\n\
             * OK [UIDNEXT {uid_next}] Predicted next UID\r\n"
        );
        self.send(text.as_bytes()).await?;
        self.selected = Some((name, read_only));
        let code = if read_only {
            "[READ-ONLY]"
        } else {
            "[READ-WRITE]"
        };
        self.reply(req, "OK", &format!("{code} done")).await
    }

    async fn create(&mut self, req: &Request) -> io::Result<Flow> {
        let Some(name) = Self::mailbox_arg(req, 0) else {
            return self.reply(req, "BAD", "mailbox name missing").await;
        };
        let ns = self.state().namespace.clone();
        if let Some((prefix, delim)) = ns {
            if delim != '/' && name.contains('/') {
                return self.reply(req, "NO", "Invalid mailbox name").await;
            }
            if !name.eq_ignore_ascii_case("INBOX") && !name.starts_with(&prefix) {
                return self.reply(req, "NO", "Permission denied").await;
            }
        }
        let created = {
            let mut s = self.state();
            match s.mailboxes.entry(name) {
                std::collections::btree_map::Entry::Occupied(_) => false,
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(Mailbox::default());
                    true
                }
            }
        };
        if created {
            self.reply(req, "OK", "CREATE completed").await
        } else {
            self.reply(req, "NO", "[ALREADYEXISTS] Mailbox already exists")
                .await
        }
    }

    async fn list(&mut self, req: &Request, faults: &[Fault]) -> io::Result<Flow> {
        let (Some(reference), Some(pattern)) = (
            req.args.first().and_then(Arg::text),
            req.args.get(1).and_then(Arg::text),
        ) else {
            return self
                .reply(req, "BAD", "LIST needs a reference and a pattern")
                .await;
        };
        let pattern = format!("{reference}{pattern}");
        let names: Vec<String> = self
            .state()
            .mailboxes
            .keys()
            .filter(|n| glob(pattern.as_bytes(), n.as_bytes()))
            .cloned()
            .collect();
        let delim = self.state().namespace.as_ref().map_or('/', |(_, d)| *d);
        let mut out = Vec::new();
        for n in &names {
            out.extend_from_slice(format!("* LIST (\\HasNoChildren) \"{delim}\" ").as_bytes());
            astring(&mut out, n.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if faults.contains(&Fault::ListBadUtf8) {
            out.extend_from_slice(b"* LIST (\\HasNoChildren) \"/\" \"Bad\xffName\"\r\n");
        }
        self.send(&out).await?;
        self.reply(req, "OK", "LIST completed").await
    }

    async fn status(&mut self, req: &Request) -> io::Result<Flow> {
        let Some(name) = Self::mailbox_arg(req, 0) else {
            return self.reply(req, "BAD", "mailbox name missing").await;
        };
        let Some(Arg::List(items)) = req.args.get(1) else {
            return self.reply(req, "BAD", "STATUS needs items").await;
        };
        let mut parts = Vec::new();
        let exists = {
            let s = self.state();
            let mb = s.mailboxes.get(&name);
            for item in items.iter().map(Arg::upper) {
                let Some(mb) = mb else { break };
                let v = match item.as_str() {
                    "MESSAGES" => mb.messages.len() as u64,
                    "RECENT" => 0,
                    "UIDNEXT" => u64::from(mb.uid_next.max(1)),
                    "UIDVALIDITY" => u64::from(UID_VALIDITY),
                    "UNSEEN" => mb.messages.iter().filter(|m| !m.has_flag("\\Seen")).count() as u64,
                    _ => continue,
                };
                parts.push(format!("{item} {v}"));
            }
            mb.is_some()
        };
        if !exists {
            return self.reply(req, "NO", "[NONEXISTENT] no such mailbox").await;
        }
        let mut out = b"* STATUS ".to_vec();
        astring(&mut out, name.as_bytes());
        out.extend_from_slice(format!(" ({})\r\n", parts.join(" ")).as_bytes());
        self.send(&out).await?;
        self.reply(req, "OK", "STATUS completed").await
    }

    async fn append(&mut self, req: &Request) -> io::Result<Flow> {
        let Some(name) = Self::mailbox_arg(req, 0) else {
            return self.reply(req, "BAD", "mailbox name missing").await;
        };
        let Some(Arg::Str(raw)) = req.args.last().filter(|_| req.args.len() >= 2) else {
            return self
                .reply(req, "BAD", "APPEND needs a message literal")
                .await;
        };
        let mut flags = Vec::new();
        for a in &req.args[1..req.args.len() - 1] {
            match a {
                Arg::List(items) => flags = items.iter().filter_map(Arg::text).collect(),
                Arg::Str(_) => {} // the internal date; every message has the same
                Arg::Atom(_) => return self.reply(req, "BAD", "unexpected APPEND argument").await,
            }
        }
        let uid = {
            let mut s = self.state();
            s.mailboxes
                .get_mut(&name)
                .map(|mb| mb.add(raw.clone(), flags))
        };
        match uid {
            Some(uid) => {
                self.reply(
                    req,
                    "OK",
                    &format!("[APPENDUID {UID_VALIDITY} {uid}] APPEND completed"),
                )
                .await
            }
            None => self.reply(req, "NO", "[TRYCREATE] no such mailbox").await,
        }
    }

    async fn idle(&mut self, req: &Request) -> io::Result<Flow> {
        self.send(b"+ idling\r\n").await?;
        match self.line().await? {
            None => Ok(Flow::Close),
            Some(l) if l.eq_ignore_ascii_case(b"DONE") => {
                self.state().transcript.push("DONE".into());
                self.reply(req, "OK", "IDLE terminated").await
            }
            Some(_) => self.reply(req, "BAD", "expected DONE").await,
        }
    }

    /// Selected mailbox name; the caller checked there is one.
    fn selected_name(&self) -> String {
        self.selected
            .as_ref()
            .map(|s| s.0.clone())
            .unwrap_or_default()
    }

    /// (seq, message) of the selected mailbox whose UID (or number) is in `set`.
    fn targets(&self, set: &Set, by_uid: bool) -> Vec<(u64, Message)> {
        let s = self.state();
        let Some(mb) = s.mailboxes.get(&self.selected_name()) else {
            return Vec::new();
        };
        let star = if by_uid {
            mb.max_uid()
        } else {
            mb.messages.len() as u64
        };
        mb.messages
            .iter()
            .enumerate()
            .map(|(i, m)| (i as u64 + 1, m))
            .filter(|(seq, m)| set.contains(if by_uid { u64::from(m.uid) } else { *seq }, star))
            .map(|(seq, m)| (seq, m.clone()))
            .collect()
    }

    async fn fetch(&mut self, req: &Request, faults: &[Fault]) -> io::Result<Flow> {
        let by_uid = req.name.starts_with("UID");
        let Some(set) = req
            .args
            .first()
            .and_then(Arg::text)
            .and_then(|s| Set::parse(&s))
        else {
            return self.reply(req, "BAD", "invalid sequence set").await;
        };
        let items = match fetch_items(req.args.get(1)) {
            Ok(i) => i,
            Err(e) => return self.reply(req, "BAD", &e).await,
        };
        let mut found = self.targets(&set, by_uid);
        // Reading content without PEEK sets \Seen.
        let sets_seen = items.iter().any(|i| {
            matches!(
                i,
                Item::Content {
                    sets_seen: true,
                    ..
                }
            )
        });
        let mut items = items;
        if sets_seen && !self.selected.as_ref().is_some_and(|s| s.1) {
            if !items.iter().any(|i| matches!(i, Item::Flags)) {
                items.push(Item::Flags);
            }
            let mut s = self.state();
            if let Some(mb) = s.mailboxes.get_mut(&self.selected_name()) {
                for (_, m) in &mut found {
                    if !m.has_flag("\\Seen") {
                        m.flags.push("\\Seen".into());
                    }
                    if let Some(x) = mb.messages.iter_mut().find(|x| x.uid == m.uid) {
                        x.flags = m.flags.clone();
                    }
                }
            }
        }
        for f in faults {
            if let Fault::ExtraUids(extra) = f {
                let seq = found.len().max(1) as u64;
                for &uid in extra {
                    found.push((seq, phantom(uid)));
                }
            }
        }
        for f in faults {
            match f {
                Fault::FetchDropAfter { n, bye } => {
                    let mut out = Vec::new();
                    for (seq, m) in found.iter().take(*n) {
                        fetch_response(&mut out, *seq, m, &items, by_uid);
                    }
                    if *bye {
                        out.extend_from_slice(b"* BYE connection dropped (scripted)\r\n");
                    }
                    self.send(&out).await?;
                    return Ok(Flow::Close);
                }
                Fault::HugeLiteral(size) => {
                    let Some((seq, m)) = found.first() else {
                        continue;
                    };
                    // Announced as the first content item asked for.
                    let name = items
                        .iter()
                        .find_map(|i| match i {
                            Item::Content { name, .. } => Some(*name),
                            _ => None,
                        })
                        .unwrap_or("BODY[]");
                    let mut out =
                        format!("* {seq} FETCH (UID {} {name} {{{size}}}\r\n", m.uid).into_bytes();
                    let mut filler = m.raw.clone();
                    filler.resize(HUGE_LITERAL_SENT, b'x');
                    out.extend_from_slice(&filler);
                    self.send(&out).await?;
                    return Ok(Flow::Stall);
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        for (seq, m) in &found {
            fetch_response(&mut out, *seq, m, &items, by_uid);
        }
        self.send(&out).await?;
        self.reply(req, "OK", "FETCH completed").await
    }

    async fn search(&mut self, req: &Request, faults: &[Fault]) -> io::Result<Flow> {
        if faults.contains(&Fault::SearchBye) {
            self.send(b"* BYE going away (scripted)\r\n").await?;
            return Ok(Flow::Close);
        }
        let by_uid = req.name.starts_with("UID");
        let key = match parse_search(&req.args) {
            Ok(k) if faults.contains(&Fault::LargerEverything) => larger_is_everything(k),
            Ok(k) => k,
            Err(e) => return self.reply(req, "BAD", &e).await,
        };
        let mut hits: Vec<u64> = {
            let s = self.state();
            match s.mailboxes.get(&self.selected_name()) {
                None => Vec::new(),
                Some(mb) => mb
                    .messages
                    .iter()
                    .enumerate()
                    .filter(|(i, m)| matches(&key, m, *i as u64 + 1, mb))
                    .map(|(i, m)| {
                        if by_uid {
                            u64::from(m.uid)
                        } else {
                            i as u64 + 1
                        }
                    })
                    .collect(),
            }
        };
        for f in faults {
            if let Fault::ExtraUids(extra) = f {
                hits.extend(extra.iter().map(|&u| u64::from(u)));
            }
        }
        let mut line = "* SEARCH".to_string();
        for h in hits {
            line.push_str(&format!(" {h}"));
        }
        line.push_str("\r\n");
        self.send(line.as_bytes()).await?;
        self.reply(req, "OK", "SEARCH completed").await
    }

    async fn store(&mut self, req: &Request, faults: &[Fault]) -> io::Result<Flow> {
        if faults.contains(&Fault::StoreNo) {
            return self.reply(req, "NO", "[CANNOT] refused").await;
        }
        if self.selected.as_ref().is_some_and(|s| s.1) {
            return self.reply(req, "NO", "mailbox is read-only").await;
        }
        let by_uid = req.name.starts_with("UID");
        let Some(set) = req
            .args
            .first()
            .and_then(Arg::text)
            .and_then(|s| Set::parse(&s))
        else {
            return self.reply(req, "BAD", "invalid sequence set").await;
        };
        let op = req.args.get(1).map(Arg::upper).unwrap_or_default();
        let (mode, silent) = match op.strip_suffix(".SILENT") {
            Some(m) => (m.to_string(), true),
            None => (op.clone(), false),
        };
        if !["FLAGS", "+FLAGS", "-FLAGS"].contains(&mode.as_str()) {
            return self
                .reply(req, "BAD", "STORE needs FLAGS, +FLAGS or -FLAGS")
                .await;
        }
        let mut flags = Vec::new();
        for a in req.args.get(2..).unwrap_or_default() {
            match a {
                Arg::List(items) => flags.extend(items.iter().filter_map(Arg::text)),
                other => flags.extend(other.text()),
            }
        }
        let found = self.targets(&set, by_uid);
        let mut out = Vec::new();
        {
            let mut s = self.state();
            if let Some(mb) = s.mailboxes.get_mut(&self.selected_name()) {
                for (seq, m) in &found {
                    let Some(x) = mb.messages.iter_mut().find(|x| x.uid == m.uid) else {
                        continue;
                    };
                    match mode.as_str() {
                        "FLAGS" => x.flags = flags.clone(),
                        "+FLAGS" => {
                            for f in &flags {
                                if !x.has_flag(f) {
                                    x.flags.push(f.clone());
                                }
                            }
                        }
                        _ => x
                            .flags
                            .retain(|g| !flags.iter().any(|f| f.eq_ignore_ascii_case(g))),
                    }
                    if !silent {
                        fetch_response(&mut out, *seq, x, &[Item::Flags], by_uid);
                    }
                }
            }
        }
        self.send(&out).await?;
        self.reply(req, "OK", "STORE completed").await
    }

    async fn copy(&mut self, req: &Request, faults: &[Fault]) -> io::Result<Flow> {
        let moving = req.name.ends_with("MOVE");
        if moving && faults.contains(&Fault::MoveOkButNothing) {
            return self.reply(req, "OK", "MOVE completed").await;
        }
        if moving && self.selected.as_ref().is_some_and(|s| s.1) {
            return self.reply(req, "NO", "mailbox is read-only").await;
        }
        let by_uid = req.name.starts_with("UID");
        let Some(set) = req
            .args
            .first()
            .and_then(Arg::text)
            .and_then(|s| Set::parse(&s))
        else {
            return self.reply(req, "BAD", "invalid sequence set").await;
        };
        let Some(dest) = Self::mailbox_arg(req, 1) else {
            return self.reply(req, "BAD", "destination missing").await;
        };
        let found = self.targets(&set, by_uid);
        let source = self.selected_name();
        let mut out = Vec::new();
        let (mut src_uids, mut dst_uids) = (Vec::new(), Vec::new());
        let copied = match self.state().mailboxes.get_mut(&dest) {
            None => false,
            Some(d) => {
                for (_, m) in &found {
                    src_uids.push(m.uid);
                    dst_uids.push(d.add(m.raw.clone(), m.flags.clone()));
                }
                true
            }
        };
        if !copied {
            return self.reply(req, "NO", "[TRYCREATE] no such mailbox").await;
        }
        if moving && !found.is_empty() {
            out.extend_from_slice(
                format!(
                    "* OK [COPYUID {UID_VALIDITY} {} {}] moved\r\n",
                    uid_set_text(&src_uids),
                    uid_set_text(&dst_uids)
                )
                .as_bytes(),
            );
            if let Some(src) = self.state().mailboxes.get_mut(&source) {
                // Highest number first: each EXPUNGE renumbers only later messages.
                for (seq, m) in found.iter().rev() {
                    src.messages.retain(|x| x.uid != m.uid);
                    out.extend_from_slice(format!("* {seq} EXPUNGE\r\n").as_bytes());
                }
            }
        }
        self.send(&out).await?;
        let verb = if moving { "MOVE" } else { "COPY" };
        if moving || found.is_empty() {
            self.reply(req, "OK", &format!("{verb} completed")).await
        } else {
            let code = format!(
                "[COPYUID {UID_VALIDITY} {} {}] {verb} completed",
                uid_set_text(&src_uids),
                uid_set_text(&dst_uids)
            );
            self.reply(req, "OK", &code).await
        }
    }

    async fn expunge(&mut self, req: &Request) -> io::Result<Flow> {
        if self.selected.as_ref().is_some_and(|s| s.1) {
            return self.reply(req, "NO", "mailbox is read-only").await;
        }
        let set = if req.name == "UID EXPUNGE" {
            match req
                .args
                .first()
                .and_then(Arg::text)
                .and_then(|s| Set::parse(&s))
            {
                Some(s) => Some(s),
                None => return self.reply(req, "BAD", "invalid UID set").await,
            }
        } else {
            None
        };
        let mut out = Vec::new();
        {
            let name = self.selected_name();
            let mut s = self.state();
            if let Some(mb) = s.mailboxes.get_mut(&name) {
                let star = mb.max_uid();
                let gone: Vec<(u64, u32)> = mb
                    .messages
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| m.has_flag("\\Deleted"))
                    .filter(|(_, m)| {
                        set.as_ref()
                            .is_none_or(|s| s.contains(u64::from(m.uid), star))
                    })
                    .map(|(i, m)| (i as u64 + 1, m.uid))
                    .collect();
                for (seq, uid) in gone.iter().rev() {
                    mb.messages.retain(|x| x.uid != *uid);
                    out.extend_from_slice(format!("* {seq} EXPUNGE\r\n").as_bytes());
                }
            }
        }
        self.send(&out).await?;
        self.reply(req, "OK", "EXPUNGE completed").await
    }
}

/// IMAP LIST wildcards: `*` matches anything, `%` anything but the delimiter.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| glob(rest, &name[i..])),
        Some((b'%', rest)) => (0..=name.len())
            .take_while(|&i| i == 0 || name[i - 1] != b'/')
            .any(|i| glob(rest, &name[i..])),
        Some((c, rest)) => name.first() == Some(c) && glob(rest, &name[1..]),
    }
}
