//! Where results go. `mailstore`: delivering the processed message into Maildir folders
//! (offline mode). `outbox`: the durable queue of generated mail and the `Transport` trait a
//! sender implements (`outbox_dir` for offline mode; SMTP comes next).

pub mod mailstore;
pub mod outbox;
pub mod outbox_dir;
pub mod smtp;
