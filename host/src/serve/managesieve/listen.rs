//! Why this file exists: the daemon's ManageSieve listener (`[managesieve] listen`): accepts
//! connections and runs a session for each, with the accounts' own IMAP logins. With a
//! certificate configured it offers STARTTLS (or speaks TLS from the first byte, `tls =
//! "implicit"`); passwords are accepted over TLS or from loopback peers only. Connections
//! beyond a bound are turned away.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use super::imap_login::ImapLogin;
use super::{Connection, Ended, Server};
use crate::config::Config;
use crate::state::scripts::ScriptLimits;
use crate::state::Store;

/// Sessions at once at most; more are refused with BYE.
const MAX_SESSIONS: usize = 256;

/// Stops the listener when dropped.
pub struct Listening(tokio::task::JoinHandle<()>);

impl Drop for Listening {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the listener of `config`'s `[managesieve]`, if it has one; `on_login` hears of
/// every login attempt.
pub async fn start(
    config: &Config,
    store: Arc<Store>,
    on_login: Option<super::LoginHook>,
) -> anyhow::Result<Option<Listening>> {
    let Some(ms) = &config.managesieve else {
        return Ok(None);
    };
    // A reload binds again while the previous listener is being dropped: a few tries.
    let mut tries = 0;
    let listener = loop {
        match TcpListener::bind(ms.listen).await {
            Ok(l) => break l,
            Err(e) if tries < 20 && e.kind() == std::io::ErrorKind::AddrInUse => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => anyhow::bail!("[managesieve] listen = {}: cannot listen: {e}", ms.listen),
        }
    };
    let server = Arc::new(Server {
        store,
        limits: ScriptLimits::of(config),
        auth: Arc::new(ImapLogin::new(config.accounts.clone())),
        global: crate::config::sieve::account_global_includes(config),
        failed_login_delay: Duration::from_secs(2),
        idle: Duration::from_secs(30 * 60),
        on_login,
    });
    let tls = match &ms.tls {
        Some(t) => Some((
            crate::net::tls::server(&t.cert, &t.key)
                .map_err(|e| anyhow::anyhow!("[managesieve] TLS: {e}"))?,
            t.implicit,
        )),
        None => None,
    };
    tracing::info!(
        addr = %ms.listen,
        tls = match &tls { None => "none", Some((_, true)) => "implicit", Some((_, false)) => "starttls" },
        "ManageSieve: listening"
    );
    let sessions = Arc::new(tokio::sync::Semaphore::new(MAX_SESSIONS));
    Ok(Some(Listening(tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let Ok(permit) = sessions.clone().try_acquire_owned() else {
                use tokio::io::AsyncWriteExt;
                let mut stream = stream;
                let _ = stream.write_all(b"BYE \"too many sessions\"\r\n").await;
                continue;
            };
            let server = server.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let loopback = peer.ip().is_loopback();
                let secure = Connection {
                    plaintext_ok: true,
                    starttls: false,
                };
                match tls {
                    None => {
                        let conn = Connection {
                            plaintext_ok: loopback,
                            starttls: false,
                        };
                        server.serve(stream, conn).await;
                    }
                    Some((acceptor, true)) => {
                        if let Some(s) = handshake(&acceptor, stream, peer).await {
                            server.serve(s, secure).await;
                        }
                    }
                    Some((acceptor, false)) => {
                        let conn = Connection {
                            plaintext_ok: loopback,
                            starttls: true,
                        };
                        if let Ended::StartTls(stream) = server.serve(stream, conn).await {
                            if let Some(s) = handshake(&acceptor, stream, peer).await {
                                server.serve(s, secure).await;
                            }
                        }
                    }
                }
            });
        }
    }))))
}

/// The TLS handshake of a client, bounded in time; None (logged) when it fails.
async fn handshake(
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    match tokio::time::timeout(Duration::from_secs(30), acceptor.accept(stream)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "ManageSieve: TLS handshake failed");
            None
        }
        Err(_) => None,
    }
}
