//! Why this file exists: `[lmtp]`, where the daemon takes mail from the mail server at
//! delivery time (LMTP, RFC 2033), for the accounts with `[account.deliver]` (issue 25):
//!
//! ```toml
//! [lmtp]
//! listen = "127.0.0.1:2424"        # or "unix:/run/mailpipe/lmtp" (Postfix lmtp:unix:...)
//! max_message_mb = 50              # SIZE, larger messages are refused (552)
//! max_recipients = 100             # per transaction (452 beyond)
//! ```
//!
//! LMTP has no login: whoever can connect can deliver mail to every account. A TCP listener
//! may therefore be on a loopback address only; a unix socket is as private as its directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLmtp {
    listen: Spanned<String>,
    max_message_mb: Option<Spanned<u64>>,
    max_recipients: Option<Spanned<usize>>,
}

/// Where the LMTP server listens.
#[derive(Debug, Clone, PartialEq)]
pub enum LmtpListen {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub struct LmtpSettings {
    pub listen: LmtpListen,
    pub max_message_bytes: u64,
    pub max_recipients: usize,
}

impl RawLmtp {
    /// The settings, or the span and key of what is wrong and why.
    pub(super) fn settings(
        &self,
        base: &Path,
    ) -> Result<LmtpSettings, (std::ops::Range<usize>, &'static str, String)> {
        let text = self.listen.get_ref().trim();
        let listen = if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err((
                    self.listen.span(),
                    "lmtp.listen",
                    "unix: needs a path".into(),
                ));
            }
            LmtpListen::Unix(base.join(path))
        } else {
            let addr: SocketAddr = text.parse().map_err(|_| {
                (
                    self.listen.span(),
                    "lmtp.listen",
                    format!(
                        "{text:?} is neither an address and port (\"127.0.0.1:2424\") nor a unix socket (\"unix:/run/mailpipe/lmtp\")"
                    ),
                )
            })?;
            if !addr.ip().is_loopback() {
                return Err((
                    self.listen.span(),
                    "lmtp.listen",
                    "LMTP has no login (anyone who connects can deliver to every account): \
                     listen on a loopback address or a unix socket"
                        .into(),
                ));
            }
            LmtpListen::Tcp(addr)
        };
        let max_message_bytes = match &self.max_message_mb {
            None => 50 << 20,
            Some(n) if (1..=2048).contains(n.get_ref()) => *n.get_ref() << 20,
            Some(n) => {
                return Err((
                    n.span(),
                    "lmtp.max_message_mb",
                    "must be between 1 and 2048".into(),
                ))
            }
        };
        let max_recipients = match &self.max_recipients {
            None => 100,
            Some(n) if (1..=1000).contains(n.get_ref()) => *n.get_ref(),
            Some(n) => {
                return Err((
                    n.span(),
                    "lmtp.max_recipients",
                    "must be between 1 and 1000".into(),
                ))
            }
        };
        Ok(LmtpSettings {
            listen,
            max_message_bytes,
            max_recipients,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LmtpSettings, String> {
        let raw: RawLmtp = toml::from_str(text).map_err(|e| e.to_string())?;
        raw.settings(Path::new("/etc/mailpipe"))
            .map_err(|(_, key, m)| format!("{key}: {m}"))
    }

    #[test]
    fn loopback_or_a_unix_socket_only() {
        let s = parse("listen = \"127.0.0.1:2424\"").unwrap();
        assert_eq!(s.listen, LmtpListen::Tcp("127.0.0.1:2424".parse().unwrap()));
        assert_eq!((s.max_message_bytes, s.max_recipients), (50 << 20, 100));
        let s = parse("listen = \"unix:lmtp.sock\"\nmax_recipients = 5").unwrap();
        assert_eq!(s.listen, LmtpListen::Unix("/etc/mailpipe/lmtp.sock".into()));
        assert_eq!(s.max_recipients, 5);
        assert!(parse("listen = \"0.0.0.0:2424\"")
            .unwrap_err()
            .contains("loopback"));
        assert!(parse("listen = \"lmtp\"")
            .unwrap_err()
            .contains("unix socket"));
        assert!(parse("listen = \"127.0.0.1:1\"\nmax_message_mb = 0")
            .unwrap_err()
            .contains("between"));
    }
}
