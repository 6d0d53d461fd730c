//! Why this file exists: `[managesieve]`, where the daemon's ManageSieve server listens and
//! how much each account may keep there (issue 23):
//!
//! ```toml
//! [managesieve]
//! listen = "127.0.0.1:4190"
//! max_scripts = 32            # per account
//! max_script_bytes = 262144   # per script
//! ```
//!
//! Logins carry the account's own password; without TLS (not offered yet) the server listens
//! on a loopback address only.

use std::net::SocketAddr;

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
}

#[derive(Debug, Clone, PartialEq)]
pub struct ManageSieveSettings {
    pub listen: SocketAddr,
    pub max_scripts: usize,
    pub max_script_bytes: usize,
}

impl RawManageSieve {
    /// The settings, or the span and key of what is wrong and why.
    pub(super) fn settings(
        &self,
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
        if !listen.ip().is_loopback() {
            return Err((
                self.listen.span(),
                "managesieve.listen",
                "ManageSieve logins carry the account's password and mailpipe does not offer TLS \
                 for them yet: listen on a loopback address (127.0.0.1 or ::1), e.g. behind a \
                 TLS proxy"
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
        })
    }
}
