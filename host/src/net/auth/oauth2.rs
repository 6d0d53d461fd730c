//! OAuth2 access tokens for IMAP and SMTP (Gmail, Microsoft 365 and any server that takes
//! bearer tokens). A token comes either from the user's own command (oama, mutt_oauth2.py,
//! ...) or from mailpipe itself: a refresh token, obtained once by `mailpipe auth`, is kept
//! in a file only the user can read, and exchanged at the provider's token endpoint for an
//! access token whenever the cached one has expired or the server refused it. Secrets (client
//! secret, tokens) never appear in messages or logs.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::model::credentials::{OAuth2, OAuth2Client, PasswordSource, Secret, TokenSource};
use crate::net::http;

/// A cached access token is renewed this long before the provider says it expires.
const EXPIRY_MARGIN_SECS: u64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Nothing stored yet, or stored for another client: the user runs `mailpipe auth`.
    #[error("account {account}: not authorised yet ({why}); run `mailpipe auth {account} -c CONFIG` once")]
    NotAuthorized { account: String, why: String },
    /// The provider refused the refresh token (revoked, expired, password changed).
    #[error("account {account}: the provider refused the stored refresh token ({detail}); run `mailpipe auth {account} -c CONFIG` again")]
    Reauthorize { account: String, detail: String },
    /// The client id or secret is wrong, or the request is: fix the config.
    #[error("account {account}: the token endpoint refused the request ({detail}); check [account.oauth2]")]
    Refused { account: String, detail: String },
    /// Network trouble or a provider outage: worth another try later.
    #[error("account {account}: cannot reach the token endpoint: {detail}")]
    Unreachable { account: String, detail: String },
    #[error("account {account}: token_command: {detail}")]
    Command { account: String, detail: String },
    #[error("account {account}: token file {}: {detail}", path.display())]
    Store {
        account: String,
        path: PathBuf,
        detail: String,
    },
}

impl AuthError {
    /// Worth retrying after a pause, as opposed to something the user has to do.
    pub fn is_transient(&self) -> bool {
        matches!(self, AuthError::Unreachable { .. })
    }
}

/// What `mailpipe auth` stores, and the access token cached across restarts.
#[derive(Serialize, Deserialize)]
struct TokenFile {
    client_id: String,
    token_url: String,
    refresh_token: String,
    #[serde(default)]
    access_token: String,
    /// Unix seconds.
    #[serde(default)]
    expires_at: u64,
}

/// The provider's answer at its token endpoint.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    refresh_token: Option<String>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl OAuth2 {
    /// A valid access token: the cached one, unless `renew` (the server refused it) or it
    /// expires within a minute; then a fresh one.
    pub async fn access_token(&self, renew: bool) -> Result<Secret, AuthError> {
        let client = match &self.source {
            TokenSource::Command(cmd) => {
                return PasswordSource::Command(cmd.clone())
                    .resolve()
                    .await
                    .map_err(|detail| AuthError::Command {
                        account: self.account.clone(),
                        detail,
                    });
            }
            TokenSource::Refresh(c) => c,
            TokenSource::Given(token) => return Ok(token.clone()),
        };
        let mut cache = self.cache.lock().await;
        let fresh = |expires_at: u64| expires_at > now_secs() + EXPIRY_MARGIN_SECS;
        if !renew {
            if let Some((token, expires_at)) = cache.as_ref() {
                if fresh(*expires_at) {
                    return Ok(token.clone());
                }
            }
        }
        let mut stored = self.load(client)?;
        if !renew && !stored.access_token.is_empty() && fresh(stored.expires_at) {
            let token = Secret::new(stored.access_token.clone());
            *cache = Some((token.clone(), stored.expires_at));
            return Ok(token);
        }
        let secret = self.client_secret(client).await?;
        let mut fields = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", stored.refresh_token.as_str()),
            ("client_id", client.client_id.as_str()),
        ];
        if let Some(s) = &secret {
            fields.push(("client_secret", s.expose()));
        }
        let answer = self.token_request(client, &fields).await?;
        stored.access_token = answer.access_token.clone();
        stored.expires_at = now_secs() + expires_in(&answer);
        if let Some(rotated) = answer.refresh_token.filter(|r| !r.is_empty()) {
            stored.refresh_token = rotated;
        }
        self.save(client, &stored)?;
        let token = Secret::new(answer.access_token);
        *cache = Some((token.clone(), stored.expires_at));
        Ok(token)
    }

    async fn client_secret(&self, client: &OAuth2Client) -> Result<Option<Secret>, AuthError> {
        match &client.client_secret {
            None => Ok(None),
            Some(source) => source
                .resolve()
                .await
                .map(Some)
                .map_err(|detail| AuthError::Refused {
                    account: self.account.clone(),
                    detail: format!("client secret: {detail}"),
                }),
        }
    }

    fn load(&self, client: &OAuth2Client) -> Result<TokenFile, AuthError> {
        let not_yet = |why: String| AuthError::NotAuthorized {
            account: self.account.clone(),
            why,
        };
        let text = match std::fs::read_to_string(&client.token_file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(not_yet(format!(
                    "no token file {}",
                    client.token_file.display()
                )))
            }
            Err(e) => return Err(self.store_error(client, e.to_string())),
        };
        let stored: TokenFile = serde_json::from_str(&text)
            .map_err(|e| self.store_error(client, format!("unreadable: {e}")))?;
        if stored.client_id != client.client_id
            || stored.token_url != client.token_url.origin_path()
        {
            return Err(not_yet(
                "the stored token belongs to another client_id or token_url".into(),
            ));
        }
        Ok(stored)
    }

    fn store_error(&self, client: &OAuth2Client, detail: String) -> AuthError {
        AuthError::Store {
            account: self.account.clone(),
            path: client.token_file.clone(),
            detail,
        }
    }

    /// Write the token file atomically, readable by its owner only.
    fn save(&self, client: &OAuth2Client, stored: &TokenFile) -> Result<(), AuthError> {
        let err = |e: std::io::Error| self.store_error(client, e.to_string());
        write_private(
            &client.token_file,
            &serde_json::to_vec_pretty(stored).expect("json"),
        )
        .map_err(err)
    }

    /// POST to the token endpoint; errors sorted by what the user must do about them.
    async fn token_request(
        &self,
        client: &OAuth2Client,
        fields: &[(&str, &str)],
    ) -> Result<TokenAnswer, AuthError> {
        match self.token_call(client, fields).await? {
            Ok(answer) => Ok(answer),
            Err((error, detail)) => Err(match error.as_str() {
                "invalid_grant" => AuthError::Reauthorize {
                    account: self.account.clone(),
                    detail,
                },
                _ => AuthError::Refused {
                    account: self.account.clone(),
                    detail,
                },
            }),
        }
    }

    /// One call: `Ok(Ok(answer))`, `Ok(Err((error code, description)))` for an OAuth2 error
    /// answer, `Err` when the endpoint could not be reached or answered nonsense.
    async fn token_call(
        &self,
        client: &OAuth2Client,
        fields: &[(&str, &str)],
    ) -> Result<Result<TokenAnswer, (String, String)>, AuthError> {
        let unreachable = |detail: String| AuthError::Unreachable {
            account: self.account.clone(),
            detail,
        };
        let response = http::post_form(&client.token_url, &http::form(fields), None)
            .await
            .map_err(unreachable)?;
        classify(response).map_err(unreachable)
    }

    /// RFC 8628: ask for a user code, show where to enter it, and poll until the user has
    /// agreed (or refused, or the code expired). Stores the refresh token.
    pub async fn authorize_device(&self, show: impl Fn(&str)) -> Result<(), AuthError> {
        let client = self.refresh_client()?;
        let device_url = client
            .device_url
            .as_ref()
            .ok_or_else(|| AuthError::Refused {
                account: self.account.clone(),
                detail:
                    "no device_url: this provider has no device flow for mail, use --flow browser"
                        .into(),
            })?;
        let secret = self.client_secret(client).await?;
        let scope = client.scopes.join(" ");
        let mut fields = vec![
            ("client_id", client.client_id.as_str()),
            ("scope", scope.as_str()),
        ];
        if let Some(s) = &secret {
            fields.push(("client_secret", s.expose()));
        }
        let unreachable = |detail: String| AuthError::Unreachable {
            account: self.account.clone(),
            detail,
        };
        let response = http::post_form(device_url, &http::form(&fields), None)
            .await
            .map_err(unreachable)?;
        if response.status != 200 {
            return Err(AuthError::Refused {
                account: self.account.clone(),
                detail: format!(
                    "device authorization: HTTP {}: {}",
                    response.status,
                    error_text(&response.body)
                ),
            });
        }
        let v: serde_json::Value = serde_json::from_slice(&response.body)
            .map_err(|e| unreachable(format!("device authorization answer: {e}")))?;
        let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        let (Some(device_code), Some(user_code)) = (text("device_code"), text("user_code")) else {
            return Err(unreachable(
                "device authorization answer lacks device_code or user_code".into(),
            ));
        };
        // Google calls it verification_url.
        let uri = text("verification_uri")
            .or_else(|| text("verification_url"))
            .unwrap_or_default();
        let mut interval = v
            .get("interval")
            .and_then(|x| x.as_u64())
            .unwrap_or(5)
            .max(1);
        let expires = v.get("expires_in").and_then(|x| x.as_u64()).unwrap_or(600);
        let mut message = format!("To authorise mailpipe for account {}, open\n  {uri}\nand enter the code\n  {user_code}\n", self.account);
        if let Some(complete) = text("verification_uri_complete") {
            message.push_str(&format!("(or open {complete})\n"));
        }
        message.push_str("Waiting for you to finish there...");
        show(&message);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(expires);
        loop {
            tokio::time::sleep(Duration::from_secs(interval)).await;
            if tokio::time::Instant::now() > deadline {
                return Err(AuthError::Refused {
                    account: self.account.clone(),
                    detail: "the code expired before it was entered".into(),
                });
            }
            let mut poll = vec![
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", device_code.as_str()),
                ("client_id", client.client_id.as_str()),
            ];
            if let Some(s) = &secret {
                poll.push(("client_secret", s.expose()));
            }
            match self.token_call(client, &poll).await {
                // A network hiccup while the user types: keep polling.
                Err(AuthError::Unreachable { .. }) => continue,
                Err(e) => return Err(e),
                Ok(Ok(answer)) => return self.store_new(client, answer),
                Ok(Err((error, detail))) => match error.as_str() {
                    "authorization_pending" => {}
                    "slow_down" => interval += 5,
                    _ => {
                        return Err(AuthError::Refused {
                            account: self.account.clone(),
                            detail,
                        })
                    }
                },
            }
        }
    }

    /// RFC 8252 with PKCE (RFC 7636): the user opens the provider's page in a browser, the
    /// provider redirects to a listener on 127.0.0.1, and the code it brings is exchanged.
    /// `show` gets the address to open. Stores the refresh token.
    pub async fn authorize_browser(
        &self,
        login_hint: &str,
        show: impl Fn(&str),
    ) -> Result<(), AuthError> {
        use base64::Engine;
        let client = self.refresh_client()?;
        let refused = |detail: String| AuthError::Refused {
            account: self.account.clone(),
            detail,
        };
        let auth_url = client
            .auth_url
            .as_ref()
            .ok_or_else(|| refused("no auth_url in [account.oauth2]".into()))?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", client.redirect_port))
            .await
            .map_err(|e| {
                refused(format!(
                    "cannot listen on 127.0.0.1:{}: {e}",
                    client.redirect_port
                ))
            })?;
        let port = listener
            .local_addr()
            .map_err(|e| refused(e.to_string()))?
            .port();
        let redirect_uri = format!("http://127.0.0.1:{port}/");
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let verifier = b64.encode(random_bytes::<32>());
        let challenge = b64.encode(<sha2::Sha256 as sha2::Digest>::digest(verifier.as_bytes()));
        let state = hex::encode(random_bytes::<16>());
        let scope = client.scopes.join(" ");
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", client.client_id.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("scope", scope.as_str()),
            ("state", state.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("login_hint", login_hint),
        ];
        if auth_url.host.ends_with("google.com") {
            // Google hands out a refresh token only when asked for offline access.
            params.extend([("access_type", "offline"), ("prompt", "consent")]);
        }
        let sep = if auth_url.path.contains('?') {
            '&'
        } else {
            '?'
        };
        let url = format!(
            "{}{}{sep}{}",
            auth_url.origin(),
            auth_url.path,
            http::form(&params)
        );
        show(&format!(
            "To authorise mailpipe for account {}, open this address in a browser on this machine:\n  {url}\nWaiting for the provider to send you back to {redirect_uri} ...",
            self.account
        ));
        let code = tokio::time::timeout(Duration::from_secs(600), wait_for_code(&listener, &state))
            .await
            .map_err(|_| refused("no answer from the browser within 10 minutes".into()))?
            .map_err(refused)?;
        let secret = self.client_secret(client).await?;
        let mut fields = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("client_id", client.client_id.as_str()),
            ("code_verifier", verifier.as_str()),
        ];
        if let Some(s) = &secret {
            fields.push(("client_secret", s.expose()));
        }
        let answer = self.token_request(client, &fields).await?;
        self.store_new(client, answer)
    }

    /// Store a refresh token obtained elsewhere (another tool, an admin console).
    pub async fn import_refresh_token(&self, refresh_token: &str) -> Result<(), AuthError> {
        let client = self.refresh_client()?;
        let stored = TokenFile {
            client_id: client.client_id.clone(),
            token_url: client.token_url.origin_path(),
            refresh_token: refresh_token.trim().to_string(),
            access_token: String::new(),
            expires_at: 0,
        };
        self.save(client, &stored)?;
        *self.cache.lock().await = None;
        // Prove it works now rather than at the next run.
        self.access_token(true).await.map(|_| ())
    }

    fn refresh_client(&self) -> Result<&OAuth2Client, AuthError> {
        match &self.source {
            TokenSource::Refresh(c) => Ok(&**c),
            TokenSource::Command(_) => Err(AuthError::Refused {
                account: self.account.clone(),
                detail: "this account gets its tokens from token_command; nothing to authorise"
                    .into(),
            }),
            TokenSource::Given(_) => Err(AuthError::Refused {
                account: self.account.clone(),
                detail: "a token presented by a client; nothing to authorise".into(),
            }),
        }
    }

    fn store_new(&self, client: &OAuth2Client, answer: TokenAnswer) -> Result<(), AuthError> {
        let refresh_token = answer.refresh_token.clone().filter(|r| !r.is_empty()).ok_or_else(|| {
            AuthError::Refused {
                account: self.account.clone(),
                detail: "the provider granted access but sent no refresh token (offline access not granted?)".into(),
            }
        })?;
        let stored = TokenFile {
            client_id: client.client_id.clone(),
            token_url: client.token_url.origin_path(),
            refresh_token,
            access_token: answer.access_token.clone(),
            expires_at: now_secs() + expires_in(&answer),
        };
        self.save(client, &stored)
    }
}

fn expires_in(answer: &TokenAnswer) -> u64 {
    // Some providers send a number, some a string.
    match &answer.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_u64().unwrap_or(3600),
        Some(serde_json::Value::String(s)) => s.parse().unwrap_or(3600),
        _ => 3600,
    }
}

/// An answer of a token endpoint: the tokens, or the OAuth2 error with its description.
fn classify(response: http::Response) -> Result<Result<TokenAnswer, (String, String)>, String> {
    if response.status == 200 {
        return serde_json::from_slice::<TokenAnswer>(&response.body)
            .map(Ok)
            .map_err(|e| format!("unreadable token answer: {e}"));
    }
    let v: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_default();
    match v.get("error").and_then(|e| e.as_str()) {
        Some(code) if (400..500).contains(&response.status) => {
            let code = crate::model::text::clean_text(code);
            Ok(Err((
                code.clone(),
                format!("HTTP {}: {}", response.status, error_text(&response.body)),
            )))
        }
        _ => Err(format!(
            "HTTP {}: {}",
            response.status,
            error_text(&response.body)
        )),
    }
}

/// `error` and `error_description` of an OAuth2 error answer, or the start of the body.
fn error_text(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = match (
        v.get("error").and_then(|e| e.as_str()),
        v.get("error_description").and_then(|e| e.as_str()),
    ) {
        (Some(e), Some(d)) => format!("{e}: {d}"),
        (Some(e), None) => e.to_string(),
        _ => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    };
    crate::model::text::clean_text(&text)
}

/// Accept connections on the loopback listener until one brings the redirect with our
/// `state`; answer the browser with a short page.
async fn wait_for_code(listener: &tokio::net::TcpListener, state: &str) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let (mut stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 16 << 10];
        let mut len = 0;
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            while len < buf.len() {
                let n = stream.read(&mut buf[len..]).await?;
                if n == 0 {
                    break;
                }
                len += n;
                if memchr::memmem::find(&buf[..len], b"\r\n\r\n").is_some() {
                    break;
                }
            }
            Ok::<_, std::io::Error>(())
        })
        .await;
        if !matches!(read, Ok(Ok(()))) {
            continue;
        }
        let head = String::from_utf8_lossy(&buf[..len]);
        let target = head
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("GET "))
            .and_then(|l| l.split(' ').next())
            .unwrap_or("");
        let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
        let params = http::parse_query(query);
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let (outcome, page) = match (get("state"), get("code"), get("error")) {
            (Some(s), Some(code), _) if s == state => (
                Some(Ok(code)),
                "mailpipe is authorised. You can close this page.",
            ),
            (Some(s), _, Some(error)) if s == state => (
                Some(Err(format!(
                    "the provider refused: {}",
                    crate::model::text::clean_text(&format!(
                        "{error} {}",
                        get("error_description").unwrap_or_default()
                    ))
                ))),
                "mailpipe was not authorised. See the terminal.",
            ),
            // Favicon requests, stray visitors, a stale tab of an earlier attempt.
            _ => (None, "Not the answer mailpipe is waiting for."),
        };
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
            page.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
        if let Some(result) = outcome {
            return result;
        }
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut out = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut out)
        .expect("the system's random number generator works");
    out
}

/// Write `data` to `path` atomically with mode 0600 (directory 0700 if it is created).
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::endpoint::Url;

    fn client(dir: &Path) -> OAuth2Client {
        OAuth2Client {
            client_id: "id".into(),
            client_secret: None,
            token_url: Url::parse("http://127.0.0.1:9/token").unwrap(),
            auth_url: None,
            device_url: None,
            scopes: vec![],
            token_file: dir.join("tokens").join("a.json"),
            redirect_port: 0,
        }
    }

    #[tokio::test]
    async fn cached_token_from_the_file_is_used_without_the_network() {
        let dir = tempfile::tempdir().unwrap();
        let c = client(dir.path());
        let o = OAuth2::new("a", TokenSource::Refresh(Box::new(c.clone())));
        // Nothing stored: the user is told what to run.
        let e = o.access_token(false).await.unwrap_err();
        assert!(matches!(e, AuthError::NotAuthorized { .. }), "{e}");
        assert!(e.to_string().contains("mailpipe auth a"), "{e}");
        let stored = TokenFile {
            client_id: "id".into(),
            token_url: c.token_url.origin_path(),
            refresh_token: "r".into(),
            access_token: "cached".into(),
            expires_at: now_secs() + 3600,
        };
        o.save(&c, &stored).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&c.token_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dmode = std::fs::metadata(c.token_file.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dmode & 0o777, 0o700);
        assert_eq!(o.access_token(false).await.unwrap().expose(), "cached");
        // Renewing needs the endpoint (port 9 on loopback: nothing listens).
        let e = o.access_token(true).await.unwrap_err();
        assert!(e.is_transient(), "{e}");
        // Another client id: not this token.
        let mut other = c.clone();
        other.client_id = "other".into();
        let o2 = OAuth2::new("a", TokenSource::Refresh(Box::new(other)));
        assert!(matches!(
            o2.access_token(false).await,
            Err(AuthError::NotAuthorized { .. })
        ));
    }

    #[test]
    fn token_endpoint_answers() {
        let r = |status, body: &str| http::Response {
            status,
            body: body.as_bytes().to_vec(),
        };
        let ok = classify(r(200, r#"{"access_token":"a","expires_in":"120"}"#))
            .unwrap()
            .unwrap();
        assert_eq!(expires_in(&ok), 120);
        let Ok(Err((code, detail))) = classify(r(
            400,
            r#"{"error":"invalid_grant","error_description":"Token has been revoked."}"#,
        )) else {
            panic!("an OAuth2 error answer")
        };
        assert_eq!(code, "invalid_grant");
        assert!(detail.contains("revoked"), "{detail}");
        assert!(classify(r(503, "<html>down</html>")).is_err());
        assert!(classify(r(200, "not json")).is_err());
    }
}
