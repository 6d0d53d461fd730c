//! Why this file exists: the one error type of compiling a script, with the line and column it
//! is about, printed the way sievec prints them (`NAME:LINE:COLUMN: error: ...`) so that
//! `mailpipe check` and a ManageSieve CHECKSCRIPT say the same thing.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub pos: Pos,
    pub message: String,
    /// The script the error is in (an included one, or "" for the main script).
    pub script: String,
}

impl CompileError {
    pub fn new(pos: Pos, message: impl Into<String>) -> Self {
        CompileError {
            pos,
            message: message.into(),
            script: String::new(),
        }
    }

    /// `NAME:LINE:COLUMN: error: MESSAGE`, naming the script as `name` unless the error is in
    /// an included script.
    pub fn display_in(&self, name: &str) -> String {
        let script = if self.script.is_empty() {
            name
        } else {
            &self.script
        };
        format!(
            "{script}:{}:{}: error: {}",
            self.pos.line, self.pos.col, self.message
        )
    }
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: error: {}",
            self.pos.line, self.pos.col, self.message
        )
    }
}

impl std::error::Error for CompileError {}
