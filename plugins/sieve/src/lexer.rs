//! Why this file exists: RFC 5228 section 8.1 (lexical tokens) in one place: identifiers, tags,
//! numbers with their K/M/G quantifiers, quoted and multi-line strings, comments. Every token
//! carries the line and column it starts at, so that errors point where sievec points.

use crate::error::{CompileError, Pos};

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Ident(String),
    /// `:name`, without the colon, lowercased (tags are case-insensitive).
    Tag(String),
    Number(u64),
    /// A quoted or multi-line string, escapes already resolved.
    Str(String),
    Semi,
    Comma,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Eof,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub tok: Tok,
    pub pos: Pos,
}

/// Tokenizes the whole script. Stops at the first lexical error.
pub fn lex(src: &str) -> Result<Vec<Token>, CompileError> {
    let mut lx = Lexer {
        s: src.as_bytes(),
        src,
        i: 0,
        line: 1,
        col: 1,
    };
    let mut out = Vec::new();
    loop {
        lx.skip_space()?;
        let pos = lx.pos();
        let Some(c) = lx.peek() else {
            out.push(Token { tok: Tok::Eof, pos });
            return Ok(out);
        };
        let tok = match c {
            b';' => lx.single(Tok::Semi),
            b',' => lx.single(Tok::Comma),
            b'(' => lx.single(Tok::LParen),
            b')' => lx.single(Tok::RParen),
            b'[' => lx.single(Tok::LBracket),
            b']' => lx.single(Tok::RBracket),
            b'{' => lx.single(Tok::LBrace),
            b'}' => lx.single(Tok::RBrace),
            b'"' => Tok::Str(lx.quoted(pos)?),
            b':' => {
                lx.bump();
                let name = lx.ident();
                if name.is_empty() {
                    return Err(CompileError::new(pos, "expected a tag name after ':'"));
                }
                Tok::Tag(name.to_ascii_lowercase())
            }
            b'0'..=b'9' => Tok::Number(lx.number(pos)?),
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let name = lx.ident();
                if name.eq_ignore_ascii_case("text") && lx.peek() == Some(b':') {
                    lx.bump();
                    Tok::Str(lx.multiline(pos)?)
                } else {
                    Tok::Ident(name)
                }
            }
            _ => {
                let ch = src[lx.i..].chars().next().unwrap_or('?');
                return Err(CompileError::new(
                    pos,
                    format!("unexpected character {ch:?}"),
                ));
            }
        };
        out.push(Token { tok, pos });
    }
}

struct Lexer<'a> {
    s: &'a [u8],
    src: &'a str,
    i: usize,
    line: u32,
    col: u32,
}

impl Lexer<'_> {
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        if c == b'\n' {
            self.line += 1;
            self.col = 1;
        } else if c & 0xC0 != 0x80 {
            // Columns count characters, not the continuation bytes of UTF-8.
            self.col += 1;
        }
        Some(c)
    }

    fn single(&mut self, t: Tok) -> Tok {
        self.bump();
        t
    }

    fn skip_space(&mut self) -> Result<(), CompileError> {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\r' | b'\n') => {
                    self.bump();
                }
                Some(b'#') => {
                    while let Some(c) = self.peek() {
                        if c == b'\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                Some(b'/') if self.s.get(self.i + 1) == Some(&b'*') => {
                    let start = self.pos();
                    self.bump();
                    self.bump();
                    loop {
                        match self.bump() {
                            None => {
                                return Err(CompileError::new(
                                    start,
                                    "unterminated comment (missing */)",
                                ))
                            }
                            Some(b'*') if self.peek() == Some(b'/') => {
                                self.bump();
                                break;
                            }
                            _ => {}
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn ident(&mut self) -> String {
        let start = self.i;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == b'_' {
                self.bump();
            } else {
                break;
            }
        }
        self.src[start..self.i].to_string()
    }

    fn number(&mut self, pos: Pos) -> Result<u64, CompileError> {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.bump();
        }
        let digits = &self.src[start..self.i];
        let n: u64 = digits
            .parse()
            .map_err(|_| CompileError::new(pos, format!("number {digits} is too large")))?;
        let mult: u64 = match self.peek() {
            Some(b'K' | b'k') => 1 << 10,
            Some(b'M' | b'm') => 1 << 20,
            Some(b'G' | b'g') => 1 << 30,
            _ => 1,
        };
        if mult != 1 {
            self.bump();
        }
        n.checked_mul(mult)
            .ok_or_else(|| CompileError::new(pos, format!("number {digits} is too large")))
    }

    fn quoted(&mut self, pos: Pos) -> Result<String, CompileError> {
        self.bump(); // the opening quote
        let mut out = Vec::new();
        loop {
            match self.bump() {
                None => return Err(CompileError::new(pos, "unterminated string")),
                Some(b'"') => break,
                Some(b'\\') => match self.bump() {
                    None => return Err(CompileError::new(pos, "unterminated string")),
                    // RFC 5228 2.4.2: "\" followed by any other character is that character.
                    Some(c) => out.push(c),
                },
                Some(c) => out.push(c),
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// `text:` already consumed: optional white space and a comment, a line break, then lines
    /// up to a line holding only ".". A leading ".." stands for "." (dot-stuffing).
    fn multiline(&mut self, pos: Pos) -> Result<String, CompileError> {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.bump();
        }
        if self.peek() == Some(b'#') {
            while !matches!(self.peek(), Some(b'\n') | None) {
                self.bump();
            }
        }
        if self.peek() == Some(b'\r') {
            self.bump();
        }
        if self.bump() != Some(b'\n') {
            return Err(CompileError::new(
                pos,
                "expected a line break after \"text:\"",
            ));
        }
        let mut out = String::new();
        loop {
            let start = self.i;
            if start >= self.s.len() {
                return Err(CompileError::new(
                    pos,
                    "unterminated multi-line string (missing a line with a single \".\")",
                ));
            }
            while !matches!(self.peek(), Some(b'\n') | None) {
                self.bump();
            }
            let line = self.src[start..self.i].trim_end_matches('\r');
            self.bump(); // the line feed
            if line == "." {
                return Ok(out);
            }
            out.push_str(
                line.strip_prefix('.')
                    .filter(|_| line.starts_with(".."))
                    .unwrap_or(line),
            );
            out.push_str("\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn tokens() {
        assert_eq!(
            toks("if size :over 10K { keep; } # c\n/* x */"),
            vec![
                Tok::Ident("if".into()),
                Tok::Ident("size".into()),
                Tok::Tag("over".into()),
                Tok::Number(10240),
                Tok::LBrace,
                Tok::Ident("keep".into()),
                Tok::Semi,
                Tok::RBrace,
                Tok::Eof
            ]
        );
        assert_eq!(toks(r#""a\"b\\c\d""#)[0], Tok::Str("a\"b\\cd".into()));
        assert_eq!(
            toks("text: # c\r\nline\r\n..dot\r\n.\r\n")[0],
            Tok::Str("line\r\n.dot\r\n".into())
        );
    }

    #[test]
    fn errors_have_positions() {
        let e = lex("keep;\n  \"abc").unwrap_err();
        assert_eq!((e.pos.line, e.pos.col), (2, 3));
        assert!(lex("/* never closed").is_err());
        assert!(lex("text:\nno end\n").is_err());
        assert!(lex("99999999999999999999").is_err());
    }
}
