//! Opening an authenticated IMAP session with the account's TLS mode: implicit TLS,
//! STARTTLS (refusing to log in if the upgrade fails) or plain (loopback / explicit opt-in,
//! checked by the config). Every step has a time limit so a dead server is noticed.

use async_imap::{Client, Session};
use std::fmt::Debug;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::{ServerConfig, TlsMode};
use crate::net::tls::{self, TlsError};

/// Any byte stream an IMAP session can run over (plain TCP or TLS).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Debug> Io for T {}

pub type ImapSession = Session<Box<dyn Io>>;

/// How long one IMAP command may take before the connection is declared dead.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

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
    #[error("IMAP {0}: no answer within {secs} s", secs = COMMAND_TIMEOUT.as_secs())]
    Timeout(String),
    #[error("state store: {0}")]
    State(#[from] crate::state::StateError),
}

impl ImapError {
    /// Worth retrying after a pause (network, server restarts), as opposed to a problem
    /// the user has to fix (certificate, credentials).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ImapError::Connect { .. } | ImapError::Protocol { .. } | ImapError::Timeout(_)
        )
    }

    pub fn protocol(context: impl Into<String>, e: impl std::fmt::Display) -> ImapError {
        ImapError::Protocol {
            context: context.into(),
            message: e.to_string(),
        }
    }
}

/// Run `fut` with the command time limit.
pub async fn timed<T, E: std::fmt::Display>(
    context: &str,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, ImapError> {
    match tokio::time::timeout(COMMAND_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ImapError::protocol(context, e)),
        Err(_) => Err(ImapError::Timeout(context.to_string())),
    }
}

pub async fn connect(server: &ServerConfig) -> Result<ImapSession, ImapError> {
    let (host, port) = (server.host.as_str(), server.port);
    let connect_err = |message: String| ImapError::Connect {
        host: host.to_string(),
        port,
        message,
    };
    let tcp = tokio::time::timeout(COMMAND_TIMEOUT, TcpStream::connect((host, port)))
        .await
        .map_err(|_| connect_err("timed out".into()))?
        .map_err(|e| connect_err(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Io> = match server.tls {
        TlsMode::None => Box::new(tcp),
        TlsMode::Implicit => {
            let config = tls::client_config(server.ca_file.as_deref())?;
            Box::new(tls::handshake(tcp, host, config).await?)
        }
        TlsMode::Starttls => {
            let config = tls::client_config(server.ca_file.as_deref())?;
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
            Box::new(tls::handshake(client.into_inner(), host, config).await?)
        }
    };
    let mut client = Client::new(stream);
    if server.tls != TlsMode::Starttls {
        let greeting = timed("greeting", client.read_response()).await?;
        if greeting.is_none() {
            return Err(connect_err("closed before its greeting".into()));
        }
    }
    let user = server.username.clone().unwrap_or_default();
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
    match tokio::time::timeout(COMMAND_TIMEOUT, client.login(&user, password.expose())).await {
        Err(_) => Err(ImapError::Timeout("LOGIN".into())),
        Ok(Err((e, _))) => Err(ImapError::Login {
            user,
            message: e.to_string(),
        }),
        Ok(Ok(session)) => Ok(session),
    }
}
