//! Offline source: a Maildir (new/ and cur/, flags from the `:2,` file-name suffix) or a plain
//! folder of .eml files, listed in a stable order. The folder is never modified; what was
//! already processed is remembered by the state store, keyed by the file's unique name.

use std::path::{Path, PathBuf};

use super::SourceMessage;
use crate::message::Email;

#[derive(Debug, thiserror::Error)]
#[error("offline source {path}: {source}")]
pub struct SourceError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

pub struct MaildirSource {
    root: PathBuf,
    id: String,
}

/// A listed message, read only when it is its turn. Kept small (a folder may list a million):
/// its path, key and label are made from the name when asked for.
pub struct Entry {
    sub: Sub,
    name: Box<str>,
}

#[derive(Clone, Copy, PartialEq)]
enum Sub {
    New,
    Cur,
    /// A plain folder of .eml files.
    Plain,
}

impl Entry {
    /// The name without the Maildir info (`:2,…`): what stays when a mail client moves the
    /// file from new/ to cur/ or changes its flags.
    fn unique(&self) -> &str {
        match self.name.split_once(":2,") {
            Some((u, _)) if self.sub != Sub::Plain => u,
            _ => &self.name,
        }
    }

    /// The flags of the file name's Maildir info.
    pub fn flags(&self) -> Vec<String> {
        match self.name.split_once(":2,") {
            Some((_, info)) if self.sub != Sub::Plain => flags_from_info(info),
            _ => Vec::new(),
        }
    }

    /// How the message is named in output: `new/NAME`, `cur/NAME`, or the .eml file's name.
    pub fn label(&self) -> String {
        match self.sub {
            Sub::New => format!("new/{}", self.unique()),
            Sub::Cur => format!("cur/{}", self.unique()),
            Sub::Plain => self.name.to_string(),
        }
    }
}

impl MaildirSource {
    pub fn new(root: &Path) -> MaildirSource {
        let id = std::fs::canonicalize(root)
            .unwrap_or_else(|_| root.to_owned())
            .display()
            .to_string();
        MaildirSource {
            root: root.to_owned(),
            id,
        }
    }

    /// The name its messages' keys start with ("offline:/path"; `actions::since`).
    pub fn source_name(&self) -> String {
        format!("offline:{}", self.id)
    }

    /// The state store's key of a listed message.
    pub fn key(&self, entry: &Entry) -> String {
        format!("offline:{}/{}", self.id, entry.unique())
    }

    pub fn path(&self, entry: &Entry) -> PathBuf {
        match entry.sub {
            Sub::New => self.root.join("new").join(&*entry.name),
            Sub::Cur => self.root.join("cur").join(&*entry.name),
            Sub::Plain => self.root.join(&*entry.name),
        }
    }

    /// Why a listing found nothing, in words for the user.
    pub fn why_empty(&self) -> String {
        let root = self.root.display();
        if self.root.join("cur").is_dir() || self.root.join("new").is_dir() {
            format!("{root}: the Maildir is empty (nothing in cur/ or new/)")
        } else {
            format!("{root}: not a Maildir (no cur/ or new/) and no .eml files in it")
        }
    }

    pub fn list(&self) -> Result<Vec<Entry>, SourceError> {
        let err = |path: &Path| {
            let path = path.to_owned();
            move |source| SourceError { path, source }
        };
        let is_maildir = self.root.join("cur").is_dir() || self.root.join("new").is_dir();
        let dirs: Vec<(Sub, PathBuf)> = if is_maildir {
            [(Sub::New, "new"), (Sub::Cur, "cur")]
                .into_iter()
                .map(|(s, d)| (s, self.root.join(d)))
                .filter(|(_, d)| d.is_dir())
                .collect()
        } else {
            vec![(Sub::Plain, self.root.clone())]
        };
        let mut out = Vec::new();
        for (sub, dir) in dirs {
            let mut names: Vec<Box<str>> = std::fs::read_dir(&dir)
                .map_err(err(&dir))?
                .filter_map(|e| e.ok())
                // The type from the listing itself (no stat per file), following a link.
                .filter(|e| match e.file_type() {
                    Ok(t) if t.is_symlink() => e.path().is_file(),
                    Ok(t) => t.is_file(),
                    Err(_) => false,
                })
                .map(|e| Box::<str>::from(e.file_name().to_string_lossy()))
                .filter(|name| !name.starts_with('.') && (is_maildir || name.ends_with(".eml")))
                .collect();
            names.sort();
            out.extend(names.into_iter().map(|name| Entry { sub, name }));
        }
        Ok(out)
    }

    pub fn read(&self, entry: &Entry) -> Result<SourceMessage, SourceError> {
        let path = self.path(entry);
        let err = |source| SourceError {
            path: path.clone(),
            source,
        };
        let mut file = std::fs::File::open(&path).map_err(err)?;
        let meta = file.metadata().map_err(err)?;
        let mut raw = Vec::with_capacity(meta.len() as usize);
        std::io::Read::read_to_end(&mut file, &mut raw).map_err(err)?;
        // The file's time is when it arrived: a delivery agent writes it once and renames
        // it; a mail client that reads it moves it (rename keeps the time).
        let arrived = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as u64);
        Ok(SourceMessage {
            key: self.key(entry),
            label: entry.label(),
            email: Email::new(raw, "INBOX", entry.flags()).arrived_at(arrived),
        })
    }
}

/// Maildir info letters to IMAP system flags.
pub fn flags_from_info(info: &str) -> Vec<String> {
    info.chars()
        .filter_map(|c| match c {
            'D' => Some("\\Draft"),
            'F' => Some("\\Flagged"),
            'R' => Some("\\Answered"),
            'S' => Some("\\Seen"),
            'T' => Some("\\Deleted"),
            _ => None,
        })
        .map(str::to_string)
        .collect()
}
