//! Why this file exists: `[managesieve]`, where the daemon's ManageSieve server listens and
//! how much each account may keep there (issue 23):
//!
//! ```toml
//! [managesieve]
//! listen = "127.0.0.1:4190"
//! max_scripts = 32            # per account
//! max_script_bytes = 262144   # per script
//! tls_cert = "/etc/mailpipe/sieve.pem"   # chain (PEM); with tls_key: TLS is offered
//! tls_key = "/etc/mailpipe/sieve.key"
//! tls = "starttls"                       # or "implicit" (TLS from the first byte)
//! ```
//!
//! Logins carry the account's own password: they are accepted over TLS or from loopback only,
//! and without TLS the server may listen on a loopback address only.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

pub const DEFAULT_MAX_SCRIPTS: usize = 32;
pub const DEFAULT_MAX_SCRIPT_BYTES: usize = 256 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawManageSieve {
    listen: Spanned<String>,
    max_scripts: Option<Spanned<usize>>,
    max_script_bytes: Option<Spanned<usize>>,
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
    tls: Option<Spanned<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ManageSieveSettings {
    pub listen: SocketAddr,
    pub max_scripts: usize,
    pub max_script_bytes: usize,
    pub tls: Option<ServerTls>,
}

/// The server's certificate and how TLS starts.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// TLS from the first byte (else after STARTTLS).
    pub implicit: bool,
}

impl RawManageSieve {
    /// The settings, or the span and key of what is wrong and why.
    pub(super) fn settings(
        &self,
        base: &Path,
    ) -> Result<ManageSieveSettings, (std::ops::Range<usize>, &'static str, String)> {
        let listen: SocketAddr = self.listen.get_ref().parse().map_err(|_| {
            (
                self.listen.span(),
                "managesieve.listen",
                format!(
                    "{:?} is not an address and port (e.g. \"127.0.0.1:4190\")",
                    self.listen.get_ref()
                ),
            )
        })?;
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => {
                let implicit = match self.tls.as_ref().map(|t| t.get_ref().as_str()) {
                    None | Some("starttls") => false,
                    Some("implicit") => true,
                    Some(other) => {
                        return Err((
                            self.tls.as_ref().map_or(0..0, |t| t.span()),
                            "managesieve.tls",
                            format!("{other:?}: use \"starttls\" or \"implicit\""),
                        ))
                    }
                };
                Some(ServerTls {
                    cert: base.join(c.get_ref()),
                    key: base.join(k.get_ref()),
                    implicit,
                })
            }
            (None, None) if self.tls.is_none() => None,
            _ => {
                return Err((
                    self.listen.span(),
                    "managesieve",
                    "TLS needs both tls_cert and tls_key".into(),
                ))
            }
        };
        if !listen.ip().is_loopback() && tls.is_none() {
            return Err((
                self.listen.span(),
                "managesieve.listen",
                "ManageSieve logins carry the account's password: without tls_cert and tls_key, \
                 listen on a loopback address (127.0.0.1 or ::1)"
                    .into(),
            ));
        }
        let bounded = |v: &Option<Spanned<usize>>, key, default, max: usize| match v {
            None => Ok(default),
            Some(n) if (1..=max).contains(n.get_ref()) => Ok(*n.get_ref()),
            Some(n) => Err((n.span(), key, format!("must be between 1 and {max}"))),
        };
        Ok(ManageSieveSettings {
            listen,
            max_scripts: bounded(
                &self.max_scripts,
                "managesieve.max_scripts",
                DEFAULT_MAX_SCRIPTS,
                1000,
            )?,
            max_script_bytes: bounded(
                &self.max_script_bytes,
                "managesieve.max_script_bytes",
                DEFAULT_MAX_SCRIPT_BYTES,
                1 << 20,
            )?,
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ManageSieveSettings, String> {
        let raw: RawManageSieve = toml::from_str(text).map_err(|e| e.to_string())?;
        raw.settings(Path::new("/etc/mailpipe"))
            .map_err(|(_, key, m)| format!("{key}: {m}"))
    }

    #[test]
    fn passwords_travel_over_tls_or_stay_on_loopback() {
        let s = parse("listen = \"127.0.0.1:4190\"").unwrap();
        assert_eq!(
            (s.max_scripts, s.max_script_bytes, s.tls),
            (32, 262144, None)
        );
        let e = parse("listen = \"0.0.0.0:4190\"").unwrap_err();
        assert!(e.contains("loopback"), "{e}");
        let s = parse("listen = \"0.0.0.0:4190\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\ntls = \"implicit\"").unwrap();
        let tls = s.tls.unwrap();
        assert_eq!(tls.cert, Path::new("/etc/mailpipe/c.pem"));
        assert!(tls.implicit);
        assert!(parse("listen = \"127.0.0.1:4190\"\ntls_cert = \"c.pem\"")
            .unwrap_err()
            .contains("both"));
        assert!(parse(
            "listen = \"127.0.0.1:4190\"\ntls_cert = \"c\"\ntls_key = \"k\"\ntls = \"ssl\""
        )
        .is_err());
        assert!(parse("listen = \"localhost\"")
            .unwrap_err()
            .contains("address and port"));
        assert!(parse("listen = \"127.0.0.1:1\"\nmax_scripts = 0")
            .unwrap_err()
            .contains("between"));
    }
}
