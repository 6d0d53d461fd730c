//! Opening an authenticated IMAP session with the account's TLS mode: implicit TLS,
//! STARTTLS (refusing to log in if the upgrade fails) or plain (loopback / explicit opt-in,
//! checked by the config). Every step has a time limit so a dead server is noticed.

use async_imap::{Client, Session};
use std::fmt::Debug;
use std::time::Duration;
use tokio::net::TcpStream;

use super::wire::{self, Completion, Io, Watched};
use crate::config::{Auth, ServerConfig, TlsMode};
use crate::model::credentials::TokenSource;
use crate::net::auth::{sasl, AuthError, BearerExchange};
use crate::net::tls::{self, TlsError};

pub type ImapSession = Session<Watched>;

/// How long one IMAP command may take before the connection is declared dead, unless the
/// account sets `timeout_seconds` (see `with_deadline`).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest message accepted from a server unless the account sets `max_message_mb`.
pub const DEFAULT_MAX_MESSAGE: u64 = 50 << 20;

tokio::task_local! {
    /// The command deadline of the account whose work runs in this task.
    static DEADLINE: Duration;
}

/// Run `fut` (an account's IMAP work) with `deadline` for each of its commands.
pub async fn with_deadline<F: std::future::Future>(deadline: Duration, fut: F) -> F::Output {
    DEADLINE.scope(deadline, fut).await
}

/// The command deadline in force for this task.
pub fn deadline() -> Duration {
    DEADLINE.try_with(|d| *d).unwrap_or(COMMAND_TIMEOUT)
}

#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("cannot connect to {host}:{port}: {message}")]
    Connect {
        host: String,
        port: u16,
        message: String,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("login as {user} failed: {message}")]
    Login { user: String, message: String },
    #[error("password for {user}: {message}")]
    Password { user: String, message: String },
    #[error("IMAP {context}: {message}")]
    Protocol { context: String, message: String },
    /// The server answered NO or BAD.
    #[error("IMAP {context} refused by the server: {message}")]
    Refused { context: String, message: String },
    #[error("IMAP {context}: no answer within {secs} s")]
    Timeout { context: String, secs: u64 },
    #[error("state store: {0}")]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    OAuth2(#[from] AuthError),
}

impl ImapError {
    /// Worth retrying after a pause (network, server restarts), as opposed to a problem
    /// the user has to fix (certificate, credentials).
    pub fn is_transient(&self) -> bool {
        match self {
            ImapError::OAuth2(e) => e.is_transient(),
            other => matches!(
                other,
                ImapError::Connect { .. }
                    | ImapError::Protocol { .. }
                    | ImapError::Refused { .. }
                    | ImapError::Timeout { .. }
            ),
        }
    }

    /// A step that got no answer within the deadline in force.
    pub fn timeout(context: &str) -> ImapError {
        ImapError::Timeout {
            context: context.to_string(),
            secs: deadline().as_secs(),
        }
    }

    pub fn protocol(context: impl Into<String>, e: impl std::fmt::Display) -> ImapError {
        ImapError::Protocol {
            context: context.into(),
            message: e.to_string(),
        }
    }
}

/// Run `fut` with the command time limit.
pub async fn timed<T, E: std::fmt::Display + 'static>(
    context: &str,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, ImapError> {
    match tokio::time::timeout(deadline(), fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(classify(context, &e)),
        Err(_) => Err(ImapError::timeout(context)),
    }
}

/// Our error for one of async-imap's: a NO or BAD is the server refusing this command
/// (the connection is fine; see `ImapError::Refused`); server bytes it could not parse are
/// shown escaped, never as a list of numbers.
fn classify<E: std::fmt::Display + 'static>(context: &str, e: &E) -> ImapError {
    use async_imap::error::{Error, ParseError};
    let Some(e) = (e as &dyn std::any::Any).downcast_ref::<Error>() else {
        return ImapError::protocol(context, e);
    };
    match e {
        Error::No(text) | Error::Bad(text) => ImapError::Refused {
            context: context.to_string(),
            message: text.clone(),
        },
        Error::Parse(ParseError::Invalid(bytes)) => ImapError::protocol(
            context,
            format!(
                "unreadable response from the server: {}",
                wire::readable(bytes)
            ),
        ),
        Error::Parse(ParseError::DataNotUtf8(bytes, _)) => ImapError::protocol(
            context,
            format!(
                "the server sent text that is not UTF-8: {}",
                wire::readable(bytes)
            ),
        ),
        other => ImapError::protocol(context, other),
    }
}

/// Whether the last command on `session` really completed with OK: a response stream that
/// ended without its tagged completion (connection closed, BYE) or with NO/BAD is an error.
pub fn completed(session: &ImapSession, context: &str) -> Result<(), ImapError> {
    let st = session.get_ref().state();
    match st.last_completion() {
        Some(Completion::Ok) => Ok(()),
        Some(Completion::Refused(text)) => Err(ImapError::Refused {
            context: context.to_string(),
            message: text,
        }),
        None => Err(ImapError::protocol(
            context,
            match st.bye() {
                Some(bye) => {
                    format!("the server ended the connection before the command completed ({bye})")
                }
                None => "the connection ended before the command completed".to_string(),
            },
        )),
    }
}

/// Connect with the default message size limit.
pub async fn connect(server: &ServerConfig) -> Result<ImapSession, ImapError> {
    connect_with(server, DEFAULT_MAX_MESSAGE).await
}

/// Connect and log in; literals from the server larger than `max_message` (plus room for
/// protocol overhead) end the connection before they are read into memory.
pub async fn connect_with(
    server: &ServerConfig,
    max_message: u64,
) -> Result<ImapSession, ImapError> {
    let (host, port) = (server.host.as_str(), server.port);
    let connect_err = |message: String| ImapError::Connect {
        host: host.to_string(),
        port,
        message,
    };
    let tcp = tokio::time::timeout(deadline(), TcpStream::connect((host, port)))
        .await
        .map_err(|_| connect_err("timed out".into()))?
        .map_err(|e| connect_err(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Io> = match server.tls {
        TlsMode::None => Box::new(tcp),
        TlsMode::Implicit => {
            let client = tls::client(server.ca_file.as_deref(), server.tls_pin)?;
            Box::new(handshake(tcp, host, &client).await?)
        }
        TlsMode::Starttls => {
            let tls_client = tls::client(server.ca_file.as_deref(), server.tls_pin)?;
            let mut client = Client::new(tcp);
            timed("greeting", async {
                client.read_response().await.map(|_| ())
            })
            .await?;
            timed(
                "STARTTLS",
                client.run_command_and_check_ok("STARTTLS", None),
            )
            .await?;
            Box::new(handshake(client.into_inner(), host, &tls_client).await?)
        }
    };
    let mut client = Client::new(Watched::new(stream, max_message.saturating_add(64 << 10)));
    if server.tls != TlsMode::Starttls {
        let greeting = timed("greeting", client.read_response()).await?;
        if greeting.is_none() {
            return Err(connect_err("closed before its greeting".into()));
        }
    }
    let user = server.username.clone().unwrap_or_default();
    if server.auth != Auth::Password {
        return authenticate_bearer(client, server, user).await;
    }
    let password = match &server.password {
        Some(source) => source
            .resolve()
            .await
            .map_err(|message| ImapError::Password {
                user: user.clone(),
                message,
            })?,
        None => {
            return Err(ImapError::Password {
                user,
                message: "no password_env, password_file or password_command".into(),
            })
        }
    };
    match tokio::time::timeout(deadline(), client.login(&user, password.expose())).await {
        Err(_) => Err(ImapError::timeout("LOGIN")),
        // The connection broke (a busy server at its limit closes new ones): try again
        // soon, as after any network trouble, not in 5 minutes as after a refused login.
        Ok(Err((e, _))) if !answered(&e) => Err(ImapError::protocol(
            format!("LOGIN as {user}"),
            format!("{e} (no answer to the login; trying again)"),
        )),
        Ok(Err((e, _))) => Err(ImapError::Login {
            user,
            message: e.to_string(),
        }),
        Ok(Ok(session)) => Ok(session),
    }
}

/// Whether the server answered a login (NO or BAD: the credentials or the account are the
/// problem), as opposed to the connection breaking before it did.
fn answered(e: &async_imap::error::Error) -> bool {
    matches!(
        e,
        async_imap::error::Error::No(_) | async_imap::error::Error::Bad(_)
    )
}

/// AUTHENTICATE XOAUTH2 / OAUTHBEARER with the account's access token; a refused token is
/// renewed once (it may have been revoked or expired early) before the login fails.
async fn authenticate_bearer(
    mut client: Client<Watched>,
    server: &ServerConfig,
    user: String,
) -> Result<ImapSession, ImapError> {
    let tokens = server.oauth2.as_ref().ok_or_else(|| ImapError::Password {
        user: user.clone(),
        message: "no [account.oauth2] for this OAuth2 login".into(),
    })?;
    let mechanism = sasl::name(server.auth);
    let mut renew = false;
    loop {
        let token = tokens.access_token(renew).await?;
        let initial = sasl::initial_response(
            server.auth,
            &user,
            &server.host,
            server.port,
            token.expose(),
        )
        .map_err(|message| ImapError::Password {
            user: user.clone(),
            message,
        })?;
        let exchange = BearerExchange::new(server.auth, initial);
        let reason = exchange.error.clone();
        match tokio::time::timeout(deadline(), client.authenticate(mechanism, exchange)).await {
            Err(_) => return Err(ImapError::timeout(&format!("AUTHENTICATE {mechanism}"))),
            Ok(Ok(session)) => return Ok(session),
            Ok(Err((e, back))) => {
                let said = reason.lock().expect("not poisoned").take();
                // Renew only when the server refused the token (its error challenge, or a
                // NO), not when the connection broke.
                let refused = said.is_some() || matches!(e, async_imap::error::Error::No(_));
                let renewable = !matches!(tokens.source, TokenSource::Given(_));
                if !renew && refused && renewable {
                    renew = true;
                    client = back;
                    continue;
                }
                if !refused && !answered(&e) {
                    return Err(ImapError::protocol(
                        format!("AUTHENTICATE {mechanism} as {user}"),
                        format!("{e} (no answer to the login; trying again)"),
                    ));
                }
                return Err(ImapError::Login {
                    user,
                    message: match said {
                        Some(why) => format!("{mechanism}: {why}; {e}"),
                        None => format!("{mechanism}: {e}"),
                    },
                });
            }
        }
    }
}

/// The TLS handshake, with the command deadline: a server that answers with garbage or
/// nothing must not hang mailpipe.
async fn handshake(
    stream: TcpStream,
    host: &str,
    client: &tls::Client,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ImapError> {
    match tokio::time::timeout(deadline(), tls::handshake(stream, host, client)).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(ImapError::timeout("TLS handshake")),
    }
}

/// The wire name of the user's `folder` on this session's server; a name the server cannot
/// hold is refused like a server refusal (it concerns only what would use it).
pub fn server_name(session: &ImapSession, folder: &str) -> Result<String, ImapError> {
    session
        .get_ref()
        .state()
        .namespace
        .encode(folder)
        .map_err(|message| ImapError::Refused {
            context: "folder name".into(),
            message,
        })
}
