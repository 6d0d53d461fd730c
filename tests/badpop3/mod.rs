//! A misbehaving POP3 server for tests, on 127.0.0.1 without TLS: a mailbox that outlives
//! its connections (deletions happen at QUIT only, as RFC 1939 says), and the faults real
//! servers have: no UIDL, one id given to two messages, a LIST size smaller than the
//! message, a connection dropped in the middle of RETR or at QUIT, DELE refused, silence.
//! Counts what it was asked.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One message of the mailbox.
#[derive(Debug, Clone)]
pub struct Stored {
    pub raw: Vec<u8>,
    /// What UIDL says (None: UIDL has no line for it).
    pub uid: Option<String>,
    /// What LIST says (None: the real size).
    pub listed_size: Option<u64>,
}

/// What the server does wrong; changed between passes through `BadPop3::faults`.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// UIDL answers -ERR.
    pub no_uidl: bool,
    /// RETR of this message number sends half of it and closes the connection.
    pub drop_in_retr: Option<u32>,
    /// QUIT closes the connection without answering or deleting.
    pub drop_at_quit: bool,
    /// DELE answers -ERR.
    pub refuse_dele: bool,
    /// Connections are accepted and never answered.
    pub silent: bool,
    /// USER is refused; AUTH PLAIN (offered in CAPA) takes `me@example.test` / `pw` only.
    pub sasl_only: bool,
}

pub struct BadPop3 {
    pub port: u16,
    pub mailbox: Arc<Mutex<Vec<Stored>>>,
    pub faults: Arc<Mutex<Faults>>,
    /// Every command line received (the password lines included: test data only).
    pub commands: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for BadPop3 {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl BadPop3 {
    pub async fn start(messages: Vec<Stored>) -> BadPop3 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mailbox = Arc::new(Mutex::new(messages));
        let faults = Arc::new(Mutex::new(Faults::default()));
        let commands = Arc::new(Mutex::new(Vec::new()));
        let (m, f, c) = (mailbox.clone(), faults.clone(), commands.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (m, f, c) = (m.clone(), f.clone(), c.clone());
                tokio::spawn(async move {
                    let _ = session(stream, m, f, c).await;
                });
            }
        });
        BadPop3 {
            port,
            mailbox,
            faults,
            commands,
            task,
        }
    }

    pub fn set(&self, faults: Faults) {
        *self.faults.lock().unwrap() = faults;
    }

    pub fn len(&self) -> usize {
        self.mailbox.lock().unwrap().len()
    }

    /// How many commands started with `verb`.
    pub fn asked(&self, verb: &str) -> usize {
        self.commands
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.to_ascii_uppercase().starts_with(verb))
            .count()
    }
}

async fn session(
    stream: tokio::net::TcpStream,
    mailbox: Arc<Mutex<Vec<Stored>>>,
    faults: Arc<Mutex<Faults>>,
    commands: Arc<Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    let f = faults.lock().unwrap().clone();
    if f.silent {
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        return Ok(());
    }
    let (read, mut w) = stream.into_split();
    let mut r = BufReader::new(read);
    // A snapshot, as a server locks the maildrop for the session.
    let msgs: Vec<Stored> = mailbox.lock().unwrap().clone();
    let mut deleted = vec![false; msgs.len()];
    w.write_all(b"+OK badpop3 ready\r\n").await?;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        commands.lock().unwrap().push(cmd.clone());
        let mut words = cmd.split_whitespace();
        let verb = words.next().unwrap_or("").to_ascii_uppercase();
        let arg: Option<usize> = words.next().and_then(|n| n.parse().ok());
        let get = |n: Option<usize>| n.filter(|n| (1..=msgs.len()).contains(n)).map(|n| n - 1);
        match verb.as_str() {
            "CAPA" => {
                let uidl = if f.no_uidl { "" } else { "UIDL\r\n" };
                let login = if f.sasl_only { "SASL PLAIN" } else { "USER" };
                w.write_all(format!("+OK\r\n{login}\r\n{uidl}.\r\n").as_bytes())
                    .await?
            }
            "USER" if f.sasl_only => w.write_all(b"-ERR use AUTH\r\n").await?,
            "AUTH" => {
                use base64::Engine;
                let plain = cmd
                    .split_whitespace()
                    .nth(2)
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
                if plain.as_deref() == Some(b"\0me@example.test\0pw".as_slice()) {
                    w.write_all(b"+OK logged in\r\n").await?
                } else {
                    w.write_all(b"-ERR [AUTH] no\r\n").await?
                }
            }
            "USER" | "PASS" | "NOOP" => w.write_all(b"+OK\r\n").await?,
            "LIST" => {
                let mut out = String::from("+OK\r\n");
                for (i, m) in msgs.iter().enumerate() {
                    if !deleted[i] {
                        let size = m.listed_size.unwrap_or(m.raw.len() as u64);
                        out += &format!("{} {size}\r\n", i + 1);
                    }
                }
                out += ".\r\n";
                w.write_all(out.as_bytes()).await?
            }
            "UIDL" if f.no_uidl => w.write_all(b"-ERR no UIDL here\r\n").await?,
            "UIDL" => {
                let mut out = String::from("+OK\r\n");
                for (i, m) in msgs.iter().enumerate() {
                    if let (false, Some(u)) = (deleted[i], &m.uid) {
                        out += &format!("{} {u}\r\n", i + 1);
                    }
                }
                out += ".\r\n";
                w.write_all(out.as_bytes()).await?
            }
            "RETR" => match get(arg) {
                Some(i) if !deleted[i] => {
                    let mut out = b"+OK\r\n".to_vec();
                    for l in msgs[i].raw.split_inclusive(|&b| b == b'\n') {
                        if l.starts_with(b".") {
                            out.push(b'.');
                        }
                        out.extend_from_slice(l);
                    }
                    if f.drop_in_retr == Some(i as u32 + 1) {
                        out.truncate(out.len() / 2);
                        w.write_all(&out).await?;
                        return Ok(());
                    }
                    out.extend_from_slice(b".\r\n");
                    w.write_all(&out).await?
                }
                _ => w.write_all(b"-ERR no such message\r\n").await?,
            },
            "TOP" => match get(arg) {
                Some(i) if !deleted[i] => {
                    let raw = &msgs[i].raw;
                    let end = raw
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .map_or(raw.len(), |p| p + 4);
                    let mut out = b"+OK\r\n".to_vec();
                    out.extend_from_slice(&raw[..end]);
                    out.extend_from_slice(b".\r\n");
                    w.write_all(&out).await?
                }
                _ => w.write_all(b"-ERR no such message\r\n").await?,
            },
            "DELE" if f.refuse_dele => w.write_all(b"-ERR not today\r\n").await?,
            "DELE" => match get(arg) {
                Some(i) if !deleted[i] => {
                    deleted[i] = true;
                    w.write_all(b"+OK\r\n").await?
                }
                _ => w.write_all(b"-ERR no such message\r\n").await?,
            },
            "QUIT" if f.drop_at_quit => return Ok(()),
            "QUIT" => {
                // Deleted now, by content: another session may have changed the numbers.
                let gone: Vec<Vec<u8>> = msgs
                    .iter()
                    .zip(&deleted)
                    .filter(|(_, d)| **d)
                    .map(|(m, _)| m.raw.clone())
                    .collect();
                {
                    let mut mb = mailbox.lock().unwrap();
                    for raw in gone {
                        if let Some(p) = mb.iter().position(|m| m.raw == raw) {
                            mb.remove(p);
                        }
                    }
                }
                w.write_all(b"+OK bye\r\n").await?;
                return Ok(());
            }
            _ => w.write_all(b"-ERR unknown command\r\n").await?,
        }
    }
}
