//! Why this file exists: the Sieve scripts of each account (issue 23: ManageSieve, `mailpipe
//! sieve`), kept in the state store so that every process sharing it sees the same ones.
//! An account has several named scripts, at most one active, within quotas. The rules
//! (names, quotas, "the active script cannot be deleted", versions) live here, once; a backend
//! only loads an account's set and replaces it if nobody changed it meanwhile
//! (`ScriptStore`), so two processes editing the same account never lose an edit.

use serde::{Deserialize, Serialize};

use super::{StateError, Store};
use crate::config::managesieve::{DEFAULT_MAX_SCRIPTS, DEFAULT_MAX_SCRIPT_BYTES};
use crate::config::Config;

/// One script of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SieveScript {
    pub name: String,
    pub text: String,
    pub active: bool,
    /// The set's version when this script's text was last written: names the script version
    /// that decided (`explain`).
    pub version: u64,
}

/// Every script of one account, and the version of the set (grows with every change).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptSet {
    pub version: u64,
    pub scripts: Vec<SieveScript>,
}

impl ScriptSet {
    pub fn active(&self) -> Option<&SieveScript> {
        self.scripts.iter().find(|s| s.active)
    }

    pub fn get(&self, name: &str) -> Option<&SieveScript> {
        let name = normal(name);
        self.scripts.iter().find(|s| s.name == name)
    }

    /// The texts of every script but `name`, by name: what `include :personal` finds from it.
    pub fn others(&self, name: &str) -> std::collections::BTreeMap<String, String> {
        self.scripts
            .iter()
            .filter(|s| s.name != name)
            .map(|s| (s.name.clone(), s.text.clone()))
            .collect()
    }
}

/// How much an account may keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptLimits {
    pub max_scripts: usize,
    pub max_bytes: usize,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        ScriptLimits {
            max_scripts: DEFAULT_MAX_SCRIPTS,
            max_bytes: DEFAULT_MAX_SCRIPT_BYTES,
        }
    }
}

impl ScriptLimits {
    /// The limits `[managesieve]` sets, else the defaults.
    pub fn of(config: &Config) -> ScriptLimits {
        match &config.managesieve {
            Some(m) => ScriptLimits {
                max_scripts: m.max_scripts,
                max_bytes: m.max_script_bytes,
            },
            None => ScriptLimits::default(),
        }
    }
}

/// Longest script name, in bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// What a caller must tell apart (ManageSieve answers each with its own response code).
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("no script named {0:?}")]
    NoSuchScript(String),
    #[error("a script named {0:?} exists already")]
    AlreadyExists(String),
    #[error("{0:?} is the active script: activate another one (or none) before deleting it")]
    Active(String),
    #[error("an account may keep at most {0} scripts")]
    TooMany(usize),
    #[error("a script may have at most {max} bytes; this one has {size}")]
    TooLarge { size: usize, max: usize },
    #[error("invalid script name {name:?}: {why}")]
    BadName { name: String, why: &'static str },
    #[error("the scripts of account {0} kept changing while this change was made; try again")]
    Busy(String),
    /// The interpreter refuses the script: its error, with line and column.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    State(#[from] StateError),
}

impl ScriptError {
    /// ManageSieve's response code for it (RFC 5804 section 1.3), if it has one.
    pub fn response_code(&self) -> Option<&'static str> {
        Some(match self {
            ScriptError::NoSuchScript(_) => "NONEXISTENT",
            ScriptError::AlreadyExists(_) => "ALREADYEXISTS",
            ScriptError::Active(_) => "ACTIVE",
            ScriptError::TooMany(_) => "QUOTA/MAXSCRIPTS",
            ScriptError::TooLarge { .. } => "QUOTA/MAXSIZE",
            ScriptError::Busy(_) => "TRYLATER",
            _ => return None,
        })
    }
}

/// The store's side: load an account's set, replace it when its version is still `expected`.
pub trait ScriptStore {
    /// The account's set (empty, version 0, when it has none).
    fn scripts_load(&self, account: &str) -> Result<ScriptSet, StateError>;
    /// The version of the account's set (0 when it has none): what a reader that keeps
    /// what it built from a set checks per message.
    fn scripts_version(&self, account: &str) -> Result<u64, StateError> {
        self.scripts_load(account).map(|s| s.version)
    }
    /// Write `set` if the stored set's version is `expected` (0: none stored); false when
    /// another writer changed it first (nothing written).
    fn scripts_replace(
        &self,
        account: &str,
        expected: u64,
        set: &ScriptSet,
    ) -> Result<bool, StateError>;
}

/// A script name as it is stored and compared: Unicode NFC (RFC 5804 names are Net-Unicode,
/// RFC 5198), so that "é" typed precomposed or as e + accent names one script.
pub fn normal(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    name.nfc().collect()
}

/// A script name ManageSieve clients and file exports can both use: not empty, at most
/// MAX_NAME_BYTES, no control characters, no `/` or `\`, not starting with `.`.
pub fn check_name(name: &str) -> Result<(), ScriptError> {
    let bad = |why| {
        Err(ScriptError::BadName {
            name: name.to_string(),
            why,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME_BYTES {
        return bad("it is longer than 128 bytes");
    }
    if name.chars().any(char::is_control) {
        return bad("it has a control character");
    }
    if name.contains(['/', '\\']) {
        return bad("it has a / or \\");
    }
    if name.starts_with('.') {
        return bad("it starts with a dot");
    }
    Ok(())
}

/// Attempts at a change that other writers keep overtaking.
const ATTEMPTS: usize = 64;

/// Applies `change` to the account's set and stores the result, again on a fresh copy when
/// another writer got there first. `change` returns what the caller gets back.
fn change<T>(
    store: &Store,
    account: &str,
    mut change: impl FnMut(&mut ScriptSet) -> Result<T, ScriptError>,
) -> Result<T, ScriptError> {
    for _ in 0..ATTEMPTS {
        let before = store.scripts_load(account)?;
        let mut set = before.clone();
        let out = change(&mut set)?;
        if set == before {
            return Ok(out);
        }
        set.version = before.version + 1;
        if store.scripts_replace(account, before.version, &set)? {
            return Ok(out);
        }
    }
    Err(ScriptError::Busy(account.to_string()))
}

/// The account's scripts, by name.
pub fn list(store: &Store, account: &str) -> Result<ScriptSet, ScriptError> {
    let mut set = store.scripts_load(account)?;
    set.scripts.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(set)
}

/// Whether `text` would fit, without storing it (HAVESPACE, and before a check).
pub fn have_space(
    store: &Store,
    account: &str,
    name: &str,
    size: usize,
    limits: &ScriptLimits,
) -> Result<(), ScriptError> {
    let name = normal(name);
    let name = name.as_str();
    check_name(name)?;
    let set = store.scripts_load(account)?;
    fits(&set, name, size, limits)
}

fn fits(
    set: &ScriptSet,
    name: &str,
    size: usize,
    limits: &ScriptLimits,
) -> Result<(), ScriptError> {
    if size > limits.max_bytes {
        return Err(ScriptError::TooLarge {
            size,
            max: limits.max_bytes,
        });
    }
    if set.get(name).is_none() && set.scripts.len() >= limits.max_scripts {
        return Err(ScriptError::TooMany(limits.max_scripts));
    }
    Ok(())
}

/// Store `text` as `name` (replacing a script of that name, which keeps being active if it
/// was). Returns the script's new version.
pub fn put(
    store: &Store,
    account: &str,
    name: &str,
    text: &str,
    limits: &ScriptLimits,
) -> Result<u64, ScriptError> {
    let name = normal(name);
    let name = name.as_str();
    check_name(name)?;
    change(store, account, |set| {
        fits(set, name, text.len(), limits)?;
        let version = set.version + 1;
        match set.scripts.iter_mut().find(|s| s.name == name) {
            Some(s) if s.text == text => return Ok(s.version),
            Some(s) => {
                s.text = text.to_string();
                s.version = version;
            }
            None => set.scripts.push(SieveScript {
                name: name.to_string(),
                text: text.to_string(),
                active: false,
                version,
            }),
        }
        Ok(version)
    })
}

/// Make `name` the active script, or none (`None`).
pub fn set_active(store: &Store, account: &str, name: Option<&str>) -> Result<(), ScriptError> {
    let name = name.map(normal);
    let name = name.as_deref();
    change(store, account, |set| {
        if let Some(n) = name {
            if set.get(n).is_none() {
                return Err(ScriptError::NoSuchScript(n.to_string()));
            }
        }
        for s in &mut set.scripts {
            s.active = Some(s.name.as_str()) == name;
        }
        Ok(())
    })
}

/// Delete a script that is not the active one.
pub fn delete(store: &Store, account: &str, name: &str) -> Result<(), ScriptError> {
    let name = normal(name);
    let name = name.as_str();
    change(store, account, |set| {
        match set.get(name) {
            None => return Err(ScriptError::NoSuchScript(name.to_string())),
            Some(s) if s.active => return Err(ScriptError::Active(name.to_string())),
            Some(_) => {}
        }
        set.scripts.retain(|s| s.name != name);
        Ok(())
    })
}

/// Rename a script (an active one stays active).
pub fn rename(store: &Store, account: &str, from: &str, to: &str) -> Result<(), ScriptError> {
    let (from, to) = (normal(from), normal(to));
    let (from, to) = (from.as_str(), to.as_str());
    check_name(to)?;
    change(store, account, |set| {
        if set.get(from).is_none() {
            return Err(ScriptError::NoSuchScript(from.to_string()));
        }
        if from != to && set.get(to).is_some() {
            return Err(ScriptError::AlreadyExists(to.to_string()));
        }
        if let Some(s) = set.scripts.iter_mut().find(|s| s.name == from) {
            s.name = to.to_string();
        }
        Ok(())
    })
}
