//! Why this file exists: a ManageSieve session (RFC 5804) over any byte stream: the user logs
//! in with their account's own credentials (AUTHENTICATE PLAIN, checked by an `Authenticator`,
//! e.g. a login to the account's IMAP server) and edits that account's scripts in the state
//! store (`state::scripts`), with the interpreter's own errors (line and column) for a script
//! it refuses. One account never sees another's scripts. What the listener decides (TLS,
//! whether plaintext passwords are acceptable on this connection) comes in `Connection`.

pub mod guard;
pub mod imap_login;
pub mod listen;
pub mod wire;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use crate::config::sieve;
use crate::model::credentials::Auth;
use crate::net::auth::sasl;
use crate::state::scripts::{self, ScriptError, ScriptLimits};
use crate::state::Store;
use guard::{Admission, LoginGuard};
use wire::{read_command, response, string, Limits, WireError, Word};

/// What a user logs in with.
#[derive(Clone, Copy)]
pub enum Credential<'a> {
    Password(&'a str),
    /// An OAuth2 access token, presented with this mechanism (XOAUTH2 or OAUTHBEARER).
    Bearer(&'a str, Auth),
}

/// Checks a user's credentials: the account they may edit, or None when they are wrong.
pub trait Authenticator: Send + Sync {
    fn authenticate<'a>(
        &'a self,
        user: &'a str,
        credential: Credential<'a>,
    ) -> BoxFuture<'a, Result<Option<String>, String>>;
}

/// The SASL mechanisms offered, as the SASL capability lists them.
const MECHANISMS: &str = "PLAIN OAUTHBEARER XOAUTH2";

/// What every session of a server shares.
pub struct Server {
    pub store: Arc<Store>,
    pub limits: ScriptLimits,
    pub auth: Arc<dyn Authenticator>,
    /// The scripts `include :global` finds.
    pub global: BTreeMap<String, String>,
    /// Failed logins of every session: counted, slowed down, refused when too many.
    pub guard: LoginGuard,
    /// A logged-in session idle this long is ended.
    pub idle: Duration,
    /// A session not logged in yet is ended after this long without a command (also the
    /// bound on a client's answer to the SASL challenge).
    pub login_idle: Duration,
    /// Told of every login attempt (true: accepted), e.g. to count them in the metrics.
    pub on_login: Option<LoginHook>,
}

/// See `Server::on_login`.
pub type LoginHook = Arc<dyn Fn(bool) + Send + Sync>;

/// What the listener knows about one connection.
pub struct Connection {
    /// Plaintext passwords may be sent: the peer is on loopback, or the stream is TLS.
    pub plaintext_ok: bool,
    /// STARTTLS is offered (a certificate is configured and the stream is not TLS yet).
    pub starttls: bool,
    /// The peer's address, for counting failed logins (None for in-process streams).
    pub peer: Option<IpAddr>,
}

/// How a session ended.
pub enum Ended<S> {
    Closed,
    /// The client asked for TLS and got OK: the stream, for the listener's handshake, after
    /// which a new session starts on it.
    StartTls(S),
}

/// Failed logins after which a session is ended.
const MAX_FAILED_LOGINS: u32 = 3;

/// The most a command may carry before a login (a PLAIN response with a long password).
const MAX_BEFORE_LOGIN: usize = 16 * 1024;

enum Next {
    Continue,
    Close,
    StartTls,
}

impl Server {
    /// The capability lines (without the final OK).
    fn capabilities(&self, owner: Option<&str>, conn: &Connection) -> String {
        let mut out = String::new();
        out += &format!(
            "\"IMPLEMENTATION\" {}\r\n",
            string(&format!("mailpipe {}", env!("CARGO_PKG_VERSION")))
        );
        out += &format!("\"SIEVE\" {}\r\n", string(&sieve::extensions()));
        // The notification methods of enotify (RFC 5804 section 1.7).
        out += "\"NOTIFY\" \"mailto\"\r\n";
        if owner.is_none() {
            // No mechanism where a password may not be sent (RFC 5804 section 1.7).
            let sasl = if conn.plaintext_ok { MECHANISMS } else { "" };
            out += &format!("\"SASL\" \"{sasl}\"\r\n");
        }
        if conn.starttls && owner.is_none() {
            out += "\"STARTTLS\"\r\n";
        }
        if let Some(user) = owner {
            out += &format!("\"OWNER\" {}\r\n", string(user));
        }
        out += "\"VERSION\" \"1.0\"\r\n";
        out
    }

    /// Serves one connection until the client logs out, goes away or idles too long.
    pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
        conn: Connection,
    ) -> Ended<S> {
        let (r, mut w) = tokio::io::split(stream);
        let mut r = BufReader::new(r);
        // Before a login a command is small; after it, one script and a few names.
        let before_login = Limits {
            max_line: 8192,
            max_literal: MAX_BEFORE_LOGIN,
            max_total: MAX_BEFORE_LOGIN,
            max_words: 4,
        };
        let logged_in = Limits {
            max_line: 8192,
            max_literal: self.limits.max_bytes + 1024,
            max_total: self.limits.max_bytes + 4096,
            max_words: 16,
        };
        let mut session = Session {
            account: None,
            user: String::new(),
            failed: 0,
        };
        let hello = format!(
            "{}{}",
            self.capabilities(None, &conn),
            response("OK", None, "mailpipe ManageSieve ready")
        );
        if w.write_all(hello.as_bytes()).await.is_err() {
            return Ended::Closed;
        }
        loop {
            let (lim, idle) = match session.account {
                Some(_) => (&logged_in, self.idle),
                None => (&before_login, self.login_idle),
            };
            let words = match tokio::time::timeout(idle, read_command(&mut r, lim)).await {
                Err(_) => {
                    let _ = w
                        .write_all(response("BYE", None, "idle for too long").as_bytes())
                        .await;
                    return Ended::Closed;
                }
                Ok(Err(WireError::Closed)) => return Ended::Closed,
                Ok(Err(e)) if e.recoverable() => {
                    let _ = w
                        .write_all(response("NO", None, &e.to_string()).as_bytes())
                        .await;
                    continue;
                }
                Ok(Err(e)) => {
                    let code =
                        matches!(e, WireError::LiteralTooLarge { .. }).then_some("QUOTA/MAXSIZE");
                    let _ = w
                        .write_all(response("BYE", code, &e.to_string()).as_bytes())
                        .await;
                    return Ended::Closed;
                }
                Ok(Ok(words)) => words,
            };
            let mut out = Vec::new();
            let next = self
                .command(&mut session, &conn, &words, &mut r, &mut w, lim, &mut out)
                .await;
            if w.write_all(&out).await.is_err() || w.flush().await.is_err() {
                return Ended::Closed;
            }
            match next {
                Next::Continue => {}
                Next::Close => {
                    let _ = w.shutdown().await;
                    return Ended::Closed;
                }
                Next::StartTls => {
                    // Nothing may follow STARTTLS before the handshake.
                    if !r.buffer().is_empty() {
                        return Ended::Closed;
                    }
                    return Ended::StartTls(r.into_inner().unsplit(w));
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn command<R, W>(
        &self,
        session: &mut Session,
        conn: &Connection,
        words: &[Word],
        r: &mut BufReader<R>,
        w: &mut W,
        lim: &Limits,
        out: &mut Vec<u8>,
    ) -> Next
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut say = |kind: &str, code: Option<&str>, text: &str| {
            out.extend_from_slice(response(kind, code, text).as_bytes())
        };
        let Some(Word::Atom(name)) = words.first() else {
            say("NO", None, "a command starts with its name");
            return Next::Continue;
        };
        let name = name.to_ascii_uppercase();
        let args = &words[1..];
        // Arguments as text (names and scripts are UTF-8).
        let texts: Option<Vec<String>> = args
            .iter()
            .map(|a| match a {
                Word::Text(t) => String::from_utf8(t.clone()).ok(),
                Word::Atom(a) => Some(a.clone()),
            })
            .collect();
        let Some(texts) = texts else {
            say("NO", None, "arguments must be UTF-8 text");
            return Next::Continue;
        };
        let arity = |n: usize| texts.len() == n;
        match (name.as_str(), session.account.clone()) {
            ("LOGOUT", _) => {
                say("OK", None, "logout");
                return Next::Close;
            }
            ("NOOP", _) => match texts.first() {
                Some(tag) => say("OK", Some(&format!("TAG {}", string(tag))), "done"),
                None => say("OK", None, "done"),
            },
            ("STARTTLS", None) if conn.starttls && texts.is_empty() => {
                say("OK", None, "begin TLS negotiation now");
                return Next::StartTls;
            }
            ("STARTTLS", _) => say(
                "NO",
                None,
                "STARTTLS is not offered here (no certificate, TLS already, or after a login)",
            ),
            ("CAPABILITY", account) => {
                let owner = account.is_some().then_some(session.user.as_str());
                out.extend_from_slice(self.capabilities(owner, conn).as_bytes());
                out.extend_from_slice(response("OK", None, "capability completed").as_bytes());
            }
            ("AUTHENTICATE", Some(_)) => say("NO", None, "already authenticated"),
            ("AUTHENTICATE", None) => {
                let mechanism = texts.first().map(|m| m.to_ascii_uppercase());
                let mechanism = match mechanism.as_deref() {
                    Some("PLAIN") => Some(Auth::Password),
                    Some("XOAUTH2") => Some(Auth::Xoauth2),
                    Some("OAUTHBEARER") => Some(Auth::Oauthbearer),
                    _ => None,
                };
                if texts.is_empty() || texts.len() > 2 {
                    say("NO", None, "AUTHENTICATE \"MECHANISM\" [initial-response]");
                } else if mechanism.is_none() {
                    say(
                        "NO",
                        None,
                        &format!("the mechanisms offered are {MECHANISMS}"),
                    );
                } else if !conn.plaintext_ok {
                    say(
                        "NO",
                        Some("ENCRYPT-NEEDED"),
                        "passwords only over TLS or on loopback",
                    );
                } else {
                    let initial = match texts.get(1) {
                        Some(i) => Some(i.clone()),
                        None => {
                            // An empty challenge; the client answers with one string, soon.
                            if w.write_all(b"\"\"\r\n").await.is_err() || w.flush().await.is_err() {
                                return Next::Close;
                            }
                            let answer = read_command(r, lim);
                            match tokio::time::timeout(self.login_idle, answer).await {
                                Ok(Ok(words)) if words.len() == 1 => match &words[0] {
                                    Word::Text(t) => String::from_utf8(t.clone()).ok(),
                                    Word::Atom(a) => Some(a.clone()),
                                },
                                Ok(Ok(_)) => None,
                                Ok(Err(e)) if e.recoverable() => None,
                                Ok(Err(_)) | Err(_) => return Next::Close,
                            }
                        }
                    };
                    match initial.as_deref() {
                        Some("*") => say("NO", None, "authentication cancelled"),
                        Some(resp) => match self
                            .login(mechanism.unwrap_or_default(), resp, conn.peer)
                            .await
                        {
                            Ok((user, account)) => {
                                if let Some(hook) = &self.on_login {
                                    hook(true);
                                }
                                session.account = Some(account);
                                session.user = user;
                                say("OK", None, "logged in");
                            }
                            Err(why) => {
                                if let Some(hook) = &self.on_login {
                                    hook(false);
                                }
                                session.failed += 1;
                                if session.failed >= MAX_FAILED_LOGINS {
                                    say("BYE", None, "too many failed logins");
                                    return Next::Close;
                                }
                                say("NO", None, &why);
                            }
                        },
                        None => say("NO", None, "a malformed authentication response"),
                    }
                }
            }
            (_, None) => say("NO", None, "log in first (AUTHENTICATE \"PLAIN\")"),
            ("UNAUTHENTICATE", Some(_)) => {
                session.account = None;
                session.user.clear();
                session.failed = 0;
                say("OK", None, "logged out; log in again");
            }
            ("LISTSCRIPTS", Some(account)) if arity(0) => {
                match scripts::list(&self.store, &account) {
                    Ok(set) => {
                        for s in &set.scripts {
                            let active = if s.active { " ACTIVE" } else { "" };
                            out.extend_from_slice(
                                format!("{}{active}\r\n", string(&s.name)).as_bytes(),
                            );
                        }
                        out.extend_from_slice(
                            response("OK", None, "listscripts completed").as_bytes(),
                        );
                    }
                    Err(e) => fail(out, &e),
                }
            }
            ("HAVESPACE", Some(account)) if arity(2) => {
                // A number (RFC 5804 section 2.5); one beyond usize is too large anyway.
                let size = match texts[1].parse::<u64>() {
                    Ok(n) => usize::try_from(n).unwrap_or(usize::MAX),
                    Err(_)
                        if !texts[1].is_empty() && texts[1].bytes().all(|b| b.is_ascii_digit()) =>
                    {
                        usize::MAX
                    }
                    Err(_) => {
                        say("NO", None, "HAVESPACE \"name\" SIZE: the size is a number");
                        return Next::Continue;
                    }
                };
                match scripts::have_space(&self.store, &account, &texts[0], size, &self.limits) {
                    Ok(()) => say("OK", None, "there is room"),
                    Err(e) => fail(out, &e),
                }
            }
            ("PUTSCRIPT", Some(account)) if arity(2) => {
                match self.check(&account, Some(&texts[0]), &texts[1]) {
                    Err(e) => fail(out, &e),
                    Ok(()) => match scripts::put(
                        &self.store,
                        &account,
                        &texts[0],
                        &texts[1],
                        &self.limits,
                    ) {
                        Ok(v) => say("OK", None, &format!("stored, version {v}")),
                        Err(e) => fail(out, &e),
                    },
                }
            }
            ("CHECKSCRIPT", Some(account)) if arity(1) => {
                match self.check(&account, None, &texts[0]) {
                    Ok(()) => say("OK", None, "the script compiles"),
                    Err(e) => fail(out, &e),
                }
            }
            ("GETSCRIPT", Some(account)) if arity(1) => {
                match scripts::list(&self.store, &account) {
                    Ok(set) => match set.get(&texts[0]) {
                        Some(s) => {
                            out.extend_from_slice(format!("{{{}}}\r\n", s.text.len()).as_bytes());
                            out.extend_from_slice(s.text.as_bytes());
                            out.extend_from_slice(b"\r\n");
                            out.extend_from_slice(
                                response("OK", None, "getscript completed").as_bytes(),
                            );
                        }
                        None => fail(out, &ScriptError::NoSuchScript(texts[0].clone())),
                    },
                    Err(e) => fail(out, &e),
                }
            }
            ("SETACTIVE", Some(account)) if arity(1) => {
                let name = Some(texts[0].as_str()).filter(|n| !n.is_empty());
                match scripts::set_active(&self.store, &account, name) {
                    Ok(()) => say("OK", None, "setactive completed"),
                    Err(e) => fail(out, &e),
                }
            }
            ("DELETESCRIPT", Some(account)) if arity(1) => {
                match scripts::delete(&self.store, &account, &texts[0]) {
                    Ok(()) => say("OK", None, "deletescript completed"),
                    Err(e) => fail(out, &e),
                }
            }
            ("RENAMESCRIPT", Some(account)) if arity(2) => {
                match scripts::rename(&self.store, &account, &texts[0], &texts[1]) {
                    Ok(()) => say("OK", None, "renamescript completed"),
                    Err(e) => fail(out, &e),
                }
            }
            (
                "LISTSCRIPTS" | "HAVESPACE" | "PUTSCRIPT" | "CHECKSCRIPT" | "GETSCRIPT"
                | "SETACTIVE" | "DELETESCRIPT" | "RENAMESCRIPT",
                Some(_),
            ) => say("NO", None, &format!("wrong number of arguments for {name}")),
            _ => say("NO", None, &format!("unknown command {name}")),
        }
        Next::Continue
    }

    /// A SASL response of `mechanism` (base64) from `peer`: the user name and the account on
    /// success. Every failure (whether the user exists or not) is counted and answered after
    /// the same delay.
    async fn login(
        &self,
        mechanism: Auth,
        resp: &str,
        peer: Option<IpAddr>,
    ) -> Result<(String, String), String> {
        let started = Instant::now();
        let (user, result) = self.check_login(mechanism, resp, peer).await;
        if result.is_err() {
            self.guard.failed(peer, &user, started).await;
        }
        result.map(|account| (user, account))
    }

    /// The user named by a SASL response (may be empty) and the account of its login.
    async fn check_login(
        &self,
        mechanism: Auth,
        resp: &str,
        peer: Option<IpAddr>,
    ) -> (String, Result<String, String>) {
        let decoded = match mechanism {
            Auth::Password => Self::decode_plain(resp),
            bearer => base64::engine::general_purpose::STANDARD
                .decode(resp.trim())
                .map_err(|_| "a malformed response".to_string())
                .and_then(|raw| crate::net::auth::sasl::parse_initial_response(bearer, &raw))
                .map_err(|e| format!("a malformed {} response: {e}", sasl::name(bearer))),
        };
        let (user, check) = match decoded {
            Ok((user, password)) => {
                let ok = !user.is_empty()
                    && !password.is_empty()
                    && !format!("{user}{password}").contains(['\r', '\n', '\0']);
                (user, ok.then_some(password))
            }
            Err(e) => return (String::new(), Err(e)),
        };
        let Some(password) = check else {
            // Never sent to a server: it could not be a valid login there.
            return (user, Err("authentication failed".into()));
        };
        let _permit = match self.guard.admit(peer).await {
            Admission::Check(p) => p,
            Admission::Refused => {
                return (
                    user,
                    Err("too many failed logins from this address; try again later".into()),
                );
            }
        };
        let credential = match mechanism {
            Auth::Password => Credential::Password(&password),
            bearer => Credential::Bearer(&password, bearer),
        };
        let result = match self.auth.authenticate(&user, credential).await {
            Ok(Some(account)) => Ok(account),
            Ok(None) => Err("authentication failed".into()),
            Err(e) => {
                tracing::warn!(error = %e, "ManageSieve: cannot check a login");
                Err("authentication failed (the account's server could not be asked)".into())
            }
        };
        (user, result)
    }

    /// `authzid NUL user NUL password`, base64: the user and the password.
    fn decode_plain(resp: &str) -> Result<(String, String), String> {
        let bad = || "a malformed PLAIN response".to_string();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(resp.trim())
            .map_err(|_| bad())?;
        let mut parts = raw.split(|b| *b == 0);
        let (Some(authz), Some(user), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let (authz, user, password) = (
            std::str::from_utf8(authz).map_err(|_| bad())?,
            std::str::from_utf8(user).map_err(|_| bad())?,
            std::str::from_utf8(password).map_err(|_| bad())?,
        );
        if !authz.is_empty() && authz != user {
            return Err("acting for another user is not allowed".into());
        }
        Ok((user.to_string(), password.to_string()))
    }

    /// Compiles `text` as script `name` among the account's other scripts; without a name
    /// (CHECKSCRIPT), among all of them.
    fn check(&self, account: &str, name: Option<&str>, text: &str) -> Result<(), ScriptError> {
        if let Some(n) = name {
            scripts::check_name(&scripts::normal(n))?;
        }
        // No stored script has the empty name: "others" of it are all of them.
        let personal = scripts::list(&self.store, account)?.others(name.unwrap_or(""));
        sieve::check_script(name.unwrap_or("script"), text, &personal, &self.global)
            .map_err(ScriptError::Invalid)
    }
}

struct Session {
    account: Option<String>,
    /// The name the user logged in with (OWNER).
    user: String,
    failed: u32,
}

/// A refused request: NO with ManageSieve's response code for it.
fn fail(out: &mut Vec<u8>, e: &ScriptError) {
    out.extend_from_slice(response("NO", e.response_code(), &e.to_string()).as_bytes());
}

#[cfg(test)]
mod tests;
