//! `[[account]]` tables: an IMAP server to read from (and SMTP to send through) with TLS
//! settings and where the password comes from. Plain-text connections are refused unless
//! the server is on loopback or the user says `allow_insecure = true`; passwords come from
//! the environment, a file or a command (like mbsync's PassCmd) and are never logged.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

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
    /// Envelope sender of automatic replies; RFC 3834 recommends the null path "" (default).
    pub reply_envelope_from: Option<Spanned<String>>,
    pub imap: RawServer,
    pub smtp: Option<RawServer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub host: Spanned<String>,
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: TlsMode,
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
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    #[default]
    Implicit,
    /// Plain connection upgraded with STARTTLS before login.
    Starttls,
    /// No TLS: only to loopback, or with `allow_insecure = true`.
    None,
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

#[derive(Debug, Clone, PartialEq)]
pub enum PasswordSource {
    Env(String),
    File(PathBuf),
    Command(String),
}

/// A password that never shows up in logs or debug output.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
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

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// Trust only this CA (PEM) instead of the built-in web PKI roots.
    pub ca_file: Option<PathBuf>,
    /// Trust exactly the certificate with this fingerprint (from `tls_fingerprint` or
    /// `tls_cert`), for self-signed servers.
    pub tls_pin: Option<crate::net::tls::Fingerprint>,
    pub username: Option<String>,
    pub password: Option<PasswordSource>,
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
    pub reply_envelope_from: String,
    pub imap: ServerConfig,
    pub smtp: Option<ServerConfig>,
}

pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Validate one server table; `Err((span, key, message))`.
pub(super) fn server(
    raw: &RawServer,
    prefix: &str,
    default_ports: [u16; 3],
    base: &Path,
) -> Result<ServerConfig, (std::ops::Range<usize>, String, String)> {
    let host = raw.host.get_ref().trim().to_string();
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err((
            raw.host.span(),
            format!("{prefix}.host"),
            "must be a host name or IP address".into(),
        ));
    }
    if raw.tls == TlsMode::None && !raw.allow_insecure && !is_loopback(&host) {
        return Err((
            raw.host.span(),
            format!("{prefix}.tls"),
            format!(
                "tls = \"none\" sends the password in clear text to {host}; use \"implicit\" or \"starttls\", \
                 or set allow_insecure = true if you really mean it"
            ),
        ));
    }
    let sources: Vec<PasswordSource> = [
        raw.password_env.clone().map(PasswordSource::Env),
        raw.password_file
            .as_ref()
            .map(|f| PasswordSource::File(base.join(f))),
        raw.password_command.clone().map(PasswordSource::Command),
    ]
    .into_iter()
    .flatten()
    .collect();
    if sources.len() > 1 {
        return Err((
            raw.host.span(),
            format!("{prefix}.password_*"),
            "give only one of password_env, password_file, password_command".into(),
        ));
    }
    let ca_file = match &raw.ca_file {
        Some(f) => {
            let p = base.join(f.get_ref());
            if !p.is_file() {
                return Err((
                    f.span(),
                    format!("{prefix}.ca_file"),
                    format!("{} does not exist", p.display()),
                ));
            }
            Some(p)
        }
        None => None,
    };
    let tls_pin = match (&raw.tls_fingerprint, &raw.tls_cert) {
        (Some(_), Some(c)) => {
            return Err((
                c.span(),
                format!("{prefix}.tls_cert"),
                "give tls_fingerprint or tls_cert, not both".into(),
            ))
        }
        (Some(f), None) => Some(
            crate::net::tls::Fingerprint::parse(f.get_ref())
                .map_err(|m| (f.span(), format!("{prefix}.tls_fingerprint"), m))?,
        ),
        (None, Some(c)) => {
            let p = base.join(c.get_ref());
            Some(crate::net::tls::Fingerprint::of_pem_file(&p).map_err(|m| {
                (
                    c.span(),
                    format!("{prefix}.tls_cert"),
                    format!("{}: {m}", p.display()),
                )
            })?)
        }
        (None, None) => None,
    };
    if tls_pin.is_some() && ca_file.is_some() {
        return Err((
            raw.host.span(),
            format!("{prefix}.ca_file"),
            "a pinned certificate (tls_fingerprint / tls_cert) replaces ca_file: give one".into(),
        ));
    }
    let port = raw.port.unwrap_or(match raw.tls {
        TlsMode::Implicit => default_ports[0],
        TlsMode::Starttls => default_ports[1],
        TlsMode::None => default_ports[2],
    });
    Ok(ServerConfig {
        host,
        port,
        tls: raw.tls,
        ca_file,
        tls_pin,
        username: raw.username.clone(),
        password: sources.into_iter().next(),
    })
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
