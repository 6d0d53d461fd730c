//! The SMTP transport (lettre): sends queued mail with its recorded envelope through the
//! account's submission server, with the same TLS rules as IMAP (verified certificates,
//! plain only on loopback or by explicit opt-in). lettre's own error classification tells the
//! outbox whether to retry (4xx, connection problems) or give up (5xx).

use lettre::address::{Address, Envelope};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, CertificateStore, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_rustls::client::TlsStream;

use super::outbox::{SendError, Transport};
use crate::config::{Auth, ServerConfig, TlsMode};
use crate::model::credentials::OAuth2;
use crate::net::auth::sasl;
use crate::net::tls;
use crate::state::OutboxEntry;

/// Limit for connecting and for each message's SMTP dialogue.
const SMTP_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline of the NOOP that checks a kept connection before it is reused.
const NOOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends over one connection, opened on first use and kept for the next message (checked
/// with NOOP, reopened when it died). We open the socket ourselves to set TCP_NODELAY: lettre
/// writes the message and the final "." in two writes, and with Nagle's algorithm the second
/// waited for the server's delayed ACK, ~45 ms per message (measured by bench/latency.py).
pub struct SmtpSink {
    host: String,
    port: u16,
    server: String,
    helo: ClientId,
    /// Implicit TLS (`tls = "implicit"`): our rustls settings, as for IMAP.
    implicit: Option<tls::Client>,
    /// STARTTLS (`tls = "starttls"`), required: a server without it is refused.
    starttls: Option<TlsParameters>,
    /// A pinned certificate: with STARTTLS, lettre's own verification is replaced by this
    /// check of the server's certificate, made before anything (credentials, mail) is sent.
    pin: Option<crate::model::endpoint::Fingerprint>,
    login: Option<Login>,
    connection: Mutex<Option<AsyncSmtpConnection>>,
    /// Deadline of connecting and of each message's dialogue.
    timeout: Duration,
}

/// How the sink logs in.
enum Login {
    /// AUTH PLAIN / LOGIN; the password is read once, when the sink is made.
    Password(Credentials),
    /// AUTH XOAUTH2 / OAUTHBEARER; the token is fetched (or renewed) at each connection.
    Bearer {
        user: String,
        mechanism: Auth,
        tokens: Arc<OAuth2>,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("SMTP {server}: {message}")]
pub struct SmtpSetupError {
    pub server: String,
    pub message: String,
}

impl SmtpSink {
    /// `helo`: the name we greet with (the account's domain).
    pub async fn new(server: &ServerConfig, helo: &str) -> Result<SmtpSink, SmtpSetupError> {
        let name = format!("{}:{}", server.host, server.port);
        let err = |message: String| SmtpSetupError {
            server: name.clone(),
            message,
        };
        let (mut implicit, mut starttls) = (None, None);
        match server.tls {
            TlsMode::None => {}
            TlsMode::Implicit => {
                implicit = Some(
                    tls::client(server.ca_file.as_deref(), server.tls_pin)
                        .map_err(|e| err(e.to_string()))?,
                )
            }
            _ => {
                let mut params = TlsParameters::builder(server.host.clone());
                if server.tls_pin.is_some() {
                    // Checked by fingerprint right after the handshake (see `connect`).
                    params = params
                        .dangerous_accept_invalid_certs(true)
                        .dangerous_accept_invalid_hostnames(true);
                } else if let Some(ca) = &server.ca_file {
                    let pem = std::fs::read(ca)
                        .map_err(|e| err(format!("cannot read {}: {e}", ca.display())))?;
                    let cert = Certificate::from_pem(&pem)
                        .map_err(|e| err(format!("{}: {e}", ca.display())))?;
                    params = params
                        .certificate_store(CertificateStore::None)
                        .add_root_certificate(cert);
                } else {
                    params = params.certificate_store(CertificateStore::WebpkiRoots);
                }
                starttls = Some(params.build_rustls().map_err(|e| err(e.to_string()))?);
            }
        }
        let login = match (&server.username, &server.password, &server.oauth2) {
            (None, _, _) => None,
            (Some(user), _, Some(tokens)) if server.auth != Auth::Password => Some(Login::Bearer {
                user: user.clone(),
                mechanism: server.auth,
                tokens: tokens.clone(),
            }),
            (Some(user), Some(p), _) => {
                let password = p.resolve().await.map_err(err)?;
                Some(Login::Password(Credentials::new(
                    user.clone(),
                    password.expose().to_string(),
                )))
            }
            (Some(user), None, _) => {
                return Err(err(format!(
                    "username {user} given but no password_env/_file/_command"
                )))
            }
        };
        Ok(SmtpSink {
            host: server.host.clone(),
            port: server.port,
            server: name,
            helo: ClientId::Domain(helo.to_string()),
            implicit,
            starttls,
            pin: server.tls_pin,
            login,
            connection: Mutex::new(None),
            timeout: SMTP_TIMEOUT,
        })
    }

    /// Use `timeout` instead of 60 s for connecting and for each message (the account's
    /// `timeout_seconds`).
    pub fn with_timeout(mut self, timeout: Duration) -> SmtpSink {
        self.timeout = timeout;
        self
    }

    fn no_answer(&self) -> String {
        format!(
            "{}: no answer within {} s",
            self.server,
            self.timeout.as_secs()
        )
    }

    /// Connect, greet, STARTTLS and authenticate as configured.
    async fn connect(&self) -> Result<AsyncSmtpConnection, String> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let stream: Box<dyn AsyncTokioStream> = match &self.implicit {
            Some(client) => Box::new(Tls(tls::handshake(tcp, &self.host, client)
                .await
                .map_err(|e| e.to_string())?)),
            None => Box::new(tcp),
        };
        let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &self.helo)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(params) = &self.starttls {
            conn.starttls(params.clone(), &self.helo)
                .await
                .map_err(|e| e.to_string())?;
            if let Some(pin) = self.pin {
                let der = conn.peer_certificate().map_err(|e| e.to_string())?;
                let got = crate::model::endpoint::Fingerprint::of(&der);
                if got != pin {
                    return Err(format!(
                        "the server's certificate {got} is not the pinned one {pin}"
                    ));
                }
            }
        }
        match &self.login {
            None => {}
            Some(Login::Password(c)) => {
                conn.auth(&[Mechanism::Plain, Mechanism::Login], c)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Some(Login::Bearer {
                user,
                mechanism,
                tokens,
            }) => self.bearer(&mut conn, user, *mechanism, tokens).await?,
        }
        Ok(conn)
    }

    /// AUTH XOAUTH2 / OAUTHBEARER with an initial response; a refused token is renewed once.
    async fn bearer(
        &self,
        conn: &mut AsyncSmtpConnection,
        user: &str,
        mechanism: Auth,
        tokens: &OAuth2,
    ) -> Result<(), String> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let name = sasl::name(mechanism);
        let mut renew = false;
        loop {
            let token = tokens
                .access_token(renew)
                .await
                .map_err(|e| e.to_string())?;
            let initial =
                sasl::initial_response(mechanism, user, &self.host, self.port, token.expose())?;
            let refusal = match conn
                .command(Line(format!("AUTH {name} {}\r\n", b64.encode(initial))))
                .await
            {
                Ok(r) if r.has_code(235) => return Ok(()),
                // 334: the server's error challenge; answering it ends the exchange (535).
                Ok(r) if r.has_code(334) => {
                    let said = r
                        .message()
                        .next()
                        .and_then(|m| b64.decode(m.trim()).ok())
                        .map(|c| sasl::describe_error(&c))
                        .unwrap_or_default();
                    let end = conn
                        .command(Line(format!(
                            "{}\r\n",
                            b64.encode(sasl::abort_response(mechanism))
                        )))
                        .await;
                    match end {
                        Ok(r) if r.has_code(235) => return Ok(()),
                        Ok(r) => format!("{said}; {}", r.first_line().unwrap_or_default()),
                        Err(e) => format!("{said}; {e}"),
                    }
                }
                Ok(r) => r.first_line().unwrap_or_default().to_string(),
                Err(e) if e.is_permanent() => e.to_string(),
                Err(e) => return Err(format!("AUTH {name}: {e}")),
            };
            if renew {
                return Err(format!("AUTH {name} as {user} refused: {refusal}"));
            }
            renew = true;
        }
    }

    /// Connect, greet, STARTTLS and authenticate as configured, then quit.
    pub async fn probe(&self) -> Result<(), String> {
        let mut conn = tokio::time::timeout(self.timeout, self.connect())
            .await
            .map_err(|_| self.no_answer())??;
        tokio::time::timeout(self.timeout, conn.quit())
            .await
            .map_err(|_| self.no_answer())?
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// End the kept connection politely (QUIT), if there is one.
    pub async fn close(&self) {
        if let Some(mut conn) = self.connection.lock().await.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), conn.quit()).await;
        }
    }
}

/// One mail transaction (MAIL, RCPT, DATA, the message) on `conn`, as lettre's `send` does
/// it, with `at_end` called after the message's bytes and before its end-of-data dot: from
/// then on a crash leaves the message with the server or about to reach it.
async fn transaction(
    conn: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    data: &[u8],
    at_end: &(dyn Fn() + Sync),
) -> Result<lettre::transport::smtp::response::Response, lettre::transport::smtp::Error> {
    use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
    use lettre::transport::smtp::extension::{Extension, MailBodyParameter, MailParameter};
    let mut options = Vec::new();
    let non_ascii = |a: &Address| !AsRef::<str>::as_ref(a).is_ascii();
    if envelope.from().is_some_and(non_ascii) || envelope.to().iter().any(non_ascii) {
        options.push(MailParameter::SmtpUtfEight);
    }
    if !data.is_ascii() && conn.server_info().supports_feature(Extension::EightBitMime) {
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    conn.command(Mail::new(envelope.from().cloned(), options))
        .await?;
    for to in envelope.to() {
        conn.command(Rcpt::new(to.clone(), vec![])).await?;
    }
    conn.command(Data).await?;
    // The bytes, then (when they are all written) `at_end`, then lettre's dot.
    let mut parts = std::iter::once(data);
    let mut done = false;
    let parts = std::iter::from_fn(move || match parts.next() {
        Some(p) => Some(p),
        None => {
            if !std::mem::replace(&mut done, true) {
                at_end();
            }
            None
        }
    });
    conn.message_iter(parts).await
}

/// One command line for lettre, sent as given (it ends with CRLF).
struct Line(String);

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Our TLS stream in the shape lettre takes an existing connection in.
#[derive(Debug)]
struct Tls(TlsStream<TcpStream>);

impl AsyncTokioStream for Tls {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl AsyncRead for Tls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl Transport for SmtpSink {
    async fn send_raw(
        &self,
        entry: &OutboxEntry,
        raw: &[u8],
        at_end: &(dyn Fn() + Sync),
    ) -> Result<(), SendError> {
        let parse = |a: &str| {
            a.parse::<Address>()
                .map_err(|e| SendError::permanent(format!("invalid address {a:?}: {e}")))
        };
        let from = if entry.mail_from.is_empty() {
            None
        } else {
            Some(parse(&entry.mail_from)?)
        };
        let to = entry
            .rcpt_to
            .iter()
            .map(|r| parse(r))
            .collect::<Result<Vec<_>, _>>()?;
        let envelope = Envelope::new(from, to).map_err(|e| SendError::permanent(e.to_string()))?;
        let mut kept = self.connection.lock().await;
        if let Some(conn) = kept.as_mut() {
            // The NOOP that checks a kept connection gets a deadline of its own: a server
            // that never answers it must not hang the run.
            let alive =
                tokio::time::timeout(NOOP_TIMEOUT.min(self.timeout), conn.test_connected()).await;
            if !matches!(alive, Ok(true)) {
                *kept = None;
            }
        }
        if kept.is_none() {
            let conn = tokio::time::timeout(self.timeout, self.connect())
                .await
                .map_err(|_| SendError::transient(self.no_answer()))?
                .map_err(|e| SendError::transient(format!("{}: {e}", self.server)))?;
            *kept = Some(conn);
        }
        let conn = kept.as_mut().expect("connected above");
        // lettre ends the data with CRLF "." CRLF whatever the message ends with: without
        // this, every message that ends in a line break (all of ours) would gain an empty
        // line at its end on the way.
        let data = raw.strip_suffix(b"\r\n").unwrap_or(raw);
        let result =
            tokio::time::timeout(self.timeout, transaction(conn, &envelope, data, at_end)).await;
        match result {
            Ok(Ok(_)) => Ok(()),
            // lettre closes the connection after any error: open a new one next time.
            Ok(Err(e)) => {
                *kept = None;
                if e.is_permanent() {
                    Err(SendError::permanent(format!("{}: {e}", self.server)))
                } else {
                    Err(SendError::transient(format!("{}: {e}", self.server)))
                }
            }
            Err(_) => {
                *kept = None;
                Err(SendError::transient(self.no_answer()))
            }
        }
    }
}
