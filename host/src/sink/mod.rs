//! Where results go. `mailstore`: delivering the processed message into Maildir folders
//! (offline mode). `outbox`: the durable queue of generated mail, its flush and the
//! `Transport` trait a sender implements: `smtp` (lettre, an account's SMTP server) and
//! `outbox_dir` (offline mode: a folder of .eml files).

pub mod mailstore;
pub mod outbox;
pub mod outbox_dir;
pub mod smtp;
