//! The config file: what to read, where to put results, which plugins run in which order and
//! what each plugin may do. Parsed with serde from TOML; every later check reports the file,
//! line and key through `ConfigError`. Relative paths are relative to the config file.

mod account;
mod accounts_dir;
mod error;
mod layout;
pub mod lmtp;
pub mod managesieve;
mod outbox;
mod plugins;
mod recipients;
pub mod sieve;
mod since;
mod state;
pub use layout::Layout;
pub use lmtp::{LmtpListen, LmtpSettings};
pub use managesieve::ManageSieveSettings;
pub use outbox::RetryPolicy;
pub use plugins::{at_key, PluginConfig, PluginKind, PluginLimits, PluginLines};
pub use recipients::RecipientPattern;
pub use since::MailSince;
#[cfg(feature = "test-hooks")]
pub use state::{test_postgres_for, TEST_POSTGRES_ENV};
pub use state::{PgSettings, StateSettings};
pub mod providers;

/// The credential and endpoint values a `ServerConfig` holds.
pub use crate::model::credentials::{Auth, PasswordSource, Secret};
pub use crate::model::endpoint::TlsMode;
pub use account::{AccountConfig, DeliverTarget, Pop3Source, ServerConfig, WatchMode};

pub use accounts_dir::{is_account_file, merged, table_row_path, AccountFile, AccountsSettings};
use error::line_of;
pub use error::ConfigError;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

use crate::model::address::validate_addr_spec;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    state: state::RawState,
    offline: Option<RawOffline>,
    #[serde(default, rename = "account")]
    accounts: Vec<account::RawAccount>,
    /// `[accounts]`: the directory of account files and how logins are paced.
    #[serde(default, rename = "accounts")]
    accounts_settings: accounts_dir::RawAccounts,
    identity: Option<RawIdentity>,
    #[serde(default)]
    limits: PluginLimits,
    #[serde(default)]
    outbox: RetryPolicy,
    #[serde(default, rename = "plugin")]
    plugins: Vec<plugins::RawPlugin>,
    managesieve: Option<managesieve::RawManageSieve>,
    lmtp: Option<lmtp::RawLmtp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOffline {
    source: Spanned<String>,
    mailstore: Spanned<String>,
    /// "maildir++" (default: INBOX at the root, folders as .A.B) or "fs".
    #[serde(default)]
    layout: Layout,
    outbox: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    address: Spanned<String>,
    name: Option<Spanned<String>>,
}

/// Days `mailpipe explain` keeps what plugins decided, unless `[state] explain_days` says.
pub const DEFAULT_EXPLAIN_DAYS: u32 = 90;

/// A validated config.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub state_dir: PathBuf,
    /// `[state] backend`: the embedded file under `state_dir` or a shared PostgreSQL.
    pub state: StateSettings,
    /// Days what plugins decided is kept for `mailpipe explain` (0: forever; default 90).
    pub explain_days: u32,
    pub offline: Option<OfflineConfig>,
    /// The accounts of this file (those of `accounts_settings.dir` are read by `account_files`).
    pub accounts: Vec<AccountConfig>,
    pub accounts_settings: AccountsSettings,
    /// Default identity (offline mode); each account has its own.
    pub identity: Identity,
    pub limits: PluginLimits,
    pub retry: RetryPolicy,
    pub plugins: Vec<PluginConfig>,
    /// `[managesieve]`: the daemon's ManageSieve server, if configured.
    pub managesieve: Option<ManageSieveSettings>,
    /// `[lmtp]`: the daemon's LMTP server (mail at delivery time), if configured.
    pub lmtp: Option<LmtpSettings>,
    /// Where each plugin's table is in the file, by plugin name.
    pub plugin_lines: BTreeMap<String, PluginLines>,
}

impl Config {
    /// Whether mail is read from IMAP accounts (of this file or of its accounts directory).
    pub fn has_accounts(&self) -> bool {
        !self.accounts.is_empty()
            || self.accounts_settings.dir.is_some()
            || self.accounts_settings.table
    }

    /// Every usable file of the accounts directory, and an error for each other one (a
    /// file may not reuse an account name of this file or of an earlier file).
    pub fn account_files(&self) -> (Vec<AccountFile>, Vec<ConfigError>) {
        self.account_files_and_rows(&[])
    }

    /// The accounts directory's files, then the accounts table's `rows` (id, text), with an
    /// error for each that cannot be used (no account name may be used twice).
    pub fn account_files_and_rows(
        &self,
        rows: &[(String, String)],
    ) -> (Vec<AccountFile>, Vec<ConfigError>) {
        let mut taken: Vec<String> = self.accounts.iter().map(|a| a.name.clone()).collect();
        let (mut files, mut errors) = match &self.accounts_settings.dir {
            Some(dir) => accounts_dir::load_dir(dir, &self.state_dir, &self.plugin_names(), &taken),
            None => (Vec::new(), Vec::new()),
        };
        taken.extend(files.iter().map(|f| f.account.name.clone()));
        let read = rows
            .iter()
            .map(|(id, text)| self.account_row(id, text))
            .collect();
        let (more, more_errors) = accounts_dir::unique_names(read, &taken);
        files.extend(more);
        errors.extend(more_errors);
        (files, errors)
    }

    /// One row of the accounts table, read like an account file (no check of its name).
    pub fn account_row(&self, id: &str, text: &str) -> Result<AccountFile, ConfigError> {
        let path = accounts_dir::table_row_path(self.file.parent().unwrap_or(Path::new(".")), id);
        accounts_dir::load_file(
            &path,
            text.to_string(),
            &self.state_dir,
            &self.plugin_names(),
        )
    }

    /// One file of the accounts directory (no check of its name against other accounts).
    pub fn account_file(&self, path: &Path) -> Result<AccountFile, ConfigError> {
        accounts_dir::read_file(path, &self.state_dir, &self.plugin_names())
    }

    fn plugin_names(&self) -> Vec<String> {
        self.plugins.iter().map(|p| p.name.clone()).collect()
    }

    /// `FILE:LINE: plugin NAME: ...` about a key of a plugin's config table (see `at_key`).
    pub fn about_plugin_key(&self, plugin: &str, key: Option<&str>, text: &str) -> String {
        at_key(&self.file, plugin, self.plugin_lines.get(plugin), key, text)
    }
}

#[derive(Debug, Clone)]
pub struct OfflineConfig {
    /// A Maildir (cur/ + new/) or a folder of .eml files. Never modified.
    pub source: PathBuf,
    /// Maildir++ store the results are delivered into (INBOX at its root).
    pub mailstore: PathBuf,
    /// How folders are laid out in `mailstore`.
    pub layout: Layout,
    /// Folder that receives every outgoing message as .eml plus its envelope as .json.
    pub outbox: PathBuf,
}

/// Who the generated mail comes from.
#[derive(Debug, Clone)]
pub struct Identity {
    pub address: String,
    pub name: Option<String>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            file: path.to_owned(),
            error,
        })?;
        Config::parse(path, &text)
    }

    /// Read and check config `text` of file `path`; a problem is named with the file, line
    /// and key.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: path.to_owned(),
            message: error::in_toml_words(e.to_string().trim_end()),
        })?;
        let file = ConfigText {
            path,
            text,
            base: path.parent().unwrap_or(Path::new(".")),
        };
        if let Some(id) = &raw.identity {
            file.check_identity(id)?;
        }
        let (state_dir, state) = file.state(&raw.state)?;
        let accounts = file.accounts(&raw.accounts, &state_dir)?;
        let accounts_settings = raw
            .accounts_settings
            .settings(file.base)
            .map_err(|(span, m)| file.invalid(span, "accounts.dir", m))?;
        let identity = file.identity(raw.identity.as_ref(), &accounts, &accounts_settings)?;
        let offline = file.offline(raw.offline.as_ref())?;
        plugins::check_limits(&raw.limits).map_err(|m| file.invalid(0..0, "limits", m))?;
        raw.outbox
            .check()
            .map_err(|m| file.invalid(0..0, "outbox", m))?;
        let (plugins, plugin_lines) = plugins::validate(&file, &raw.plugins, &raw.limits)?;
        file.check_accounts_table(raw.accounts_settings.table.as_ref(), &state)?;
        file.check_mail_source(raw.offline.is_some(), &accounts, &accounts_settings)?;
        let managesieve = raw
            .managesieve
            .as_ref()
            .map(|m| m.settings(file.base))
            .transpose()
            .map_err(|(span, key, m)| file.invalid(span, key, m))?;
        let lmtp = raw
            .lmtp
            .as_ref()
            .map(|m| m.settings(file.base))
            .transpose()
            .map_err(|(span, key, m)| file.invalid(span, key, m))?;
        Ok(Config {
            file: path.to_owned(),
            state_dir,
            state,
            explain_days: raw.state.explain_days.unwrap_or(DEFAULT_EXPLAIN_DAYS),
            offline,
            accounts,
            accounts_settings,
            identity,
            limits: raw.limits,
            retry: raw.outbox,
            plugins,
            plugin_lines,
            managesieve,
            lmtp,
        })
    }
}

/// The config file being parsed: says where a problem is (file, line, key) and resolves the
/// paths it gives, which are relative to its directory.
struct ConfigText<'a> {
    path: &'a Path,
    text: &'a str,
    /// The directory of the config file.
    base: &'a Path,
}

impl ConfigText<'_> {
    /// A config error about `key` at the line where `span` starts.
    fn invalid(&self, span: std::ops::Range<usize>, key: &str, message: String) -> ConfigError {
        ConfigError::Invalid {
            file: self.path.to_owned(),
            line: line_of(self.text, span.start),
            key: key.to_string(),
            message,
        }
    }

    /// A path given in the file, relative to its directory.
    fn resolve(&self, s: &Spanned<String>) -> PathBuf {
        self.base.join(s.get_ref())
    }

    /// `[identity]`: a valid address, and a display name fit for From:.
    fn check_identity(&self, id: &RawIdentity) -> Result<(), ConfigError> {
        validate_addr_spec(id.address.get_ref())
            .map_err(|e| self.invalid(id.address.span(), "identity.address", e.to_string()))?;
        if let Some(name) = &id.name {
            check_display_name(name.get_ref())
                .map_err(|m| self.invalid(name.span(), "identity.name", m))?;
        }
        Ok(())
    }

    /// `[state]`: the state directory (default: .mailpipe-state beside the file) and the
    /// store's settings.
    fn state(&self, raw: &state::RawState) -> Result<(PathBuf, StateSettings), ConfigError> {
        let state_dir = match &raw.dir {
            Some(dir) => self.resolve(dir),
            None => self.base.join(".mailpipe-state"),
        };
        let state = state::settings(raw, self.base, &state_dir)
            .map_err(|(span, key, message)| self.invalid(span, &key, message))?;
        Ok((state_dir, state))
    }

    /// The file's `[[account]]` tables, in order; no account name may be used twice.
    fn accounts(
        &self,
        raw: &[account::RawAccount],
        state_dir: &Path,
    ) -> Result<Vec<AccountConfig>, ConfigError> {
        let mut accounts = Vec::new();
        for a in raw {
            accounts.push(
                validate_account(a, self.base, state_dir)
                    .map_err(|(span, key, m)| self.invalid(span, &key, m))?,
            );
            if accounts[..accounts.len() - 1]
                .iter()
                .any(|x: &AccountConfig| x.name == *a.name.get_ref())
            {
                return Err(self.invalid(
                    a.name.span(),
                    "account.name",
                    format!("account name {:?} is used twice", a.name.get_ref()),
                ));
            }
        }
        Ok(accounts)
    }

    /// Who generated mail comes from by default: `[identity]`, else the first account, else
    /// (accounts only in a directory or table) a placeholder; an error when there is none.
    fn identity(
        &self,
        raw: Option<&RawIdentity>,
        accounts: &[AccountConfig],
        accounts_settings: &AccountsSettings,
    ) -> Result<Identity, ConfigError> {
        let identity = match (raw, accounts.first()) {
            (Some(id), _) => Identity {
                address: id.address.get_ref().clone(),
                name: id.name.as_ref().map(|n| n.get_ref().clone()),
            },
            (None, Some(a)) => Identity {
                address: a.address.clone(),
                name: a.display_name.clone(),
            },
            // Every account of the directory has its own; this one is only for offline runs.
            (None, None) if accounts_settings.dir.is_some() || accounts_settings.table => {
                Identity {
                    address: "postmaster@localhost".into(),
                    name: None,
                }
            }
            (None, None) => {
                return Err(ConfigError::Invalid {
                    file: self.path.to_owned(),
                    line: 1,
                    key: "identity".into(),
                    message: "add an [identity] with your address (or an [[account]])".into(),
                })
            }
        };
        Ok(identity)
    }

    /// `[offline]`, its paths resolved; its source must be a directory.
    fn offline(&self, raw: Option<&RawOffline>) -> Result<Option<OfflineConfig>, ConfigError> {
        let offline = raw.map(|o| OfflineConfig {
            source: self.resolve(&o.source),
            mailstore: self.resolve(&o.mailstore),
            layout: o.layout,
            outbox: self.resolve(&o.outbox),
        });
        if let (Some(o), Some(raw_o)) = (&offline, raw) {
            if !o.source.is_dir() {
                return Err(self.invalid(
                    raw_o.source.span(),
                    "offline.source",
                    format!("{} is not a directory", o.source.display()),
                ));
            }
        }
        Ok(offline)
    }

    /// `[accounts] table = true` needs the PostgreSQL state backend.
    fn check_accounts_table(
        &self,
        table: Option<&Spanned<bool>>,
        state: &StateSettings,
    ) -> Result<(), ConfigError> {
        if let Some(t) = table {
            if *t.get_ref() && !matches!(state, StateSettings::Postgres(_)) {
                return Err(self.invalid(
                    t.span(),
                    "accounts.table",
                    "accounts come from a table only with [state] backend = \"postgres\"".into(),
                ));
            }
        }
        Ok(())
    }

    /// There must be mail to read: `[offline]`, an `[[account]]`, an accounts dir or table.
    fn check_mail_source(
        &self,
        offline: bool,
        accounts: &[AccountConfig],
        accounts_settings: &AccountsSettings,
    ) -> Result<(), ConfigError> {
        if !offline
            && accounts.is_empty()
            && accounts_settings.dir.is_none()
            && !accounts_settings.table
        {
            return Err(ConfigError::Invalid {
                file: self.path.to_owned(),
                line: 1,
                key: "offline / account".into(),
                message: "nothing to read mail from: add an [offline] section, an [[account]], an [accounts] dir or table"
                    .into(),
            });
        }
        Ok(())
    }
}

use account::Invalid;

/// One `[[account]]` table (of the config file or of an account file): its name, address,
/// mailboxes, servers (a provider fills what they leave out) and OAuth2 token source.
fn validate_account(
    a: &account::RawAccount,
    base: &Path,
    state_dir: &Path,
) -> Result<AccountConfig, Invalid> {
    let name = account_name(a)?;
    validate_addr_spec(a.address.get_ref())
        .map_err(|e| (a.address.span(), "account.address".into(), e.to_string()))?;
    if let Some(dn) = &a.display_name {
        check_display_name(dn).map_err(|m| (a.name.span(), "account.display_name".into(), m))?;
    }
    let mailboxes = account_mailboxes(a)?;
    let reply_envelope_from = envelope_from(a)?;
    let provider = find_provider(a)?;
    let mut deliver = deliver_target(a, base)?;
    let recipients = account_recipients(a)?;
    let mut pop3 = pop3_source(a, deliver.is_some(), base)?;
    // An account only delivered to, or reading POP3, needs no IMAP server.
    let reads_imap =
        a.imap.is_some() || pop3.is_none() && (provider.is_some() || deliver.is_none());
    let (mut imap, mut smtp) = servers(a, provider, base, reads_imap)?;
    let deliver_imap = match &deliver {
        Some(account::DeliverTarget::Imap(s)) => Some(s.clone()),
        _ => None,
    };
    let wants_oauth = [
        &imap,
        &smtp,
        &pop3.as_ref().map(|p| p.server.clone()),
        &deliver_imap,
    ]
    .iter()
    .any(|s| s.as_ref().is_some_and(|s| s.auth != Auth::Password));
    let tokens = oauth2_tokens(a, &name, provider, wants_oauth, base, state_dir)?;
    if let Some(s) = &mut imap {
        s.oauth2 = tokens.clone();
    }
    if let Some(p) = &mut pop3 {
        p.server.oauth2 = tokens.clone();
    }
    if let Some(account::DeliverTarget::Imap(s)) = &mut deliver {
        s.oauth2 = tokens.clone();
    }
    if let Some(s) = &mut smtp {
        s.oauth2 = tokens;
    }
    Ok(AccountConfig {
        name,
        address: a.address.get_ref().clone(),
        display_name: a.display_name.clone(),
        mailboxes,
        mode: a.mode,
        poll_seconds: a.poll_seconds.unwrap_or(60).max(5),
        batch: a.batch.unwrap_or(200).clamp(1, 5000),
        apply_batch: a.apply_batch.unwrap_or(5000).clamp(1, 100_000),
        max_message_bytes: a.max_message_mb.unwrap_or(50).clamp(1, 2048) << 20,
        timeout: std::time::Duration::from_secs(a.timeout_seconds.unwrap_or(60).clamp(1, 3600)),
        action_attempts: a.action_attempts.unwrap_or(5).clamp(1, 20),
        reply_envelope_from,
        imap,
        smtp,
        provider: provider.map(|p| p.name),
        plugin_overrides: BTreeMap::new(),
        recipients,
        deliver,
        pop3,
    })
}

/// `[account.deliver]`: a Maildir (`maildir`) or an IMAP server (`[account.deliver.imap]`,
/// the keys of `[account.imap]`: IMAPS on 993 by default, the account's address as user name).
fn deliver_target(
    a: &account::RawAccount,
    base: &Path,
) -> Result<Option<account::DeliverTarget>, Invalid> {
    let Some(d) = &a.deliver else {
        return Ok(None);
    };
    let whole = a.name.span();
    match (&d.maildir, &d.imap) {
        (Some(m), None) => Ok(Some(account::DeliverTarget::Maildir {
            maildir: base.join(m.get_ref()),
            layout: d.layout,
        })),
        (None, Some(raw)) => {
            let defaults = account::ServerDefaults {
                preset: None,
                ports: [993, 143, 143],
                auth: Auth::Password,
                username: Some(a.address.get_ref().clone()),
            };
            let server = account::server(Some(raw), "account.deliver.imap", &defaults, whole, base)?;
            Ok(Some(account::DeliverTarget::Imap(server)))
        }
        (Some(m), Some(_)) => Err((
            m.span(),
            "account.deliver".into(),
            "give either maildir or [account.deliver.imap], not both".into(),
        )),
        (None, None) => Err((
            whole,
            "account.deliver".into(),
            "where does delivered mail go? give maildir = \"PATH\" or an [account.deliver.imap] server".into(),
        )),
    }
}

/// `[account.pop3]`: the server (POP3S on 995, or 110 with STLS or on loopback), and
/// whether messages stay on it. Its messages go where `[account.deliver]` says, which it
/// needs; an account reads IMAP or POP3, not both.
fn pop3_source(
    a: &account::RawAccount,
    delivers: bool,
    base: &Path,
) -> Result<Option<account::Pop3Source>, Invalid> {
    let Some(raw) = &a.pop3 else {
        return Ok(None);
    };
    let whole = raw.host.as_ref().map_or(a.name.span(), |h| h.span());
    if raw.host.is_none() {
        return Err((
            whole,
            "account.pop3.host".into(),
            "missing: give the POP3 server's host (no provider preset fills [account.pop3])".into(),
        ));
    }
    if a.imap.is_some() {
        return Err((
            whole,
            "account.pop3".into(),
            "an account reads IMAP or POP3, not both: make two accounts".into(),
        ));
    }
    if !delivers {
        return Err((
            whole,
            "account.pop3".into(),
            "POP3 has no folders: add [account.deliver] with the maildir its messages are filed into".into(),
        ));
    }
    let defaults = account::ServerDefaults {
        preset: None,
        ports: [995, 110, 110],
        auth: Auth::Password,
        username: Some(a.address.get_ref().clone()),
    };
    let server = account::server(Some(raw), "account.pop3", &defaults, whole, base)?;
    Ok(Some(account::Pop3Source {
        server,
        keep: raw.keep.as_ref().is_none_or(|k| *k.get_ref()),
    }))
}

/// The envelope recipients delivered to the account (default: its address), lowercase.
fn account_recipients(a: &account::RawAccount) -> Result<Vec<String>, Invalid> {
    let Some(list) = &a.recipients else {
        return Ok(vec![a.address.get_ref().trim().to_ascii_lowercase()]);
    };
    list.iter()
        .map(|r| {
            validate_addr_spec(r.get_ref())
                .map_err(|e| (r.span(), "account.recipients".into(), e.to_string()))?;
            Ok(r.get_ref().trim().to_ascii_lowercase())
        })
        .collect()
}

/// The account's name, trimmed: not empty, no / \ or control characters (it names files).
fn account_name(a: &account::RawAccount) -> Result<String, Invalid> {
    let name = a.name.get_ref().trim().to_string();
    if name.is_empty() || name.contains(['/', '\\', '\0']) || name.chars().any(char::is_control) {
        return Err((
            a.name.span(),
            "account.name".into(),
            "must be a non-empty name without / or control characters".into(),
        ));
    }
    Ok(name)
}

/// The mailboxes to read (default: INBOX); names must be non-empty, without controls.
fn account_mailboxes(a: &account::RawAccount) -> Result<Vec<String>, Invalid> {
    let mailboxes = match &a.mailboxes {
        None => vec!["INBOX".to_string()],
        Some(list) => {
            for m in list {
                if m.get_ref().is_empty() || m.get_ref().chars().any(char::is_control) {
                    return Err((
                        m.span(),
                        "account.mailboxes".into(),
                        format!("invalid mailbox name {:?}", m.get_ref()),
                    ));
                }
            }
            list.iter().map(|m| m.get_ref().clone()).collect()
        }
    };
    Ok(mailboxes)
}

/// `reply_envelope_from`: a valid address, or "" (the null path) when absent or empty.
fn envelope_from(a: &account::RawAccount) -> Result<String, Invalid> {
    let reply_envelope_from = match &a.reply_envelope_from {
        Some(f) if !f.get_ref().is_empty() => {
            validate_addr_spec(f.get_ref()).map_err(|e| {
                (
                    f.span(),
                    "account.reply_envelope_from".into(),
                    e.to_string(),
                )
            })?;
            f.get_ref().clone()
        }
        _ => String::new(),
    };
    Ok(reply_envelope_from)
}

/// The known provider the account names, if it names one.
fn find_provider(a: &account::RawAccount) -> Result<Option<&'static providers::Provider>, Invalid> {
    let provider = match &a.provider {
        Some(p) => Some(providers::find(p.get_ref()).ok_or_else(|| {
            (
                p.span(),
                "account.provider".to_string(),
                format!(
                    "unknown provider {:?}; known: {}",
                    p.get_ref(),
                    providers::PROVIDERS
                        .iter()
                        .map(|p| p.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?),
        None => None,
    };
    Ok(provider)
}

/// The account's IMAP server, and its SMTP server when it has a table or a provider; the
/// provider fills what the tables leave out.
fn servers(
    a: &account::RawAccount,
    provider: Option<&'static providers::Provider>,
    base: &Path,
    reads_imap: bool,
) -> Result<(Option<ServerConfig>, Option<ServerConfig>), Invalid> {
    let whole = a.name.span();
    let address = a.address.get_ref().clone();
    let imap_defaults = account::ServerDefaults {
        preset: provider.map(|p| &p.imap),
        ports: [993, 143, 143],
        auth: provider.map(|p| p.auth).unwrap_or_default(),
        // IMAP always logs in: the address is the usual user name.
        username: Some(address.clone()),
    };
    let imap = if reads_imap {
        Some(account::server(
            a.imap.as_ref(),
            "account.imap",
            &imap_defaults,
            whole.clone(),
            base,
        )?)
    } else {
        None
    };
    let smtp_defaults = account::ServerDefaults {
        preset: provider.map(|p| &p.smtp),
        ports: [465, 587, 25],
        auth: provider.map(|p| p.auth).unwrap_or_default(),
        // Without a provider, an SMTP table without username sends without logging in
        // (a local relay).
        username: provider.map(|_| address.clone()),
    };
    let mut smtp = match (&a.smtp, provider) {
        (None, None) => None,
        (raw, _) => Some(account::server(
            raw.as_ref(),
            "account.smtp",
            &smtp_defaults,
            whole.clone(),
            base,
        )?),
    };
    if let Some(s) = &mut smtp {
        if s.auth != Auth::Password && s.username.is_none() {
            s.username = Some(address.clone());
        }
    }
    Ok((imap, smtp))
}

/// The account's OAuth2 token source (one for both servers), from `[account.oauth2]`; an
/// error when a server logs in with OAuth2 (`wants_oauth`) and the table is missing.
fn oauth2_tokens(
    a: &account::RawAccount,
    name: &str,
    provider: Option<&'static providers::Provider>,
    wants_oauth: bool,
    base: &Path,
    state_dir: &Path,
) -> Result<Option<std::sync::Arc<crate::model::credentials::OAuth2>>, Invalid> {
    let whole = a.name.span();
    let tokens = match (&a.oauth2, wants_oauth) {
        (Some(raw), _) => Some(std::sync::Arc::new(crate::model::credentials::OAuth2::new(
            name,
            account::oauth2(
                name,
                raw,
                provider.and_then(|p| p.oauth2.as_ref()),
                whole.clone(),
                base,
                state_dir,
            )?,
        ))),
        (None, true) => {
            return Err((
                whole,
                "account.oauth2".into(),
                "auth = \"xoauth2\" / \"oauthbearer\" needs an [account.oauth2] table (client_id, or token_command)".into(),
            ))
        }
        (None, false) => None,
    };
    Ok(tokens)
}

/// A display name that goes into From: of generated mail: printable text, no line breaks.
fn check_display_name(name: &str) -> Result<(), String> {
    if name.chars().any(char::is_control) {
        return Err(format!(
            "{name:?} contains a control character (CR, LF, TAB...): it would break the From: header"
        ));
    }
    if name.len() > 200 {
        return Err("is longer than 200 bytes".into());
    }
    Ok(())
}

/// Parse `KEY=VALUE` overrides (VALUE is TOML, e.g. `days=3`, `addresses=["a@b.c"]`, or a bare
/// word taken as a string) into a table, for `mailpipe test --config`.
pub fn parse_overrides(pairs: &[String]) -> Result<toml::Table, String> {
    let mut table = toml::Table::new();
    for pair in pairs {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("--config {pair:?}: expected KEY=VALUE"))?;
        let key = key.trim();
        let doc = format!("{key} = {value}");
        let parsed: toml::Table = match toml::from_str(&doc) {
            Ok(t) => t,
            // A bare word is taken as a string, as a user would mean it; a value that tries
            // to be an array, table or quoted string and is malformed is an error, not a
            // string nobody meant.
            Err(e) if value.contains(['[', ']', '{', '}', '"', '\'']) => {
                return Err(format!(
                    "--config {pair:?}: not valid TOML: {}",
                    e.message()
                ))
            }
            Err(_) => toml::from_str(&format!("{key} = {}", toml::Value::String(value.into())))
                .map_err(|e| format!("--config {pair:?}: {e}"))?,
        };
        merge(&mut table, parsed);
    }
    Ok(table)
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/cfg/mailpipe.toml"), text)
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn config_overrides_take_toml_or_a_bare_word_and_refuse_broken_toml() {
        let t = parse_overrides(&[
            "tag=EXT".into(),
            "days=3".into(),
            "addresses=[\"a@b.c\"]".into(),
            "nested.x=true".into(),
        ])
        .unwrap();
        assert_eq!(t["tag"].as_str(), Some("EXT"));
        assert_eq!(t["days"].as_integer(), Some(3));
        assert_eq!(t["addresses"][0].as_str(), Some("a@b.c"));
        assert_eq!(t["nested"]["x"].as_bool(), Some(true));
        for broken in [
            "rules=[{name=\"x\"",
            "addresses=[\"a@b.c\"",
            "s=\"unterminated",
        ] {
            let e = parse_overrides(&[broken.into()]).unwrap_err();
            assert!(e.contains("not valid TOML"), "{broken}: {e}");
        }
        assert!(parse_overrides(&["novalue".into()]).is_err());
    }

    #[test]
    fn a_provider_fills_servers_auth_and_oauth2_endpoints() {
        let c = parse(
            "[[account]]\nname = \"me\"\naddress = \"me@gmail.com\"\nprovider = \"Gmail\"\n\
             [account.oauth2]\nclient_id = \"id\"\nclient_secret_env = \"S\"\n",
        )
        .unwrap();
        let a = &c.accounts[0];
        let imap = a.imap.as_ref().unwrap();
        assert_eq!(a.provider, Some("gmail"));
        assert_eq!(
            (imap.host.as_str(), imap.port, imap.tls),
            ("imap.gmail.com", 993, TlsMode::Implicit)
        );
        assert_eq!(imap.auth, Auth::Xoauth2);
        assert_eq!(imap.username.as_deref(), Some("me@gmail.com"));
        let smtp = a.smtp.as_ref().expect("the preset brings SMTP");
        assert_eq!(smtp.host, "smtp.gmail.com");
        assert_eq!(smtp.username.as_deref(), Some("me@gmail.com"));
        let tokens = imap.oauth2.as_ref().unwrap();
        assert!(
            std::sync::Arc::ptr_eq(tokens, smtp.oauth2.as_ref().unwrap()),
            "one token cache per account"
        );
        let crate::model::credentials::TokenSource::Refresh(client) = &tokens.source else {
            panic!("refresh")
        };
        assert!(
            client.token_url.host.contains("google"),
            "{:?}",
            client.token_url
        );
        assert!(!client.scopes.is_empty());
        assert_eq!(
            client.token_file,
            Path::new("/cfg/.mailpipe-state/oauth2/me.json")
        );

        // A host of one's own drops the preset's port and TLS for that server only.
        let c = parse(
            "[[account]]\nname = \"me\"\naddress = \"me@example.com\"\nprovider = \"fastmail\"\n\
             [account.imap]\nhost = \"127.0.0.1\"\ntls = \"none\"\npassword_env = \"P\"\n",
        )
        .unwrap();
        let a = &c.accounts[0];
        let imap = a.imap.as_ref().unwrap();
        assert_eq!((imap.host.as_str(), imap.port), ("127.0.0.1", 143));
        assert!(a.smtp.as_ref().unwrap().host.contains("fastmail"));
    }

    #[test]
    fn oauth2_mistakes_are_named_with_their_line() {
        let e =
            err("[[account]]\nname = \"me\"\naddress = \"me@gmail.com\"\nprovider = \"gmail\"\n");
        assert!(
            e.contains("mailpipe.toml:2") && e.contains("account.oauth2"),
            "{e}"
        );
        let e = err("[[account]]\nname = \"me\"\naddress = \"me@x.com\"\nprovider = \"nosuch\"\n");
        assert!(
            e.contains(":4") && e.contains("unknown provider") && e.contains("gmail"),
            "{e}"
        );
        let e = err(
            "[[account]]\nname = \"me\"\naddress = \"me@x.com\"\n[account.imap]\nhost = \"imap.x.com\"\n\
             auth = \"xoauth2\"\npassword_command = \"pass x\"\n[account.oauth2]\ntoken_command = \"t\"\n",
        );
        assert!(
            e.contains("account.imap.auth") && !e.contains("pass x"),
            "{e}"
        );
        let e = err(
            "[[account]]\nname = \"me\"\naddress = \"me@x.com\"\n[account.imap]\nhost = \"imap.x.com\"\n\
             auth = \"oauthbearer\"\n[account.oauth2]\nclient_id = \"c\"\ntoken_url = \"http://auth.x.com/token\"\n",
        );
        assert!(
            e.contains(":9") && e.contains("account.oauth2.token_url") && e.contains("https"),
            "{e}"
        );
        let e = err(
            "[[account]]\nname = \"me\"\naddress = \"me@x.com\"\n[account.imap]\nhost = \"imap.x.com\"\n\
             auth = \"oauthbearer\"\n[account.oauth2]\nclient_id = \"c\"\n",
        );
        assert!(e.contains("token_url") && e.contains("missing"), "{e}");
        let e = err("[[account]]\nname = \"me\"\naddress = \"me@x.com\"\n");
        assert!(
            e.contains("account.imap.host") && e.contains("provider"),
            "{e}"
        );
    }
}
