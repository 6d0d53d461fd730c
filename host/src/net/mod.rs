//! Network plumbing shared by the IMAP source and the SMTP sink: TLS client settings
//! (certificates always verified), logging in (passwords and OAuth2), and the small HTTP
//! client OAuth2 token endpoints need.

pub mod auth;
pub mod http;
pub mod tls;
