//! Presets for well-known mail providers, so that `provider = "gmail"` in an `[[account]]`
//! replaces host names, ports, TLS modes, the auth method and the OAuth2 endpoints a user
//! would otherwise copy from help pages (and get wrong). Data only: each value comes from
//! the provider's documentation or Thunderbird's ISPDB, cited on the provider's page under
//! docs/providers/. Whatever the account sets in `[account.imap]`, `[account.smtp]` or
//! `[account.oauth2]` wins over the preset.

use crate::model::credentials::Auth;
use crate::model::endpoint::TlsMode;

pub struct Endpoint {
    pub host: &'static str,
    pub port: u16,
    pub tls: TlsMode,
}

pub struct OAuth2Preset {
    pub auth_url: &'static str,
    pub token_url: &'static str,
    /// RFC 8628 device authorization endpoint, when the provider's device flow can grant mail scopes.
    pub device_url: Option<&'static str>,
    pub scopes: &'static [&'static str],
}

pub struct Provider {
    /// The value of `provider = "…"`.
    pub name: &'static str,
    /// What the preset is for, as shown to the user.
    pub title: &'static str,
    pub imap: Endpoint,
    pub smtp: Endpoint,
    /// The auth method the preset uses unless the account says otherwise.
    pub auth: Auth,
    pub oauth2: Option<OAuth2Preset>,
    /// Its page, relative to the repository root: docs/providers/<name>.md (the two GMX
    /// presets share gmx.md, the two Microsoft presets outlook.md).
    pub doc: &'static str,
}

const fn implicit(host: &'static str, port: u16) -> Endpoint {
    Endpoint {
        host,
        port,
        tls: TlsMode::Implicit,
    }
}

const fn starttls(host: &'static str, port: u16) -> Endpoint {
    Endpoint {
        host,
        port,
        tls: TlsMode::Starttls,
    }
}

/// Google's endpoints. Google's device flow refuses https://mail.google.com/
/// (`invalid_scope`), hence no device_url: `mailpipe auth` uses the browser flow.
const GOOGLE: OAuth2Preset = OAuth2Preset {
    auth_url: "https://accounts.google.com/o/oauth2/v2/auth",
    token_url: "https://oauth2.googleapis.com/token",
    device_url: None,
    scopes: &["https://mail.google.com/"],
};

/// Microsoft identity platform, tenant "common" (work, school and personal accounts, for
/// app registrations that allow them). A single-tenant app replaces "common" with its
/// tenant id, a personal-accounts-only app with "consumers" (docs/providers/outlook.md).
const MICROSOFT: OAuth2Preset = OAuth2Preset {
    auth_url: "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
    token_url: "https://login.microsoftonline.com/common/oauth2/v2.0/token",
    device_url: Some("https://login.microsoftonline.com/common/oauth2/v2.0/devicecode"),
    scopes: &[
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/SMTP.Send",
        "offline_access",
    ],
};

pub const PROVIDERS: &[Provider] = &[
    Provider {
        name: "gmail",
        title: "Gmail and Google Workspace",
        imap: implicit("imap.gmail.com", 993),
        smtp: implicit("smtp.gmail.com", 465),
        auth: Auth::Xoauth2,
        oauth2: Some(GOOGLE),
        doc: "docs/providers/gmail.md",
    },
    Provider {
        name: "outlook",
        title: "Outlook.com, Hotmail and Live (personal Microsoft accounts)",
        imap: implicit("outlook.office365.com", 993),
        // Microsoft's Outlook.com page names this host; Exchange Online's is smtp.office365.com.
        smtp: starttls("smtp-mail.outlook.com", 587),
        auth: Auth::Xoauth2,
        oauth2: Some(MICROSOFT),
        doc: "docs/providers/outlook.md",
    },
    Provider {
        name: "microsoft365",
        title: "Microsoft 365 / Exchange Online (work and school accounts)",
        imap: implicit("outlook.office365.com", 993),
        smtp: starttls("smtp.office365.com", 587),
        auth: Auth::Xoauth2,
        oauth2: Some(MICROSOFT),
        doc: "docs/providers/outlook.md",
    },
    Provider {
        name: "fastmail",
        title: "Fastmail",
        imap: implicit("imap.fastmail.com", 993),
        smtp: implicit("smtp.fastmail.com", 465),
        auth: Auth::Password,
        oauth2: None,
        doc: "docs/providers/fastmail.md",
    },
    Provider {
        name: "icloud",
        title: "iCloud Mail (icloud.com, me.com, mac.com)",
        imap: implicit("imap.mail.me.com", 993),
        smtp: starttls("smtp.mail.me.com", 587),
        auth: Auth::Password,
        oauth2: None,
        doc: "docs/providers/icloud.md",
    },
    Provider {
        name: "yahoo",
        title: "Yahoo Mail",
        imap: implicit("imap.mail.yahoo.com", 993),
        smtp: implicit("smtp.mail.yahoo.com", 465),
        auth: Auth::Password,
        // Endpoints as in Thunderbird's ISPDB; Yahoo grants mail scopes only to clients it
        // approved, so the preset logs in with an app password.
        oauth2: Some(OAuth2Preset {
            auth_url: "https://api.login.yahoo.com/oauth2/request_auth",
            token_url: "https://api.login.yahoo.com/oauth2/get_token",
            device_url: None,
            scopes: &["mail-w"],
        }),
        doc: "docs/providers/yahoo.md",
    },
    Provider {
        name: "aol",
        title: "AOL Mail",
        imap: implicit("imap.aol.com", 993),
        smtp: implicit("smtp.aol.com", 465),
        auth: Auth::Password,
        // As for Yahoo (same company): ISPDB endpoints, app password by default.
        oauth2: Some(OAuth2Preset {
            auth_url: "https://api.login.aol.com/oauth2/request_auth",
            token_url: "https://api.login.aol.com/oauth2/get_token",
            device_url: None,
            scopes: &["mail-w"],
        }),
        doc: "docs/providers/aol.md",
    },
    Provider {
        name: "gmx",
        title: "GMX (gmx.net, gmx.de, gmx.at, gmx.ch)",
        imap: implicit("imap.gmx.net", 993),
        smtp: implicit("mail.gmx.net", 465),
        auth: Auth::Password,
        oauth2: None,
        doc: "docs/providers/gmx.md",
    },
    Provider {
        // gmx.com and its country domains use other servers than gmx.net.
        name: "gmx.com",
        title: "GMX international (gmx.com, gmx.co.uk, gmx.fr, gmx.es, gmx.us, …)",
        imap: implicit("imap.gmx.com", 993),
        smtp: implicit("mail.gmx.com", 465),
        auth: Auth::Password,
        oauth2: None,
        doc: "docs/providers/gmx.md",
    },
    Provider {
        name: "zoho",
        title: "Zoho Mail (personal accounts, US data centre)",
        imap: implicit("imap.zoho.com", 993),
        smtp: implicit("smtp.zoho.com", 465),
        auth: Auth::Password,
        oauth2: None,
        doc: "docs/providers/zoho.md",
    },
    Provider {
        name: "mailbox.org",
        title: "mailbox.org",
        imap: implicit("imap.mailbox.org", 993),
        smtp: implicit("smtp.mailbox.org", 465),
        auth: Auth::Password,
        oauth2: None,
        doc: "docs/providers/mailbox.org.md",
    },
    Provider {
        name: "posteo",
        title: "Posteo",
        imap: implicit("posteo.de", 993),
        smtp: implicit("posteo.de", 465),
        auth: Auth::Password,
        oauth2: None,
        doc: "docs/providers/posteo.md",
    },
];

/// The preset called `name` (ASCII case ignored).
pub fn find(name: &str) -> Option<&'static Provider> {
    PROVIDERS.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::path::{Path, PathBuf};

    fn repo_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    fn urls(o: &OAuth2Preset) -> Vec<&'static str> {
        let mut all = vec![o.auth_url, o.token_url];
        all.extend(o.device_url);
        all
    }

    #[test]
    fn names_are_unique_and_lowercase() {
        let mut seen = HashSet::new();
        for p in PROVIDERS {
            assert!(!p.name.is_empty() && !p.title.is_empty());
            assert_eq!(p.name, p.name.to_lowercase(), "{} is not lowercase", p.name);
            assert!(
                p.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'),
                "{} has characters a preset name should not have",
                p.name
            );
            assert!(seen.insert(p.name), "{} is listed twice", p.name);
        }
    }

    #[test]
    fn find_ignores_case() {
        for p in PROVIDERS {
            assert_eq!(find(p.name).map(|f| f.name), Some(p.name));
            assert_eq!(find(&p.name.to_uppercase()).map(|f| f.name), Some(p.name));
        }
        assert_eq!(find("Gmail").map(|p| p.name), Some("gmail"));
        assert_eq!(find("Mailbox.Org").map(|p| p.name), Some("mailbox.org"));
        assert!(find("no-such-provider").is_none());
        assert!(find("").is_none());
    }

    #[test]
    fn oauth2_presets_have_endpoints_and_scopes() {
        for p in PROVIDERS {
            if matches!(p.auth, Auth::Xoauth2 | Auth::Oauthbearer) {
                let o = p.oauth2.as_ref().unwrap_or_else(|| {
                    panic!("{} logs in with OAuth2 but has no endpoints", p.name)
                });
                assert!(
                    !o.auth_url.is_empty() && !o.token_url.is_empty(),
                    "{}",
                    p.name
                );
                assert!(!o.scopes.is_empty(), "{} has no scopes", p.name);
            }
            if let Some(o) = &p.oauth2 {
                assert!(
                    o.scopes.iter().all(|s| !s.is_empty() && !s.contains(' ')),
                    "{}",
                    p.name
                );
            }
        }
    }

    #[test]
    fn every_url_is_https() {
        for p in PROVIDERS {
            for url in p.oauth2.iter().flat_map(urls) {
                assert!(
                    url.starts_with("https://"),
                    "{}: {url} is not https",
                    p.name
                );
                assert!(!url.contains(char::is_whitespace), "{}: {url}", p.name);
            }
        }
    }

    #[test]
    fn endpoints_use_tls_on_their_standard_ports() {
        for p in PROVIDERS {
            for (e, implicit_port, starttls_port) in
                [(&p.imap, 993u16, 143u16), (&p.smtp, 465, 587)]
            {
                assert!(
                    !e.host.is_empty() && !e.host.contains(['/', ':', ' ']),
                    "{}: {} is not a bare host name",
                    p.name,
                    e.host
                );
                match e.tls {
                    TlsMode::Implicit => assert_eq!(e.port, implicit_port, "{} {}", p.name, e.host),
                    TlsMode::Starttls => assert_eq!(e.port, starttls_port, "{} {}", p.name, e.host),
                    TlsMode::None => panic!("{}: {} without TLS", p.name, e.host),
                }
            }
        }
    }

    #[test]
    fn every_doc_page_exists_and_shows_its_preset() {
        let root = repo_root();
        assert!(root.join("docs/providers/README.md").is_file());
        for p in PROVIDERS {
            assert!(
                p.doc.starts_with("docs/providers/") && p.doc.ends_with(".md"),
                "{}: {}",
                p.name,
                p.doc
            );
            let path = root.join(p.doc);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {}: {e}", p.name, path.display()));
            assert!(
                text.contains(&format!("provider = \"{}\"", p.name)),
                "{} does not show `provider = \"{}\"`",
                p.doc,
                p.name
            );
        }
    }
}
