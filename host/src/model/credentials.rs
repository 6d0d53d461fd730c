//! Credentials as values: how mailpipe logs in (`Auth`), where a password comes from
//! (`PasswordSource`) and the password itself (`Secret`, never shown in logs or debug
//! output), and an account's OAuth2 token source with its cache (`OAuth2`; the network side
//! of getting a token is `net::auth`). Config parses into these; net and the sources use them.

use serde::Deserialize;
use std::path::PathBuf;

use super::endpoint::Url;

/// How mailpipe logs in to a server.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    /// LOGIN / PLAIN with password_env, password_file or password_command (app passwords).
    #[default]
    Password,
    /// Google's and Microsoft's SASL mechanism for OAuth2 bearer tokens.
    Xoauth2,
    /// RFC 7628's SASL mechanism for OAuth2 bearer tokens.
    Oauthbearer,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PasswordSource {
    Env(String),
    File(PathBuf),
    Command(String),
    /// A password a user typed for this one login (a ManageSieve login checked against the
    /// account's IMAP server); held in memory only, never stored or logged.
    Given(Secret),
}

/// A password that never shows up in logs or debug output.
#[derive(Clone, PartialEq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: String) -> Secret {
        Secret(text)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl PasswordSource {
    /// Fetch the password now (a command runs each time: tokens may be short-lived).
    pub async fn resolve(&self) -> Result<Secret, String> {
        let text = match self {
            PasswordSource::Given(secret) => return Ok(secret.clone()),
            PasswordSource::Env(var) => {
                std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?
            }
            PasswordSource::File(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read password file {}: {e}", path.display()))?,
            PasswordSource::Command(cmd) => {
                // A command may ask for a passphrase (gpg-agent); it gets two minutes.
                let run = tokio::process::Command::new("sh")
                    .arg("-c")
                    .arg(cmd)
                    .stdin(std::process::Stdio::null())
                    .kill_on_drop(true)
                    .output();
                let out = tokio::time::timeout(std::time::Duration::from_secs(120), run)
                    .await
                    .map_err(|_| "password_command did not finish within 120 s".to_string())?
                    .map_err(|e| format!("cannot run password_command: {e}"))?;
                if !out.status.success() {
                    return Err(format!("password_command exited with {}", out.status));
                }
                String::from_utf8(out.stdout)
                    .map_err(|_| "password_command printed non-UTF-8".to_string())?
            }
        };
        // Like PassCmd: the first line, without its line end.
        Ok(Secret(text.lines().next().unwrap_or("").to_string()))
    }
}

/// A registered OAuth2 client and the endpoints of its provider.
#[derive(Debug, Clone)]
pub struct OAuth2Client {
    pub client_id: String,
    pub client_secret: Option<PasswordSource>,
    pub token_url: Url,
    pub auth_url: Option<Url>,
    pub device_url: Option<Url>,
    pub scopes: Vec<String>,
    /// Where the refresh token and the cached access token are kept (mode 0600).
    pub token_file: PathBuf,
    /// Port of the loopback redirect in the browser flow (0: any free one).
    pub redirect_port: u16,
}

/// Where tokens come from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// The user's command prints a valid access token.
    Command(String),
    /// mailpipe refreshes tokens itself.
    Refresh(Box<OAuth2Client>),
    /// A token a client presented (a ManageSieve login), checked by logging in with it:
    /// used as it is, never renewed.
    Given(Secret),
}

/// The token source of one account with its cached access token, shared by the account's
/// IMAP and SMTP connections.
pub struct OAuth2 {
    pub account: String,
    pub source: TokenSource,
    pub(crate) cache: tokio::sync::Mutex<Option<(Secret, u64)>>,
}

impl std::fmt::Debug for OAuth2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth2")
            .field("account", &self.account)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl OAuth2 {
    pub fn new(account: &str, source: TokenSource) -> OAuth2 {
        OAuth2 {
            account: account.to_string(),
            source,
            cache: tokio::sync::Mutex::new(None),
        }
    }
}
