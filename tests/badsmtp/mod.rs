//! A misbehaving SMTP server for tests, on 127.0.0.1: it either never says anything
//! (`Mode::Tarpit`), or speaks just enough SMTP to take each connection's first message and
//! then never answers the NOOP that checks a kept connection (`Mode::MuteAfterFirst`).
//! Counts the connections and the messages it accepted.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Accept connections and never send a byte.
    Tarpit,
    /// Take one message per connection, then go silent (a NOOP gets no answer).
    MuteAfterFirst,
}

pub struct BadSmtp {
    pub port: u16,
    pub connections: Arc<AtomicUsize>,
    pub accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for BadSmtp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl BadSmtp {
    pub async fn start(mode: Mode) -> BadSmtp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (c, a) = (connections.clone(), accepted.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let a = a.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    if mode == Mode::Tarpit {
                        // Hold the connection open, say nothing.
                        let _keep = (read, write);
                        std::future::pending::<()>().await;
                        return;
                    }
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 bad.example ESMTP\r\n").await;
                    let mut in_data = false;
                    let mut done = false;
                    while let Ok(Some(line)) = lines.next_line().await {
                        if in_data {
                            if line == "." {
                                in_data = false;
                                done = true;
                                a.fetch_add(1, Ordering::SeqCst);
                                let _ = write.write_all(b"250 2.0.0 queued\r\n").await;
                            }
                            continue;
                        }
                        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                        if done {
                            // Whatever comes next (NOOP, RSET, MAIL) is never answered.
                            continue;
                        }
                        let answer: &[u8] = match verb.as_str() {
                            "EHLO" => b"250-bad.example\r\n250 8BITMIME\r\n",
                            "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 2.0.0 ok\r\n",
                            "DATA" => {
                                in_data = true;
                                b"354 go ahead\r\n"
                            }
                            "QUIT" => b"221 bye\r\n",
                            _ => b"500 what\r\n",
                        };
                        let _ = write.write_all(answer).await;
                    }
                });
            }
        });
        BadSmtp {
            port,
            connections,
            accepted,
            task,
        }
    }
}
