//! TLS client settings: certificates are always verified, against the Mozilla roots
//! (webpki-roots), with `ca_file` against that CA alone, or, with a pinned certificate
//! (`tls_fingerprint` / `tls_cert`: what self-signed home servers and appliances need),
//! against exactly that certificate. A `ca_file` that holds the very certificate the server
//! presents (a self-signed one, as mbsync's `CertificateFile` and imapfilter users give it)
//! is taken as a pin of it. There is no switch to turn verification off. When a certificate
//! is refused, the error says why in plain words, with its fingerprint and how to pin it.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::net::TcpStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use tokio_rustls::rustls::{
    ClientConfig, DigitallySignedStruct, Error as RustlsError, RootCertStore, SignatureScheme,
};
use tokio_rustls::{client::TlsStream, TlsConnector};

use crate::model::endpoint::Fingerprint;

/// What a server's certificate is checked against.
#[derive(Debug)]
enum Trust {
    /// Exactly this certificate (by fingerprint), whatever signed it and whatever name it
    /// is for.
    Pinned(Fingerprint),
    /// The usual chain and name verification against `ca_file` or the web roots; a server
    /// certificate that is itself one of `ca_file`'s is accepted as pinned.
    Roots {
        verifier: Arc<WebPkiServerVerifier>,
        ca_file: Option<(String, Vec<Fingerprint>)>,
    },
}

/// The `ca_file`s whose certificate a server presented as its own and that were accepted as
/// pins (for `mailpipe check --connect` to say so).
static PINNED_BY_CA_FILE: Mutex<std::collections::BTreeSet<String>> =
    Mutex::new(std::collections::BTreeSet::new());

/// Whether a server presented the certificate of `ca_file` itself and it was accepted as a
/// pin in this process.
pub fn pinned_by_ca_file(ca_file: &Path) -> bool {
    PINNED_BY_CA_FILE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&ca_file.display().to_string())
}

/// Our certificate verifier: `Trust`, the handshake signatures checked with the certificate
/// in both cases, and the fingerprint of a refused certificate remembered so the error can
/// say how to pin it.
#[derive(Debug)]
struct Verifier {
    trust: Trust,
    algorithms: WebPkiSupportedAlgorithms,
    refused: Arc<Mutex<Option<Fingerprint>>>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, RustlsError> {
        let got = Fingerprint::of(end_entity);
        let r = match &self.trust {
            Trust::Pinned(pin) if got == *pin => Ok(ServerCertVerified::assertion()),
            Trust::Pinned(pin) => Err(RustlsError::General(format!(
                "the server's certificate {got} is not the pinned one {pin}"
            ))),
            Trust::Roots { verifier, ca_file } => {
                let r = verifier.verify_server_cert(
                    end_entity,
                    intermediates,
                    server_name,
                    ocsp_response,
                    now,
                );
                match ca_file {
                    Some((path, certs)) if r.is_err() && certs.contains(&got) => {
                        let first = PINNED_BY_CA_FILE
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(path.clone());
                        if first {
                            tracing::info!(ca_file = %path, fingerprint = %got, "the server's certificate is the one in ca_file: accepted as a pinned certificate");
                        }
                        Ok(ServerCertVerified::assertion())
                    }
                    _ => r,
                }
            }
        };
        if r.is_err() && matches!(self.trust, Trust::Roots { .. }) {
            *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = Some(got);
        }
        r
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, RustlsError> {
        tokio_rustls::rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, RustlsError> {
        tokio_rustls::rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Client settings with the fingerprint of a refused certificate, if one is refused.
#[derive(Clone)]
pub struct Client {
    pub config: Arc<ClientConfig>,
    refused: Arc<Mutex<Option<Fingerprint>>>,
}

impl Client {
    /// The certificate refused in the last handshake, if any.
    pub fn refused(&self) -> Option<Fingerprint> {
        *self.refused.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read CA file {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
    #[error("TLS handshake with {host} failed: {message}")]
    Handshake { host: String, message: String },
}

/// TLS server settings presenting the certificate chain in `cert` (PEM) with the private key
/// in `key` (PEM), for the servers the daemon offers (ManageSieve).
pub fn server(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls_pki_types::PrivateKeyDer;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| format!("cannot read the certificate {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read the private key {}: {e}", key.display()))?;
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| format!("{}: {e}", cert.display()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// TLS client settings for a server: pinned, or verified against `ca_file` or the web roots.
pub fn client(ca_file: Option<&Path>, pin: Option<Fingerprint>) -> Result<Client, TlsError> {
    let provider: Arc<CryptoProvider> =
        Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions");
    let algorithms = provider.signature_verification_algorithms;
    let trust = match pin {
        Some(pin) => Trust::Pinned(pin),
        None => {
            let (roots, certs) = roots(ca_file)?;
            Trust::Roots {
                verifier: WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| TlsError::CaFile {
                        path: ca_file
                            .map_or("(built-in roots)".into(), |p| p.display().to_string()),
                        message: e.to_string(),
                    })?,
                ca_file: ca_file.map(|p| (p.display().to_string(), certs)),
            }
        }
    };
    let refused = Arc::new(Mutex::new(None));
    let verifier = Verifier {
        trust,
        algorithms,
        refused: refused.clone(),
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Client {
        config: Arc::new(config),
        refused,
    })
}

/// The trusted roots: the web PKI's, or only the CA(s) in `ca_file`, with the fingerprints
/// of `ca_file`'s certificates.
fn roots(ca_file: Option<&Path>) -> Result<(RootCertStore, Vec<Fingerprint>), TlsError> {
    let mut roots = RootCertStore::empty();
    let mut prints = Vec::new();
    match ca_file {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            let err = |message: String| TlsError::CaFile {
                path: path.display().to_string(),
                message,
            };
            let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(path)
                .map_err(|e| err(e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| err(e.to_string()))?;
            if certs.is_empty() {
                return Err(err("no PEM certificate in it".into()));
            }
            for c in certs {
                prints.push(Fingerprint::of(&c));
                // A certificate that cannot be a root (say, a server's own) is still a pin.
                let _ = roots.add(c);
            }
        }
    }
    Ok((roots, prints))
}

/// Wrap `tcp` in TLS, verifying the certificate for `host`. A refused certificate's error
/// says its fingerprint and how to pin it.
pub async fn handshake(
    tcp: TcpStream,
    host: &str,
    client: &Client,
) -> Result<TlsStream<TcpStream>, TlsError> {
    handshake_over(tcp, host, client).await
}

/// The same over any byte stream (POP3's STLS upgrades the connection it has read from).
pub async fn handshake_over<S>(
    tcp: S,
    host: &str,
    client: &Client,
) -> Result<TlsStream<S>, TlsError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let name = ServerName::try_from(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    )
    .map_err(|_| TlsError::ServerName(host.to_string()))?;
    TlsConnector::from(client.config.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| TlsError::Handshake {
            host: host.to_string(),
            message: match client.refused() {
                Some(fp) => format!(
                    "{}; the server's certificate is {fp}: if you trust it, pin it with tls_fingerprint = \"{fp}\"",
                    in_plain_words(&e, host)
                ),
                None => in_plain_words(&e, host),
            },
        })
}

/// Why a handshake failed, in a mail user's words rather than the TLS library's.
fn in_plain_words(e: &std::io::Error, host: &str) -> String {
    use tokio_rustls::rustls::CertificateError as C;
    let Some(RustlsError::InvalidCertificate(c)) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<RustlsError>())
    else {
        return match e.get_ref().and_then(|inner| inner.downcast_ref::<RustlsError>()) {
            Some(RustlsError::General(text)) => text.clone(),
            Some(RustlsError::AlertReceived(alert)) => {
                format!("the server ended the handshake ({alert:?})")
            }
            Some(RustlsError::NoCertificatesPresented) => {
                "the server presented no certificate".into()
            }
            Some(_) => "the TLS handshake failed (no common protocol version or cipher, or a malformed answer)".into(),
            None => e.to_string(),
        };
    };
    match c {
        C::UnknownIssuer => "the server's certificate is not signed by a trusted authority (ca_file, or the usual web authorities)".into(),
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            format!("the server's certificate is not made out to {host:?}")
        }
        C::Expired | C::ExpiredContext { .. } => "the server's certificate has expired".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => {
            "the server's certificate is not valid yet (or this machine's clock is wrong)".into()
        }
        C::Revoked => "the server's certificate was revoked".into(),
        C::BadSignature | C::BadEncoding => "the server's certificate is malformed or its signature is wrong".into(),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "the server's certificate is not meant for a TLS server".into()
        }
        C::Other(other) if format!("{other:?}").contains("CaUsedAsEndEntity") => {
            "the server presents a certificate authority's certificate as its own (a CA              certificate cannot be a server's; ca_file holding exactly this certificate pins it)"
                .into()
        }
        _ => "the server's certificate was refused".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for "localhost" (`openssl req -x509`, so marked as a CA, as
    /// appliances and home servers make them): (certificate file, key file).
    fn self_signed(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let (cert, key) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        let ok = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
            ])
            .args([
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl")
            .success();
        assert!(ok, "openssl req -x509");
        (cert, key)
    }

    /// A TLS server on loopback presenting `cert`; the port.
    async fn serve(cert: &Path, key: &Path) -> u16 {
        use rustls_pki_types::PrivateKeyDer;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = acceptor.accept(tcp).await;
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn a_ca_file_holding_the_servers_own_certificate_pins_it() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path(), "server");
        let (other, _) = self_signed(dir.path(), "other");
        let port = serve(&cert, &key).await;
        let connect = |ca: std::path::PathBuf| async move {
            let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            handshake(tcp, "localhost", &client(Some(&ca), None).unwrap()).await
        };
        assert!(!pinned_by_ca_file(&cert));
        connect(cert.clone())
            .await
            .expect("the certificate in ca_file is the server's");
        assert!(pinned_by_ca_file(&cert), "said so for check --connect");

        // Another self-signed certificate is refused, in plain words, with the fingerprint.
        let Err(e) = connect(other).await else {
            panic!("another self-signed certificate is refused");
        };
        let e = e.to_string();
        assert!(e.contains("certificate"), "{e}");
        assert!(e.contains("tls_fingerprint = \"sha256:"), "{e}");
        for library_words in [
            "CaUsedAsEndEntity",
            "Other(",
            "OtherError",
            "InvalidCertificate",
        ] {
            assert!(!e.contains(library_words), "{library_words} in: {e}");
        }
    }

    #[test]
    fn fingerprints_parse_with_or_without_colons() {
        let fp = Fingerprint::of(b"cert");
        let shown = fp.to_string();
        assert!(shown.starts_with("sha256:") && shown.len() == 7 + 64 + 31);
        assert_eq!(Fingerprint::parse(&shown), Ok(fp));
        assert_eq!(
            Fingerprint::parse(
                &shown
                    .replace(':', "")
                    .replacen("sha256", "sha256:", 1)
                    .to_lowercase()
            ),
            Ok(fp)
        );
        assert!(Fingerprint::parse("sha256:abcd").is_err());
        assert!(Fingerprint::parse("md5:00").is_err());
    }
}
