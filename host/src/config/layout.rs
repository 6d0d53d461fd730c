//! `[offline] layout`: how the folders of an offline mail store are laid out on disk
//! (`sink::mailstore` writes them so).

/// How folders are laid out on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
pub enum Layout {
    /// INBOX at the root, folders as `.A.B` directories (Dovecot's default for maildir:).
    #[default]
    #[serde(rename = "maildir++")]
    MaildirPlusPlus,
    /// One Maildir per folder, INBOX included, nested as directories.
    #[serde(rename = "fs")]
    Fs,
}
