//! Why this file exists: running a compiled script on one message. It reads the message and
//! the outside world only through `Input` and writes only to the `Outcome` it returns: no I/O,
//! no clock, no state of its own, so the same script and input always give the same outcome.

use std::borrow::Cow;
use std::collections::HashSet;
use std::rc::Rc;

use crate::address;
use crate::date::{self, Moment};
use crate::matching::{MatchType, Matcher};
use crate::mime::{self, Entity};
use crate::outcome::{HeaderEdit, Outcome, Store, VacationReply};
use crate::script::{
    AddressPart, Cmd, DuplicateId, FlagOp, Index, Mime, MimeOption, Notify, Script, Test, Vacation,
    Zone,
};
use crate::variables::{apply_modifiers, Vars};

/// What a script may read of a message and of the world around it.
pub trait Input {
    /// Header fields in message order, values decoded (RFC 2047) and unfolded.
    fn headers(&mut self) -> Vec<(String, String)>;
    /// The values of the fields called `name` (any case), in order: what most tests read,
    /// one field name at a time (cheaper than every field when a script reads a few).
    fn header(&mut self, name: &str) -> Vec<String> {
        self.headers()
            .into_iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect()
    }
    /// The envelope sender, "" for the null sender; None when unknown.
    fn envelope_from(&mut self) -> Option<String>;
    /// The envelope recipient (the user's address the message was delivered to).
    fn envelope_to(&mut self) -> Option<String>;
    fn size(&mut self) -> u64;
    /// The decoded text of each text part (`body :text`).
    fn body_text(&mut self) -> Vec<String>;
    /// The body as it is on the wire, after the header (`body :raw`).
    fn body_raw(&mut self) -> String;
    /// The whole message as it is on the wire (`body :content` and the mime extensions walk
    /// its parts).
    fn raw_message(&mut self) -> Vec<u8>;
    fn mailbox_exists(&mut self, name: &str) -> bool;
    fn now_ms(&mut self) -> i64;
    /// Whether `key` was recorded by `duplicate` before (and has not expired).
    fn duplicate_seen(&mut self, key: &str) -> bool;
    /// An RFC 5183 environment item ("domain", "host", "name", ...).
    fn environment(&mut self, item: &str) -> Option<String>;
    /// Whether the message is being delivered now (LMTP, `mailpipe deliver`), so that
    /// `reject` can still refuse it; false after delivery (IMAP, POP3, a Maildir).
    fn at_delivery(&mut self) -> bool {
        false
    }
}

/// Where a score test reads its score (RFC 5235 leaves it to the site, like Pigeonhole's
/// `sieve_spamtest_status_header`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreHeader {
    pub header: String,
    /// The score that means "certainly spam" (10, or 100 %).
    pub max: f64,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub spamtest: Option<ScoreHeader>,
    pub virustest: Option<ScoreHeader>,
    /// The user's own addresses (vacation answers only mail sent to one of them).
    pub addresses: Vec<String>,
    pub max_redirects: usize,
    pub max_actions: usize,
    /// The default `duplicate` period, in seconds.
    pub duplicate_period: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            spamtest: None,
            virustest: None,
            addresses: Vec::new(),
            max_redirects: 4,
            max_actions: 32,
            duplicate_period: 12 * 3600,
        }
    }
}

/// Notifications one run may send at most (Pigeonhole's default is 10).
pub const MAX_NOTIFICATIONS: usize = 10;

/// A run-time error (RFC 5228 section 2.10.6): the message is kept, nothing else happens.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeError(pub String);

impl std::fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

enum Flow {
    Next,
    Stop,
    Return,
    /// `break`: leave this many more loops after the innermost one.
    Break(usize),
}

struct Run<'a, I: Input> {
    input: &'a mut I,
    settings: &'a Settings,
    vars: Vars,
    /// imap4flags' internal variable.
    flags: Vec<String>,
    /// The whole header, once editheader changed it (then every test reads this copy).
    headers: Option<Vec<(String, String)>>,
    /// Values by field name, read from the input on first use (a script reads a few names
    /// many times: a short list searched without allocating beats a map keyed by lowercase).
    by_name: Vec<(String, Rc<Vec<String>>)>,
    /// The addresses in all fields of a name, for `address` without `:index`.
    addresses: Vec<(String, Rc<Vec<String>>)>,
    added: Vec<(String, String, bool)>,
    deleted: Vec<String>,
    out: Outcome,
    actions: usize,
    included_once: HashSet<String>,
    vacation_seen: bool,
    /// The message's MIME entities, walked on first use (mime extensions).
    entities: Option<Rc<Vec<Entity>>>,
    /// The current MIME part: 0 (the message) outside `foreverypart`.
    part: usize,
    /// How many `foreverypart` loops are running.
    loops: usize,
}

/// Runs `script` on the message behind `input`.
pub fn run<I: Input>(
    script: &Script,
    input: &mut I,
    settings: &Settings,
) -> Result<Outcome, RuntimeError> {
    let mut r = Run {
        input,
        settings,
        vars: Vars::default(),
        flags: Vec::new(),
        headers: None,
        by_name: Vec::new(),
        addresses: Vec::new(),
        added: Vec::new(),
        deleted: Vec::new(),
        out: Outcome {
            implicit_keep: true,
            ..Outcome::default()
        },
        actions: 0,
        included_once: HashSet::new(),
        vacation_seen: false,
        entities: None,
        part: 0,
        loops: 0,
    };
    r.block(&script.cmds)?;
    reject_conflicts(&r.out)?;
    r.out.implicit_flags = r.flags.clone();
    let mut edits = Vec::new();
    for name in &r.deleted {
        let survivors = r
            .headers
            .as_ref()
            .map(|h| {
                h.iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
                    .collect()
            })
            .unwrap_or_default();
        edits.push(HeaderEdit::Replace {
            name: name.clone(),
            survivors,
        });
    }
    for (name, value, last) in &r.added {
        if !r.deleted.iter().any(|d| d.eq_ignore_ascii_case(name)) {
            edits.push(HeaderEdit::Add {
                name: name.clone(),
                value: value.clone(),
                last: *last,
            });
        }
    }
    r.out.header_edits = edits;
    Ok(r.out)
}

/// A refused message cannot also be stored, redirected or answered (RFC 5429 2.1 and 2.2,
/// as Pigeonhole: its reject conflicts with actions that deliver the message or send a
/// response to the sender).
fn reject_conflicts(out: &Outcome) -> Result<(), RuntimeError> {
    if out.reject.is_none() {
        return Ok(());
    }
    let other = if !out.stores.is_empty() {
        "keep or fileinto delivers the message"
    } else if !out.redirects.is_empty() {
        "redirect delivers the message"
    } else if out.vacation.is_some() {
        "vacation also sends a response to the sender"
    } else {
        return Ok(());
    };
    Err(RuntimeError(format!(
        "reject conflicts with another action: {other}"
    )))
}

fn split_flags(list: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in list {
        for f in s.split_whitespace() {
            if !out.iter().any(|o| o.eq_ignore_ascii_case(f)) {
                out.push(f.to_string());
            }
        }
    }
    out
}

/// Local parts of senders that are programs (RFC 5230 section 4.6 names the first ones; the
/// rest are what the auto-responder example skips too): no vacation reply goes to them.
fn is_robot(addr: &str) -> bool {
    let local = addr
        .rsplit_once('@')
        .map_or(addr, |(l, _)| l)
        .to_ascii_lowercase();
    matches!(
        local.as_str(),
        "mailer-daemon"
            | "listserv"
            | "majordomo"
            | "owner"
            | "postmaster"
            | "noreply"
            | "no-reply"
            | "do-not-reply"
            | "donotreply"
    ) || local.starts_with("owner-")
        || local.ends_with("-request")
}

impl<I: Input> Run<'_, I> {
    fn headers(&mut self) -> &Vec<(String, String)> {
        if self.headers.is_none() {
            self.headers = Some(self.input.headers());
        }
        self.headers.as_ref().expect("just filled")
    }

    /// The values of the fields called `name`, all or the one `:index` picks.
    fn values_of(&mut self, name: &str, index: Option<Index>) -> Rc<Vec<String>> {
        let all: Rc<Vec<String>> = match &self.headers {
            Some(h) => Rc::new(
                h.iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
                    .collect(),
            ),
            None => match self
                .by_name
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                Some((_, v)) => v.clone(),
                None => {
                    let v = Rc::new(self.input.header(name));
                    self.by_name.push((name.to_string(), v.clone()));
                    v
                }
            },
        };
        match index {
            None => all,
            Some(Index { n, last }) => {
                let n = n as usize;
                let pick = if last {
                    all.len().checked_sub(n).and_then(|i| all.get(i))
                } else {
                    all.get(n - 1)
                };
                Rc::new(pick.cloned().into_iter().collect())
            }
        }
    }

    /// The addresses in the fields called `name` (all, or the one `:index` picks).
    fn addresses_of(&mut self, name: &str, index: Option<Index>) -> Rc<Vec<String>> {
        let cacheable = index.is_none() && self.headers.is_none();
        if cacheable {
            if let Some((_, v)) = self
                .addresses
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                return v.clone();
            }
        }
        let list: Rc<Vec<String>> = Rc::new(
            self.values_of(name, index)
                .iter()
                .flat_map(|v| address::parse_list(v))
                .collect(),
        );
        if cacheable {
            self.addresses.push((name.to_string(), list.clone()));
        }
        list
    }

    fn entities(&mut self) -> Rc<Vec<Entity>> {
        if self.entities.is_none() {
            self.entities = Some(Rc::new(mime::entities(&self.input.raw_message())));
        }
        self.entities.clone().expect("just filled")
    }

    /// The entities a `:mime` test reads: the current part, or with `:anychild` it and every
    /// part below it (as Pigeonhole reads RFC 5703 section 4.1).
    fn mime_scope(&mut self, m: &Mime) -> (Rc<Vec<Entity>>, std::ops::Range<usize>) {
        let ents = self.entities();
        let cur = self.part.min(ents.len().saturating_sub(1));
        let range = match ents.get(cur) {
            None => 0..0,
            Some(e) if m.anychild => cur..e.end,
            Some(_) => cur..cur + 1,
        };
        (ents, range)
    }

    /// What `each` collects from every entity in a `:mime` test's scope, for every field name
    /// the test names (lowercased).
    fn over_mime(
        &mut self,
        m: &Mime,
        headers: &[crate::variables::Value],
        mut each: impl FnMut(&Self, &Entity, &str, &mut Vec<String>),
    ) -> Vec<String> {
        let (ents, range) = self.mime_scope(m);
        let mut values = Vec::new();
        for name in self.keys(headers) {
            let name = name.to_ascii_lowercase();
            for e in &ents[range.clone()] {
                each(self, e, &name, &mut values);
            }
        }
        values
    }

    /// The values `header :mime` tests in the fields called `lname` (lowercase, as
    /// `over_mime` gives it) of one entity.
    fn mime_values(&self, e: &Entity, lname: &str, option: &MimeOption, out: &mut Vec<String>) {
        let structured = matches!(lname, "content-type" | "content-disposition");
        for v in e.field(lname) {
            if !structured || matches!(option, MimeOption::Whole) {
                out.push(mime::decode_words(v));
                continue;
            }
            let (ty, sub, params) = if lname == "content-type" {
                mime::content_type(v)
            } else {
                let disposition = v
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                (disposition, String::new(), mime::params(v))
            };
            match option {
                MimeOption::Whole => {}
                MimeOption::Type => out.push(ty),
                MimeOption::Subtype => out.push(sub),
                MimeOption::ContentType if lname == "content-type" => out.push(if ty.is_empty() {
                    String::new()
                } else {
                    format!("{ty}/{sub}")
                }),
                MimeOption::ContentType => out.push(ty),
                MimeOption::Param(names) => {
                    // A parameter the field lacks reads as "" (as in Pigeonhole).
                    for n in self.expand_list(names) {
                        let before = out.len();
                        out.extend(
                            params
                                .iter()
                                .filter(|(k, _)| k.eq_ignore_ascii_case(&n))
                                .map(|(_, v)| mime::decode_words(v)),
                        );
                        if out.len() == before {
                            out.push(String::new());
                        }
                    }
                }
            }
        }
    }

    fn count_action(&mut self) -> Result<(), RuntimeError> {
        self.actions += 1;
        if self.actions > self.settings.max_actions {
            return Err(RuntimeError(format!(
                "more than {} actions",
                self.settings.max_actions
            )));
        }
        Ok(())
    }

    fn block(&mut self, cmds: &[Cmd]) -> Result<Flow, RuntimeError> {
        for c in cmds {
            match self.cmd(c)? {
                Flow::Next => {}
                other => return Ok(other),
            }
        }
        Ok(Flow::Next)
    }

    fn expand_list(&self, l: &[crate::variables::Value]) -> Vec<String> {
        l.iter().map(|v| self.vars.expand(v)).collect()
    }

    /// Keys as the script wrote them, borrowed when they hold no variable.
    fn keys<'a>(&self, l: &'a [crate::variables::Value]) -> Vec<Cow<'a, str>> {
        l.iter()
            .map(|v| match v.as_lit() {
                Some(s) => Cow::Borrowed(s),
                None => Cow::Owned(self.vars.expand(v)),
            })
            .collect()
    }

    fn store(&mut self, folder: Option<String>, create: bool, flags: Vec<String>) {
        let same = |s: &Store| match (&s.folder, &folder) {
            (None, None) => true,
            (Some(a), Some(b)) => a == b,
            _ => false,
        };
        // A second store into the same folder is one store; its flags are the latest ones
        // (as Pigeonhole merges duplicate stores).
        // (moved to the end: the order of stores is the order of their latest flags).
        if let Some(i) = self.out.stores.iter().position(same) {
            let mut existing = self.out.stores.remove(i);
            existing.flags = flags;
            existing.create |= create;
            self.out.stores.push(existing);
            return;
        }
        self.out.stores.push(Store {
            folder,
            create,
            flags,
        });
    }

    fn cmd(&mut self, c: &Cmd) -> Result<Flow, RuntimeError> {
        match c {
            Cmd::If {
                branches,
                otherwise,
            } => {
                for (test, body) in branches {
                    if self.test(test)? {
                        return self.block(body);
                    }
                }
                if let Some(body) = otherwise {
                    return self.block(body);
                }
            }
            Cmd::Stop => return Ok(Flow::Stop),
            Cmd::Return => return Ok(Flow::Return),
            Cmd::Break(levels) => return Ok(Flow::Break(*levels)),
            Cmd::ForEveryPart(body) => {
                // The outermost loop visits the message itself and then every part below it
                // (as Pigeonhole does); a nested loop visits the parts below the current one.
                let ents = self.entities();
                let outer = self.part;
                let end = ents.get(outer).map_or(outer, |e| e.end);
                let first = if self.loops == 0 { outer } else { outer + 1 };
                let mut flow = Flow::Next;
                self.loops += 1;
                for i in first..end {
                    self.part = i;
                    match self.block(body) {
                        Ok(Flow::Next) => {}
                        Ok(Flow::Break(0)) => break,
                        Ok(Flow::Break(n)) => {
                            flow = Flow::Break(n - 1);
                            break;
                        }
                        Ok(other) => {
                            flow = other;
                            break;
                        }
                        Err(e) => {
                            self.part = outer;
                            self.loops -= 1;
                            return Err(e);
                        }
                    }
                }
                self.part = outer;
                self.loops -= 1;
                return Ok(flow);
            }
            Cmd::ExtractText { name, mods, first } => {
                let ents = self.entities();
                let text = match ents.get(self.part) {
                    Some(e) if e.content_type.starts_with("text/") => e.content.as_str(),
                    _ => "",
                };
                // :first counts octets of the UTF-8 text, never cutting a character (as
                // Pigeonhole does).
                let mut cut = first.map_or(text.len(), |n| {
                    usize::try_from(n).unwrap_or(usize::MAX).min(text.len())
                });
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                let text = text[..cut].to_string();
                let v = apply_modifiers(mods, text);
                self.vars.set(name, v);
            }
            Cmd::Keep { flags } => {
                self.count_action()?;
                let flags = match flags {
                    Some(f) => split_flags(&self.expand_list(f)),
                    None => self.flags.clone(),
                };
                self.store(None, false, flags);
                self.out.implicit_keep = false;
            }
            Cmd::Discard => {
                self.out.discarded = true;
                self.out.implicit_keep = false;
            }
            Cmd::Reject { reason, extended } => {
                let name = if *extended { "ereject" } else { "reject" };
                if !self.input.at_delivery() {
                    return Err(RuntimeError(format!(
                        "{name} cannot refuse mail that was already delivered: the script runs \
                         after delivery here (IMAP, POP3, a Maildir); it can refuse mail only \
                         when mailpipe delivers it (LMTP, mailpipe deliver)"
                    )));
                }
                if self.out.reject.is_some() {
                    return Err(RuntimeError(format!(
                        "{name}: the message was refused already (one reject per run, RFC 5429)"
                    )));
                }
                self.count_action()?;
                self.out.reject = Some(self.vars.expand(reason));
                self.out.implicit_keep = false;
            }
            Cmd::FileInto {
                folder,
                copy,
                create,
                flags,
            } => {
                self.count_action()?;
                let folder = self.vars.expand(folder);
                if folder.is_empty() || folder.contains('\0') {
                    return Err(RuntimeError(format!(
                        "fileinto: invalid folder name {folder:?}"
                    )));
                }
                let flags = match flags {
                    Some(f) => split_flags(&self.expand_list(f)),
                    None => self.flags.clone(),
                };
                self.store(Some(folder), *create, flags);
                if !copy {
                    self.out.implicit_keep = false;
                }
            }
            Cmd::Redirect { to, copy } => {
                self.count_action()?;
                let to = self.vars.expand(to);
                let addr = address::parse_list(&to)
                    .into_iter()
                    .next()
                    .unwrap_or_default();
                if !crate::compile::valid_address(&addr) {
                    return Err(RuntimeError(format!(
                        "redirect: {to:?} is not a valid address"
                    )));
                }
                if !self.out.redirects.iter().any(|r| same_address(r, &addr)) {
                    if self.out.redirects.len() >= self.settings.max_redirects {
                        return Err(RuntimeError(format!(
                            "more than {} redirects",
                            self.settings.max_redirects
                        )));
                    }
                    self.out.redirects.push(addr);
                }
                if !copy {
                    self.out.implicit_keep = false;
                }
            }
            Cmd::Set { name, value, mods } => {
                let v = apply_modifiers(mods, self.vars.expand(value));
                self.vars.set(name, v);
            }
            Cmd::Flags { op, var, flags } => {
                let given = split_flags(&self.expand_list(flags));
                let mut current = match var {
                    Some(v) => split_flags(&[self.vars.get(v).cloned().unwrap_or_default()]),
                    None => self.flags.clone(),
                };
                match op {
                    FlagOp::Set => current = given,
                    FlagOp::Add => {
                        for f in given {
                            if !current.iter().any(|c| c.eq_ignore_ascii_case(&f)) {
                                current.push(f);
                            }
                        }
                    }
                    FlagOp::Remove => {
                        current.retain(|c| !given.iter().any(|g| g.eq_ignore_ascii_case(c)))
                    }
                }
                match var {
                    Some(v) => self.vars.set(v, current.join(" ")),
                    None => self.flags = current,
                }
            }
            Cmd::Vacation(v) => self.vacation(v)?,
            Cmd::Notify(n) => self.notify(n)?,
            Cmd::AddHeader { last, name, value } => {
                let name = self.vars.expand(name);
                let value = self.vars.expand(value);
                if !valid_field_name(&name) {
                    return Err(RuntimeError(format!(
                        "addheader: {name:?} is not a valid header field name"
                    )));
                }
                let value: String = value
                    .chars()
                    .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
                    .collect();
                self.headers();
                let h = self.headers.as_mut().expect("filled");
                if *last {
                    h.push((name.clone(), value.clone()));
                } else {
                    h.insert(0, (name.clone(), value.clone()));
                }
                self.added.push((name, value, *last));
            }
            Cmd::DeleteHeader {
                index,
                matcher,
                name,
                patterns,
            } => {
                let name = self.vars.expand(name);
                if protected(&name) {
                    return Ok(Flow::Next);
                }
                let patterns = patterns.as_ref().map(|p| self.expand_list(p));
                self.headers();
                let h = self.headers.as_ref().expect("filled");
                let positions: Vec<usize> = h
                    .iter()
                    .enumerate()
                    .filter(|(_, (n, _))| n.eq_ignore_ascii_case(&name))
                    .map(|(i, _)| i)
                    .collect();
                let chosen: Vec<usize> = match index {
                    None => positions,
                    Some(Index { n, last }) => {
                        let n = *n as usize;
                        let pick = if *last {
                            positions
                                .len()
                                .checked_sub(n)
                                .and_then(|i| positions.get(i))
                        } else {
                            positions.get(n - 1)
                        };
                        pick.copied().into_iter().collect()
                    }
                };
                let doomed: Vec<usize> = chosen
                    .into_iter()
                    .filter(|i| match &patterns {
                        None => true,
                        Some(p) => p.iter().any(|k| matcher.matches(&h[*i].1, k, None)),
                    })
                    .collect();
                if !doomed.is_empty() {
                    let h = self.headers.as_mut().expect("filled");
                    for i in doomed.iter().rev() {
                        h.remove(*i);
                    }
                    if !self.deleted.iter().any(|d| d.eq_ignore_ascii_case(&name)) {
                        self.deleted.push(name);
                    }
                }
            }
            Cmd::Include { script, once, key } => {
                if *once && !self.included_once.insert(key.clone()) {
                    return Ok(Flow::Next);
                }
                self.out.trace.push(format!("include {key}"));
                let named = std::mem::take(&mut self.vars.named);
                let declared = std::mem::take(&mut self.vars.declared);
                let flow = self.block(&script.cmds);
                self.vars.named = named;
                self.vars.declared = declared;
                if let Flow::Stop = flow? {
                    return Ok(Flow::Stop);
                }
            }
            Cmd::Global(names) => {
                for n in names {
                    self.vars.declared.insert(n.clone());
                }
            }
            Cmd::Error(msg) => {
                return Err(RuntimeError(format!(
                    "script error: {}",
                    self.vars.expand(msg)
                )))
            }
        }
        Ok(Flow::Next)
    }

    /// `notify` by mail (RFC 5435, RFC 5436): the subject is the URI's, else `:message`;
    /// the text the URI's body, else `:message`, else who sent what. The same notification
    /// twice is one (RFC 5435 section 3.9).
    fn notify(&mut self, n: &Notify) -> Result<(), RuntimeError> {
        self.count_action()?;
        let uri = self.vars.expand(&n.method);
        let m = crate::mailto::parse(&uri).map_err(|e| RuntimeError(format!("notify: {e}")))?;
        let message = n
            .message
            .as_ref()
            .map(|v| self.vars.expand(v))
            .filter(|s| !s.is_empty());
        let importance = match n.importance.as_ref().map(|v| self.vars.expand(v)) {
            None => 2,
            Some(i) => match i.as_str() {
                "1" => 1,
                "2" => 2,
                "3" => 3,
                other => {
                    return Err(RuntimeError(format!(
                        "notify: :importance {other:?} is not \"1\", \"2\" or \"3\""
                    )))
                }
            },
        };
        let from = n.from.as_ref().map(|v| self.vars.expand(v));
        let subject = m
            .subject
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| message.clone());
        let text = match (m.body, message) {
            (Some(body), _) => body,
            (None, Some(message)) => message,
            (None, None) => {
                let who = self
                    .values_of("from", None)
                    .first()
                    .cloned()
                    .unwrap_or_default();
                let what = self
                    .values_of("subject", None)
                    .first()
                    .cloned()
                    .unwrap_or_default();
                format!("New mail from {who}: {what}")
            }
        };
        let notification = crate::outcome::Notification {
            to: m.to,
            subject,
            text,
            importance,
            from,
        };
        if self.out.notifications.contains(&notification) {
            return Ok(());
        }
        if self.out.notifications.len() >= MAX_NOTIFICATIONS {
            return Err(RuntimeError(format!(
                "more than {MAX_NOTIFICATIONS} notifications"
            )));
        }
        self.out.notifications.push(notification);
        Ok(())
    }

    fn vacation(&mut self, v: &Vacation) -> Result<(), RuntimeError> {
        if self.vacation_seen {
            return Err(RuntimeError("duplicate vacation action not allowed".into()));
        }
        self.vacation_seen = true;
        let reason = self.vars.expand(&v.reason);
        let subject = v
            .subject
            .as_ref()
            .map(|s| self.vars.expand(s))
            .filter(|s| !s.is_empty());
        let from = v.from.as_ref().map(|s| self.vars.expand(s));
        let addresses = self.expand_list(&v.addresses);
        let handle = match &v.handle {
            Some(h) => self.vars.expand(h),
            // RFC 5230 4.2: without :handle, the arguments identify the vacation command.
            None => format!(
                "{}\u{1}{}\u{1}{}\u{1}{}",
                reason,
                subject.clone().unwrap_or_default(),
                from.clone().unwrap_or_default(),
                v.mime
            ),
        };
        // Who would get the reply: the envelope sender (RFC 5230 4.5).
        let sender = match self.input.envelope_from() {
            Some(s) => s,
            None => {
                let from = self.values_of("from", None);
                from.iter()
                    .flat_map(|f| address::parse_list(f))
                    .next()
                    .unwrap_or_default()
            }
        };
        let skip =
            |why: &str, out: &mut Outcome| out.trace.push(format!("vacation not sent: {why}"));
        if sender.is_empty() {
            skip("the sender is the null sender (a bounce)", &mut self.out);
            return Ok(());
        }
        // A robot in the envelope, or in the fields a reply would otherwise go to (a
        // "noreply@" From with a bounce address as the sender is common for invoices).
        let mut robots = vec![sender.clone()];
        for h in ["from", "sender", "reply-to"] {
            for v in self.values_of(h, None).iter() {
                robots.extend(address::parse_list(v));
            }
        }
        if robots.iter().any(|a| is_robot(a)) {
            skip("the sender is a mail robot", &mut self.out);
            return Ok(());
        }
        let auto = self.values_of("auto-submitted", None);
        if auto.iter().any(|a| !a.trim().eq_ignore_ascii_case("no")) {
            skip("the message is automatic (Auto-Submitted)", &mut self.out);
            return Ok(());
        }
        let suppress = self.values_of("x-auto-response-suppress", None);
        if suppress.iter().any(|v| {
            v.split([',', ' ', '\t'])
                .any(|w| w.eq_ignore_ascii_case("all") || w.eq_ignore_ascii_case("oof"))
        }) {
            skip(
                "the sender asked for no automatic replies (X-Auto-Response-Suppress)",
                &mut self.out,
            );
            return Ok(());
        }
        let listy = [
            "list-id",
            "list-post",
            "list-unsubscribe",
            "list-owner",
            "list-help",
            "list-subscribe",
            "list-archive",
        ];
        if listy.iter().any(|h| !self.values_of(h, None).is_empty()) {
            skip("the message comes from a mailing list", &mut self.out);
            return Ok(());
        }
        let precedence = self.values_of("precedence", None);
        if precedence.iter().any(|p| {
            matches!(
                p.trim().to_ascii_lowercase().as_str(),
                "bulk" | "list" | "junk"
            )
        }) {
            skip("the message is bulk mail (Precedence)", &mut self.out);
            return Ok(());
        }
        // The user must be a direct recipient (RFC 5230 4.5).
        let mut mine: Vec<String> = addresses
            .iter()
            .flat_map(|a| address::parse_list(a))
            .chain(self.settings.addresses.iter().cloned())
            .collect();
        if let Some(to) = self.input.envelope_to() {
            mine.push(to);
        }
        let mine: Vec<String> = mine.into_iter().map(|a| a.to_ascii_lowercase()).collect();
        if mine.iter().any(|m| m.eq_ignore_ascii_case(&sender)) {
            skip("the sender is the user", &mut self.out);
            return Ok(());
        }
        let mut addressed = false;
        for h in ["to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc"] {
            for value in self.values_of(h, None).iter() {
                for a in address::parse_list(value) {
                    if mine.iter().any(|m| m.eq_ignore_ascii_case(&a)) {
                        addressed = true;
                    }
                }
            }
        }
        if !addressed {
            skip(
                "the user is not an explicit recipient (To, Cc, Bcc)",
                &mut self.out,
            );
            return Ok(());
        }
        let subject = subject.unwrap_or_else(|| {
            let original = self.values_of("subject", None).first().cloned();
            match original {
                // A Subject field, even an empty one, is answered "Auto: ..." (as Pigeonhole).
                Some(s) => format!("Auto: {}", s.trim()),
                None => "Automated reply".to_string(),
            }
        });
        self.out.vacation = Some(VacationReply {
            to: sender,
            subject,
            from,
            reason,
            mime: v.mime,
            handle,
            period_seconds: v.period,
        });
        Ok(())
    }

    fn test(&mut self, t: &Test) -> Result<bool, RuntimeError> {
        Ok(match t {
            Test::Const(b) => *b,
            Test::Not(t) => !self.test(t)?,
            Test::AllOf(ts) => {
                for t in ts {
                    if !self.test(t)? {
                        return Ok(false);
                    }
                }
                true
            }
            Test::AnyOf(ts) => {
                for t in ts {
                    if self.test(t)? {
                        return Ok(true);
                    }
                }
                false
            }
            Test::Header {
                matcher,
                headers,
                keys,
                index: _,
                mime: Some(m),
            } => {
                let values = self.over_mime(m, headers, |r, e, n, out| {
                    r.mime_values(e, n, &m.option, out)
                });
                let keys = self.keys(keys);
                self.compare(matcher, &values, &keys)
            }
            Test::Header {
                matcher,
                headers,
                keys,
                index,
                mime: None,
            } => {
                let names = self.keys(headers);
                let lists: Vec<Rc<Vec<String>>> =
                    names.iter().map(|h| self.values_of(h, *index)).collect();
                let keys = self.keys(keys);
                if lists.len() == 1 {
                    self.compare(matcher, &lists[0], &keys)
                } else {
                    let values: Vec<&str> = lists
                        .iter()
                        .flat_map(|l| l.iter().map(String::as_str))
                        .collect();
                    self.compare(matcher, &values, &keys)
                }
            }
            Test::Address {
                part,
                matcher,
                headers,
                keys,
                index: _,
                mime: Some(m),
            } => {
                let values = self.over_mime(m, headers, |_, e, n, out| {
                    for v in e.field(n) {
                        out.extend(
                            address::parse_list(&mime::decode_words(v))
                                .iter()
                                .filter_map(|a| address::part(a, *part)),
                        );
                    }
                });
                let keys = self.keys(keys);
                self.compare(matcher, &values, &keys)
            }
            Test::Address {
                part,
                matcher,
                headers,
                keys,
                index,
                mime: None,
            } => {
                let mut values: Vec<String> = Vec::new();
                let mut only: Option<Rc<Vec<String>>> = None;
                for h in self.keys(headers) {
                    let list = self.addresses_of(&h, *index);
                    if *part == AddressPart::All && headers.len() == 1 {
                        only = Some(list);
                    } else {
                        values.extend(list.iter().filter_map(|a| address::part(a, *part)));
                    }
                }
                let keys = self.keys(keys);
                match only {
                    Some(list) => self.compare(matcher, &list, &keys),
                    None => self.compare(matcher, &values, &keys),
                }
            }
            Test::Envelope {
                part,
                matcher,
                fields,
                keys,
            } => {
                let mut values = Vec::new();
                for f in self.expand_list(fields) {
                    let v = match f.to_ascii_lowercase().as_str() {
                        "from" => self.input.envelope_from(),
                        "to" => self.input.envelope_to(),
                        _ => None,
                    };
                    if let Some(v) = v {
                        if v.is_empty() {
                            // The null sender: only its ":all" part exists, and it is "".
                            if *part == AddressPart::All {
                                values.push(String::new());
                            }
                        } else if let Some(p) = address::part(&v, *part) {
                            values.push(p);
                        }
                    }
                }
                let keys = self.keys(keys);
                self.compare(matcher, &values, &keys)
            }
            Test::Exists { names, mime: None } => {
                let names = self.expand_list(names);
                names.iter().all(|n| !self.values_of(n, None).is_empty())
            }
            Test::Exists {
                names,
                mime: Some(m),
            } => {
                let names: Vec<String> = self
                    .expand_list(names)
                    .iter()
                    .map(|n| n.to_ascii_lowercase())
                    .collect();
                // Each name in some part in scope (not all in one part), as Pigeonhole reads it.
                let (ents, range) = self.mime_scope(m);
                names.iter().all(|n| {
                    ents[range.clone()]
                        .iter()
                        .any(|e| e.field(n).next().is_some())
                })
            }
            Test::Size { over, limit } => {
                let size = self.input.size();
                if *over {
                    size > *limit
                } else {
                    size < *limit
                }
            }
            Test::Body {
                matcher,
                raw,
                content_types,
                keys,
            } => {
                let values = if *raw {
                    vec![self.input.body_raw()]
                } else if let Some(types) = content_types {
                    let types: Vec<String> = self
                        .expand_list(types)
                        .into_iter()
                        .map(|t| t.to_ascii_lowercase())
                        .collect();
                    self.entities()
                        .iter()
                        .filter(|e| !e.content_type.starts_with("multipart/"))
                        .filter(|e| {
                            let ct = e.content_type.as_str();
                            types.iter().any(|t| {
                                t.is_empty()
                                    || t == ct
                                    || (!t.contains('/')
                                        && ct.split('/').next() == Some(t.as_str()))
                            })
                        })
                        .map(|e| e.content.clone())
                        .collect()
                } else {
                    self.input.body_text()
                };
                let keys = self.keys(keys);
                self.compare(matcher, &values, &keys)
            }
            Test::Str {
                matcher,
                sources,
                keys,
            } => {
                let mut values = self.expand_list(sources);
                if let MatchType::Count(_) = matcher.kind {
                    values.retain(|v| !v.is_empty());
                }
                let keys = self.keys(keys);
                self.compare(matcher, &values, &keys)
            }
            Test::HasFlag {
                matcher,
                vars,
                keys,
            } => {
                let values = match vars {
                    Some(v) => {
                        let names = self.expand_list(v);
                        let raw: Vec<String> = names
                            .iter()
                            .map(|n| {
                                self.vars
                                    .get(&n.to_ascii_lowercase())
                                    .cloned()
                                    .unwrap_or_default()
                            })
                            .collect();
                        split_flags(&raw)
                    }
                    None => self.flags.clone(),
                };
                let keys = self.keys(keys);
                self.compare(matcher, &values, &keys)
            }
            Test::Date {
                matcher,
                zone,
                header,
                part,
                keys,
                index,
            } => {
                let header = self.vars.expand(header);
                let value = self.values_of(&header, *index).first().cloned();
                // A Received field's date is what follows its last ";" (RFC 5260 4.1).
                let value = match value {
                    Some(v) if header.eq_ignore_ascii_case("received") => Some(
                        v.rsplit_once(';')
                            .map_or(v.as_str(), |(_, d)| d)
                            .to_string(),
                    ),
                    other => other,
                };
                let Some(m) = value.as_deref().and_then(date::parse_rfc5322) else {
                    return Ok(false);
                };
                let m = self.in_zone(m, zone);
                let part = self.vars.expand(part);
                let values: Vec<String> = date::part(m, &part).into_iter().collect();
                let keys = self.keys(keys);
                self.compare(matcher, &values, &keys)
            }
            Test::CurrentDate {
                matcher,
                zone,
                part,
                keys,
            } => {
                let now = Moment {
                    epoch: self.input.now_ms().div_euclid(1000),
                    offset: 0,
                };
                let m = self.in_zone(now, zone);
                let part = self.vars.expand(part);
                let values: Vec<String> = date::part(m, &part).into_iter().collect();
                let keys = self.keys(keys);
                self.compare(matcher, &values, &keys)
            }
            Test::MailboxExists(names) => {
                let names = self.expand_list(names);
                names.iter().all(|n| self.input.mailbox_exists(n))
            }
            Test::Duplicate {
                handle,
                id,
                seconds,
                last: _,
            } => {
                let value = match id {
                    DuplicateId::MessageId => self.values_of("message-id", None).first().cloned(),
                    DuplicateId::Header(h) => {
                        let h = self.vars.expand(h);
                        self.values_of(&h, None).first().cloned()
                    }
                    DuplicateId::UniqueId(u) => Some(self.vars.expand(u)),
                };
                let Some(value) = value
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
                else {
                    return Ok(false);
                };
                let handle = handle
                    .as_ref()
                    .map(|h| self.vars.expand(h))
                    .unwrap_or_default();
                let key = format!("{handle}\u{1}{value}");
                let seen = self.out.duplicate_marks.iter().any(|(k, _)| *k == key)
                    || self.input.duplicate_seen(&key);
                let period = seconds.unwrap_or(self.settings.duplicate_period);
                if !self.out.duplicate_marks.iter().any(|(k, _)| *k == key) {
                    self.out.duplicate_marks.push((key, period));
                }
                seen
            }
            Test::SpamTest {
                percent,
                matcher,
                key,
            } => {
                let value = self.score(self.settings.spamtest.clone(), *percent);
                let key = self.vars.expand(key);
                self.compare(matcher, &[value], &[key])
            }
            Test::VirusTest { matcher, key } => {
                let value = self.score(self.settings.virustest.clone(), false);
                let key = self.vars.expand(key);
                self.compare(matcher, &[value], &[key])
            }
            Test::ValidNotifyMethod(uris) => self
                .keys(uris)
                .iter()
                .all(|u| crate::mailto::parse(u).is_ok()),
            Test::NotifyMethodCapability {
                matcher,
                uri,
                capability,
                keys,
            } => {
                let uri = self.vars.expand(uri);
                let capability = self.vars.expand(capability).to_ascii_lowercase();
                // Whether the recipient is online cannot be known for mail: "maybe" (RFC
                // 5436 section 2.2); no other capability is defined.
                if crate::mailto::parse(&uri).is_err() || capability != "online" {
                    return Ok(false);
                }
                let keys: Vec<String> = self
                    .keys(keys)
                    .into_iter()
                    .map(|k| k.into_owned())
                    .collect();
                self.compare(matcher, &["maybe".to_string()], &keys)
            }
            Test::Environment {
                matcher,
                name,
                keys,
            } => {
                let name = self.vars.expand(name).to_ascii_lowercase();
                let Some(value) = self.input.environment(&name) else {
                    return Ok(false);
                };
                let keys = self.keys(keys);
                self.compare(matcher, &[value], &keys)
            }
        })
    }

    /// RFC 5235: "0" when the message was not tested, else 1 (not spam) to 10 (spam), or a
    /// percentage with :percent.
    fn score(&mut self, conf: Option<ScoreHeader>, percent: bool) -> String {
        let Some(conf) = conf else {
            return "0".into();
        };
        let Some(value) = self.values_of(&conf.header, None).first().cloned() else {
            return "0".into();
        };
        let number: String = value
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
            .collect();
        let Ok(score) = number.parse::<f64>() else {
            return "0".into();
        };
        let ratio = if conf.max > 0.0 {
            (score / conf.max).clamp(0.0, 1.0)
        } else {
            0.0
        };
        if percent {
            format!("{}", (ratio * 100.0).floor() as i64)
        } else {
            format!("{}", 1 + (ratio * 9.0).floor() as i64)
        }
    }

    fn in_zone(&self, m: Moment, zone: &Zone) -> Moment {
        match zone {
            Zone::Original => m,
            Zone::Local => Moment { offset: 0, ..m },
            Zone::Fixed(z) => Moment {
                offset: date::parse_zone(&self.vars.expand(z)).unwrap_or(0),
                ..m
            },
        }
    }

    /// Any value against any key; `:count` counts the values. The first match sets the match
    /// variables (RFC 5229 3.2); a test that does not match leaves them as they were.
    fn compare<V: AsRef<str>, K: AsRef<str>>(
        &mut self,
        m: &Matcher,
        values: &[V],
        keys: &[K],
    ) -> bool {
        if let MatchType::Count(_) = m.kind {
            return keys
                .iter()
                .any(|k| m.count_matches(values.len(), k.as_ref()));
        }
        let mut caps = Vec::new();
        for v in values {
            for k in keys {
                let (v, k) = (v.as_ref(), k.as_ref());
                let hit = if m.captures() {
                    m.matches(v, k, Some(&mut caps))
                } else {
                    m.matches(v, k, None)
                };
                if hit {
                    if m.captures() {
                        self.vars.matched = std::mem::take(&mut caps);
                    }
                    return true;
                }
            }
        }
        false
    }
}

/// Local parts are case-sensitive (RFC 5321 2.4), domains are not.
fn same_address(a: &str, b: &str) -> bool {
    match (a.rsplit_once('@'), b.rsplit_once('@')) {
        (Some((la, da)), Some((lb, db))) => la == lb && da.eq_ignore_ascii_case(db),
        _ => a == b,
    }
}

fn valid_field_name(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

/// Fields a script may not delete (RFC 5293 section 7: the trace and the loop marker other
/// systems rely on); adding them is allowed, as in Pigeonhole.
fn protected(name: &str) -> bool {
    name.eq_ignore_ascii_case("received") || name.eq_ignore_ascii_case("auto-submitted")
}
