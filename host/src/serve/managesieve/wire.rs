//! Why this file exists: ManageSieve's wire format (RFC 5804 section 4), apart from what the
//! commands mean. A command is a line of atoms and strings; a string is quoted or a literal
//! (`{N+}` or `{N}`, then N octets, after which the line goes on). Reading is bounded: line
//! length, literal size, words per command; a client that stops mid-literal is cut off by the
//! session's idle timeout.

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

/// One argument of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Word {
    Atom(String),
    /// A quoted string or a literal.
    Text(Vec<u8>),
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("the connection was closed")]
    Closed,
    #[error("a line longer than {0} bytes")]
    LineTooLong(usize),
    #[error("a literal of {size} bytes, more than {max}")]
    LiteralTooLarge { size: u64, max: usize },
    /// The line is consumed: the session can go on.
    #[error("{0}")]
    Syntax(&'static str),
    /// A literal the server cannot take apart from what follows: out of step for good.
    #[error("{0}")]
    BadLiteral(&'static str),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl WireError {
    /// Whether the stream is still in step after this error (only then may the session go
    /// on; otherwise it says BYE).
    pub fn recoverable(&self) -> bool {
        matches!(self, WireError::Syntax(_))
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_line: usize,
    pub max_literal: usize,
    /// The literals of one command together.
    pub max_total: usize,
    pub max_words: usize,
}

/// One line, without its line end; `Closed` at the end of the stream.
async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R, max: usize) -> Result<Vec<u8>, WireError> {
    let mut buf = Vec::new();
    let n = (&mut *r)
        .take(max as u64 + 2)
        .read_until(b'\n', &mut buf)
        .await?;
    if n == 0 {
        return Err(WireError::Closed);
    }
    if buf.last() != Some(&b'\n') {
        return Err(if buf.len() > max {
            WireError::LineTooLong(max)
        } else {
            WireError::Closed
        });
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(buf)
}

/// Reads one command: its words, the command name first.
pub async fn read_command<R: AsyncBufRead + Unpin>(
    r: &mut R,
    lim: &Limits,
) -> Result<Vec<Word>, WireError> {
    let mut words = Vec::new();
    let mut syntax: Option<&'static str> = None;
    let mut total: u64 = 0;
    loop {
        let line = read_line(r, lim.max_line).await?;
        let mut literal: Option<u64> = None;
        let mut i = 0;
        while i < line.len() && syntax.is_none() {
            match line[i] {
                b' ' => i += 1,
                b'"' => match quoted(&line[i + 1..]) {
                    Some((text, used)) => {
                        words.push(Word::Text(text));
                        i += 1 + used;
                    }
                    None => syntax = Some("a quoted string without its closing quote"),
                },
                b'{' => {
                    let rest = &line[i + 1..];
                    let Some(close) = rest.iter().position(|&b| b == b'}') else {
                        syntax = Some("a literal without its closing brace");
                        break;
                    };
                    let digits = rest[..close].strip_suffix(b"+").unwrap_or(&rest[..close]);
                    let n = (!digits.is_empty() && digits.len() <= 10)
                        .then(|| std::str::from_utf8(digits).ok()?.parse::<u64>().ok())
                        .flatten();
                    match n {
                        Some(n) if i + 1 + close + 1 == line.len() => literal = Some(n),
                        Some(_) => {
                            return Err(WireError::BadLiteral("a literal must end its line"))
                        }
                        None => {
                            return Err(WireError::BadLiteral("a literal's length is not a number"))
                        }
                    }
                    i = line.len();
                }
                _ => {
                    let end = line[i..]
                        .iter()
                        .position(|&b| b == b' ')
                        .map_or(line.len(), |p| i + p);
                    let atom = &line[i..end];
                    if atom
                        .iter()
                        .any(|&b| !(0x21..=0x7e).contains(&b) || b == b'"' || b == b'{')
                    {
                        syntax = Some("an atom with a character atoms cannot have");
                    } else {
                        words.push(Word::Atom(String::from_utf8_lossy(atom).into_owned()));
                    }
                    i = end;
                }
            }
            if words.len() > lim.max_words {
                syntax = Some("too many arguments");
            }
        }
        if syntax.is_some() && literal.is_none() && ends_with_literal(&line) {
            // Its octets follow and cannot be told from the next command.
            return Err(WireError::BadLiteral("a syntax error before a literal"));
        }
        match literal {
            None => {
                return match syntax {
                    Some(s) => Err(WireError::Syntax(s)),
                    None => Ok(words),
                }
            }
            Some(n) if n > lim.max_literal as u64 => {
                return Err(WireError::LiteralTooLarge {
                    size: n,
                    max: lim.max_literal,
                })
            }
            Some(n) if total + n > lim.max_total as u64 => {
                return Err(WireError::LiteralTooLarge {
                    size: total + n,
                    max: lim.max_total,
                })
            }
            Some(n) => {
                total += n;
                let mut buf = vec![0u8; n as usize];
                r.read_exact(&mut buf).await.map_err(|e| match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => WireError::Closed,
                    _ => WireError::Io(e),
                })?;
                if syntax.is_none() {
                    words.push(Word::Text(buf));
                }
                // The command goes on after the literal, to the end of that line.
            }
        }
    }
}

/// Whether a line ends like `{N}` or `{N+}`.
fn ends_with_literal(line: &[u8]) -> bool {
    let Some(rest) = line.strip_suffix(b"}") else {
        return false;
    };
    let rest = rest.strip_suffix(b"+").unwrap_or(rest);
    let digits = rest.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    digits > 0 && rest[..rest.len() - digits].ends_with(b"{")
}

/// The text of a quoted string whose opening quote is already read, and the bytes it took
/// (closing quote included). `\` escapes `"` and `\`.
fn quoted(b: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => return Some((out, i + 1)),
            b'\\' if i + 1 < b.len() => {
                out.push(b[i + 1]);
                i += 2;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    None
}

/// A string as the server sends it: quoted when it can be, else a literal.
pub fn string(s: &str) -> String {
    if s.len() <= 1024 && !s.contains(['\r', '\n', '\0']) {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        format!("{{{}}}\r\n{s}", s.len())
    }
}

/// A response line: `OK`, `NO` or `BYE`, an optional response code, a human-readable text.
pub fn response(kind: &str, code: Option<&str>, text: &str) -> String {
    match code {
        Some(c) => format!("{kind} ({c}) {}\r\n", string(text)),
        None => format!("{kind} {}\r\n", string(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIM: Limits = Limits {
        max_line: 100,
        max_literal: 20,
        max_total: 30,
        max_words: 5,
    };

    async fn words(input: &[u8]) -> Result<Vec<Word>, WireError> {
        read_command(&mut &input[..], &LIM).await
    }

    fn t(s: &str) -> Word {
        Word::Text(s.as_bytes().to_vec())
    }

    #[tokio::test]
    async fn atoms_quoted_strings_and_both_literals() {
        let w = words(b"PUTSCRIPT \"my \\\"rules\\\"\" {5+}\r\nkeep;\r\n")
            .await
            .unwrap();
        assert_eq!(
            w,
            [
                Word::Atom("PUTSCRIPT".into()),
                t("my \"rules\""),
                t("keep;")
            ]
        );
        // `{N}` too (clients send it; ManageSieve has no continuation to wait for), and a
        // literal holding CRLF and a brace, then more words on the rest of the line.
        let w = words(b"X {4}\r\n{\r\n}  \"a\"\r\n").await.unwrap();
        assert_eq!(w, [Word::Atom("X".into()), t("{\r\n}"), t("a")]);
        let w = words(b"NOOP\n").await.unwrap();
        assert_eq!(w, [Word::Atom("NOOP".into())]);
    }

    #[tokio::test]
    async fn hostile_input_is_refused_and_bounded() {
        assert!(matches!(words(b"").await, Err(WireError::Closed)));
        // A client that stops mid-literal.
        assert!(matches!(
            words(b"P {10+}\r\nabc").await,
            Err(WireError::Closed)
        ));
        // More than the literal limit: refused before reading it (the session then says BYE).
        let e = words(b"P {99999999999+}\r\n").await.unwrap_err();
        assert!(matches!(e, WireError::BadLiteral(_)), "{e}");
        assert!(!e.recoverable());
        // A syntax error earlier on a line that ends with a literal: out of step, BYE.
        let e = words(b"P \x01 {3+}\r\nabc\r\n").await.unwrap_err();
        assert!(!e.recoverable(), "{e}");
        let e = words(b"P {21+}\r\n").await.unwrap_err();
        assert!(matches!(e, WireError::LiteralTooLarge { size: 21, .. }));
        assert!(!e.recoverable());
        // Literals each within the limit, but together more than a command may carry.
        let e = words(b"P {20+}\r\n01234567890123456789 {11+}\r\n")
            .await
            .unwrap_err();
        assert!(
            matches!(e, WireError::LiteralTooLarge { size: 31, max: 30 }),
            "{e}"
        );
        let long = [b"A".repeat(200), b"\r\n".to_vec()].concat();
        assert!(matches!(
            words(&long).await,
            Err(WireError::LineTooLong(100))
        ));
        let e = words(b"P \"open\r\n").await.unwrap_err();
        assert!(e.recoverable(), "{e}");
        assert!(words(b"P {3+} x\r\n").await.is_err());
        assert!(words(b"A B C D E F G\r\n").await.is_err());
        assert!(words(b"A \x01\r\n").await.is_err());
    }

    #[test]
    fn strings_and_responses_are_written_safely() {
        assert_eq!(string("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(string("two\r\nlines"), "{10}\r\ntwo\r\nlines");
        assert_eq!(
            response("NO", Some("NONEXISTENT"), "no script \"x\""),
            "NO (NONEXISTENT) \"no script \\\"x\\\"\"\r\n"
        );
    }
}
