//! Why this file exists: strings that are computed at run time. RFC 5229 (variables: `${name}`,
//! match variables `${1}`, `set` and its modifiers) and RFC 5228 section 2.4.2.4
//! (`encoded-character`: `${hex:..}`, `${unicode:..}`, expanded once at compile time).

use std::collections::HashMap;

/// Longest value a variable holds (bytes); longer values are cut at a character boundary.
pub const MAX_VARIABLE_SIZE: usize = 4096;

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Lit(String),
    /// A variable name, lowercased (names are case-insensitive).
    Var(String),
    /// `${N}`: the Nth match variable of the last successful :matches / :regex test.
    Match(usize),
}

/// A string argument: a literal, or (with "variables") a template expanded when it is used.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    pub parts: Vec<Part>,
}

impl Value {
    pub fn lit(s: impl Into<String>) -> Self {
        Value {
            parts: vec![Part::Lit(s.into())],
        }
    }

    /// The literal text, when the value has no variable in it.
    pub fn as_lit(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Lit(s)] => Some(s),
            _ => None,
        }
    }

    /// Parses `${...}` references in `s` (only when the script requires "variables").
    pub fn template(s: &str) -> Self {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        while let Some(i) = rest.find("${") {
            lit.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            match after.find('}').map(|e| (&after[..e], e)) {
                Some((name, end)) if is_variable_name(name) => {
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    if name.bytes().all(|b| b.is_ascii_digit()) {
                        parts.push(Part::Match(name.parse().unwrap_or(usize::MAX)));
                    } else {
                        parts.push(Part::Var(name.to_ascii_lowercase()));
                    }
                    rest = &after[end + 1..];
                }
                _ => {
                    lit.push_str("${");
                    rest = after;
                }
            }
        }
        lit.push_str(rest);
        if !lit.is_empty() || parts.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Value { parts }
    }
}

/// `identifier ("." identifier)*` or digits (RFC 5229 section 3).
fn is_variable_name(name: &str) -> bool {
    if name.is_empty() {
        return false;
    }
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    name.split('.').all(|p| {
        let mut b = p.bytes();
        matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
            && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
    })
}

/// Whether `name` may be the target of `set` (no namespace, no digits-only name).
pub fn is_settable(name: &str) -> bool {
    is_variable_name(name) && !name.contains('.') && !name.bytes().all(|b| b.is_ascii_digit())
}

/// Expands `${hex:...}` and `${unicode:...}` (RFC 5228 2.4.2.4). A malformed sequence is left
/// as written; an invalid code point is an error.
pub fn expand_encoded(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            out.push_str("${");
            rest = after;
            continue;
        };
        let inner = &after[..end];
        let (kind, body) = match inner.split_once(':') {
            Some((k, b)) => (k.to_ascii_lowercase(), b),
            None => (String::new(), ""),
        };
        let words: Vec<&str> = body.split_ascii_whitespace().collect();
        let hexes = || {
            words
                .iter()
                .map(|w| u32::from_str_radix(w, 16).ok().filter(|_| w.len() <= 8))
                .collect::<Option<Vec<u32>>>()
        };
        match (kind.as_str(), hexes().filter(|h| !h.is_empty())) {
            ("hex", Some(bytes)) if bytes.iter().all(|b| *b <= 0xFF) => {
                let raw: Vec<u8> = bytes.iter().map(|b| *b as u8).collect();
                out.push_str(&String::from_utf8_lossy(&raw));
                rest = &after[end + 1..];
            }
            ("unicode", Some(points)) => {
                for p in points {
                    match char::from_u32(p) {
                        Some(c) => out.push(c),
                        None => {
                            return Err(format!(
                                "invalid unicode character U+{p:X} in encoded-character"
                            ))
                        }
                    }
                }
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Modifier {
    // Applied in RFC 5229 precedence order: length last, quotewildcard before it, case first.
    Lower,
    Upper,
    LowerFirst,
    UpperFirst,
    QuoteWildcard,
    QuoteRegex,
    EncodeUrl,
    Length,
}

impl Modifier {
    pub fn from_tag(tag: &str) -> Option<Self> {
        Some(match tag {
            "lower" => Modifier::Lower,
            "upper" => Modifier::Upper,
            "lowerfirst" => Modifier::LowerFirst,
            "upperfirst" => Modifier::UpperFirst,
            "quotewildcard" => Modifier::QuoteWildcard,
            "quoteregex" => Modifier::QuoteRegex,
            "encodeurl" => Modifier::EncodeUrl,
            "length" => Modifier::Length,
            _ => return None,
        })
    }

    /// RFC 5229 section 4: precedence 40 (:lower :upper), 30 (:lowerfirst :upperfirst),
    /// 20 (:quotewildcard, :quoteregex, :encodeurl), 10 (:length); higher first.
    fn precedence(self) -> u8 {
        match self {
            Modifier::Lower | Modifier::Upper => 40,
            Modifier::LowerFirst | Modifier::UpperFirst => 30,
            Modifier::QuoteWildcard | Modifier::QuoteRegex | Modifier::EncodeUrl => 20,
            Modifier::Length => 10,
        }
    }

    pub fn same_precedence(self, other: Modifier) -> bool {
        self.precedence() == other.precedence()
    }
}

pub fn apply_modifiers(mods: &[Modifier], value: String) -> String {
    let mut mods = mods.to_vec();
    mods.sort_by_key(|m| std::cmp::Reverse(m.precedence()));
    mods.into_iter().fold(value, |v, m| match m {
        // ASCII letters only, as Pigeonhole does ("Grüße" :upper is "GRüßE").
        Modifier::Lower => v.to_ascii_lowercase(),
        Modifier::Upper => v.to_ascii_uppercase(),
        Modifier::LowerFirst => first_char(&v, |c| c.to_ascii_lowercase().to_string()),
        Modifier::UpperFirst => first_char(&v, |c| c.to_ascii_uppercase().to_string()),
        Modifier::QuoteWildcard => v
            .chars()
            .flat_map(|c| {
                let esc = matches!(c, '*' | '?' | '\\');
                esc.then_some('\\').into_iter().chain([c])
            })
            .collect(),
        Modifier::QuoteRegex => v
            .chars()
            .flat_map(|c| {
                let esc = "\\^$.[]|()?*+{}".contains(c);
                esc.then_some('\\').into_iter().chain([c])
            })
            .collect(),
        Modifier::EncodeUrl => v
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect(),
        Modifier::Length => v.chars().count().to_string(),
    })
}

fn first_char(v: &str, f: impl Fn(char) -> String) -> String {
    let mut chars = v.chars();
    match chars.next() {
        Some(c) => f(c) + chars.as_str(),
        None => String::new(),
    }
}

/// The variables of one run: the running script's own, the global ones (RFC 6609: shared by
/// the scripts that declare them `global`, and always reachable as `${global.NAME}`), and the
/// match variables of the last successful match.
#[derive(Debug, Default, Clone)]
pub struct Vars {
    pub named: HashMap<String, String>,
    pub globals: HashMap<String, String>,
    /// Names the running script declared `global`.
    pub declared: std::collections::HashSet<String>,
    pub matched: Vec<String>,
}

impl Vars {
    pub fn expand(&self, v: &Value) -> String {
        if let Some(s) = v.as_lit() {
            return s.to_string();
        }
        let mut out = String::new();
        for p in &v.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(n) => {
                    if let Some(s) = self.get(n) {
                        out.push_str(s)
                    }
                }
                Part::Match(i) => {
                    if let Some(s) = self.matched.get(*i) {
                        out.push_str(s)
                    }
                }
            }
        }
        out
    }

    pub fn get(&self, name: &str) -> Option<&String> {
        if let Some(g) = name.strip_prefix("global.") {
            return self.globals.get(g);
        }
        if self.declared.contains(name) {
            self.globals.get(name)
        } else {
            self.named.get(name)
        }
    }

    pub fn set(&mut self, name: &str, mut value: String) {
        truncate(&mut value, MAX_VARIABLE_SIZE);
        if self.declared.contains(name) {
            self.globals.insert(name.to_string(), value);
        } else {
            self.named.insert(name.to_string(), value);
        }
    }
}

pub fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let v = Value::template("a ${Foo} ${1} ${bad-name} ${");
        let mut vars = Vars::default();
        vars.set("foo", "F".into());
        vars.matched = vec!["all".into(), "one".into()];
        assert_eq!(vars.expand(&v), "a F one ${bad-name} ${");
        assert_eq!(Value::template("plain").as_lit(), Some("plain"));
    }

    #[test]
    fn encoded() {
        assert_eq!(
            expand_encoded("${hex:41 42}${unicode:263a}").unwrap(),
            "AB☺"
        );
        assert_eq!(expand_encoded("${hex:zz}").unwrap(), "${hex:zz}");
        assert!(expand_encoded("${unicode:D800}").is_err());
    }

    #[test]
    fn modifiers() {
        let m = [Modifier::Length, Modifier::Upper];
        assert_eq!(apply_modifiers(&m, "abc".into()), "3");
        assert_eq!(
            apply_modifiers(&[Modifier::UpperFirst, Modifier::Lower], "hELLO".into()),
            "Hello"
        );
        assert_eq!(
            apply_modifiers(&[Modifier::QuoteWildcard], "a*b?c\\".into()),
            "a\\*b\\?c\\\\"
        );
    }
}
