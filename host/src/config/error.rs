//! Config errors that name the file, the line and the key, so a user can fix the config
//! without guessing which of several `[[plugin]]` tables is wrong.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// (The I/O error is part of the message, not a separate cause, so it is said once.)
    #[error("{file}: cannot read config: {error}")]
    Read {
        file: PathBuf,
        error: std::io::Error,
    },
    /// TOML syntax or type errors; toml's own message already says the line and column.
    #[error("{file}: {message}")]
    Parse { file: PathBuf, message: String },
    #[error("{file}:{line}: `{key}`: {message}")]
    Invalid {
        file: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
}

/// 1-based line of a byte offset in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
