//! The daemon's LMTP server (`[lmtp]`): mail handed over by the mail server at delivery
//! time, each recipient delivered by the delivery job (`run::deliver`, the same one
//! `mailpipe deliver` runs) and answered 250 only once its copy is durable and its decision
//! committed. The protocol is `source::lmtp`; this file listens, maps recipients to
//! accounts, sends what deliveries queued, and stops its sessions before the store closes.

use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::task::JoinSet;

use super::deliver::{Delivered, Deliverer, Envelope};
use crate::config::{Config, LmtpListen};
use crate::source::lmtp::{self, Deliveries, Limits, Reply};

/// At most this many sessions at once (Postfix opens up to its destination concurrency).
const MAX_SESSIONS: usize = 256;

/// How often queued mail is looked at without a delivery waking the flusher: what a crash
/// left queued and what waits for a retry after a refusal.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// A running LMTP server.
pub struct Listening {
    accept: tokio::task::JoinHandle<()>,
    /// Sends what deliveries queued (woken by them, and every `FLUSH_EVERY` for retries).
    flusher: tokio::task::JoinHandle<()>,
    sessions: Arc<tokio::sync::Mutex<JoinSet<()>>>,
    socket: Option<std::path::PathBuf>,
}

impl Listening {
    /// Stop taking connections, give the sessions up to 30 s to end their transaction, then
    /// end them (a delivery cut short is not acknowledged: the mail server sends it again,
    /// and the delivery job recognises it).
    pub async fn stop(self) {
        self.accept.abort();
        self.flusher.abort();
        let mut sessions = self.sessions.lock().await;
        let all_done = async { while sessions.join_next().await.is_some() {} };
        if tokio::time::timeout(std::time::Duration::from_secs(30), all_done)
            .await
            .is_err()
        {
            sessions.abort_all();
        }
        if let Some(p) = &self.socket {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Start the LMTP server of `[lmtp]`, if the config has one.
pub async fn start(
    config: &Config,
    deliverer: Arc<Deliverer>,
) -> anyhow::Result<Option<Listening>> {
    let Some(settings) = config.lmtp.clone() else {
        return Ok(None);
    };
    if deliverer.accounts().is_empty() {
        tracing::warn!("[lmtp]: no account has [account.deliver]: every recipient is refused");
    }
    let limits = Limits {
        max_message_bytes: settings.max_message_bytes,
        max_recipients: settings.max_recipients,
        idle: std::time::Duration::from_secs(300),
    };
    let wake = Arc::new(tokio::sync::Notify::new());
    let flusher = {
        let (deliverer, wake) = (deliverer.clone(), wake.clone());
        tokio::spawn(async move {
            loop {
                deliverer.flush_all().await;
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(FLUSH_EVERY) => {}
                }
            }
        })
    };
    let server = Arc::new(ToAccounts { deliverer, wake });
    let sessions = Arc::new(tokio::sync::Mutex::new(JoinSet::new()));
    let hostname = hostname();
    let (listener, socket) = bind(&settings.listen).await?;
    let accept = {
        let sessions = sessions.clone();
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok(Stream::Tcp(s)) => {
                        let _ = s.set_nodelay(true);
                        spawn_session(&sessions, s, &hostname, &limits, &server).await
                    }
                    Ok(Stream::Unix(s)) => {
                        spawn_session(&sessions, s, &hostname, &limits, &server).await
                    }
                    Err(e) => {
                        // Out of file descriptors, say: wait instead of spinning.
                        tracing::warn!("LMTP: accepting a connection: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    }
                }
            }
        })
    };
    Ok(Some(Listening {
        accept,
        flusher,
        sessions,
        socket,
    }))
}

/// Where the server takes connections.
enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

/// One connection taken.
enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

impl Listener {
    async fn accept(&self) -> std::io::Result<Stream> {
        match self {
            Listener::Tcp(l) => l.accept().await.map(|(s, _)| Stream::Tcp(s)),
            Listener::Unix(l) => l.accept().await.map(|(s, _)| Stream::Unix(s)),
        }
    }
}

/// Listen where `[lmtp] listen` says; with the socket file to remove at the end, if any.
async fn bind(listen: &LmtpListen) -> anyhow::Result<(Listener, Option<std::path::PathBuf>)> {
    match listen {
        LmtpListen::Tcp(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("[lmtp] listen = {addr}: {e}"))?;
            tracing::info!(%addr, "LMTP server listening");
            Ok((Listener::Tcp(listener), None))
        }
        LmtpListen::Unix(path) => {
            // A socket left by a process that is gone is replaced; one that answers is not.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                anyhow::bail!(
                    "[lmtp] listen = unix:{}: another process serves this socket",
                    path.display()
                );
            }
            let _ = std::fs::remove_file(path);
            let listener = tokio::net::UnixListener::bind(path)
                .map_err(|e| anyhow::anyhow!("[lmtp] listen = unix:{}: {e}", path.display()))?;
            // Who may deliver is decided by the socket's directory (the mail server's user
            // must reach it); the socket itself is open to whoever can reach it.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
            tracing::info!(socket = %path.display(), "LMTP server listening");
            Ok((Listener::Unix(listener), Some(path.clone())))
        }
    }
}

async fn spawn_session<S>(
    sessions: &Arc<tokio::sync::Mutex<JoinSet<()>>>,
    stream: S,
    hostname: &str,
    limits: &Limits,
    server: &Arc<ToAccounts>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut set = sessions.lock().await;
    while set.try_join_next().is_some() {}
    if set.len() >= MAX_SESSIONS {
        let mut stream = stream;
        use tokio::io::AsyncWriteExt;
        let _ = stream
            .write_all(b"421 4.3.2 too many connections, try again later\r\n")
            .await;
        return;
    }
    let (hostname, limits, server) = (hostname.to_string(), limits.clone(), server.clone());
    set.spawn(async move {
        lmtp::session(stream, &hostname, &limits, server.as_ref()).await;
    });
}

/// The name the server greets with.
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let name = ok
        .then(|| {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            String::from_utf8_lossy(&buf[..end]).into_owned()
        })
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_graphic()));
    name.unwrap_or_else(|| "localhost".into())
}

/// Recipients are the accounts with `[account.deliver]`.
struct ToAccounts {
    deliverer: Arc<Deliverer>,
    /// Wakes the flusher.
    wake: Arc<tokio::sync::Notify>,
}

impl Deliveries for ToAccounts {
    fn refuse_recipient(&self, recipient: &str) -> Option<Reply> {
        match self.deliverer.account_for(recipient, None) {
            Some(_) => None,
            None => Some(Reply::new(
                550,
                "5.1.1",
                format!("<{recipient}>: no account takes mail for this address"),
            )),
        }
    }

    fn deliver<'a>(
        &'a self,
        sender: &'a str,
        recipient: &'a str,
        raw: bytes::Bytes,
    ) -> BoxFuture<'a, Reply> {
        Box::pin(async move {
            let Some(account) = self.deliverer.account_for(recipient, None).cloned() else {
                return Reply::new(550, "5.1.1", "no account takes mail for this address");
            };
            let envelope = Envelope {
                sender: sender.to_string(),
                recipient: recipient.to_string(),
                original_recipient: None,
            };
            match self.deliverer.deliver(&account, &envelope, &raw).await {
                // A plugin refused it (Sieve's reject): the MTA returns it to its sender
                // with this reason (RFC 5429 2.1 allows refusing it in the protocol).
                Ok(Delivered {
                    refused: Some(reason),
                    ..
                }) => {
                    tracing::info!(account = %account.name, "delivery refused: {reason}");
                    Reply::new(550, "5.7.1", format!("<{recipient}> {reason}"))
                }
                Ok(d) => {
                    if d.queued {
                        // Sent after the answer, never before it (the answer does not wait).
                        self.wake.notify_one();
                    }
                    Reply::new(250, "2.0.0", format!("<{recipient}> delivered"))
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(account = %account.name, "delivery deferred: {e}");
                    Reply::new(451, "4.3.0", format!("<{recipient}> {e}; try again later"))
                }
                Err(e) => Reply::new(554, "5.3.0", format!("<{recipient}> {e}")),
            }
        })
    }
}
