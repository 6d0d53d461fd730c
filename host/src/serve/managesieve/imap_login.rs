//! Why this file exists: ManageSieve logins are the account's own (issue 23): a user name and
//! password are accepted when they log in to that account's IMAP server, and so is an OAuth2
//! access token for an account that logs in with tokens (XOAUTH2 / OAUTHBEARER): the token
//! is tried at the account's IMAP server as it is, never renewed. mailpipe stores no
//! password of its own; a successful check is remembered for a minute (as a hash, in memory),
//! so that a client that logs in for every command does not hammer the server. The accounts
//! are those of the config, of the accounts directory and of the accounts table, looked up
//! again now and then (an account file added while the daemon runs can log in).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use sha2::{Digest, Sha256};

use super::{Authenticator, Credential};
use crate::config::AccountConfig;
use crate::model::credentials::{Auth, OAuth2, PasswordSource, Secret, TokenSource};
use crate::source::imap::connect::{connect, ImapError};

/// How long a checked login is remembered.
const REMEMBER: Duration = Duration::from_secs(60);
/// How long a list of accounts is used before it is looked up again.
const REFRESH: Duration = Duration::from_secs(30);
/// A user no account knows looks the accounts up again, but not more often than this.
const REFRESH_ON_MISS: Duration = Duration::from_secs(5);

/// Lists the accounts whose users may log in (it may read files: it runs on a blocking
/// thread).
pub type AccountLookup = Arc<dyn Fn() -> Vec<AccountConfig> + Send + Sync>;

pub struct ImapLogin {
    lookup: AccountLookup,
    /// The accounts last looked up, and when.
    known: Mutex<(Option<Instant>, Arc<Vec<AccountConfig>>)>,
    /// sha256(user NUL password) -> (account, when checked).
    checked: Mutex<HashMap<[u8; 32], (String, Instant)>>,
}

impl ImapLogin {
    pub fn new(lookup: AccountLookup) -> ImapLogin {
        ImapLogin {
            lookup,
            known: Mutex::new((None, Arc::new(Vec::new()))),
            checked: Mutex::new(HashMap::new()),
        }
    }

    /// The accounts `user` may mean: its IMAP user name, its address, or its name.
    async fn candidates(&self, user: &str) -> Vec<AccountConfig> {
        let matching = |all: &[AccountConfig]| -> Vec<AccountConfig> {
            all.iter()
                .filter(|a| {
                    a.imap.as_ref().and_then(|s| s.username.as_deref()) == Some(user)
                        || a.address.eq_ignore_ascii_case(user)
                        || a.name == user
                })
                .cloned()
                .collect()
        };
        let (at, all) = self.known.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let age = at.map_or(Duration::MAX, |t| t.elapsed());
        let found = matching(&all);
        if age < REFRESH && (!found.is_empty() || age < REFRESH_ON_MISS) {
            return found;
        }
        let lookup = self.lookup.clone();
        let Ok(fresh) = tokio::task::spawn_blocking(move || lookup()).await else {
            return found;
        };
        let fresh = Arc::new(fresh);
        *self.known.lock().unwrap_or_else(|e| e.into_inner()) =
            (Some(Instant::now()), fresh.clone());
        matching(&fresh)
    }
}

impl Authenticator for ImapLogin {
    fn authenticate<'a>(
        &'a self,
        user: &'a str,
        credential: Credential<'a>,
    ) -> BoxFuture<'a, Result<Option<String>, String>> {
        Box::pin(async move {
            let (kind, secret) = match credential {
                Credential::Password(p) => (0u8, p),
                Credential::Bearer(t, _) => (1u8, t),
            };
            let key: [u8; 32] = Sha256::new()
                .chain_update([kind])
                .chain_update(user.as_bytes())
                .chain_update([0])
                .chain_update(secret.as_bytes())
                .finalize()
                .into();
            {
                let mut checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
                checked.retain(|_, (_, at)| at.elapsed() < REMEMBER);
                if let Some((account, _)) = checked.get(&key) {
                    return Ok(Some(account.clone()));
                }
            }
            let mut unreachable = None;
            for a in self.candidates(user).await {
                // An account only delivered to has no IMAP server to check passwords.
                let Some(imap) = &a.imap else {
                    continue;
                };
                let mut server = imap.clone();
                server.username = Some(imap.username.clone().unwrap_or_else(|| user.to_string()));
                match credential {
                    // A password for an account that logs in with one.
                    Credential::Password(p) if imap.auth == Auth::Password => {
                        server.password = Some(PasswordSource::Given(Secret::new(p.to_string())));
                    }
                    // A token for an account that logs in with tokens, with the mechanism
                    // its server takes (the token is the same whichever the client used).
                    Credential::Bearer(t, _) if imap.auth != Auth::Password => {
                        let given = TokenSource::Given(Secret::new(t.to_string()));
                        server.oauth2 = Some(Arc::new(OAuth2::new(&a.name, given)));
                    }
                    _ => continue,
                }
                match connect(&server).await {
                    Ok(mut session) => {
                        let _ = session.logout().await;
                        self.checked
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(key, (a.name.clone(), Instant::now()));
                        return Ok(Some(a.name.clone()));
                    }
                    Err(ImapError::Login { .. }) => {}
                    Err(e) => unreachable = Some(format!("account {}: {e}", a.name)),
                }
            }
            match unreachable {
                Some(e) => Err(e),
                None => Ok(None),
            }
        })
    }
}
