//! TEMPORARY placeholder until the provider table lands (being written).
use super::account::{Auth, TlsMode};

pub struct Endpoint {
    pub host: &'static str,
    pub port: u16,
    pub tls: TlsMode,
}

pub struct OAuth2Preset {
    pub auth_url: &'static str,
    pub token_url: &'static str,
    pub device_url: Option<&'static str>,
    pub scopes: &'static [&'static str],
}

pub struct Provider {
    pub name: &'static str,
    pub title: &'static str,
    pub imap: Endpoint,
    pub smtp: Endpoint,
    pub auth: Auth,
    pub oauth2: Option<OAuth2Preset>,
    pub doc: &'static str,
}

pub const PROVIDERS: &[Provider] = &[];

pub fn find(name: &str) -> Option<&'static Provider> {
    PROVIDERS.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}
