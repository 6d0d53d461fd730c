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

/// A deserializer's message in the words of TOML and of the person editing it: "a list" for
/// `sequence`, "a whole number" for `u64`, the kind of value they wrote before what was
/// expected. Words it does not know pass through.
pub fn in_toml_words(message: &str) -> String {
    const WORDS: &[(&str, &str)] = &[
        ("invalid type: sequence", "this is a list"),
        ("invalid type: map", "this is a table"),
        ("invalid type: string ", "this is the text "),
        ("invalid type: integer ", "this is the number "),
        ("invalid type: floating point ", "this is the number "),
        ("invalid type: boolean ", "this is "),
        ("invalid value: integer ", "this number is out of range: "),
        ("invalid length ", "wrong number of entries: "),
        ("expected a sequence", "expected a list"),
        ("expected a map", "expected a table"),
        ("expected a boolean", "expected true or false"),
        ("expected a string", "expected text in quotes"),
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected u16", "expected a whole number from 0 to 65535"),
        ("expected u32", "expected a whole number, 0 or more"),
        ("expected u64", "expected a whole number, 0 or more"),
        ("expected usize", "expected a whole number, 0 or more"),
        ("expected i64", "expected a whole number"),
        ("expected i32", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected struct ", "expected a table "),
    ];
    let mut text = message.to_string();
    for (rust, toml) in WORDS {
        text = text.replace(rust, toml);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::in_toml_words;

    #[test]
    fn type_errors_are_said_in_toml_words() {
        assert_eq!(
            in_toml_words("invalid type: sequence, expected a string"),
            "this is a list, expected text in quotes"
        );
        assert_eq!(
            in_toml_words("invalid type: string \"fast\", expected u64"),
            "this is the text \"fast\", expected a whole number, 0 or more"
        );
        assert_eq!(
            in_toml_words("invalid value: integer `-3`, expected u64"),
            "this number is out of range: `-3`, expected a whole number, 0 or more"
        );
        assert_eq!(
            in_toml_words("unknown field `x`, expected `a`"),
            "unknown field `x`, expected `a`"
        );
    }
}
