//! `[state]`: where mailpipe keeps what it knows (the embedded file under `dir`, or a shared
//! PostgreSQL schema) and for how long explanations are kept.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::account::{existing_file, password_of, Invalid};
use crate::model::credentials::PasswordSource;
use crate::model::endpoint::is_loopback;

/// `[state] backend`: where the state is kept.
#[derive(Debug, Clone, Default)]
pub enum StateSettings {
    /// The redb file under `[state] dir`.
    #[default]
    Embedded,
    /// A PostgreSQL schema, shared by every process configured with it.
    Postgres(PgSettings),
}

/// `[state]` for PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgSettings {
    /// libpq-style URL or key=value string, without a password.
    pub url: String,
    pub password: Option<PasswordSource>,
    /// The schema holding our tables (created if missing): one per installation.
    pub schema: String,
    /// How long a silent session keeps its accounts: after that the server ends it and the
    /// other processes take them over.
    pub lease: Duration,
    /// TLS to the server, verified against `ca_file` or the web PKI roots.
    pub tls: bool,
    pub ca_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    pub dir: Option<Spanned<String>>,
    /// Days `mailpipe explain` can tell what plugins decided for a message (0: forever).
    pub explain_days: Option<u32>,
    /// "embedded" (default) or "postgres".
    backend: Option<Spanned<String>>,
    /// PostgreSQL: connection URL (`postgres://user@host:port/db`), without the password.
    url: Option<Spanned<String>>,
    password_env: Option<String>,
    password_file: Option<String>,
    password_command: Option<String>,
    /// PostgreSQL: the schema of this installation's tables (default "mailpipe").
    schema: Option<Spanned<String>>,
    /// PostgreSQL: seconds a silent process keeps its accounts (default 10).
    lease_seconds: Option<Spanned<u64>>,
    /// PostgreSQL: TLS (verified) to the server; default on unless every host is on
    /// loopback or a Unix socket.
    tls: Option<bool>,
    /// PostgreSQL: trust only this CA (PEM) for the server's certificate, instead of the
    /// built-in web PKI roots.
    ca_file: Option<Spanned<String>>,
    /// PostgreSQL: allow `tls = false` to a server that is not on loopback.
    #[serde(default)]
    allow_insecure: bool,
}

impl StateSettings {
    /// Where the state is, in words for messages: the directory, or the schema and server.
    pub fn place(&self, dir: &Path) -> String {
        match self {
            // The real path where there is one (`examples/../target/demo/state` reads as
            // `target/demo/state`).
            StateSettings::Embedded => std::fs::canonicalize(dir)
                .unwrap_or_else(|_| dir.to_owned())
                .display()
                .to_string(),
            StateSettings::Postgres(pg) => {
                let server = pg
                    .url
                    .parse::<postgres::Config>()
                    .ok()
                    .and_then(|c| c.get_hosts().first().cloned())
                    .map(|h| match h {
                        postgres::config::Host::Tcp(h) => h,
                        postgres::config::Host::Unix(p) => p.display().to_string(),
                    })
                    .unwrap_or_default();
                format!("PostgreSQL schema {} on {server}", pg.schema)
            }
        }
    }
}

/// Default `[state] lease_seconds`.
pub const DEFAULT_LEASE_SECONDS: u64 = 10;

/// For the test suite only (built with the `test-hooks` feature, scripts/test.sh): with
/// `MAILPIPE_TEST_STATE_POSTGRES` set to a PostgreSQL URL,
/// a config that does not name a backend keeps its state in that database instead of its
/// state directory, in a schema of its own named after the directory (so a test that reopens
/// the directory finds its state again). scripts/test.sh runs the end-to-end suites once more
/// this way: the same tests on both backends.
#[cfg(feature = "test-hooks")]
pub const TEST_POSTGRES_ENV: &str = "MAILPIPE_TEST_STATE_POSTGRES";

/// The state settings `TEST_POSTGRES_ENV` gives a state directory, if it is set.
#[cfg(feature = "test-hooks")]
pub fn test_postgres_for(state_dir: &Path) -> Option<StateSettings> {
    let url = std::env::var(TEST_POSTGRES_ENV).ok()?;
    use sha2::{Digest, Sha256};
    let path = state_dir.to_string_lossy();
    let digest = Sha256::digest(path.trim_end_matches('/').as_bytes());
    Some(StateSettings::Postgres(PgSettings {
        url,
        password: None,
        schema: format!("test_{}", hex::encode(&digest[..10])),
        lease: Duration::from_secs(DEFAULT_LEASE_SECONDS),
        tls: false,
        ca_file: None,
    }))
}

#[cfg_attr(not(feature = "test-hooks"), allow(unused_variables))]
pub(super) fn settings(
    raw: &RawState,
    base: &Path,
    state_dir: &Path,
) -> Result<StateSettings, Invalid> {
    #[cfg(feature = "test-hooks")]
    if raw.backend.is_none() {
        if let Some(test) = test_postgres_for(state_dir) {
            return Ok(test);
        }
    }
    let backend = raw
        .backend
        .as_ref()
        .map_or("embedded", |b| b.get_ref().as_str());
    let pg_only = [
        ("url", raw.url.as_ref().map(|u| u.span())),
        ("ca_file", raw.ca_file.as_ref().map(|u| u.span())),
        ("schema", raw.schema.as_ref().map(|u| u.span())),
        (
            "lease_seconds",
            raw.lease_seconds.as_ref().map(|u| u.span()),
        ),
    ];
    match backend {
        "embedded" => {
            if let Some((key, Some(span))) = pg_only.into_iter().find(|(_, s)| s.is_some()) {
                return Err((
                    span,
                    format!("state.{key}"),
                    "is for backend = \"postgres\" only".into(),
                ));
            }
            Ok(StateSettings::Embedded)
        }
        "postgres" => postgres(raw, base),
        other => Err((
            raw.backend.as_ref().map(|b| b.span()).unwrap_or(0..0),
            "state.backend".into(),
            format!("unknown backend {other:?}: use \"embedded\" or \"postgres\""),
        )),
    }
}

fn postgres(raw: &RawState, base: &Path) -> Result<StateSettings, Invalid> {
    let backend_span = raw.backend.as_ref().map(|b| b.span()).unwrap_or(0..0);
    let Some(url) = &raw.url else {
        return Err((
            backend_span,
            "state.url".into(),
            "backend = \"postgres\" needs url = \"postgres://USER@HOST:PORT/DATABASE\"".into(),
        ));
    };
    let bad = |m: String| (url.span(), "state.url".to_string(), m);
    let parsed: postgres::Config = url
        .get_ref()
        .parse()
        .map_err(|e| bad(format!("not a PostgreSQL URL: {e}")))?;
    if parsed.get_password().is_some() {
        return Err(bad(
            "holds a password; give it with password_env, password_file or password_command \
             (a URL ends up in logs and process lists)"
                .into(),
        ));
    }
    let remote: Vec<&String> = parsed
        .get_hosts()
        .iter()
        .filter_map(|h| match h {
            postgres::config::Host::Tcp(h) if !is_loopback(h) => Some(h),
            _ => None,
        })
        .collect();
    let tls = raw.tls.unwrap_or(!remote.is_empty());
    if let (false, Some(h)) = (tls, remote.first()) {
        if !raw.allow_insecure {
            return Err(bad(format!(
                "tls = false sends the password and the mail's state in clear text to {h}; \
                 leave TLS on, or set allow_insecure = true if the network between is trusted"
            )));
        }
    }
    let ca_file = existing_file(&raw.ca_file, base, "state.ca_file".into())?;
    let password = password_of(
        [&raw.password_env, &raw.password_file, &raw.password_command],
        base,
        url.span(),
        "state",
    )?;
    let schema = match &raw.schema {
        Some(s) => {
            let v = s.get_ref();
            let ok = v.len() <= 63
                && v.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && v.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !ok {
                return Err((
                    s.span(),
                    "state.schema".into(),
                    "must be lower-case letters, digits and _ (not first a digit), at most 63"
                        .into(),
                ));
            }
            v.clone()
        }
        None => "mailpipe".into(),
    };
    let lease = match &raw.lease_seconds {
        Some(l) if !(2..=3600).contains(l.get_ref()) => {
            return Err((
                l.span(),
                "state.lease_seconds".into(),
                format!("must be 2..=3600, not {}", l.get_ref()),
            ))
        }
        Some(l) => *l.get_ref(),
        None => DEFAULT_LEASE_SECONDS,
    };
    Ok(StateSettings::Postgres(PgSettings {
        url: url.get_ref().clone(),
        password,
        schema,
        lease: Duration::from_secs(lease),
        tls,
        ca_file,
    }))
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, StateSettings};
    use std::path::Path;

    const ACCOUNT: &str = "[[account]]\nname = \"a\"\naddress = \"a@example.com\"\n\
        [account.imap]\nhost = \"127.0.0.1\"\ntls = \"none\"\nusername = \"a\"\npassword_env = \"PW\"\n";

    fn parse(state: &str) -> Result<Config, String> {
        Config::parse(
            Path::new("/cfg/mailpipe.toml"),
            &format!("{state}{ACCOUNT}"),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn postgres_settings_are_read_and_checked_with_their_line() {
        #[cfg(feature = "test-hooks")]
        if std::env::var_os(super::TEST_POSTGRES_ENV).is_some() {
            // The test suite's override would hide what the file says; the lib tests never
            // run with it (scripts/test.sh).
            return;
        }
        let c = parse(
            "[state]\nbackend = \"postgres\"\nurl = \"postgres://mp@127.0.0.1:5432/mail\"\n\
             password_file = \"db.pass\"\nlease_seconds = 7\n",
        )
        .unwrap();
        let StateSettings::Postgres(pg) = &c.state else {
            panic!("{:?}", c.state)
        };
        assert_eq!(pg.schema, "mailpipe");
        assert_eq!(pg.lease.as_secs(), 7);
        for (state, expected) in [
            (
                "[state]\nbackend = \"postgres\"\nurl = \"postgres://mp:secret@127.0.0.1/mail\"\n",
                "mailpipe.toml:3: `state.url`: holds a password",
            ),
            (
                "[state]\nbackend = \"postgres\"\nurl = \"postgres://mp@db.example.com/mail\"\ntls = false\n",
                "tls = false sends the password",
            ),
            ("[state]\nbackend = \"postgres\"\n", "`state.url`: backend = \"postgres\" needs url"),
            ("[state]\nbackend = \"mysql\"\n", "mailpipe.toml:2: `state.backend`: unknown backend"),
            ("[state]\nurl = \"postgres://x@127.0.0.1/y\"\n", "is for backend = \"postgres\" only"),
            (
                "[state]\nbackend = \"postgres\"\nurl = \"postgres://x@127.0.0.1/y\"\nschema = \"Bad-Name\"\n",
                "mailpipe.toml:4: `state.schema`",
            ),
            ("[accounts]\ntable = true\n", "mailpipe.toml:2: `accounts.table`: accounts come from a table only"),
        ] {
            let err = parse(state).err().unwrap_or_default();
            assert!(err.contains(expected), "{state:?}: {err}");
        }
        // Secrets never show in what is printed of the settings.
        assert!(!format!("{:?}", c.state).contains("secret"));
    }
}
