//! Network plumbing shared by the IMAP source and the SMTP sink: TLS client settings
//! (certificates always verified) and connecting with the account's TLS mode.

pub mod tls;
