//! Where mailpipe connects and what it trusts there, as values: loopback or not (plaintext
//! is allowed only there), an OAuth2 endpoint's address (`Url`), and a pinned certificate
//! (`Fingerprint`). Checked when config is read; used by `net` when connecting.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use std::path::Path;

/// How a connection to a mail server is secured.
#[derive(Debug, Clone, Copy, serde::Deserialize, PartialEq, Eq, Default)]
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

/// Whether `host` names this machine (`localhost`, 127.0.0.0/8, ::1).
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An `http(s)://host[:port]/path` address, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Url {
    pub fn parse(text: &str) -> Result<Url, String> {
        let (https, rest) = if let Some(r) = text.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = text.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("{text:?} is not an https:// address"));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        if authority.contains('@') || authority.is_empty() {
            return Err(format!("{text:?}: no host, or credentials in the address"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') && (h.starts_with('[') || !h.contains(':')) => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| format!("{text:?}: bad port {p:?}"))?;
                (h, port)
            }
            _ => (authority, if https { 443 } else { 80 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty()
            || path
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == '#')
        {
            return Err(format!("{text:?} is not a valid address"));
        }
        if !https && !is_loopback(host) {
            return Err(format!(
                "{text:?} is plain http to another machine: an OAuth2 endpoint gets secrets, use https://"
            ));
        }
        Ok(Url {
            https,
            host: host.to_string(),
            port,
            path,
        })
    }

    /// The whole address, as given (no secrets: those go in bodies).
    pub fn origin_path(&self) -> String {
        format!("{}{}", self.origin(), self.path)
    }

    /// The address again, for messages (never carries secrets: they go in bodies).
    pub fn origin(&self) -> String {
        format!(
            "{}://{}:{}",
            if self.https { "https" } else { "http" },
            self.host,
            self.port
        )
    }
}

/// The SHA-256 of a certificate (its DER bytes), as users pin it: `sha256:AB:CD:…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }

    /// `sha256:` and 64 hex digits, with or without colons, any case.
    pub fn parse(text: &str) -> Result<Fingerprint, String> {
        let hex_part = text
            .trim()
            .strip_prefix("sha256:")
            .or_else(|| text.trim().strip_prefix("SHA256:"))
            .ok_or_else(|| format!("{text:?} does not start with \"sha256:\""))?;
        let digits: String = hex_part.chars().filter(|c| *c != ':').collect();
        let bytes = hex::decode(&digits)
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| format!("{text:?} is not sha256: followed by 64 hex digits"))?;
        Ok(Fingerprint(bytes.try_into().expect("32 bytes")))
    }

    /// The fingerprint of the (first) certificate in a PEM file.
    pub fn of_pem_file(path: &Path) -> Result<Fingerprint, String> {
        let cert = CertificateDer::pem_file_iter(path)
            .map_err(|e| e.to_string())?
            .next()
            .ok_or("no PEM certificate in it")?
            .map_err(|e| e.to_string())?;
        Ok(Fingerprint::of(&cert))
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hex: Vec<String> = self.0.iter().map(|b| format!("{b:02X}")).collect();
        write!(f, "sha256:{}", hex.join(":"))
    }
}
