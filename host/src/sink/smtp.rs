//! The SMTP transport (lettre): sends queued mail with its recorded envelope through the
//! account's submission server, with the same TLS rules as IMAP (verified certificates,
//! plain only on loopback or by explicit opt-in). lettre's own error classification tells the
//! outbox whether to retry (4xx, connection problems) or give up (5xx).

use lettre::address::{Address, Envelope};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::time::Duration;

use super::outbox::{SendError, Transport};
use crate::config::{ServerConfig, TlsMode};
use crate::state::OutboxEntry;

pub struct SmtpSink {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    server: String,
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
        let tls = if server.tls == TlsMode::None {
            Tls::None
        } else {
            let mut params = TlsParameters::builder(server.host.clone());
            if let Some(ca) = &server.ca_file {
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
            let params = params.build_rustls().map_err(|e| err(e.to_string()))?;
            match server.tls {
                TlsMode::Implicit => Tls::Wrapper(params),
                _ => Tls::Required(params),
            }
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server.host.clone())
                .port(server.port)
                .tls(tls)
                .hello_name(ClientId::Domain(helo.to_string()))
                .timeout(Some(Duration::from_secs(60)));
        if let Some(user) = &server.username {
            let password = match &server.password {
                Some(p) => p.resolve().await.map_err(&err)?,
                None => {
                    return Err(err(format!(
                        "username {user} given but no password_env/_file/_command"
                    )))
                }
            };
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ));
        }
        Ok(SmtpSink {
            transport: builder.build(),
            server: name,
        })
    }
}

impl SmtpSink {
    /// Connect, greet, STARTTLS and authenticate as configured, then quit.
    pub async fn probe(&self) -> Result<(), String> {
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err("the server did not accept the connection".into()),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl Transport for SmtpSink {
    async fn send_raw(&self, entry: &OutboxEntry, raw: &[u8]) -> Result<(), SendError> {
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
        match self.transport.send_raw(&envelope, raw).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => {
                Err(SendError::permanent(format!("{}: {e}", self.server)))
            }
            Err(e) => Err(SendError::transient(format!("{}: {e}", self.server))),
        }
    }
}
