//! Why this file exists: the daemon's ManageSieve listener (`[managesieve] listen`): accepts
//! connections and runs a session for each, with the accounts' own IMAP logins. Plaintext
//! passwords are accepted only from loopback peers (TLS is not offered yet, so the config
//! allows only a loopback address); connections beyond a bound are turned away.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use super::imap_login::ImapLogin;
use super::{Connection, Server};
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

/// Starts the listener of `config`'s `[managesieve]`, if it has one.
pub async fn start(config: &Config, store: Arc<Store>) -> anyhow::Result<Option<Listening>> {
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
    });
    tracing::info!(addr = %ms.listen, "ManageSieve: listening");
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
            tokio::spawn(async move {
                let _permit = permit;
                let conn = Connection {
                    plaintext_ok: peer.ip().is_loopback(),
                };
                server.serve(stream, conn).await;
            });
        }
    }))))
}
