//! `[[account]]` tables: an IMAP server to read from (and SMTP to send through) with TLS
//! settings and where the password comes from. Plain-text connections are refused unless
//! the server is on loopback or the user says `allow_insecure = true`; passwords come from
//! the environment, a file or a command (like mbsync's PassCmd) and are never logged.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

use crate::model::credentials::{Auth, PasswordSource};
use crate::model::endpoint::{is_loopback, TlsMode};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccount {
    pub name: Spanned<String>,
    pub address: Spanned<String>,
    pub display_name: Option<String>,
    pub mailboxes: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub mode: WatchMode,
    pub poll_seconds: Option<u64>,
    /// Messages fetched and decided per round trip (bounds memory).
    pub batch: Option<usize>,
    pub apply_batch: Option<usize>,
    /// Largest message fetched, in MiB; larger ones are left in place and reported.
    pub max_message_mb: Option<u64>,
    /// Deadline of each IMAP command and of connecting, in seconds.
    pub timeout_seconds: Option<u64>,
    /// Refused tries of a message's server actions before they are given up (default 5).
    pub action_attempts: Option<u32>,
    /// Envelope sender of automatic replies; RFC 3834 recommends the null path "" (default).
    pub reply_envelope_from: Option<Spanned<String>>,
    /// A known provider (`config/providers.rs`): fills host, port, TLS, auth and OAuth2
    /// endpoints wherever the account does not give them.
    pub provider: Option<Spanned<String>>,
    /// Required unless `provider` is given.
    pub imap: Option<RawServer>,
    pub smtp: Option<RawServer>,
    pub oauth2: Option<RawOAuth2>,
    /// The addresses mail is delivered to this account for (`mailpipe deliver`); default:
    /// its address.
    pub recipients: Option<Vec<Spanned<String>>>,
    /// `[account.deliver]`: where mail delivered to this account is stored.
    pub deliver: Option<RawDeliver>,
    /// `[account.pop3]`: a POP3 mailbox read instead of IMAP, into `[account.deliver]`.
    pub pop3: Option<RawServer>,
}

/// `[account.deliver]`: the mail store that delivery (`mailpipe deliver`, LMTP, POP3) writes
/// into: a Maildir, or an IMAP server (`[account.deliver.imap]`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDeliver {
    /// The Maildir (INBOX at its root), relative to the config file.
    pub maildir: Option<Spanned<String>>,
    /// "maildir++" (default: folders as .A.B) or "fs".
    #[serde(default)]
    pub layout: crate::config::Layout,
    /// Or an IMAP server the messages are APPENDed to (the keys of `[account.imap]`).
    pub imap: Option<RawServer>,
}

/// `[account.oauth2]`: where OAuth2 access tokens come from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOAuth2 {
    /// A command printing a valid access token (oama, mutt_oauth2.py, ...).
    pub token_command: Option<Spanned<String>>,
    /// Or mailpipe refreshes tokens itself as this registered client.
    pub client_id: Option<Spanned<String>>,
    pub client_secret_env: Option<String>,
    pub client_secret_file: Option<String>,
    pub client_secret_command: Option<String>,
    pub token_url: Option<Spanned<String>>,
    pub auth_url: Option<Spanned<String>>,
    pub device_url: Option<Spanned<String>>,
    pub scopes: Option<Vec<String>>,
    /// Where the refresh token is kept (default: STATE_DIR/oauth2/ACCOUNT.json).
    pub token_file: Option<Spanned<String>>,
    /// Port of the browser flow's loopback redirect (default: any free port).
    pub redirect_port: Option<u16>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    /// Required unless the account names a `provider`.
    pub host: Option<Spanned<String>>,
    pub port: Option<u16>,
    pub tls: Option<TlsMode>,
    /// How to log in: "password" (LOGIN/PLAIN) or an OAuth2 mechanism.
    pub auth: Option<Auth>,
    pub ca_file: Option<Spanned<String>>,
    /// Trust exactly the certificate with this SHA-256 fingerprint ("sha256:AB:CD:...").
    pub tls_fingerprint: Option<Spanned<String>>,
    /// Trust exactly the certificate in this PEM file (its fingerprint is pinned).
    pub tls_cert: Option<Spanned<String>>,
    #[serde(default)]
    pub allow_insecure: bool,
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
    pub password_command: Option<String>,
    /// `[account.pop3]` only: leave the messages on the server (default) or delete each once
    /// it is durably stored.
    pub keep: Option<Spanned<bool>>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum WatchMode {
    /// IMAP IDLE: new mail is processed within seconds.
    #[default]
    Idle,
    /// Look every `poll_seconds`.
    Poll,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// Trust only this CA (PEM) instead of the built-in web PKI roots.
    pub ca_file: Option<PathBuf>,
    /// Trust exactly the certificate with this fingerprint (from `tls_fingerprint` or
    /// `tls_cert`), for self-signed servers.
    pub tls_pin: Option<crate::model::endpoint::Fingerprint>,
    pub username: Option<String>,
    pub password: Option<PasswordSource>,
    pub auth: Auth,
    /// The account's OAuth2 tokens (shared with its other server), for the OAuth2 mechanisms.
    pub oauth2: Option<std::sync::Arc<crate::model::credentials::OAuth2>>,
}

#[derive(Debug, Clone)]
pub struct AccountConfig {
    pub name: String,
    pub address: String,
    pub display_name: Option<String>,
    /// UTF-8 mailbox names (modified UTF-7 is the IMAP layer's business).
    pub mailboxes: Vec<String>,
    pub mode: WatchMode,
    pub poll_seconds: u64,
    pub batch: usize,
    /// Decided messages whose server actions are collected before they are carried out
    /// (fewer, larger MOVE/STORE commands; the end of a pass always carries out the rest).
    pub apply_batch: usize,
    /// Largest message fetched (bytes); larger ones are left in place and reported.
    pub max_message_bytes: u64,
    /// Deadline of each IMAP command and of connecting.
    pub timeout: std::time::Duration,
    /// Refused tries of a message's server actions before the message is left where it is
    /// (`run --retry-failed` decides it again).
    pub action_attempts: u32,
    pub reply_envelope_from: String,
    /// None: the account is only delivered to (`[account.deliver]`), never read over IMAP.
    pub imap: Option<ServerConfig>,
    pub smtp: Option<ServerConfig>,
    /// The name of the provider preset the account uses (`providers::find`), if any.
    pub provider: Option<&'static str>,
    /// Keys of plugins' config tables for this account only (`[plugin.NAME]` of an account
    /// file), merged over the main config's: plugin name -> table.
    pub plugin_overrides: std::collections::BTreeMap<String, serde_json::Value>,
    /// Envelope recipients delivered to this account (lowercase; `mailpipe deliver`).
    pub recipients: Vec<String>,
    /// Where delivered mail is stored; None: nothing is delivered to this account.
    pub deliver: Option<DeliverTarget>,
    /// A POP3 mailbox read into `deliver` (instead of an IMAP server).
    pub pop3: Option<Pop3Source>,
}

/// `[account.pop3]`, resolved.
#[derive(Debug, Clone)]
pub struct Pop3Source {
    pub server: ServerConfig,
    /// Leave messages on the server (true) or delete each once it is durably stored.
    pub keep: bool,
}

/// `[account.deliver]`, resolved: where delivered mail is stored.
#[derive(Debug, Clone)]
pub enum DeliverTarget {
    /// A Maildir (INBOX at its root).
    Maildir {
        maildir: PathBuf,
        layout: crate::config::Layout,
    },
    /// An IMAP server, by APPEND (`source::imap::target`).
    Imap(ServerConfig),
}

impl DeliverTarget {
    /// Where it is, for messages: the Maildir's path or `imap://HOST:PORT`.
    pub fn describe(&self) -> String {
        match self {
            DeliverTarget::Maildir { maildir, .. } => maildir.display().to_string(),
            DeliverTarget::Imap(s) => format!("imap://{}:{}", s.host, s.port),
        }
    }
}

impl AccountConfig {
    /// Whom the account's generated mail comes from.
    pub fn identity(&self) -> crate::config::Identity {
        crate::config::Identity {
            address: self.address.clone(),
            name: self.display_name.clone(),
        }
    }

    /// Whether mail to `recipient` (an envelope address) is delivered to this account:
    /// compared case-insensitively, with a `+detail` after the local part ignored.
    pub fn receives(&self, recipient: &str) -> bool {
        let r = recipient.trim().to_ascii_lowercase();
        let base = match r.split_once('@') {
            Some((local, domain)) => match local.split_once('+') {
                Some((l, _)) => format!("{l}@{domain}"),
                None => r.clone(),
            },
            None => r.clone(),
        };
        self.recipients.iter().any(|a| *a == r || *a == base)
    }
}

/// The password of table `prefix` (`password_env`, `password_file` or `password_command`,
/// at most one); `span`: where an error points.
pub(super) fn password_of(
    fields: [&Option<String>; 3],
    base: &Path,
    span: std::ops::Range<usize>,
    prefix: &str,
) -> Result<Option<PasswordSource>, Invalid> {
    one_source(fields, base).map_err(|()| {
        (
            span,
            format!("{prefix}.password_*"),
            "give only one of password_env, password_file, password_command".to_string(),
        )
    })
}

/// A file the config names (relative to the config), which must exist; `key` names it in
/// the error.
pub(super) fn existing_file(
    file: &Option<Spanned<String>>,
    base: &Path,
    key: String,
) -> Result<Option<PathBuf>, Invalid> {
    let Some(f) = file else {
        return Ok(None);
    };
    let p = base.join(f.get_ref());
    if !p.is_file() {
        return Err((f.span(), key, format!("{} does not exist", p.display())));
    }
    Ok(Some(p))
}

/// The secret given as `*_env`, `*_file` (relative to the config) or `*_command`: at most
/// one of the three (`Err(())` when more are given).
fn one_source(
    [env, file, command]: [&Option<String>; 3],
    base: &Path,
) -> Result<Option<PasswordSource>, ()> {
    let mut given = [
        env.clone().map(PasswordSource::Env),
        file.as_ref().map(|f| PasswordSource::File(base.join(f))),
        command.clone().map(PasswordSource::Command),
    ]
    .into_iter()
    .flatten();
    let first = given.next();
    match given.next() {
        Some(_) => Err(()),
        None => Ok(first),
    }
}

/// What an account's server table starts from: the provider's preset, if any.
pub(super) struct ServerDefaults {
    /// Host, port and TLS of the preset.
    pub preset: Option<&'static super::providers::Endpoint>,
    /// Default ports for implicit TLS, STARTTLS and none.
    pub ports: [u16; 3],
    pub auth: Auth,
    /// The user name when the table gives none (the account's address with a provider).
    pub username: Option<String>,
}

pub(super) type Invalid = (std::ops::Range<usize>, String, String);

/// Validate one server table (`raw` may be absent when a provider fills it);
/// `Err((span, key, message))`. `whole` is the span to blame when the table is missing.
pub(super) fn server(
    raw: Option<&RawServer>,
    prefix: &str,
    defaults: &ServerDefaults,
    whole: std::ops::Range<usize>,
    base: &Path,
) -> Result<ServerConfig, Invalid> {
    let empty = RawServer::default();
    let raw = raw.unwrap_or(&empty);
    let span = raw.host.as_ref().map(|h| h.span()).unwrap_or(whole);
    let host = match (&raw.host, defaults.preset) {
        (Some(h), _) => h.get_ref().trim().to_string(),
        (None, Some(p)) => p.host.to_string(),
        (None, None) => {
            return Err((
                span,
                format!("{prefix}.host"),
                "missing: give host (or a provider)".into(),
            ))
        }
    };
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err((
            span,
            format!("{prefix}.host"),
            "must be a host name or IP address".into(),
        ));
    }
    // The preset's TLS and port count only when the table does not name its own host.
    let preset = defaults.preset.filter(|_| raw.host.is_none());
    let tls = raw.tls.or(preset.map(|p| p.tls)).unwrap_or_default();
    if tls == TlsMode::None && !raw.allow_insecure && !is_loopback(&host) {
        return Err((
            span,
            format!("{prefix}.tls"),
            format!(
                "tls = \"none\" sends the password in clear text to {host}; use \"implicit\" or \"starttls\", \
                 or set allow_insecure = true if you really mean it"
            ),
        ));
    }
    let password = password_of(
        [&raw.password_env, &raw.password_file, &raw.password_command],
        base,
        span.clone(),
        prefix,
    )?;
    let ca_file = existing_file(&raw.ca_file, base, format!("{prefix}.ca_file"))?;
    let tls_pin = match (&raw.tls_fingerprint, &raw.tls_cert) {
        (Some(_), Some(c)) => {
            return Err((
                c.span(),
                format!("{prefix}.tls_cert"),
                "give tls_fingerprint or tls_cert, not both".into(),
            ))
        }
        (Some(f), None) => Some(
            crate::model::endpoint::Fingerprint::parse(f.get_ref())
                .map_err(|m| (f.span(), format!("{prefix}.tls_fingerprint"), m))?,
        ),
        (None, Some(c)) => {
            let p = base.join(c.get_ref());
            Some(
                crate::model::endpoint::Fingerprint::of_pem_file(&p).map_err(|m| {
                    (
                        c.span(),
                        format!("{prefix}.tls_cert"),
                        format!("{}: {m}", p.display()),
                    )
                })?,
            )
        }
        (None, None) => None,
    };
    if tls_pin.is_some() && ca_file.is_some() {
        return Err((
            span,
            format!("{prefix}.ca_file"),
            "a pinned certificate (tls_fingerprint / tls_cert) replaces ca_file: give one".into(),
        ));
    }
    let port = raw.port.or(preset.map(|p| p.port)).unwrap_or(match tls {
        TlsMode::Implicit => defaults.ports[0],
        TlsMode::Starttls => defaults.ports[1],
        TlsMode::None => defaults.ports[2],
    });
    if let (Some(k), false) = (&raw.keep, prefix == "account.pop3") {
        return Err((
            k.span(),
            format!("{prefix}.keep"),
            "keep is a key of [account.pop3] (whether messages stay on the POP3 server)".into(),
        ));
    }
    let auth = raw.auth.unwrap_or(defaults.auth);
    if auth != Auth::Password && password.is_some() {
        return Err((
            span,
            format!("{prefix}.auth"),
            "an OAuth2 login takes its token from [account.oauth2], not from password_*".into(),
        ));
    }
    Ok(ServerConfig {
        host,
        port,
        tls,
        ca_file,
        tls_pin,
        username: raw.username.clone().or_else(|| defaults.username.clone()),
        password,
        auth,
        oauth2: None,
    })
}

/// Validate `[account.oauth2]`; `preset` fills endpoints and scopes it does not give.
pub(super) fn oauth2(
    account: &str,
    raw: &RawOAuth2,
    preset: Option<&super::providers::OAuth2Preset>,
    whole: std::ops::Range<usize>,
    base: &Path,
    state_dir: &Path,
) -> Result<crate::model::credentials::TokenSource, Invalid> {
    use crate::model::credentials::{OAuth2Client, TokenSource};
    use crate::model::endpoint::Url;
    let key = |k: &str| format!("account.oauth2.{k}");
    if let Some(cmd) = &raw.token_command {
        if raw.client_id.is_some() {
            return Err((
                cmd.span(),
                key("token_command"),
                "give token_command or client_id, not both".into(),
            ));
        }
        return Ok(TokenSource::Command(cmd.get_ref().clone()));
    }
    let Some(client_id) = &raw.client_id else {
        return Err((
            whole,
            key("client_id"),
            "missing: give client_id (mailpipe refreshes tokens) or token_command".into(),
        ));
    };
    let url = |given: &Option<Spanned<String>>, fallback: Option<&str>, name: &str| match given {
        Some(u) => Url::parse(u.get_ref())
            .map(Some)
            .map_err(|m| (u.span(), key(name), m)),
        None => Ok(fallback.map(|f| Url::parse(f).expect("preset addresses are valid"))),
    };
    let token_url =
        url(&raw.token_url, preset.map(|p| p.token_url), "token_url")?.ok_or_else(|| {
            (
                client_id.span(),
                key("token_url"),
                "missing: give token_url (or a provider)".into(),
            )
        })?;
    let auth_url = url(&raw.auth_url, preset.map(|p| p.auth_url), "auth_url")?;
    let device_url = url(
        &raw.device_url,
        preset.and_then(|p| p.device_url),
        "device_url",
    )?;
    let client_secret = one_source(
        [
            &raw.client_secret_env,
            &raw.client_secret_file,
            &raw.client_secret_command,
        ],
        base,
    )
    .map_err(|()| {
        (
            client_id.span(),
            key("client_secret_*"),
            "give only one of client_secret_env, client_secret_file, client_secret_command"
                .to_string(),
        )
    })?;
    let scopes = raw
        .scopes
        .clone()
        .or_else(|| preset.map(|p| p.scopes.iter().map(|s| s.to_string()).collect()))
        .unwrap_or_default();
    if scopes
        .iter()
        .any(|s| s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err((
            client_id.span(),
            key("scopes"),
            "a scope is empty or contains white space".into(),
        ));
    }
    let token_file = match &raw.token_file {
        Some(f) => base.join(f.get_ref()),
        None => state_dir.join("oauth2").join(format!("{account}.json")),
    };
    Ok(TokenSource::Refresh(Box::new(OAuth2Client {
        client_id: client_id.get_ref().clone(),
        client_secret,
        token_url,
        auth_url,
        device_url,
        scopes,
        token_file,
        redirect_port: raw.redirect_port.unwrap_or(0),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in ["localhost", "127.0.0.1", "127.5.0.1", "::1", "[::1]"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "example.com",
            "10.0.0.1",
            "192.168.1.1",
            "localhost.example.com",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[tokio::test]
    async fn passwords_from_env_file_and_command_and_never_in_debug() {
        std::env::set_var("MAILPIPE_TEST_PW", "from-env");
        let s = PasswordSource::Env("MAILPIPE_TEST_PW".into())
            .resolve()
            .await
            .unwrap();
        assert_eq!(s.expose(), "from-env");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "from-file\nignored\n").unwrap();
        let s = PasswordSource::File(dir.path().join("pw"))
            .resolve()
            .await
            .unwrap();
        assert_eq!(s.expose(), "from-file");
        let s = PasswordSource::Command("printf 'tok\\n'".into())
            .resolve()
            .await
            .unwrap();
        assert_eq!(s.expose(), "tok");
        assert!(PasswordSource::Command("exit 3".into())
            .resolve()
            .await
            .is_err());
        assert!(PasswordSource::Env("MAILPIPE_UNSET_VAR_X".into())
            .resolve()
            .await
            .is_err());
    }
}
