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

/// A listed message, read only when it is its turn.
pub struct Entry {
    pub path: PathBuf,
    pub key: String,
    pub label: String,
    pub flags: Vec<String>,
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

    pub fn list(&self) -> Result<Vec<Entry>, SourceError> {
        let err = |path: &Path| {
            let path = path.to_owned();
            move |source| SourceError { path, source }
        };
        let is_maildir = self.root.join("cur").is_dir() || self.root.join("new").is_dir();
        let dirs: Vec<PathBuf> = if is_maildir {
            ["new", "cur"]
                .iter()
                .map(|d| self.root.join(d))
                .filter(|d| d.is_dir())
                .collect()
        } else {
            vec![self.root.clone()]
        };
        let mut out = Vec::new();
        for dir in dirs {
            let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(err(&dir))?
                .filter_map(|e| e.ok())
                // The type from the listing itself (no stat per file), following a link.
                .filter(|e| match e.file_type() {
                    Ok(t) if t.is_symlink() => e.path().is_file(),
                    Ok(t) => t.is_file(),
                    Err(_) => false,
                })
                .map(|e| e.path())
                .filter(|p| {
                    let name = p
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    !name.starts_with('.') && (is_maildir || name.ends_with(".eml"))
                })
                .collect();
            names.sort();
            for path in names {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                let (unique, info) = match name.split_once(":2,") {
                    Some((u, i)) if is_maildir => (u.to_string(), i.to_string()),
                    _ => (name.clone(), String::new()),
                };
                let sub = dir.file_name().unwrap().to_string_lossy();
                out.push(Entry {
                    key: format!("offline:{}/{unique}", self.id),
                    label: if is_maildir {
                        format!("{sub}/{unique}")
                    } else {
                        unique
                    },
                    flags: flags_from_info(&info),
                    path,
                });
            }
        }
        Ok(out)
    }

    pub fn read(&self, entry: &Entry) -> Result<SourceMessage, SourceError> {
        let err = |source| SourceError {
            path: entry.path.clone(),
            source,
        };
        let mut file = std::fs::File::open(&entry.path).map_err(err)?;
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
            key: entry.key.clone(),
            label: entry.label.clone(),
            email: Email::new(raw, "INBOX", entry.flags.clone()).arrived_at(arrived),
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
