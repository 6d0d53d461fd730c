//! A POP3 mailbox (RFC 1939, CAPA from RFC 2449, STLS from RFC 2595, AUTH from RFC 5034):
//! connect with the account's TLS mode (implicit TLS, STLS, or plain on loopback / by
//! explicit opt-in, as the config checks), log in, list the messages with their unique ids
//! and sizes, fetch one, mark one deleted, and QUIT (only QUIT makes deletions happen: a
//! connection that drops before it deletes nothing). The job (`run/pop3.rs`) decides what to
//! fetch and when a message may go; this module speaks the protocol only.
//!
//! Logging in: an OAuth2 account uses AUTH XOAUTH2 / OAUTHBEARER. A password goes as
//! USER/PASS inside TLS (AUTH PLAIN when the server refuses USER); on a connection without
//! TLS, APOP when the server offers it, so the password itself never crosses the wire.

pub mod wire;

use std::time::Duration;
use tokio::net::TcpStream;

use crate::config::{Auth, ServerConfig, TlsMode};
use crate::net::auth::{sasl, AuthError};
use crate::net::tls::{self, TlsError};
use wire::{numbered_lines, readable, Conn, Io};

#[derive(Debug, thiserror::Error)]
pub enum Pop3Error {
    #[error("cannot connect to {host}:{port}: {message}")]
    Connect {
        host: String,
        port: u16,
        message: String,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("POP3 login as {user} failed: {message}")]
    Login { user: String, message: String },
    #[error("password for {user}: {message}")]
    Password { user: String, message: String },
    #[error("POP3 {context}: {message}")]
    Protocol { context: String, message: String },
    /// The server answered -ERR.
    #[error("POP3 {context} refused by the server: {message}")]
    Refused { context: String, message: String },
    #[error("POP3 {context}: no answer within {secs} s")]
    Timeout { context: String, secs: u64 },
    #[error("POP3 {context}: larger than {limit} bytes")]
    TooLarge { context: String, limit: u64 },
    /// No TLS where the config asks for it: the user must change the config (or the server).
    #[error("POP3 {host}: {message}")]
    NoTls { host: String, message: String },
    #[error(transparent)]
    OAuth2(#[from] AuthError),
}

impl Pop3Error {
    /// Worth retrying after a pause (network, a busy server), as opposed to what the user
    /// has to fix (certificate, credentials).
    pub fn is_transient(&self) -> bool {
        match self {
            Pop3Error::OAuth2(e) => e.is_transient(),
            other => matches!(
                other,
                Pop3Error::Connect { .. }
                    | Pop3Error::Protocol { .. }
                    | Pop3Error::Refused { .. }
                    | Pop3Error::Timeout { .. }
                    | Pop3Error::TooLarge { .. }
            ),
        }
    }

    pub fn protocol(context: impl Into<String>, e: impl std::fmt::Display) -> Pop3Error {
        Pop3Error::Protocol {
            context: context.into(),
            message: e.to_string(),
        }
    }

    pub fn timeout(context: &str, deadline: Duration) -> Pop3Error {
        Pop3Error::Timeout {
            context: context.to_string(),
            secs: deadline.as_secs(),
        }
    }
}

/// One message as the server lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    /// Its number in this session (1-based).
    pub number: u32,
    /// Its size as the server says (LIST); servers count differently, and some lie.
    pub size: u64,
    /// Its unique id (UIDL), when the server has them.
    pub uid: Option<String>,
}

/// A logged-in POP3 session (the TRANSACTION state).
pub struct Session {
    conn: Conn,
    /// CAPA's answer, upper-cased (empty when the server has no CAPA).
    caps: Vec<String>,
}

impl Session {
    /// Connect to `server` and log in; every step has `deadline`.
    pub async fn connect(server: &ServerConfig, deadline: Duration) -> Result<Session, Pop3Error> {
        let (host, port) = (server.host.as_str(), server.port);
        let connect_err = |message: String| Pop3Error::Connect {
            host: host.to_string(),
            port,
            message,
        };
        let tcp = tokio::time::timeout(deadline, TcpStream::connect((host, port)))
            .await
            .map_err(|_| connect_err("timed out".into()))?
            .map_err(|e| connect_err(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let tls_client = match server.tls {
            TlsMode::None => None,
            _ => Some(tls::client(server.ca_file.as_deref(), server.tls_pin)?),
        };
        let stream: Box<dyn Io> = match (&tls_client, server.tls) {
            (Some(c), TlsMode::Implicit) => Box::new(handshake(tcp, host, c, deadline).await?),
            _ => Box::new(tcp),
        };
        let mut conn = Conn::new(stream, deadline);
        let mut greeting = conn.status("greeting").await?;
        let mut caps = capabilities(&mut conn).await;
        if server.tls == TlsMode::Starttls {
            let no_tls = |message: String| Pop3Error::NoTls {
                host: host.to_string(),
                message,
            };
            if !caps.iter().any(|c| c == "STLS") && !caps.is_empty() {
                return Err(no_tls(
                    "the server does not offer STLS; the password is not sent without TLS (tls = \"implicit\" if it has a POP3S port)".into(),
                ));
            }
            match conn.command("STLS", "STLS").await {
                Ok(_) => {}
                Err(Pop3Error::Refused { message, .. }) => {
                    return Err(no_tls(format!(
                        "the server refused STLS ({message}); the password is not sent without TLS"
                    )))
                }
                Err(e) => return Err(e),
            }
            if conn.has_buffered() {
                return Err(Pop3Error::protocol(
                    "STLS",
                    "the server sent more before the TLS handshake (an injection?)",
                ));
            }
            let c = tls_client.as_ref().expect("made for STLS");
            let tcp = conn.into_inner();
            conn = Conn::new(Box::new(handshake(tcp, host, c, deadline).await?), deadline);
            // What was said before TLS is not trusted: the capabilities are asked again,
            // and APOP's timestamp is not used.
            caps = capabilities(&mut conn).await;
            greeting.clear();
        }
        let mut session = Session { conn, caps };
        session.login(server, &greeting).await?;
        Ok(session)
    }

    async fn login(&mut self, server: &ServerConfig, greeting: &str) -> Result<(), Pop3Error> {
        let user = server.username.clone().unwrap_or_default();
        if server.auth != Auth::Password {
            return self.login_bearer(server, &user).await;
        }
        let password = match &server.password {
            Some(source) => source
                .resolve()
                .await
                .map_err(|message| Pop3Error::Password {
                    user: user.clone(),
                    message,
                })?,
            None => {
                return Err(Pop3Error::Password {
                    user,
                    message: "no password_env, password_file or password_command".into(),
                })
            }
        };
        let refused = |e: Pop3Error| match e {
            Pop3Error::Refused { message, .. } => Pop3Error::Login {
                user: user.clone(),
                message,
            },
            other => other,
        };
        if user.contains(['\r', '\n', ' ']) || password.expose().contains(['\r', '\n']) {
            return Err(Pop3Error::Login {
                user: user.clone(),
                message: "the user name or password holds a line break (or the name a space)"
                    .into(),
            });
        }
        if server.tls == TlsMode::None {
            if let Some(stamp) = apop_timestamp(greeting) {
                use md5::Digest;
                let digest = md5::Md5::digest(format!("{stamp}{}", password.expose()).as_bytes());
                return self
                    .conn
                    .command(&format!("APOP {user} {}", hex::encode(digest)), "APOP")
                    .await
                    .map(|_| ())
                    .map_err(refused);
            }
        }
        match self.conn.command(&format!("USER {user}"), "USER").await {
            Ok(_) => {
                self.conn
                    .command(&format!("PASS {}", password.expose()), "PASS")
                    .await
                    .map_err(refused)?;
                Ok(())
            }
            // Some servers take only SASL.
            Err(Pop3Error::Refused { .. }) if self.has_sasl("PLAIN") => {
                use base64::Engine;
                let plain = format!("\0{user}\0{}", password.expose());
                let b64 = base64::engine::general_purpose::STANDARD.encode(plain);
                self.conn
                    .command(&format!("AUTH PLAIN {b64}"), "AUTH PLAIN")
                    .await
                    .map(|_| ())
                    .map_err(refused)
            }
            Err(e) => Err(refused(e)),
        }
    }

    /// AUTH XOAUTH2 / OAUTHBEARER with the account's access token, renewed once when the
    /// server refuses it.
    async fn login_bearer(&mut self, server: &ServerConfig, user: &str) -> Result<(), Pop3Error> {
        use base64::Engine;
        let tokens = server.oauth2.as_ref().ok_or_else(|| Pop3Error::Password {
            user: user.to_string(),
            message: "no [account.oauth2] for this OAuth2 login".into(),
        })?;
        let mechanism = sasl::name(server.auth);
        let mut renew = false;
        loop {
            let token = tokens.access_token(renew).await?;
            let initial = sasl::initial_response(
                server.auth,
                user,
                &server.host,
                server.port,
                token.expose(),
            )
            .map_err(|message| Pop3Error::Password {
                user: user.to_string(),
                message,
            })?;
            let b64 = base64::engine::general_purpose::STANDARD.encode(initial);
            let context = format!("AUTH {mechanism}");
            self.conn
                .send(&format!("AUTH {mechanism} {b64}"), &context)
                .await?;
            let said = match self.conn.challenge_or_status(&context).await {
                Ok(Ok(_)) => return Ok(()),
                // The error challenge: answered so that the server ends with -ERR.
                Ok(Err(challenge)) => {
                    let why = base64::engine::general_purpose::STANDARD
                        .decode(challenge.as_bytes())
                        .map(|b| sasl::describe_error(&b))
                        .unwrap_or(challenge);
                    let answer = base64::engine::general_purpose::STANDARD
                        .encode(sasl::abort_response(server.auth));
                    self.conn.send(&answer, &context).await?;
                    let _ = self.conn.status(&context).await;
                    Some(why)
                }
                Err(Pop3Error::Refused { message, .. }) => Some(message),
                Err(e) => return Err(e),
            };
            let renewable = !matches!(
                tokens.source,
                crate::model::credentials::TokenSource::Given(_)
            );
            if !renew && renewable {
                renew = true;
                continue;
            }
            return Err(Pop3Error::Login {
                user: user.to_string(),
                message: format!("{mechanism}: {}", said.unwrap_or_default()),
            });
        }
    }

    fn has_sasl(&self, mechanism: &str) -> bool {
        self.caps.iter().any(|c| {
            let mut words = c.split_whitespace();
            words.next() == Some("SASL") && words.any(|w| w == mechanism)
        })
    }

    /// Whether the server said it has UIDL (CAPA); servers without CAPA are asked anyway.
    pub fn may_have_uidl(&self) -> bool {
        self.caps.is_empty() || self.caps.iter().any(|c| c == "UIDL")
    }

    /// Every message with its size and, when the server has them, its unique id. `None` for
    /// ids: the server has no UIDL.
    pub async fn list(&mut self) -> Result<Vec<Listed>, Pop3Error> {
        self.conn.command("LIST", "LIST").await?;
        let body = self.conn.multiline("LIST", 64 << 20).await?;
        let mut listed = Vec::new();
        for (number, rest) in numbered_lines(&body, "LIST")? {
            let size = rest
                .split_whitespace()
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| {
                    Pop3Error::protocol(
                        "LIST",
                        format!("message {number}: no size: {}", readable(rest.as_bytes())),
                    )
                })?;
            listed.push(Listed {
                number,
                size,
                uid: None,
            });
        }
        if !self.may_have_uidl() {
            return Ok(listed);
        }
        match self.conn.command("UIDL", "UIDL").await {
            Ok(_) => {}
            Err(Pop3Error::Refused { .. }) => return Ok(listed),
            Err(e) => return Err(e),
        }
        let body = self.conn.multiline("UIDL", 64 << 20).await?;
        let ids: std::collections::HashMap<u32, String> =
            numbered_lines(&body, "UIDL")?.into_iter().collect();
        for l in &mut listed {
            // RFC 1939: 1 to 70 characters 0x21-0x7E; anything else is not trusted as an id.
            l.uid = ids
                .get(&l.number)
                .filter(|u| {
                    (1..=70).contains(&u.len()) && u.bytes().all(|b| (0x21..=0x7e).contains(&b))
                })
                .cloned();
        }
        Ok(listed)
    }

    /// Message `number`'s bytes; an error when it is larger than `limit`.
    pub async fn retr(&mut self, number: u32, limit: u64) -> Result<Vec<u8>, Pop3Error> {
        let context = format!("RETR {number}");
        self.conn.command(&context, &context).await?;
        self.conn.multiline(&context, limit).await
    }

    /// Message `number`'s header block (TOP n 0, an optional command): None when the server
    /// does not have TOP.
    pub async fn top_headers(
        &mut self,
        number: u32,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, Pop3Error> {
        let context = format!("TOP {number} 0");
        match self.conn.command(&context, &context).await {
            Ok(_) => self.conn.multiline(&context, limit).await.map(Some),
            Err(Pop3Error::Refused { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Mark message `number` deleted (carried out at QUIT only).
    pub async fn dele(&mut self, number: u32) -> Result<(), Pop3Error> {
        let context = format!("DELE {number}");
        self.conn.command(&context, &context).await.map(|_| ())
    }

    /// End the session: the server deletes what DELE marked. Its answer tells whether it did.
    pub async fn quit(mut self) -> Result<(), Pop3Error> {
        self.conn.command("QUIT", "QUIT").await.map(|_| ())
    }
}

/// CAPA's lines, upper-cased; none when the server has no CAPA (RFC 1939 servers).
async fn capabilities(conn: &mut Conn) -> Vec<String> {
    if conn.command("CAPA", "CAPA").await.is_err() {
        return Vec::new();
    }
    conn.multiline("CAPA", 64 << 10)
        .await
        .map(|body| {
            String::from_utf8_lossy(&body)
                .lines()
                .map(|l| l.trim().to_ascii_uppercase())
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// The `<...>` timestamp of an APOP-capable greeting.
fn apop_timestamp(greeting: &str) -> Option<&str> {
    let start = greeting.find('<')?;
    let end = start + greeting[start..].find('>')?;
    let stamp = &greeting[start..=end];
    (stamp.contains('@') || stamp.len() > 2).then_some(stamp)
}

/// The TLS handshake over `io` (the TCP connection, or after STLS the stream read from),
/// with the command deadline.
async fn handshake<S>(
    io: S,
    host: &str,
    client: &tls::Client,
    deadline: Duration,
) -> Result<tokio_rustls::client::TlsStream<S>, Pop3Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match tokio::time::timeout(deadline, tls::handshake_over(io, host, client)).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(Pop3Error::timeout("TLS handshake", deadline)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_apop_timestamp_of_a_greeting() {
        assert_eq!(
            apop_timestamp("Dovecot ready. <1896.697170952@dbc.mtview.ca.us>"),
            Some("<1896.697170952@dbc.mtview.ca.us>")
        );
        assert_eq!(apop_timestamp("ready"), None);
        assert_eq!(apop_timestamp("ready <>"), None);
    }

    #[test]
    fn apop_digest_of_rfc_1939() {
        use md5::Digest;
        // RFC 1939 section 7's example.
        let d = md5::Md5::digest(b"<1896.697170952@dbc.mtview.ca.us>tanstaaf");
        assert_eq!(hex::encode(d), "c4c9334bac560ecc979e58001b3e22fb");
    }
}
