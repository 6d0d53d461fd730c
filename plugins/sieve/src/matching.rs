//! Why this file exists: how a value is compared with a key. Comparators (RFC 4790:
//! `i;octet`, `i;ascii-casemap`, `i;ascii-numeric`), match types (RFC 5228 `:is`,
//! `:contains`, `:matches` with its wildcards and match variables; RFC 5231 `:count` and
//! `:value`; Pigeonhole's `:regex`). Every test goes through `Matcher`.

use regex::{Regex, RegexBuilder};
use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    Octet,
    AsciiCasemap,
    AsciiNumeric,
}

impl Comparator {
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "i;octet" => Comparator::Octet,
            "i;ascii-casemap" => Comparator::AsciiCasemap,
            "i;ascii-numeric" => Comparator::AsciiNumeric,
            _ => return None,
        })
    }

    /// RFC 4790 ordering (for `:value` and `:count`).
    pub fn order(self, a: &str, b: &str) -> Ordering {
        match self {
            Comparator::Octet => a.as_bytes().cmp(b.as_bytes()),
            Comparator::AsciiCasemap => a
                .bytes()
                .map(|c| c.to_ascii_lowercase())
                .cmp(b.bytes().map(|c| c.to_ascii_lowercase())),
            Comparator::AsciiNumeric => match (numeric(a), numeric(b)) {
                (Some(x), Some(y)) => cmp_digits(x, y),
                // A string that does not start with a digit is positive infinity.
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
            },
        }
    }

    fn eq_char(self, a: char, b: char) -> bool {
        match self {
            Comparator::AsciiCasemap => a.eq_ignore_ascii_case(&b),
            _ => a == b,
        }
    }
}

/// The leading digits of `s` (without leading zeros), or None when it does not start with one.
fn numeric(s: &str) -> Option<&str> {
    let end = s
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    let digits = s[..end].trim_start_matches('0');
    Some(digits)
}

fn cmp_digits(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl Relation {
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "gt" => Relation::Gt,
            "ge" => Relation::Ge,
            "lt" => Relation::Lt,
            "le" => Relation::Le,
            "eq" => Relation::Eq,
            "ne" => Relation::Ne,
            _ => return None,
        })
    }

    pub fn holds(self, o: Ordering) -> bool {
        match self {
            Relation::Gt => o == Ordering::Greater,
            Relation::Ge => o != Ordering::Less,
            Relation::Lt => o == Ordering::Less,
            Relation::Le => o != Ordering::Greater,
            Relation::Eq => o == Ordering::Equal,
            Relation::Ne => o != Ordering::Equal,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchType {
    Is,
    Contains,
    Matches,
    Regex,
    Count(Relation),
    Value(Relation),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matcher {
    pub kind: MatchType,
    pub cmp: Comparator,
}

impl Default for Matcher {
    fn default() -> Self {
        Matcher {
            kind: MatchType::Is,
            cmp: Comparator::AsciiCasemap,
        }
    }
}

/// Longest regular expression accepted, and the size its compiled form may take.
const REGEX_MAX_LEN: usize = 4096;
const REGEX_SIZE_LIMIT: usize = 1 << 20;

pub fn compile_regex(pattern: &str, cmp: Comparator) -> Result<Regex, String> {
    if pattern.len() > REGEX_MAX_LEN {
        return Err(format!(
            "regular expression longer than {REGEX_MAX_LEN} bytes"
        ));
    }
    RegexBuilder::new(pattern)
        .case_insensitive(cmp == Comparator::AsciiCasemap)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("invalid regular expression {pattern:?}: {e}"))
}

/// Compiled expressions by (pattern, case-insensitive): a script's keys are the same from
/// message to message, so each is compiled once per instance, not per comparison.
fn cached_regex(pattern: &str, cmp: Comparator) -> Result<Regex, String> {
    use std::cell::RefCell;
    use std::collections::HashMap;
    const MAX_CACHED: usize = 512;
    thread_local! {
        static CACHE: RefCell<HashMap<(String, bool), Regex>> = RefCell::new(HashMap::new());
    }
    let key = (pattern.to_string(), cmp == Comparator::AsciiCasemap);
    if let Some(re) = CACHE.with(|c| c.borrow().get(&key).cloned()) {
        return Ok(re);
    }
    let re = compile_regex(pattern, cmp)?;
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= MAX_CACHED {
            c.clear();
        }
        c.insert(key, re.clone());
    });
    Ok(re)
}

impl Matcher {
    /// Does `value` match `key`? For `:matches` and `:regex` a match fills `captures` with the
    /// match variables (`${0}` the whole value). `:count` is decided by the caller.
    pub fn matches(&self, value: &str, key: &str, captures: Option<&mut Vec<String>>) -> bool {
        match self.kind {
            MatchType::Is => {
                self.cmp.order(value, key) == Ordering::Equal
                    && (self.cmp != Comparator::AsciiNumeric
                        || numeric(value).is_some() == numeric(key).is_some())
            }
            MatchType::Contains => contains(self.cmp, value, key),
            MatchType::Value(rel) => rel.holds(self.cmp.order(value, key)),
            MatchType::Count(_) => false,
            MatchType::Matches => {
                let pattern = glob(key);
                let chars: Vec<char> = value.chars().collect();
                let mut caps = Vec::new();
                if glob_match(self.cmp, &pattern, &chars, &mut caps) {
                    if let Some(out) = captures {
                        out.clear();
                        out.push(value.to_string());
                        out.extend(
                            caps.iter()
                                .map(|(a, b)| chars[*a..*b].iter().collect::<String>()),
                        );
                    }
                    true
                } else {
                    false
                }
            }
            MatchType::Regex => match cached_regex(key, self.cmp) {
                Ok(re) => match re.captures(value) {
                    Some(c) => {
                        if let Some(out) = captures {
                            out.clear();
                            out.extend(
                                c.iter()
                                    .map(|m| m.map_or(String::new(), |m| m.as_str().to_string())),
                            );
                        }
                        true
                    }
                    None => false,
                },
                Err(_) => false,
            },
        }
    }

    /// `:count REL` (RFC 5231): the number of values compared with each key.
    pub fn count_matches(&self, count: usize, key: &str) -> bool {
        match self.kind {
            MatchType::Count(rel) => rel.holds(self.cmp.order(&count.to_string(), key)),
            _ => false,
        }
    }

    pub fn captures(&self) -> bool {
        matches!(self.kind, MatchType::Matches | MatchType::Regex)
    }
}

fn contains(cmp: Comparator, value: &str, key: &str) -> bool {
    match cmp {
        // ASCII case-insensitive substring search without copying either side.
        Comparator::AsciiCasemap => {
            let (v, k) = (value.as_bytes(), key.as_bytes());
            k.is_empty() || v.windows(k.len()).any(|w| w.eq_ignore_ascii_case(k))
        }
        _ => value.contains(key),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum G {
    Star,
    One,
    Lit(char),
}

fn glob(key: &str) -> Vec<G> {
    let mut out = Vec::new();
    let mut chars = key.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '*' => G::Star,
            '?' => G::One,
            '\\' => G::Lit(chars.next().unwrap_or('\\')),
            c => G::Lit(c),
        });
    }
    out
}

/// Wildcard match; `*` matches as little as possible (RFC 5229 section 3.2's example: the
/// first `*` of "[*] *" gets "acme-users" of "[acme-users] [fwd] ..."). Fills one (start, end)
/// per wildcard. Only the last `*` seen is ever widened (widening an earlier one never helps),
/// so the time is O(pattern x value) whatever the input: no exponential backtracking.
fn glob_match(cmp: Comparator, p: &[G], v: &[char], caps: &mut Vec<(usize, usize)>) -> bool {
    let mut wild = Vec::with_capacity(p.len());
    let mut n = 0;
    for g in p {
        wild.push(n);
        if !matches!(g, G::Lit(_)) {
            n += 1;
        }
    }
    caps.clear();
    caps.resize(n, (0, 0));
    let (mut i, mut j) = (0usize, 0usize);
    // The last `*`: its pattern index and where its match ends now.
    let mut back: Option<(usize, usize)> = None;
    loop {
        if i < p.len() {
            match p[i] {
                G::Star => {
                    caps[wild[i]] = (j, j);
                    back = Some((i, j));
                    i += 1;
                    continue;
                }
                G::One if j < v.len() => {
                    caps[wild[i]] = (j, j + 1);
                    i += 1;
                    j += 1;
                    continue;
                }
                G::Lit(c) if j < v.len() && cmp.eq_char(v[j], c) => {
                    i += 1;
                    j += 1;
                    continue;
                }
                _ => {}
            }
        } else if j == v.len() {
            return true;
        }
        match back {
            Some((si, sj)) if sj < v.len() => {
                back = Some((si, sj + 1));
                caps[wild[si]].1 = sj + 1;
                i = si + 1;
                j = sj + 1;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(kind: MatchType, cmp: Comparator) -> Matcher {
        Matcher { kind, cmp }
    }

    #[test]
    fn comparators() {
        let c = m(MatchType::Is, Comparator::AsciiCasemap);
        assert!(c.matches("Hello", "hELLO", None));
        assert!(!m(MatchType::Is, Comparator::Octet).matches("Hello", "hello", None));
        let n = m(MatchType::Value(Relation::Gt), Comparator::AsciiNumeric);
        assert!(n.matches("10", "9", None));
        assert!(n.matches("abc", "999", None)); // not a number = infinity
        assert!(!n.matches("007", "7", None));
        assert!(m(MatchType::Is, Comparator::AsciiNumeric).matches("007x", "7", None));
    }

    #[test]
    fn wildcards_and_captures() {
        let w = m(MatchType::Matches, Comparator::AsciiCasemap);
        let mut caps = Vec::new();
        assert!(w.matches("[acme-users] [fwd] version 1.0", "[*] *", Some(&mut caps)));
        assert_eq!(caps[1], "acme-users");
        assert_eq!(caps[2], "[fwd] version 1.0");
        assert!(w.matches("a?b", "a\\?b", None));
        assert!(!w.matches("axb", "a\\?b", None));
        assert!(w.matches("ABC", "a?c", None));
        assert!(!w.matches("abcd", "a?c", None));
        let long = "a".repeat(2000);
        assert!(!w.matches(&long, "*a*a*a*a*a*a*b", None));
    }

    #[test]
    fn counts_and_regex() {
        let c = m(MatchType::Count(Relation::Ge), Comparator::AsciiNumeric);
        assert!(c.count_matches(3, "2"));
        assert!(!c.count_matches(1, "2"));
        let r = m(MatchType::Regex, Comparator::AsciiCasemap);
        let mut caps = Vec::new();
        assert!(r.matches("Re: Hello", "^re: (.*)$", Some(&mut caps)));
        assert_eq!(caps[1], "Hello");
    }
}
