//! Why this file exists: the compiled form of a script: what `compile.rs` produces once per
//! load and `interp.rs` walks once per message. Every argument is already checked and typed
//! here, so running a script never meets a syntax question.

use crate::matching::Matcher;
use crate::variables::{Modifier, Value};

#[derive(Debug, Clone, Default)]
pub struct Script {
    pub cmds: Vec<Cmd>,
    /// What the script reads of a message, so the host fetches no more than that.
    pub reads_body: bool,
    /// The capabilities named in `require` (for `ihave` and the tests).
    pub required: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    Set,
    Add,
    Remove,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressPart {
    All,
    LocalPart,
    Domain,
    User,
    Detail,
}

/// `:index N [:last]` (RFC 5260 section 6): which occurrence of a header field a test reads.
#[derive(Debug, Clone, Copy)]
pub struct Index {
    pub n: u64,
    pub last: bool,
}

#[derive(Debug, Clone)]
pub enum Zone {
    /// The local zone of the interpreter (UTC: plugins have no time zone).
    Local,
    /// `:zone "+0100"`.
    Fixed(Value),
    /// `:originalzone`: the zone the Date header was written in.
    Original,
}

#[derive(Debug, Clone)]
pub struct Vacation {
    /// Period between two replies to one sender, in seconds.
    pub period: u64,
    pub subject: Option<Value>,
    pub from: Option<Value>,
    pub addresses: Vec<Value>,
    pub mime: bool,
    pub handle: Option<Value>,
    pub reason: Value,
}

#[derive(Debug, Clone)]
pub enum DuplicateId {
    MessageId,
    Header(Value),
    UniqueId(Value),
}

#[derive(Debug, Clone)]
pub enum Cmd {
    If {
        branches: Vec<(Test, Vec<Cmd>)>,
        otherwise: Option<Vec<Cmd>>,
    },
    Stop,
    Keep {
        flags: Option<Vec<Value>>,
    },
    Discard,
    /// `reject` / `ereject` (RFC 5429): refuse the message at delivery with this reason.
    Reject {
        reason: Value,
        extended: bool,
    },
    FileInto {
        folder: Value,
        copy: bool,
        create: bool,
        flags: Option<Vec<Value>>,
    },
    Redirect {
        to: Value,
        copy: bool,
    },
    Set {
        name: String,
        value: Value,
        mods: Vec<Modifier>,
    },
    Flags {
        op: FlagOp,
        var: Option<String>,
        flags: Vec<Value>,
    },
    Vacation(Box<Vacation>),
    /// `notify` (RFC 5435) with a mailto method (RFC 5436).
    Notify(Box<Notify>),
    AddHeader {
        last: bool,
        name: Value,
        value: Value,
    },
    DeleteHeader {
        index: Option<Index>,
        matcher: Matcher,
        name: Value,
        patterns: Option<Vec<Value>>,
    },
    /// An included script's commands, run in place (RFC 6609), with its `return`.
    Include {
        script: Box<Script>,
        once: bool,
        key: String,
    },
    Return,
    /// `global` names: variables shared with the including script.
    Global(Vec<String>),
    /// `error "text"` (RFC 5463): a run-time failure.
    Error(Value),
    /// `foreverypart` (RFC 5703 section 3): the block once per MIME part below the current
    /// one, each in turn the current part.
    ForEveryPart(Vec<Cmd>),
    /// `break [:name]`: leaves the innermost loop (0) or the one that many loops out.
    Break(usize),
    /// `extracttext [MODIFIER] [:first N] NAME` (RFC 5703 section 7): the current part's text
    /// into a variable.
    ExtractText {
        name: String,
        mods: Vec<Modifier>,
        first: Option<u64>,
    },
}

/// `:mime [:anychild] [option]` (RFC 5703 section 4): a test reads the MIME header of the
/// current part (the message outside `foreverypart`), or of it and every part below it.
#[derive(Debug, Clone)]
pub struct Mime {
    pub anychild: bool,
    pub option: MimeOption,
}

/// What `header :mime` reads of a Content-Type or Content-Disposition field.
#[derive(Debug, Clone)]
pub enum MimeOption {
    /// The whole value, encoded words decoded.
    Whole,
    Type,
    Subtype,
    ContentType,
    Param(Vec<Value>),
}

#[derive(Debug, Clone)]
pub enum Test {
    Const(bool),
    Not(Box<Test>),
    AllOf(Vec<Test>),
    AnyOf(Vec<Test>),
    Address {
        part: AddressPart,
        matcher: Matcher,
        headers: Vec<Value>,
        keys: Vec<Value>,
        index: Option<Index>,
        mime: Option<Mime>,
    },
    Envelope {
        part: AddressPart,
        matcher: Matcher,
        fields: Vec<Value>,
        keys: Vec<Value>,
    },
    Header {
        matcher: Matcher,
        headers: Vec<Value>,
        keys: Vec<Value>,
        index: Option<Index>,
        mime: Option<Mime>,
    },
    Exists {
        names: Vec<Value>,
        mime: Option<Mime>,
    },
    Size {
        over: bool,
        limit: u64,
    },
    Body {
        matcher: Matcher,
        raw: bool,
        content_types: Option<Vec<Value>>,
        keys: Vec<Value>,
    },
    Str {
        matcher: Matcher,
        sources: Vec<Value>,
        keys: Vec<Value>,
    },
    HasFlag {
        matcher: Matcher,
        vars: Option<Vec<Value>>,
        keys: Vec<Value>,
    },
    Date {
        matcher: Matcher,
        zone: Zone,
        header: Value,
        part: Value,
        keys: Vec<Value>,
        index: Option<Index>,
    },
    CurrentDate {
        matcher: Matcher,
        zone: Zone,
        part: Value,
        keys: Vec<Value>,
    },
    MailboxExists(Vec<Value>),
    Duplicate {
        handle: Option<Value>,
        id: DuplicateId,
        seconds: Option<u64>,
        last: bool,
    },
    SpamTest {
        percent: bool,
        matcher: Matcher,
        key: Value,
    },
    VirusTest {
        matcher: Matcher,
        key: Value,
    },
    Environment {
        matcher: Matcher,
        name: Value,
        keys: Vec<Value>,
    },
    /// `valid_notify_method` (RFC 5435 section 5.1).
    ValidNotifyMethod(Vec<Value>),
    /// `notify_method_capability` (RFC 5435 section 5.2).
    NotifyMethodCapability {
        matcher: Matcher,
        uri: Value,
        capability: Value,
        keys: Vec<Value>,
    },
}

#[derive(Debug, Clone)]
pub struct Notify {
    pub method: Value,
    pub from: Option<Value>,
    /// 1, 2 or 3.
    pub importance: Option<Value>,
    pub message: Option<Value>,
}
