//! Why this file exists: the daemon's ManageSieve listener (`[managesieve] listen`): accepts
//! connections and runs a session for each, with the accounts' own IMAP logins. With a
//! certificate configured it offers STARTTLS (or speaks TLS from the first byte, `tls =
//! "implicit"`); passwords are accepted over TLS or from loopback peers only. Connections
//! beyond a bound, overall and per peer address, are turned away. `Listening::stop` ends
//! every session and lets go of the state store (a reload opens it again).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use super::guard::LoginGuard;
use super::imap_login::{AccountLookup, ImapLogin};
use super::{Connection, Ended, Server};
use crate::config::Config;
use crate::state::scripts::ScriptLimits;
use crate::state::Store;

/// Sessions at once at most; more are refused with BYE.
const MAX_SESSIONS: usize = 256;
/// Sessions at once from one address that is not loopback (a webmail on the same host
/// connects from loopback for all its users).
const MAX_SESSIONS_PER_PEER: usize = 8;

/// The running listener. Dropping it stops accepting at once; `stop` also ends the
/// sessions and waits until nothing holds the state store any more.
pub struct Listening {
    task: Option<tokio::task::JoinHandle<()>>,
    stop: Option<oneshot::Sender<()>>,
}

impl Listening {
    /// Ends the listener and every session, and waits for them.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Counts the sessions of each peer address; a slot is given back when dropped.
#[derive(Clone, Default)]
struct PerPeer(Arc<Mutex<HashMap<IpAddr, usize>>>);

struct PeerSlot(PerPeer, IpAddr);

impl PerPeer {
    fn take(&self, ip: IpAddr) -> Option<PeerSlot> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= MAX_SESSIONS_PER_PEER && !ip.is_loopback() {
            return None;
        }
        *n += 1;
        Some(PeerSlot(self.clone(), ip))
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut m = self.0 .0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.1);
            }
        }
    }
}

/// Starts the listener of `config`'s `[managesieve]`, if it has one. `accounts` lists the
/// accounts whose users may log in (those of the config, of the accounts directory and
/// table); `on_login` hears of every login attempt.
pub async fn start(
    config: &Config,
    store: Arc<Store>,
    accounts: AccountLookup,
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
        auth: Arc::new(ImapLogin::new(accounts)),
        global: crate::config::sieve::account_global_includes(config),
        guard: LoginGuard::new(Duration::from_secs(2)),
        idle: Duration::from_secs(30 * 60),
        login_idle: Duration::from_secs(60),
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
    let per_peer = PerPeer::default();
    let (stop, mut stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut running = JoinSet::new();
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = &mut stopped => break,
                // Reap ended sessions as they end.
                Some(_) = running.join_next(), if !running.is_empty() => continue,
            };
            let Ok((stream, peer)) = accepted else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let permits = sessions
                .clone()
                .try_acquire_owned()
                .ok()
                .zip(per_peer.take(peer.ip()));
            let Some(permits) = permits else {
                // Said in the clear, also on an implicit-TLS port: a handshake would cost
                // more than the refusal is worth.
                use tokio::io::AsyncWriteExt;
                let mut stream = stream;
                let _ = stream.write_all(b"BYE \"too many sessions\"\r\n").await;
                continue;
            };
            let server = server.clone();
            let tls = tls.clone();
            running.spawn(async move {
                let _permits = permits;
                let loopback = peer.ip().is_loopback();
                let secure = Connection {
                    plaintext_ok: true,
                    starttls: false,
                    peer: Some(peer.ip()),
                };
                match tls {
                    None => {
                        let conn = Connection {
                            plaintext_ok: loopback,
                            starttls: false,
                            peer: Some(peer.ip()),
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
                            peer: Some(peer.ip()),
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
        // Stopping: every session ends here, so that none holds the store any more.
        running.shutdown().await;
    });
    Ok(Some(Listening {
        task: Some(task),
        stop: Some(stop),
    }))
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
