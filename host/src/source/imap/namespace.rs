//! Folder names as users write them (UTF-8, "/" between levels, in configs and plugins) and as
//! each server wants them: inside its personal namespace (RFC 2342 NAMESPACE; e.g. Cyrus puts
//! personal folders under "INBOX." with "." between levels) with its own hierarchy delimiter,
//! then modified UTF-7 (`utf7`). Names map back the same way for LIST. Next to `utf7.rs`: both
//! translate names between the user's form and the server's.

use crate::model::folder as utf7;

/// The personal namespace of the account's server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// Prefix of personal folders ("" on Dovecot, "INBOX." on Cyrus by default).
    pub prefix: String,
    /// Hierarchy delimiter; None: a flat server without levels.
    pub delim: Option<char>,
}

impl Default for Namespace {
    fn default() -> Self {
        Namespace {
            prefix: String::new(),
            delim: Some('/'),
        }
    }
}

impl Namespace {
    /// The personal namespace from a `* NAMESPACE` response line: its first personal entry,
    /// e.g. `* NAMESPACE (("INBOX." ".")) NIL NIL`.
    pub fn from_response(line: &str) -> Option<Namespace> {
        let rest = line.trim_start().strip_prefix("* ")?;
        let rest = rest
            .get(9..)
            .filter(|_| rest[..9].eq_ignore_ascii_case("NAMESPACE"))?;
        let rest = rest.trim_start().strip_prefix("((")?;
        let (prefix, rest) = quoted(rest.trim_start())?;
        let rest = rest.trim_start();
        let delim = if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case("NIL") {
            None
        } else {
            let (d, _) = quoted(rest)?;
            d.chars().next()
        };
        Some(Namespace { prefix, delim })
    }

    /// The server's name for the user's `folder`, or why it has none on this server.
    pub fn to_server(&self, folder: &str) -> Result<String, String> {
        if folder.eq_ignore_ascii_case("INBOX") {
            return Ok("INBOX".into());
        }
        if let Some(own) = self.servers_own(folder) {
            return Ok(own);
        }
        let mut segments: Vec<&str> = folder.split('/').collect();
        // "INBOX/x" on a server whose personal folders live under "INBOX<delim>" is "x" there.
        let inbox_prefix = self.delim.is_some_and(|d| {
            self.prefix.len() == 6
                && self.prefix[..5].eq_ignore_ascii_case("INBOX")
                && self.prefix.ends_with(d)
        });
        if inbox_prefix && segments.len() > 1 && segments[0].eq_ignore_ascii_case("INBOX") {
            segments.remove(0);
        }
        let joined = match self.delim {
            None if segments.len() > 1 => {
                return Err(format!(
                    "folder {folder:?} has levels, and this server has no folder hierarchy"
                ))
            }
            None => segments[0].to_string(),
            Some(d) => {
                if d != '/' {
                    if let Some(seg) = segments.iter().find(|s| s.contains(d)) {
                        return Err(format!(
                            "folder {folder:?}: {seg:?} holds {d:?}, the server's level separator"
                        ));
                    }
                }
                segments.join(&d.to_string())
            }
        };
        Ok(format!("{}{joined}", self.prefix))
    }

    /// `folder` as the server itself shows it, if it can only be that: it starts with the
    /// personal prefix and holds the server's level separator, which a folder's own name
    /// cannot hold there (Cyrus: "INBOX.Finance.Rechnungen-Ü", what the user's mail client
    /// shows). The prefix's INBOX is matched in any case, the rest as written.
    fn servers_own(&self, folder: &str) -> Option<String> {
        let d = self.delim.filter(|&d| d != '/')?;
        if folder.contains('/') {
            return None;
        }
        let rest = match self.prefix.get(..5) {
            Some(inbox) if inbox.eq_ignore_ascii_case("INBOX") => folder
                .get(..self.prefix.len())
                .filter(|p| p[..5].eq_ignore_ascii_case("INBOX") && p[5..] == self.prefix[5..])
                .map(|_| &folder[self.prefix.len()..])?,
            _ => folder.strip_prefix(self.prefix.as_str())?,
        };
        let levels: Vec<&str> = rest.split(d).collect();
        (!rest.is_empty()
            && (levels.len() > 1 || !self.prefix.is_empty())
            && levels.iter().all(|l| !l.is_empty()))
        .then(|| format!("{}{rest}", self.prefix))
    }

    /// The user's form of `folder`, whichever form it was written in: "INBOX.Lists" on Cyrus
    /// is "Lists", the same folder (for comparing with what LIST returned).
    pub fn canonical(&self, folder: &str) -> String {
        self.to_server(folder)
            .map(|s| self.to_user(&s))
            .unwrap_or_else(|_| folder.to_string())
    }

    /// The server's name for `folder`, modified-UTF-7 encoded for the wire.
    pub fn encode(&self, folder: &str) -> Result<String, String> {
        self.to_server(folder).map(|n| utf7::encode(&n))
    }

    /// The user's name for a decoded server name.
    pub fn to_user(&self, server: &str) -> String {
        if server.eq_ignore_ascii_case("INBOX") {
            return "INBOX".into();
        }
        let local = server.strip_prefix(self.prefix.as_str()).unwrap_or(server);
        match self.delim {
            Some(d) if d != '/' => local.replace(d, "/"),
            _ => local.to_string(),
        }
    }
}

/// A quoted string at the start of `s` (with backslash escapes) and what follows it.
fn quoted(s: &str) -> Option<(String, &str)> {
    let mut chars = s.strip_prefix('"')?.char_indices();
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?.1),
            '"' => return Some((out, &s[i + 2..])),
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cyrus_and_dovecot_namespaces() {
        let cyrus = Namespace::from_response("* NAMESPACE ((\"INBOX.\" \".\")) NIL NIL").unwrap();
        assert_eq!(cyrus.prefix, "INBOX.");
        assert_eq!(cyrus.delim, Some('.'));
        assert_eq!(cyrus.to_server("Lists").unwrap(), "INBOX.Lists");
        assert_eq!(
            cyrus.to_server("Finance/Rechnungen-Ü").unwrap(),
            "INBOX.Finance.Rechnungen-Ü"
        );
        assert_eq!(cyrus.to_server("INBOX/Lists").unwrap(), "INBOX.Lists");
        assert_eq!(cyrus.to_server("inbox").unwrap(), "INBOX");
        assert!(
            cyrus.to_server("v1.2").is_err(),
            "a dot cannot be written there"
        );
        assert_eq!(
            cyrus.to_user("INBOX.Finance.Rechnungen-Ü"),
            "Finance/Rechnungen-Ü"
        );
        assert_eq!(cyrus.to_user("INBOX"), "INBOX");
        // The names the user's mail client shows mean those folders.
        assert_eq!(cyrus.to_server("INBOX.Lists").unwrap(), "INBOX.Lists");
        assert_eq!(
            cyrus.to_server("INBOX.Finance.Rechnungen-Ü").unwrap(),
            "INBOX.Finance.Rechnungen-Ü"
        );
        assert_eq!(cyrus.to_server("inbox.Lists").unwrap(), "INBOX.Lists");
        assert_eq!(
            cyrus.canonical("INBOX.Finance.Rechnungen-Ü"),
            "Finance/Rechnungen-Ü"
        );
        assert_eq!(
            cyrus.canonical("Finance/Rechnungen-Ü"),
            "Finance/Rechnungen-Ü"
        );
        // Not a server name: an empty level, a mix with "/", no prefix.
        assert!(cyrus.to_server("INBOX..x").is_err());
        assert!(cyrus.to_server("INBOX.a/b.c").is_err());
        assert!(cyrus.to_server("Lists.old").is_err());
        // An empty prefix with "." between levels: a dotted name is the server's.
        let dotted = Namespace {
            prefix: String::new(),
            delim: Some('.'),
        };
        assert_eq!(dotted.to_server("Finance.2026").unwrap(), "Finance.2026");
        assert_eq!(dotted.to_server("Finance/2026").unwrap(), "Finance.2026");

        let dovecot = Namespace::from_response("* NAMESPACE ((\"\" \"/\")) NIL NIL").unwrap();
        assert_eq!(dovecot, Namespace::default());
        assert_eq!(dovecot.to_server("a/b.c").unwrap(), "a/b.c");
        assert_eq!(dovecot.to_user("a/b.c"), "a/b.c");

        let flat = Namespace::from_response("* NAMESPACE ((\"\" NIL)) NIL NIL").unwrap();
        assert_eq!(flat.delim, None);
        assert!(flat.to_server("a/b").is_err());
    }
}
