//! Why this file exists: RFC 5228 section 8.2 (the grammar) turns tokens into a tree of
//! commands and tests whose arguments are not yet interpreted. What a command *means*, which
//! tags it takes and which extension it needs is `compile.rs`'s business; this file knows only
//! the shape every command has: `name arguments (";" / block)`.

use crate::error::{CompileError, Pos};
use crate::lexer::{Tok, Token};

#[derive(Debug, Clone)]
pub enum Arg {
    Tag(String, Pos),
    Number(u64, Pos),
    /// A single string or a bracketed list; `list` tells which was written.
    Strings {
        values: Vec<String>,
        list: bool,
        pos: Pos,
    },
}

impl Arg {
    pub fn pos(&self) -> Pos {
        match self {
            Arg::Tag(_, p) | Arg::Number(_, p) => *p,
            Arg::Strings { pos, .. } => *pos,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TestNode {
    pub name: String,
    pub pos: Pos,
    pub args: Vec<Arg>,
    pub tests: Vec<TestNode>,
}

#[derive(Debug, Clone)]
pub struct CommandNode {
    pub name: String,
    pub pos: Pos,
    pub args: Vec<Arg>,
    pub tests: Vec<TestNode>,
    /// Whether the arguments ended in a parenthesized test list (as anyof/allof take).
    pub test_list: bool,
    pub block: Option<Vec<CommandNode>>,
}

/// Deepest nesting of blocks and tests accepted (a hostile script must not exhaust the stack).
pub const MAX_NESTING: usize = 64;

pub fn parse(tokens: &[Token]) -> Result<Vec<CommandNode>, CompileError> {
    let mut p = Parser {
        t: tokens,
        i: 0,
        depth: 0,
    };
    let cmds = p.commands()?;
    match &p.cur().tok {
        Tok::Eof => Ok(cmds),
        Tok::RBrace => Err(CompileError::new(
            p.cur().pos,
            "unexpected '}' (no block is open)",
        )),
        other => Err(CompileError::new(
            p.cur().pos,
            format!("expected a command, found {}", describe(other)),
        )),
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("identifier '{s}'"),
        Tok::Tag(s) => format!("tag ':{s}'"),
        Tok::Number(n) => format!("number {n}"),
        Tok::Str(_) => "a string".into(),
        Tok::Semi => "';'".into(),
        Tok::Comma => "','".into(),
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::LBracket => "'['".into(),
        Tok::RBracket => "']'".into(),
        Tok::LBrace => "'{'".into(),
        Tok::RBrace => "'}'".into(),
        Tok::Eof => "the end of the script".into(),
    }
}

struct Parser<'a> {
    t: &'a [Token],
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn cur(&self) -> &Token {
        &self.t[self.i.min(self.t.len() - 1)]
    }

    fn advance(&mut self) -> &Token {
        let t = &self.t[self.i.min(self.t.len() - 1)];
        self.i += 1;
        t
    }

    fn deeper(&mut self, pos: Pos) -> Result<(), CompileError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(CompileError::new(
                pos,
                format!("nesting deeper than {MAX_NESTING} levels"),
            ));
        }
        Ok(())
    }

    fn commands(&mut self) -> Result<Vec<CommandNode>, CompileError> {
        let mut out = Vec::new();
        while let Tok::Ident(_) = self.cur().tok {
            out.push(self.command()?);
        }
        Ok(out)
    }

    fn command(&mut self) -> Result<CommandNode, CompileError> {
        let tok = self.advance().clone();
        let Tok::Ident(name) = tok.tok else {
            unreachable!("commands() checked for an identifier")
        };
        let args = self.arguments()?;
        let (tests, test_list) = self.test_or_list()?;
        let block = match &self.cur().tok {
            Tok::Semi => {
                self.advance();
                None
            }
            Tok::LBrace => {
                let pos = self.advance().pos;
                self.deeper(pos)?;
                let body = self.commands()?;
                self.depth -= 1;
                match &self.cur().tok {
                    Tok::RBrace => {
                        self.advance();
                    }
                    other => {
                        return Err(CompileError::new(
                            self.cur().pos,
                            format!(
                                "expected a command or '}}' closing the block opened at line {}, found {}",
                                pos.line,
                                describe(other)
                            ),
                        ))
                    }
                }
                Some(body)
            }
            other => {
                return Err(CompileError::new(
                    self.cur().pos,
                    format!(
                        "expected ';' or a block after command '{name}', found {}",
                        describe(other)
                    ),
                ))
            }
        };
        Ok(CommandNode {
            name: name.to_ascii_lowercase(),
            pos: tok.pos,
            args,
            tests,
            test_list,
            block,
        })
    }

    fn arguments(&mut self) -> Result<Vec<Arg>, CompileError> {
        let mut args = Vec::new();
        loop {
            let t = self.cur().clone();
            match t.tok {
                Tok::Tag(name) => {
                    self.advance();
                    args.push(Arg::Tag(name, t.pos));
                }
                Tok::Number(n) => {
                    self.advance();
                    args.push(Arg::Number(n, t.pos));
                }
                Tok::Str(s) => {
                    self.advance();
                    args.push(Arg::Strings {
                        values: vec![s],
                        list: false,
                        pos: t.pos,
                    });
                }
                Tok::LBracket => {
                    self.advance();
                    let mut values = Vec::new();
                    loop {
                        match &self.cur().tok {
                            Tok::Str(s) => {
                                values.push(s.clone());
                                self.advance();
                            }
                            other => {
                                return Err(CompileError::new(
                                    self.cur().pos,
                                    format!(
                                        "expected a string in the list, found {}",
                                        describe(other)
                                    ),
                                ))
                            }
                        }
                        if self.separator(Tok::RBracket, "the string list")? {
                            break;
                        }
                    }
                    args.push(Arg::Strings {
                        values,
                        list: true,
                        pos: t.pos,
                    });
                }
                _ => return Ok(args),
            }
        }
    }

    /// A single test, or a parenthesized list of tests, or nothing.
    fn test_or_list(&mut self) -> Result<(Vec<TestNode>, bool), CompileError> {
        match &self.cur().tok {
            Tok::Ident(_) => Ok((vec![self.test()?], false)),
            Tok::LParen => {
                let pos = self.advance().pos;
                self.deeper(pos)?;
                let mut tests = vec![self.test()?];
                while !self.separator(Tok::RParen, "the test list")? {
                    tests.push(self.test()?);
                }
                self.depth -= 1;
                Ok((tests, true))
            }
            _ => Ok((Vec::new(), false)),
        }
    }

    /// After an item of a list: true at the list's closing token, false after a comma.
    fn separator(&mut self, close: Tok, what: &str) -> Result<bool, CompileError> {
        match &self.cur().tok {
            Tok::Comma => {
                self.advance();
                Ok(false)
            }
            t if *t == close => {
                self.advance();
                Ok(true)
            }
            other => Err(CompileError::new(
                self.cur().pos,
                format!(
                    "expected ',' or {} in {what}, found {}",
                    describe(&close),
                    describe(other)
                ),
            )),
        }
    }

    fn test(&mut self) -> Result<TestNode, CompileError> {
        let t = self.cur().clone();
        let Tok::Ident(name) = t.tok else {
            return Err(CompileError::new(
                t.pos,
                format!("expected a test, found {}", describe(&t.tok)),
            ));
        };
        self.advance();
        self.deeper(t.pos)?;
        let args = self.arguments()?;
        let (tests, _) = self.test_or_list()?;
        self.depth -= 1;
        Ok(TestNode {
            name: name.to_ascii_lowercase(),
            pos: t.pos,
            args,
            tests,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexer::lex;

    fn p(s: &str) -> Result<Vec<CommandNode>, CompileError> {
        parse(&lex(s)?)
    }

    #[test]
    fn shapes() {
        let c = p("if anyof (true, not false) { keep; } else { discard; }").unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].tests[0].name, "anyof");
        assert_eq!(c[0].tests[0].tests.len(), 2);
        assert_eq!(c[1].name, "else");
        let c = p("fileinto :copy [\"a\", \"b\"];").unwrap();
        assert!(
            matches!(&c[0].args[1], Arg::Strings { values, list: true, .. } if values.len() == 2)
        );
    }

    #[test]
    fn errors() {
        let e = p("keep\n[;").unwrap_err();
        assert_eq!(e.pos.line, 2);
        assert!(p("if true { keep;").is_err());
        assert!(p("keep; }").is_err());
        assert!(p("fileinto [\"a\" \"b\"];").is_err());
        let deep = "if not ".repeat(200) + "true { keep; }";
        assert!(p(&deep).unwrap_err().message.contains("nesting"));
    }
}
