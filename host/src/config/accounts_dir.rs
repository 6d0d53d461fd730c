//! `[accounts] dir`: one file per account, for an instance that serves many mailboxes. Files
//! can be added, changed and removed while the daemon runs (it looks again every
//! `rescan_seconds` and on SIGHUP) without touching the main config or the other accounts.
//! A file holds the keys of one `[[account]]` as `[account]`, and may override keys of the
//! plugins' tables for this account only as `[plugin.NAME]`:
//!
//! ```toml
//! [account]
//! name = "bob"
//! address = "bob@example.com"
//! [account.imap]
//! host = "imap.example.com"
//! username = "bob"
//! password_file = "bob.pass"
//!
//! [plugin.vacation]          # merged over the main file's [plugin.config] of "vacation"
//! subject = "Bob is away until Monday"
//! ```
//!
//! A broken file is reported with its path and line and leaves that account out; every other
//! account still runs (one typo must not stop a whole fleet). Relative paths in a file are
//! relative to the directory.
//!
//! `[accounts] table = true` (PostgreSQL state only) reads the same text from the rows of the
//! `accounts` table of the state schema as well (`id`, `config`): a row is an account file
//! that lives in the database, named `CONFIG_DIR/accounts-table:ID` in messages (its relative
//! paths are relative to the config's directory).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::account::RawAccount;
use super::error::{in_toml_words, line_of, ConfigError};
use super::{validate_account, AccountConfig};

/// The `[accounts]` table of the main config.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccounts {
    pub dir: Option<Spanned<String>>,
    /// Accounts from the `accounts` table of the PostgreSQL state schema too.
    pub table: Option<Spanned<bool>>,
    pub rescan_seconds: Option<u64>,
    pub connects_per_second: Option<u32>,
}

/// Where the account files are, and how the daemon paces its logins.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountsSettings {
    /// The directory of account files (`*.toml`), if any.
    pub dir: Option<PathBuf>,
    /// Accounts from the state schema's `accounts` table too (PostgreSQL state only).
    pub table: bool,
    /// How often the daemon looks for added, changed and removed account files.
    pub rescan: Duration,
    /// IMAP logins started per second at most, over all accounts: a restart or the end of a
    /// server outage does not open thousands of connections at once.
    pub connects_per_second: u32,
}

pub const DEFAULT_RESCAN_SECONDS: u64 = 10;
pub const DEFAULT_CONNECTS_PER_SECOND: u32 = 50;

impl Default for AccountsSettings {
    fn default() -> Self {
        AccountsSettings {
            dir: None,
            table: false,
            rescan: Duration::from_secs(DEFAULT_RESCAN_SECONDS),
            connects_per_second: DEFAULT_CONNECTS_PER_SECOND,
        }
    }
}

impl RawAccounts {
    pub fn settings(
        &self,
        base: &Path,
    ) -> Result<AccountsSettings, (std::ops::Range<usize>, String)> {
        if self.rescan_seconds == Some(0) {
            return Err((0..0, "accounts.rescan_seconds must be at least 1".into()));
        }
        if self.connects_per_second == Some(0) {
            return Err((
                0..0,
                "accounts.connects_per_second must be at least 1".into(),
            ));
        }
        let dir = self.dir.as_ref().map(|d| base.join(d.get_ref()));
        if let (Some(d), Some(raw)) = (&dir, &self.dir) {
            if !d.is_dir() {
                return Err((raw.span(), format!("{} is not a directory", d.display())));
            }
        }
        Ok(AccountsSettings {
            dir,
            table: self.table.as_ref().is_some_and(|t| *t.get_ref()),
            rescan: Duration::from_secs(self.rescan_seconds.unwrap_or(DEFAULT_RESCAN_SECONDS)),
            connects_per_second: self
                .connects_per_second
                .unwrap_or(DEFAULT_CONNECTS_PER_SECOND),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccountFile {
    account: RawAccount,
    #[serde(default)]
    plugin: BTreeMap<Spanned<String>, toml::Table>,
}

/// One account read from its file.
#[derive(Debug, Clone)]
pub struct AccountFile {
    pub path: PathBuf,
    pub account: AccountConfig,
    /// The file's bytes, to tell a changed file from an unchanged one.
    pub text: String,
}

/// Every account file of `dir` (`*.toml`, in name order; other files and hidden ones are
/// ignored), and an error for each file that cannot be used. `plugins` are the names of the
/// configured plugins (an override of another is a mistake); `taken` the account names of
/// the main config (a file may not reuse one).
pub fn load_dir(
    dir: &Path,
    state_dir: &Path,
    plugins: &[String],
    taken: &[String],
) -> (Vec<AccountFile>, Vec<ConfigError>) {
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| is_account_file(p))
            .collect(),
        Err(error) => {
            return (
                Vec::new(),
                vec![ConfigError::Read {
                    file: dir.to_owned(),
                    error,
                }],
            )
        }
    };
    paths.sort();
    let read = paths
        .into_iter()
        .map(|path| read_file(&path, state_dir, plugins))
        .collect();
    unique_names(read, taken)
}

/// The path that names row `id` of the accounts table in messages (see the module's comment).
pub fn table_row_path(config_dir: &Path, id: &str) -> PathBuf {
    config_dir.join(format!("accounts-table:{id}"))
}

/// Accounts read from their files (or rows), with an error for each that cannot be used or
/// whose name is already taken (by `taken` or by an earlier one).
pub fn unique_names(
    read: Vec<Result<AccountFile, ConfigError>>,
    taken: &[String],
) -> (Vec<AccountFile>, Vec<ConfigError>) {
    let mut files: Vec<AccountFile> = Vec::new();
    let mut errors = Vec::new();
    for r in read {
        match r {
            Ok(f) => {
                let path = f.path.clone();
                let name = &f.account.name;
                let earlier = files.iter().find(|o| o.account.name == *name);
                if taken.contains(name) || earlier.is_some() {
                    let other = earlier.map_or("the main config".to_string(), |o| {
                        o.path.display().to_string()
                    });
                    errors.push(ConfigError::Invalid {
                        file: path.clone(),
                        line: 1,
                        key: "account.name".into(),
                        message: format!("account name {name:?} is already used by {other}"),
                    });
                } else {
                    files.push(f);
                }
            }
            Err(e) => errors.push(e),
        }
    }
    (files, errors)
}

/// Whether `path` is an account file: `*.toml`, not hidden.
pub fn is_account_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "toml")
        && !path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

/// One account file, read from disk.
pub fn read_file(
    path: &Path,
    state_dir: &Path,
    plugins: &[String],
) -> Result<AccountFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        file: path.to_owned(),
        error,
    })?;
    load_file(path, text, state_dir, plugins)
}

/// One account file (`text` is its content).
pub fn load_file(
    path: &Path,
    text: String,
    state_dir: &Path,
    plugins: &[String],
) -> Result<AccountFile, ConfigError> {
    let raw: RawAccountFile = toml::from_str(&text).map_err(|e| ConfigError::Parse {
        file: path.to_owned(),
        message: in_toml_words(e.to_string().trim_end()),
    })?;
    let invalid = |span: std::ops::Range<usize>, key: &str, message: String| ConfigError::Invalid {
        file: path.to_owned(),
        line: line_of(&text, span.start),
        key: key.to_string(),
        message,
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let mut account = validate_account(&raw.account, base, state_dir)
        .map_err(|(span, key, m)| invalid(span, &key, m))?;
    for (name, table) in raw.plugin {
        if !plugins.contains(name.get_ref()) {
            return Err(invalid(
                name.span(),
                "plugin",
                format!(
                    "no plugin called {:?} is configured (plugins: {})",
                    name.get_ref(),
                    plugins.join(", ")
                ),
            ));
        }
        let value = serde_json::to_value(&table)
            .map_err(|e| invalid(name.span(), "plugin", e.to_string()))?;
        account.plugin_overrides.insert(name.into_inner(), value);
    }
    Ok(AccountFile {
        path: path.to_owned(),
        account,
        text,
    })
}

/// `base` with the keys of `over` put in: tables are merged key by key, anything else is
/// replaced.
pub fn merged(base: &serde_json::Value, over: &serde_json::Value) -> serde_json::Value {
    match (base, over) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            let mut out = b.clone();
            for (k, v) in o {
                let m = match out.get(k) {
                    Some(existing) => merged(existing, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), m);
            }
            serde_json::Value::Object(out)
        }
        (_, o) => o.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    const BOB: &str = r#"
[account]
name = "bob"
address = "bob@example.com"
[account.imap]
host = "127.0.0.1"
tls = "none"
username = "bob"
password_env = "BOB_PASSWORD"

[plugin.vacation]
subject = "Away"
"#;

    #[test]
    fn one_file_per_account_with_its_own_plugin_keys() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "bob.toml", BOB);
        write(dir.path(), "notes.txt", "not an account");
        write(dir.path(), ".hidden.toml", "broken =");
        let (files, errors) = load_dir(dir.path(), Path::new("/state"), &["vacation".into()], &[]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(files.len(), 1);
        let bob = &files[0].account;
        assert_eq!(
            (bob.name.as_str(), bob.address.as_str()),
            ("bob", "bob@example.com")
        );
        assert_eq!(bob.plugin_overrides["vacation"]["subject"], "Away");
    }

    #[test]
    fn a_broken_file_is_named_with_its_line_and_the_others_still_load() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "bob.toml", BOB);
        write(
            dir.path(),
            "carol.toml",
            "[account]\nname = \"carol\"\naddress = \"not an address\"\n",
        );
        write(dir.path(), "dave.toml", &BOB.replace("vacation", "vacaton"));
        write(
            dir.path(),
            "eve.toml",
            &BOB.replace("\"bob\"\naddress", "\"eve\"\naddresss"),
        );
        write(dir.path(), "zed.toml", BOB);
        let (files, errors) = load_dir(
            dir.path(),
            Path::new("/state"),
            &["vacation".into()],
            &["alice".into()],
        );
        assert_eq!(files.len(), 1, "only bob.toml is usable");
        let errors: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 4, "{errors:#?}");
        assert!(
            errors[0].contains("carol.toml:3: `account.address`"),
            "{}",
            errors[0]
        );
        assert!(
            errors[1].contains("dave.toml:11: `plugin`: no plugin called \"vacaton\""),
            "{}",
            errors[1]
        );
        assert!(
            errors[2].contains("eve.toml") && errors[2].contains("addresss"),
            "{}",
            errors[2]
        );
        assert!(
            errors[3]
                .contains("zed.toml:1: `account.name`: account name \"bob\" is already used by")
                && errors[3].contains("bob.toml"),
            "{}",
            errors[3]
        );
    }

    #[test]
    fn overrides_merge_tables_and_replace_the_rest() {
        let base =
            serde_json::json!({"days": 7, "reply": {"subject": "a", "body": "b"}, "to": ["x"]});
        let over = serde_json::json!({"reply": {"subject": "c"}, "to": ["y"]});
        assert_eq!(
            merged(&base, &over),
            serde_json::json!({"days": 7, "reply": {"subject": "c", "body": "b"}, "to": ["y"]})
        );
    }
}
