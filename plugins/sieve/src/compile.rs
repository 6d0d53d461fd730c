//! Why this file exists: from the parse tree to a checked `Script`, once per load. Here live
//! the rules a script must follow before it may run: every extension it uses is named in
//! `require` (RFC 5228 section 3.2), every command and test has the arguments it takes, match
//! types and comparators go together, `elsif`/`else` follow an `if`. Errors carry the line and
//! column of what is wrong, and the first one stops the compile, as in sievec.

use std::collections::{HashMap, HashSet};

use crate::error::{CompileError, Pos};
use crate::lexer::lex;
use crate::matching::{compile_regex, Comparator, MatchType, Matcher, Relation};
use crate::parser::{parse, Arg, CommandNode, TestNode};
use crate::script::{
    AddressPart, Cmd, DuplicateId, FlagOp, Index, Mime, MimeOption, Notify, Script, Test, Vacation,
    Zone,
};
use crate::variables::{expand_encoded, is_settable, Modifier, Value};

/// Every capability this interpreter implements (what `require` and `ihave` accept).
pub const CAPABILITIES: &[&str] = &[
    "fileinto",
    "envelope",
    "encoded-character",
    "comparator-i;octet",
    "comparator-i;ascii-casemap",
    "comparator-i;ascii-numeric",
    "variables",
    "vacation",
    "vacation-seconds",
    "relational",
    "imap4flags",
    "subaddress",
    "copy",
    "body",
    "regex",
    "date",
    "index",
    "editheader",
    "mailbox",
    "include",
    "duplicate",
    "ihave",
    "environment",
    "spamtest",
    "spamtestplus",
    "virustest",
    "foreverypart",
    "mime",
    "extracttext",
    "enotify",
    "reject",
    "ereject",
];

/// Capabilities a script may name but whose commands cannot work where mailpipe runs.
const REFUSED: &[(&str, &str)] = &[
    ("replace", "replace rewrites the message body, which mailpipe cannot do yet: its plugins edit header fields only"),
    ("enclose", "enclose rewrites the message body, which mailpipe cannot do yet: its plugins edit header fields only"),
];

/// Deepest chain of includes (RFC 6609 leaves it to the implementation; Pigeonhole uses 10).
pub const MAX_INCLUDE_DEPTH: usize = 10;
/// Largest script accepted, in bytes.
pub const MAX_SCRIPT_SIZE: usize = 1 << 20;

/// What the host hands the compiler besides the script itself.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Scripts `include` may name: keys "personal/NAME" and "global/NAME".
    pub includes: HashMap<String, String>,
}

impl Options {
    /// The scripts `include :personal` (by name) and `include :global` may name.
    pub fn with_includes<'a>(
        personal: impl IntoIterator<Item = (&'a String, &'a String)>,
        global: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Options {
        let mut includes = HashMap::new();
        for (k, v) in personal {
            includes.insert(format!("personal/{k}"), v.clone());
        }
        for (k, v) in global {
            includes.insert(format!("global/{k}"), v.clone());
        }
        Options { includes }
    }
}

/// Compiles a script. The error's `script` field names an included script it is in.
pub fn compile(src: &str, opts: &Options) -> Result<Script, CompileError> {
    compile_inner(src, opts, &mut Vec::new())
}

fn compile_inner(
    src: &str,
    opts: &Options,
    stack: &mut Vec<String>,
) -> Result<Script, CompileError> {
    if src.len() > MAX_SCRIPT_SIZE {
        return Err(CompileError::new(
            Pos { line: 1, col: 1 },
            format!("script larger than {MAX_SCRIPT_SIZE} bytes"),
        ));
    }
    let tokens = lex(src)?;
    let nodes = parse(&tokens)?;
    let mut cx = Cx {
        required: HashSet::new(),
        opts,
        stack,
        reads_body: false,
        requires_done: false,
        loops: Vec::new(),
    };
    let cmds = cx.block(&nodes)?;
    let mut required: Vec<String> = cx.required.into_iter().collect();
    required.sort();
    Ok(Script {
        cmds,
        reads_body: cx.reads_body,
        required,
    })
}

struct Cx<'a> {
    required: HashSet<String>,
    opts: &'a Options,
    stack: &'a mut Vec<String>,
    reads_body: bool,
    requires_done: bool,
    /// The `foreverypart` loops around the command being compiled, innermost last, by name.
    loops: Vec<Option<String>>,
}

fn err<T>(pos: Pos, msg: impl Into<String>) -> Result<T, CompileError> {
    Err(CompileError::new(pos, msg))
}

/// Tags that take a value, and of which kind.
#[derive(Clone, Copy, PartialEq)]
enum Takes {
    Str,
    Num,
    List,
}

fn tag_takes(tag: &str) -> Option<Takes> {
    Some(match tag {
        "comparator" | "count" | "value" | "subject" | "from" | "handle" | "zone" | "header"
        | "uniqueid" | "specialuse" | "importance" | "message" => Takes::Str,
        "days" | "seconds" | "index" | "first" => Takes::Num,
        "name" => Takes::Str,
        "addresses" | "flags" | "content" | "param" | "options" => Takes::List,
        _ => return None,
    })
}

struct Tagged {
    name: String,
    pos: Pos,
    value: Option<Arg>,
    used: bool,
}

/// The arguments of one command or test, split into tags (with their values) and positional
/// arguments, consumed one by one by the code that knows the command.
struct Args {
    what: String,
    pos: Pos,
    tags: Vec<Tagged>,
    positional: Vec<Arg>,
}

impl Args {
    fn new(what: String, pos: Pos, args: &[Arg]) -> Result<Self, CompileError> {
        let mut tags: Vec<Tagged> = Vec::new();
        let mut positional = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a {
                Arg::Tag(name, p) => {
                    if tags.iter().any(|t| t.name == *name) {
                        return err(*p, format!("{what}: tag ':{name}' given twice"));
                    }
                    if !positional.is_empty() {
                        return err(
                            *p,
                            format!("{what}: tag ':{name}' after a positional argument"),
                        );
                    }
                    let value = match tag_takes(name) {
                        None => None,
                        Some(kind) => {
                            let v = it.next().cloned();
                            let ok = matches!(
                                (&v, kind),
                                (Some(Arg::Strings { list: false, .. }), Takes::Str)
                                    | (Some(Arg::Strings { .. }), Takes::List)
                                    | (Some(Arg::Number(..)), Takes::Num)
                            );
                            if !ok {
                                let want = match kind {
                                    Takes::Str => "a string",
                                    Takes::Num => "a number",
                                    Takes::List => "a string list",
                                };
                                return err(
                                    *p,
                                    format!("{what}: tag ':{name}' needs {want} after it"),
                                );
                            }
                            v
                        }
                    };
                    tags.push(Tagged {
                        name: name.clone(),
                        pos: *p,
                        value,
                        used: false,
                    });
                }
                other => positional.push(other.clone()),
            }
        }
        Ok(Args {
            what,
            pos,
            tags,
            positional,
        })
    }

    fn take(&mut self, tag: &str) -> Option<&mut Tagged> {
        let t = self.tags.iter_mut().find(|t| t.name == tag)?;
        t.used = true;
        Some(t)
    }

    fn flag(&mut self, tag: &str) -> Option<Pos> {
        self.take(tag).map(|t| t.pos)
    }

    fn string_tag(&mut self, tag: &str) -> Option<(String, Pos)> {
        let t = self.take(tag)?;
        match &t.value {
            Some(Arg::Strings { values, .. }) => Some((values[0].clone(), t.pos)),
            _ => None,
        }
    }

    fn list_tag(&mut self, tag: &str) -> Option<(Vec<String>, Pos)> {
        let t = self.take(tag)?;
        match &t.value {
            Some(Arg::Strings { values, .. }) => Some((values.clone(), t.pos)),
            _ => None,
        }
    }

    fn number_tag(&mut self, tag: &str) -> Option<(u64, Pos)> {
        let t = self.take(tag)?;
        match &t.value {
            Some(Arg::Number(n, _)) => Some((*n, t.pos)),
            _ => None,
        }
    }

    /// Checks that every tag was understood and that exactly `shape` positional arguments are
    /// there ('s' string, 'l' string list, 'n' number).
    fn finish(&self, shape: &str) -> Result<(), CompileError> {
        if let Some(t) = self.tags.iter().find(|t| !t.used) {
            return err(
                t.pos,
                format!("{}: unknown tagged argument ':{}'", self.what, t.name),
            );
        }
        let kinds: Vec<char> = shape.chars().collect();
        if self.positional.len() != kinds.len() {
            let at = self.positional.get(kinds.len()).map_or(self.pos, Arg::pos);
            return err(
                at,
                format!(
                    "{}: expected {} positional argument{} ({}), found {}",
                    self.what,
                    kinds.len(),
                    if kinds.len() == 1 { "" } else { "s" },
                    kinds
                        .iter()
                        .map(|k| match k {
                            's' => "string",
                            'l' => "string list",
                            _ => "number",
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                    self.positional.len()
                ),
            );
        }
        for (a, k) in self.positional.iter().zip(kinds) {
            let ok = matches!(
                (a, k),
                (Arg::Strings { list: false, .. }, 's')
                    | (Arg::Strings { .. }, 'l')
                    | (Arg::Number(..), 'n')
            );
            if !ok {
                let want = match k {
                    's' => "a string",
                    'l' => "a string list",
                    _ => "a number",
                };
                return err(a.pos(), format!("{}: expected {want} here", self.what));
            }
        }
        Ok(())
    }

    fn strings(&self, i: usize) -> (Vec<String>, Pos) {
        match &self.positional[i] {
            Arg::Strings { values, pos, .. } => (values.clone(), *pos),
            other => (Vec::new(), other.pos()),
        }
    }

    fn number(&self, i: usize) -> u64 {
        match &self.positional[i] {
            Arg::Number(n, _) => *n,
            _ => 0,
        }
    }
}

impl Cx<'_> {
    fn has(&self, ext: &str) -> bool {
        self.required.contains(ext)
    }

    fn need(&self, ext: &str, what: &str, pos: Pos) -> Result<(), CompileError> {
        if self.has(ext) {
            Ok(())
        } else {
            err(
                pos,
                format!(
                    "{what} requires the \"{ext}\" extension (add require \"{ext}\"; at the top)"
                ),
            )
        }
    }

    /// A string argument as the script means it: encoded characters expanded, variables
    /// parsed when the script uses them.
    fn value(&self, s: &str, pos: Pos) -> Result<Value, CompileError> {
        let s = if self.has("encoded-character") {
            expand_encoded(s).map_err(|m| CompileError::new(pos, m))?
        } else {
            s.to_string()
        };
        Ok(if self.has("variables") {
            Value::template(&s)
        } else {
            Value::lit(s)
        })
    }

    fn values(&self, (list, pos): (Vec<String>, Pos)) -> Result<Vec<Value>, CompileError> {
        list.iter().map(|s| self.value(s, pos)).collect()
    }

    fn block(&mut self, nodes: &[CommandNode]) -> Result<Vec<Cmd>, CompileError> {
        let mut out: Vec<Cmd> = Vec::new();
        for node in nodes {
            if node.name == "require" {
                if self.requires_done {
                    return err(node.pos, "require must come before any other command");
                }
                self.require(node)?;
                continue;
            }
            self.requires_done = true;
            match node.name.as_str() {
                "elsif" | "else" => {
                    let Some(Cmd::If {
                        branches,
                        otherwise,
                    }) = out.last_mut()
                    else {
                        return err(
                            node.pos,
                            format!("'{}' without a preceding 'if'", node.name),
                        );
                    };
                    if otherwise.is_some() {
                        return err(node.pos, format!("'{}' after 'else'", node.name));
                    }
                    if node.name == "elsif" {
                        let (test, body) = self.conditional(node)?;
                        branches.push((test, body));
                    } else {
                        if !node.args.is_empty() || !node.tests.is_empty() {
                            return err(node.pos, "else takes no arguments");
                        }
                        let Some(body) = &node.block else {
                            return err(node.pos, "else needs a block");
                        };
                        let body = self.block(body)?;
                        if let Some(Cmd::If { otherwise, .. }) = out.last_mut() {
                            *otherwise = Some(body);
                        }
                    }
                }
                "if" => {
                    let branch = self.conditional(node)?;
                    out.push(Cmd::If {
                        branches: vec![branch],
                        otherwise: None,
                    });
                }
                "foreverypart" => out.push(self.foreverypart(node)?),
                _ => {
                    if node.block.is_some() {
                        return err(node.pos, format!("command '{}' takes no block", node.name));
                    }
                    if !node.tests.is_empty() {
                        return err(
                            node.tests[0].pos,
                            format!("command '{}' takes no test", node.name),
                        );
                    }
                    out.push(self.command(node)?);
                }
            }
        }
        Ok(out)
    }

    /// `foreverypart [:name NAME] { ... }` (RFC 5703 section 3).
    fn foreverypart(&mut self, node: &CommandNode) -> Result<Cmd, CompileError> {
        self.need("foreverypart", "foreverypart", node.pos)?;
        let mut a = Args::new("command 'foreverypart'".into(), node.pos, &node.args)?;
        let name = a.string_tag("name").map(|(n, _)| n);
        a.finish("")?;
        if let Some(t) = node.tests.first() {
            return err(t.pos, "command 'foreverypart' takes no test");
        }
        let Some(body) = &node.block else {
            return err(node.pos, "foreverypart needs a block");
        };
        self.reads_body = true;
        self.loops.push(name);
        let body = self.block(body);
        self.loops.pop();
        Ok(Cmd::ForEveryPart(body?))
    }

    /// The variable modifiers among a command's tags (RFC 5229 section 4), checked.
    fn modifiers(&self, a: &mut Args, what: &str) -> Result<Vec<Modifier>, CompileError> {
        let mut mods: Vec<(Modifier, Pos)> = Vec::new();
        for t in a.tags.iter_mut() {
            if let Some(m) = Modifier::from_tag(&t.name) {
                if let Some((other, _)) = mods.iter().find(|(o, _)| o.same_precedence(m)) {
                    if *other != m {
                        return err(t.pos, format!("{what}: modifiers :{} and another of the same precedence cannot be combined", t.name));
                    }
                }
                if m == Modifier::EncodeUrl && !self.has("enotify") {
                    return err(t.pos, format!("{what}: :encodeurl requires the \"enotify\" extension (add require \"enotify\"; at the top)"));
                }
                if m == Modifier::QuoteRegex && !self.has("regex") {
                    return err(t.pos, ":quoteregex requires the \"regex\" extension (add require \"regex\"; at the top)");
                }
                t.used = true;
                mods.push((m, t.pos));
            }
        }
        Ok(mods.into_iter().map(|(m, _)| m).collect())
    }

    /// `:mime [:anychild]` and, for `header`, one of `:type`, `:subtype`, `:contenttype`,
    /// `:param LIST` (RFC 5703 section 4).
    fn mime_tags(
        &mut self,
        a: &mut Args,
        what: &str,
        options: bool,
    ) -> Result<Option<Mime>, CompileError> {
        let mime = a.flag("mime");
        let anychild = a.flag("anychild");
        let mut chosen: Vec<(MimeOption, Pos)> = Vec::new();
        if options {
            for (tag, opt) in [
                ("type", MimeOption::Type),
                ("subtype", MimeOption::Subtype),
                ("contenttype", MimeOption::ContentType),
            ] {
                if let Some(p) = a.flag(tag) {
                    chosen.push((opt, p));
                }
            }
            if let Some(l) = a.list_tag("param") {
                let pos = l.1;
                chosen.push((MimeOption::Param(self.values(l)?), pos));
            }
        }
        let Some(mp) = mime else {
            if let Some(p) = anychild.or(chosen.first().map(|c| c.1)) {
                return err(
                    p,
                    format!(
                        "{what}: :anychild, :type, :subtype, :contenttype and :param need :mime"
                    ),
                );
            }
            return Ok(None);
        };
        self.need("mime", ":mime", mp)?;
        if chosen.len() > 1 {
            return err(
                chosen[1].1,
                format!(
                    "{what}: only one of :type, :subtype, :contenttype and :param may be given"
                ),
            );
        }
        self.reads_body = true;
        Ok(Some(Mime {
            anychild: anychild.is_some(),
            option: chosen.pop().map_or(MimeOption::Whole, |c| c.0),
        }))
    }

    fn require(&mut self, node: &CommandNode) -> Result<(), CompileError> {
        let a = Args::new("require".into(), node.pos, &node.args)?;
        a.finish("l")?;
        if node.block.is_some() || !node.tests.is_empty() {
            return err(node.pos, "require takes only a string list");
        }
        let (names, pos) = a.strings(0);
        for name in names {
            let lower = name.to_ascii_lowercase();
            if CAPABILITIES.contains(&lower.as_str()) || REFUSED.iter().any(|(n, _)| *n == lower) {
                self.required.insert(lower);
            } else {
                return err(
                    pos,
                    format!(
                        "unknown Sieve capability '{name}' (mailpipe supports: {})",
                        CAPABILITIES.join(" ")
                    ),
                );
            }
        }
        Ok(())
    }

    fn conditional(&mut self, node: &CommandNode) -> Result<(Test, Vec<Cmd>), CompileError> {
        if !node.args.is_empty() {
            return err(
                node.args[0].pos(),
                format!("{} takes a test, not arguments", node.name),
            );
        }
        if node.tests.len() != 1 || node.test_list {
            return err(node.pos, format!("{} needs exactly one test", node.name));
        }
        let Some(body) = &node.block else {
            return err(node.pos, format!("{} needs a block", node.name));
        };
        // `if ihave [...]`: a block that uses an extension we lack is never run, so it need
        // not compile (RFC 5463 section 4); one that we have may use it without `require`.
        let t = &node.tests[0];
        if t.name == "ihave" && self.has("ihave") {
            let test = self.test(t)?;
            let Test::Const(have) = test else {
                unreachable!()
            };
            if !have {
                return Ok((Test::Const(false), Vec::new()));
            }
            let saved = self.required.clone();
            let (names, _) = Args::new("ihave".into(), t.pos, &t.args)?.strings(0);
            self.required
                .extend(names.iter().map(|n| n.to_ascii_lowercase()));
            let body = self.block(body);
            self.required = saved;
            return Ok((Test::Const(true), body?));
        }
        let test = self.test(t)?;
        Ok((test, self.block(body)?))
    }

    fn flags_tag(&self, a: &mut Args) -> Result<Option<Vec<Value>>, CompileError> {
        match a.list_tag("flags") {
            Some((list, pos)) => {
                self.need("imap4flags", ":flags", pos)?;
                Ok(Some(self.values((list, pos))?))
            }
            None => Ok(None),
        }
    }

    fn command(&mut self, node: &CommandNode) -> Result<Cmd, CompileError> {
        let name = node.name.as_str();
        let mut a = Args::new(format!("command '{name}'"), node.pos, &node.args)?;
        let pos = node.pos;
        let cmd = match name {
            "stop" => {
                a.finish("")?;
                Cmd::Stop
            }
            "keep" => {
                let flags = self.flags_tag(&mut a)?;
                a.finish("")?;
                Cmd::Keep { flags }
            }
            "discard" => {
                a.finish("")?;
                Cmd::Discard
            }
            "fileinto" => {
                self.need("fileinto", "fileinto", pos)?;
                let copy = self.copy_tag(&mut a)?;
                let create = match a.flag("create") {
                    Some(p) => {
                        self.need("mailbox", ":create", p)?;
                        true
                    }
                    None => false,
                };
                let flags = self.flags_tag(&mut a)?;
                a.finish("s")?;
                let (s, p) = a.strings(0);
                let folder = self.value(&s[0], p)?;
                if folder.as_lit() == Some("") {
                    return err(p, "fileinto: the folder name is empty");
                }
                Cmd::FileInto {
                    folder,
                    copy,
                    create,
                    flags,
                }
            }
            "redirect" => {
                let copy = self.copy_tag(&mut a)?;
                a.finish("s")?;
                let (s, p) = a.strings(0);
                let to = self.value(&s[0], p)?;
                if let Some(lit) = to.as_lit() {
                    let parsed = crate::address::parse_list(lit);
                    if parsed.len() != 1 || !valid_address(&parsed[0]) {
                        return err(p, format!("redirect: {lit:?} is not a valid address"));
                    }
                }
                Cmd::Redirect { to, copy }
            }
            "set" => {
                self.need("variables", "set", pos)?;
                let mods = self.modifiers(&mut a, "set")?;
                a.finish("ss")?;
                let (n, np) = a.strings(0);
                if !is_settable(&n[0]) {
                    return err(np, format!("set: {:?} is not a valid variable name", n[0]));
                }
                let (v, vp) = a.strings(1);
                Cmd::Set {
                    name: n[0].to_ascii_lowercase(),
                    value: self.value(&v[0], vp)?,
                    mods,
                }
            }
            "setflag" | "addflag" | "removeflag" => {
                self.need("imap4flags", name, pos)?;
                let op = match name {
                    "setflag" => FlagOp::Set,
                    "addflag" => FlagOp::Add,
                    _ => FlagOp::Remove,
                };
                let (var, flags) = match a.positional.len() {
                    2 => {
                        a.finish("sl")?;
                        let (n, np) = a.strings(0);
                        if !is_settable(&n[0]) {
                            return err(
                                np,
                                format!("{name}: {:?} is not a valid variable name", n[0]),
                            );
                        }
                        (Some(n[0].to_ascii_lowercase()), self.values(a.strings(1))?)
                    }
                    _ => {
                        a.finish("l")?;
                        (None, self.values(a.strings(0))?)
                    }
                };
                Cmd::Flags { op, var, flags }
            }
            "vacation" => self.vacation(&mut a, pos)?,
            "notify" => self.notify(&mut a, pos)?,
            "addheader" => {
                self.need("editheader", name, pos)?;
                let last = a.flag("last").is_some();
                a.finish("ss")?;
                let (n, np) = a.strings(0);
                let (v, vp) = a.strings(1);
                let hname = self.value(&n[0], np)?;
                if let Some(l) = hname.as_lit() {
                    check_header_name(l, np, name)?;
                }
                Cmd::AddHeader {
                    last,
                    name: hname,
                    value: self.value(&v[0], vp)?,
                }
            }
            "deleteheader" => {
                self.need("editheader", name, pos)?;
                let index = self.index(&mut a)?;
                let matcher = self.matcher(&mut a)?;
                let patterns = match a.positional.len() {
                    2 => {
                        a.finish("sl")?;
                        Some(self.values(a.strings(1))?)
                    }
                    _ => {
                        a.finish("s")?;
                        None
                    }
                };
                let (n, np) = a.strings(0);
                let hname = self.value(&n[0], np)?;
                if let Some(l) = hname.as_lit() {
                    check_header_name(l, np, name)?;
                }
                self.check_keys(&matcher, patterns.as_deref().unwrap_or(&[]), np)?;
                Cmd::DeleteHeader {
                    index,
                    matcher,
                    name: hname,
                    patterns,
                }
            }
            "include" => self.include(&mut a, pos)?,
            "return" => {
                self.need("include", name, pos)?;
                a.finish("")?;
                Cmd::Return
            }
            "global" => {
                self.need("include", name, pos)?;
                self.need("variables", name, pos)?;
                a.finish("l")?;
                let (names, p) = a.strings(0);
                for n in &names {
                    if !is_settable(n) {
                        return err(p, format!("global: {n:?} is not a valid variable name"));
                    }
                }
                Cmd::Global(names.iter().map(|n| n.to_ascii_lowercase()).collect())
            }
            "error" => {
                self.need("ihave", name, pos)?;
                a.finish("s")?;
                let (s, p) = a.strings(0);
                Cmd::Error(self.value(&s[0], p)?)
            }
            "break" => {
                self.need("foreverypart", "break", pos)?;
                let name = a.string_tag("name");
                a.finish("")?;
                let levels = match name {
                    None if self.loops.is_empty() => {
                        return err(pos, "break outside a foreverypart loop")
                    }
                    None => 0,
                    Some((n, p)) => {
                        match self
                            .loops
                            .iter()
                            .rev()
                            .position(|l| l.as_deref() == Some(&n))
                        {
                            Some(levels) => levels,
                            None => {
                                return err(
                                    p,
                                    format!("break: no enclosing foreverypart loop is named {n:?}"),
                                )
                            }
                        }
                    }
                };
                Cmd::Break(levels)
            }
            "extracttext" => {
                self.need("extracttext", name, pos)?;
                self.need("variables", name, pos)?;
                if self.loops.is_empty() {
                    return err(
                        pos,
                        "extracttext is only allowed inside a foreverypart loop",
                    );
                }
                let mods = self.modifiers(&mut a, name)?;
                let first = a.number_tag("first").map(|(n, _)| n);
                a.finish("s")?;
                let (n, np) = a.strings(0);
                if !is_settable(&n[0]) {
                    return err(
                        np,
                        format!("extracttext: {:?} is not a valid variable name", n[0]),
                    );
                }
                self.reads_body = true;
                Cmd::ExtractText {
                    name: n[0].to_ascii_lowercase(),
                    mods,
                    first,
                }
            }
            "reject" | "ereject" => {
                self.need(name, name, pos)?;
                a.finish("s")?;
                let (s, p) = a.strings(0);
                Cmd::Reject {
                    reason: self.value(&s[0], p)?,
                    extended: name == "ereject",
                }
            }
            "replace" | "enclose" => {
                let why = REFUSED
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, w)| *w)
                    .unwrap_or("");
                return err(pos, why);
            }
            "if" | "elsif" | "else" | "require" => unreachable!("handled by block()"),
            other => {
                let hint = match other {
                    "denotify" => {
                        " (denotify is of the old notify draft; enotify has no such command)"
                    }
                    _ => "",
                };
                return err(pos, format!("unknown command '{other}'{hint}"));
            }
        };
        Ok(cmd)
    }

    fn copy_tag(&self, a: &mut Args) -> Result<bool, CompileError> {
        match a.flag("copy") {
            Some(p) => {
                self.need("copy", ":copy", p)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn vacation(&mut self, a: &mut Args, pos: Pos) -> Result<Cmd, CompileError> {
        self.need("vacation", "vacation", pos)?;
        let days = a.number_tag("days");
        let seconds = a.number_tag("seconds");
        let period = match (days, seconds) {
            (Some(_), Some((_, p))) => {
                return err(p, "vacation: :days and :seconds cannot be combined")
            }
            (Some((d, _)), None) => d.clamp(1, 365) * 86_400,
            (None, Some((s, p))) => {
                self.need("vacation-seconds", ":seconds", p)?;
                s.min(365 * 86_400)
            }
            (None, None) => 7 * 86_400,
        };
        let subject = a
            .string_tag("subject")
            .map(|(s, p)| self.value(&s, p))
            .transpose()?;
        let from = a
            .string_tag("from")
            .map(|(s, p)| self.value(&s, p))
            .transpose()?;
        let addresses = match a.list_tag("addresses") {
            Some(l) => self.values(l)?,
            None => Vec::new(),
        };
        let mime = a.flag("mime").is_some();
        let handle = a
            .string_tag("handle")
            .map(|(s, p)| self.value(&s, p))
            .transpose()?;
        a.finish("s")?;
        let (r, rp) = a.strings(0);
        from_address(from.as_ref(), "vacation", pos)?;
        Ok(Cmd::Vacation(Box::new(Vacation {
            period,
            subject,
            from,
            addresses,
            mime,
            handle,
            reason: self.value(&r[0], rp)?,
        })))
    }

    /// `notify [:from S] [:importance "1"|"2"|"3"] [:options L] [:message S] METHOD`.
    fn notify(&mut self, a: &mut Args, pos: Pos) -> Result<Cmd, CompileError> {
        self.need("enotify", "notify", pos)?;
        let from = a
            .string_tag("from")
            .map(|(s, p)| self.value(&s, p))
            .transpose()?;
        let importance = match a.string_tag("importance") {
            Some((s, p)) => {
                let v = self.value(&s, p)?;
                if v.as_lit().is_some_and(|l| !["1", "2", "3"].contains(&l)) {
                    return err(
                        p,
                        format!("notify: :importance {s:?} is not \"1\", \"2\" or \"3\""),
                    );
                }
                Some(v)
            }
            None => None,
        };
        // Options of the method: mailto has none (RFC 5436 section 2.5).
        let _ = a.list_tag("options");
        let message = a
            .string_tag("message")
            .map(|(s, p)| self.value(&s, p))
            .transpose()?;
        a.finish("s")?;
        let (m, mp) = a.strings(0);
        let method = self.value(&m[0], mp)?;
        if let Some(lit) = method.as_lit() {
            crate::mailto::parse(lit).map_err(|e| CompileError::new(mp, format!("notify: {e}")))?;
        }
        from_address(from.as_ref(), "notify", pos)?;
        Ok(Cmd::Notify(Box::new(Notify {
            method,
            from,
            importance,
            message,
        })))
    }

    fn include(&mut self, a: &mut Args, pos: Pos) -> Result<Cmd, CompileError> {
        self.need("include", "include", pos)?;
        let personal = a.flag("personal");
        let global = a.flag("global");
        if personal.is_some() && global.is_some() {
            return err(pos, "include: :personal and :global cannot be combined");
        }
        let once = a.flag("once").is_some();
        let optional = a.flag("optional").is_some();
        a.finish("s")?;
        let (n, np) = a.strings(0);
        let name = &n[0];
        if name.is_empty() || name.contains('/') || name.contains('\0') || name.starts_with('.') {
            return err(np, format!("include: {name:?} is not a valid script name"));
        }
        let key = format!(
            "{}/{name}",
            if global.is_some() {
                "global"
            } else {
                "personal"
            }
        );
        let Some(src) = self.opts.includes.get(&key) else {
            if optional {
                return Ok(Cmd::If {
                    branches: Vec::new(),
                    otherwise: None,
                });
            }
            return err(
                np,
                format!(
                    "include: script {name:?} not found ({})",
                    key.split('/').next().unwrap_or("")
                ),
            );
        };
        if self.stack.contains(&key) {
            return err(np, format!("include: script {name:?} includes itself"));
        }
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            return err(
                np,
                format!("include: more than {MAX_INCLUDE_DEPTH} nested includes"),
            );
        }
        self.stack.push(key.clone());
        let compiled = compile_inner(src, self.opts, self.stack).map_err(|mut e| {
            if e.script.is_empty() {
                e.script = name.clone();
            }
            e
        });
        self.stack.pop();
        let script = compiled?;
        self.reads_body |= script.reads_body;
        Ok(Cmd::Include {
            script: Box::new(script),
            once,
            key,
        })
    }

    fn matcher(&self, a: &mut Args) -> Result<Matcher, CompileError> {
        let mut kind: Option<(MatchType, Pos)> = None;
        let set = |k: MatchType, p: Pos, kind: &mut Option<(MatchType, Pos)>| {
            if kind.is_some() {
                return err(p, "only one match type may be given");
            }
            *kind = Some((k, p));
            Ok(())
        };
        for (tag, k) in [
            ("is", MatchType::Is),
            ("contains", MatchType::Contains),
            ("matches", MatchType::Matches),
        ] {
            if let Some(p) = a.flag(tag) {
                set(k, p, &mut kind)?;
            }
        }
        if let Some(p) = a.flag("regex") {
            self.need("regex", ":regex", p)?;
            set(MatchType::Regex, p, &mut kind)?;
        }
        for tag in ["count", "value"] {
            if let Some((rel, p)) = a.string_tag(tag) {
                self.need("relational", &format!(":{tag}"), p)?;
                let Some(r) = Relation::from_name(&rel) else {
                    return err(
                        p,
                        format!(":{tag}: {rel:?} is not a relation (gt, ge, lt, le, eq, ne)"),
                    );
                };
                let k = if tag == "count" {
                    MatchType::Count(r)
                } else {
                    MatchType::Value(r)
                };
                set(k, p, &mut kind)?;
            }
        }
        let cmp = match a.string_tag("comparator") {
            Some((name, p)) => {
                let Some(c) = Comparator::from_name(&name) else {
                    return err(p, format!("unknown comparator {name:?}"));
                };
                if c == Comparator::AsciiNumeric {
                    self.need(
                        "comparator-i;ascii-numeric",
                        "comparator \"i;ascii-numeric\"",
                        p,
                    )?;
                    if let Some((k, kp)) = kind {
                        if matches!(
                            k,
                            MatchType::Contains | MatchType::Matches | MatchType::Regex
                        ) {
                            return err(kp, "comparator \"i;ascii-numeric\" does not support substring or pattern matching");
                        }
                    }
                }
                c
            }
            None => Comparator::AsciiCasemap,
        };
        Ok(Matcher {
            kind: kind.map_or(MatchType::Is, |(k, _)| k),
            cmp,
        })
    }

    /// Literal regular expressions are compiled now, so a broken one is a compile error.
    fn check_keys(&self, m: &Matcher, keys: &[Value], pos: Pos) -> Result<(), CompileError> {
        if m.kind == MatchType::Regex {
            for k in keys {
                if let Some(l) = k.as_lit() {
                    compile_regex(l, m.cmp).map_err(|e| CompileError::new(pos, e))?;
                }
            }
        }
        Ok(())
    }

    fn address_part(&self, a: &mut Args) -> Result<AddressPart, CompileError> {
        let mut part: Option<AddressPart> = None;
        for (tag, p) in [
            ("all", AddressPart::All),
            ("localpart", AddressPart::LocalPart),
            ("domain", AddressPart::Domain),
            ("user", AddressPart::User),
            ("detail", AddressPart::Detail),
        ] {
            if let Some(pos) = a.flag(tag) {
                if matches!(p, AddressPart::User | AddressPart::Detail) {
                    self.need("subaddress", &format!(":{tag}"), pos)?;
                }
                if part.is_some() {
                    return err(pos, "only one address part may be given");
                }
                part = Some(p);
            }
        }
        Ok(part.unwrap_or(AddressPart::All))
    }

    fn index(&self, a: &mut Args) -> Result<Option<Index>, CompileError> {
        let last = a.flag("last");
        match a.number_tag("index") {
            Some((n, p)) => {
                self.need("index", ":index", p)?;
                if n == 0 {
                    return err(p, ":index must be 1 or more");
                }
                Ok(Some(Index {
                    n,
                    last: last.is_some(),
                }))
            }
            None => match last {
                Some(p) => err(p, ":last needs :index"),
                None => Ok(None),
            },
        }
    }

    fn zone(&self, a: &mut Args) -> Result<Zone, CompileError> {
        let original = a.flag("originalzone");
        match (a.string_tag("zone"), original) {
            (Some((_, p)), Some(_)) => err(p, ":zone and :originalzone cannot be combined"),
            (Some((z, p)), None) => {
                let v = self.value(&z, p)?;
                if let Some(l) = v.as_lit() {
                    if crate::date::parse_zone(l).is_none() {
                        return err(p, format!(":zone {l:?} is not a zone like \"+0100\""));
                    }
                }
                Ok(Zone::Fixed(v))
            }
            (None, Some(_)) => Ok(Zone::Original),
            (None, None) => Ok(Zone::Local),
        }
    }

    fn test(&mut self, t: &TestNode) -> Result<Test, CompileError> {
        let name = t.name.as_str();
        let pos = t.pos;
        let mut a = Args::new(format!("test '{name}'"), pos, &t.args)?;
        let no_subtests = |t: &TestNode| -> Result<(), CompileError> {
            match t.tests.first() {
                Some(s) => err(s.pos, format!("test '{}' takes no test", t.name)),
                None => Ok(()),
            }
        };
        if !matches!(name, "not" | "allof" | "anyof") {
            no_subtests(t)?;
        }
        Ok(match name {
            "true" | "false" => {
                a.finish("")?;
                Test::Const(name == "true")
            }
            "not" => {
                a.finish("")?;
                if t.tests.len() != 1 {
                    return err(pos, "not takes exactly one test");
                }
                Test::Not(Box::new(self.test(&t.tests[0])?))
            }
            "allof" | "anyof" => {
                a.finish("")?;
                if t.tests.is_empty() {
                    return err(pos, format!("{name} needs a list of tests"));
                }
                let tests = t
                    .tests
                    .iter()
                    .map(|s| self.test(s))
                    .collect::<Result<Vec<_>, _>>()?;
                if name == "allof" {
                    Test::AllOf(tests)
                } else {
                    Test::AnyOf(tests)
                }
            }
            "address" => {
                let mime = self.mime_tags(&mut a, "address", false)?;
                let index = self.index(&mut a)?;
                let part = self.address_part(&mut a)?;
                let matcher = self.matcher(&mut a)?;
                a.finish("ll")?;
                let (h, hp) = a.strings(0);
                for n in &h {
                    check_header_name(n, hp, "address")?;
                }
                let keys = self.values(a.strings(1))?;
                self.check_keys(&matcher, &keys, a.strings(1).1)?;
                Test::Address {
                    part,
                    matcher,
                    headers: self.values((h, hp))?,
                    keys,
                    index,
                    mime,
                }
            }
            "envelope" => {
                self.need("envelope", "envelope", pos)?;
                let part = self.address_part(&mut a)?;
                let matcher = self.matcher(&mut a)?;
                a.finish("ll")?;
                let (f, fp) = a.strings(0);
                for n in &f {
                    if !matches!(n.to_ascii_lowercase().as_str(), "from" | "to" | "auth")
                        && !n.contains("${")
                    {
                        return err(
                            fp,
                            format!("envelope: unknown envelope part {n:?} (from, to)"),
                        );
                    }
                }
                let keys = self.values(a.strings(1))?;
                self.check_keys(&matcher, &keys, pos)?;
                Test::Envelope {
                    part,
                    matcher,
                    fields: self.values((f, fp))?,
                    keys,
                }
            }
            "header" => {
                let mime = self.mime_tags(&mut a, "header", true)?;
                let index = self.index(&mut a)?;
                let matcher = self.matcher(&mut a)?;
                a.finish("ll")?;
                let (h, hp) = a.strings(0);
                for n in &h {
                    check_header_name(n, hp, "header")?;
                }
                let keys = self.values(a.strings(1))?;
                self.check_keys(&matcher, &keys, pos)?;
                Test::Header {
                    matcher,
                    headers: self.values((h, hp))?,
                    keys,
                    index,
                    mime,
                }
            }
            "exists" => {
                let mime = self.mime_tags(&mut a, "exists", false)?;
                a.finish("l")?;
                let (h, hp) = a.strings(0);
                for n in &h {
                    check_header_name(n, hp, "exists")?;
                }
                Test::Exists {
                    names: self.values((h, hp))?,
                    mime,
                }
            }
            "size" => {
                let over = a.flag("over");
                let under = a.flag("under");
                a.finish("n")?;
                let over = match (over, under) {
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                    _ => return err(pos, "size needs exactly one of :over and :under"),
                };
                Test::Size {
                    over,
                    limit: a.number(0),
                }
            }
            "body" => {
                self.need("body", "body", pos)?;
                self.reads_body = true;
                let raw = a.flag("raw");
                let text = a.flag("text");
                let content = a.list_tag("content");
                let n = raw.is_some() as u8 + text.is_some() as u8 + content.is_some() as u8;
                if n > 1 {
                    return err(
                        pos,
                        "body: only one of :raw, :content and :text may be given",
                    );
                }
                let matcher = self.matcher(&mut a)?;
                a.finish("l")?;
                let keys = self.values(a.strings(0))?;
                self.check_keys(&matcher, &keys, pos)?;
                Test::Body {
                    matcher,
                    raw: raw.is_some(),
                    content_types: content.map(|c| self.values(c)).transpose()?,
                    keys,
                }
            }
            "string" => {
                self.need("variables", "string", pos)?;
                let matcher = self.matcher(&mut a)?;
                a.finish("ll")?;
                let keys = self.values(a.strings(1))?;
                self.check_keys(&matcher, &keys, pos)?;
                Test::Str {
                    matcher,
                    sources: self.values(a.strings(0))?,
                    keys,
                }
            }
            "hasflag" => {
                self.need("imap4flags", "hasflag", pos)?;
                let matcher = self.matcher(&mut a)?;
                let (vars, keys) = match a.positional.len() {
                    2 => {
                        a.finish("ll")?;
                        (Some(self.values(a.strings(0))?), self.values(a.strings(1))?)
                    }
                    _ => {
                        a.finish("l")?;
                        (None, self.values(a.strings(0))?)
                    }
                };
                self.check_keys(&matcher, &keys, pos)?;
                Test::HasFlag {
                    matcher,
                    vars,
                    keys,
                }
            }
            "date" => {
                self.need("date", "date", pos)?;
                let index = self.index(&mut a)?;
                let zone = self.zone(&mut a)?;
                let matcher = self.matcher(&mut a)?;
                a.finish("ssl")?;
                let (h, hp) = a.strings(0);
                check_header_name(&h[0], hp, "date")?;
                let (p, pp) = a.strings(1);
                check_date_part(&p[0], pp)?;
                let keys = self.values(a.strings(2))?;
                self.check_keys(&matcher, &keys, pos)?;
                Test::Date {
                    matcher,
                    zone,
                    header: self.value(&h[0], hp)?,
                    part: self.value(&p[0], pp)?,
                    keys,
                    index,
                }
            }
            "currentdate" => {
                self.need("date", "currentdate", pos)?;
                let zone = self.zone(&mut a)?;
                if matches!(zone, Zone::Original) {
                    return err(
                        pos,
                        "currentdate: :originalzone applies only to the date test",
                    );
                }
                let matcher = self.matcher(&mut a)?;
                a.finish("sl")?;
                let (p, pp) = a.strings(0);
                check_date_part(&p[0], pp)?;
                let keys = self.values(a.strings(1))?;
                self.check_keys(&matcher, &keys, pos)?;
                Test::CurrentDate {
                    matcher,
                    zone,
                    part: self.value(&p[0], pp)?,
                    keys,
                }
            }
            "mailboxexists" => {
                self.need("mailbox", name, pos)?;
                a.finish("l")?;
                Test::MailboxExists(self.values(a.strings(0))?)
            }
            "duplicate" => {
                self.need("duplicate", name, pos)?;
                let handle = a
                    .string_tag("handle")
                    .map(|(s, p)| self.value(&s, p))
                    .transpose()?;
                let header = a.string_tag("header");
                let unique = a.string_tag("uniqueid");
                let id = match (header, unique) {
                    (Some((_, p)), Some(_)) => {
                        return err(p, "duplicate: :header and :uniqueid cannot be combined")
                    }
                    (Some((h, p)), None) => {
                        check_header_name(&h, p, "duplicate")?;
                        DuplicateId::Header(self.value(&h, p)?)
                    }
                    (None, Some((u, p))) => DuplicateId::UniqueId(self.value(&u, p)?),
                    (None, None) => DuplicateId::MessageId,
                };
                let seconds = a.number_tag("seconds").map(|(s, _)| s);
                let last = a.flag("last").is_some();
                a.finish("")?;
                Test::Duplicate {
                    handle,
                    id,
                    seconds,
                    last,
                }
            }
            "spamtest" | "virustest" => {
                let percent = a.flag("percent");
                if name == "spamtest" {
                    match percent {
                        Some(p) => self.need("spamtestplus", ":percent", p)?,
                        None => {
                            if !self.has("spamtestplus") {
                                self.need("spamtest", name, pos)?
                            }
                        }
                    }
                } else {
                    self.need("virustest", name, pos)?;
                }
                let matcher = self.matcher(&mut a)?;
                a.finish("s")?;
                let (k, kp) = a.strings(0);
                let key = self.value(&k[0], kp)?;
                if name == "spamtest" {
                    Test::SpamTest {
                        percent: percent.is_some(),
                        matcher,
                        key,
                    }
                } else {
                    Test::VirusTest { matcher, key }
                }
            }
            "ihave" => {
                self.need("ihave", name, pos)?;
                a.finish("l")?;
                let (names, _) = a.strings(0);
                // Extensions that change how every string reads cannot be switched on in the
                // middle of a script: ihave is true for them only when `require`d already.
                Test::Const(names.iter().all(|n| {
                    let n = n.to_ascii_lowercase();
                    CAPABILITIES.contains(&n.as_str())
                        && (!matches!(n.as_str(), "variables" | "encoded-character")
                            || self.has(&n))
                }))
            }
            "environment" => {
                self.need("environment", name, pos)?;
                let matcher = self.matcher(&mut a)?;
                a.finish("sl")?;
                let (n, np) = a.strings(0);
                let keys = self.values(a.strings(1))?;
                self.check_keys(&matcher, &keys, pos)?;
                Test::Environment {
                    matcher,
                    name: self.value(&n[0], np)?,
                    keys,
                }
            }
            "valid_notify_method" => {
                self.need("enotify", name, pos)?;
                a.finish("l")?;
                Test::ValidNotifyMethod(self.values(a.strings(0))?)
            }
            "notify_method_capability" => {
                self.need("enotify", name, pos)?;
                let matcher = self.matcher(&mut a)?;
                a.finish("ssl")?;
                let (u, up) = a.strings(0);
                let (c, cp) = a.strings(1);
                let keys = self.values(a.strings(2))?;
                self.check_keys(&matcher, &keys, pos)?;
                Test::NotifyMethodCapability {
                    matcher,
                    uri: self.value(&u[0], up)?,
                    capability: self.value(&c[0], cp)?,
                    keys,
                }
            }
            other => return err(pos, format!("unknown test '{other}'")),
        })
    }
}

/// RFC 5322 field names: printable US-ASCII except ":" (variables are checked at run time).
fn check_header_name(name: &str, pos: Pos, what: &str) -> Result<(), CompileError> {
    if name.contains("${") {
        return Ok(());
    }
    if name.is_empty() || !name.bytes().all(|b| (33..=126).contains(&b) && b != b':') {
        return err(
            pos,
            format!("{what}: {name:?} is not a valid header field name"),
        );
    }
    Ok(())
}

const DATE_PARTS: &[&str] = &[
    "year", "month", "day", "date", "julian", "hour", "minute", "second", "time", "iso8601",
    "std11", "zone", "weekday",
];

fn check_date_part(part: &str, pos: Pos) -> Result<(), CompileError> {
    if part.contains("${") || DATE_PARTS.contains(&part.to_ascii_lowercase().as_str()) {
        Ok(())
    } else {
        err(
            pos,
            format!("{part:?} is not a date part ({})", DATE_PARTS.join(", ")),
        )
    }
}

/// A literal `:from` (vacation, notify) must name one valid address; a variable one is
/// checked when the script runs.
fn from_address(from: Option<&Value>, what: &str, pos: Pos) -> Result<(), CompileError> {
    if let Some(f) = from.and_then(Value::as_lit) {
        let first = crate::address::parse_list(f).into_iter().next();
        if !valid_address(first.as_deref().unwrap_or("")) {
            return err(pos, format!("{what}: :from {f:?} is not a valid address"));
        }
    }
    Ok(())
}

/// An addr-spec as redirect and vacation :from need it: `local@domain`, no spaces or
/// control characters, one "@", a dotted domain.
pub fn valid_address(a: &str) -> bool {
    let Some((local, domain)) = a.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && a.chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && !"<>(),;[]\\".contains(c) || c == '"')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Result<Script, CompileError> {
        compile(s, &Options::default())
    }

    #[test]
    fn compiles_the_rfc_example() {
        let s = r#"
            require ["fileinto"];
            if header :is "Sender" "owner-ietf-mta-filters@imc.org" { fileinto "filter"; }
            elsif address :DOMAIN :is ["From", "To"] "example.com" { keep; }
            elsif anyof (NOT address :all :contains ["To", "Cc", "Bcc"] "me@example.com",
                         header :matches "subject" ["*make*money*fast*", "*university*dipl*mas*"]) {
                fileinto "spam";
            } else { fileinto "personal"; }
        "#;
        let script = c(s).unwrap();
        assert_eq!(script.cmds.len(), 1);
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = c("fileinto \"x\";").unwrap_err();
        assert!(e.message.contains("\"fileinto\" extension"), "{e}");
        assert_eq!((e.pos.line, e.pos.col), (1, 1));
        let e =
            c("require \"fileinto\";\nif true {\n  fileinto :flags \"x\" \"y\";\n}").unwrap_err();
        assert_eq!(e.pos.line, 3, "{e}");
        assert!(
            c("if header :contains :comparator \"i;ascii-numeric\" \"a\" \"b\" { keep; }").is_err()
        );
        assert!(c("if foo { keep; }")
            .unwrap_err()
            .message
            .contains("unknown test 'foo'"));
        assert!(c("bar;")
            .unwrap_err()
            .message
            .contains("unknown command 'bar'"));
        assert!(c("require \"nope\";").is_err());
        assert!(c("keep; require \"fileinto\";").is_err());
        assert!(c("else { keep; }").is_err());
        assert!(c("redirect \"not an address\";").is_err());
        assert!(c("require \"reject\"; reject \"no\";").is_ok());
        assert!(c("reject \"no\";")
            .unwrap_err()
            .message
            .contains("require \"reject\""));
        assert!(c("require \"ereject\"; ereject;").is_err());
        assert!(c("require \"regex\"; if header :regex \"s\" \"(\" { keep; }").is_err());
        assert!(c("if size :over 1 :under 2 { keep; }").is_err());
    }

    #[test]
    fn ihave_guards_unknown_extensions() {
        let s = "require \"ihave\"; if ihave \"x-unknown\" { frobnicate; } else { keep; }";
        assert!(c(s).is_ok());
        let s = "require \"ihave\"; if ihave \"fileinto\" { fileinto \"a\"; }";
        assert!(c(s).is_ok());
    }

    #[test]
    fn includes() {
        let mut opts = Options::default();
        opts.includes.insert(
            "personal/a".into(),
            "require \"include\"; include \"b\";".into(),
        );
        opts.includes.insert(
            "personal/b".into(),
            "require \"include\"; include \"a\";".into(),
        );
        let e = compile("require \"include\"; include \"a\";", &opts).unwrap_err();
        assert!(e.message.contains("includes itself"), "{e}");
        let e = compile("require \"include\"; include \"zz\";", &opts).unwrap_err();
        assert!(e.message.contains("not found"));
        assert!(compile("require \"include\"; include :optional \"zz\";", &opts).is_ok());
    }
}
