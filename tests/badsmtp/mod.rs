//! A misbehaving SMTP server for tests, on 127.0.0.1: it either never says anything
//! (`Mode::Tarpit`), or speaks just enough SMTP to take each connection's first message and
//! then never answers the NOOP that checks a kept connection (`Mode::MuteAfterFirst`), or
//! takes every message and, when told to, SIGKILLs its client a moment after a `250`
//! (`Mode::KillAfterAccept`): the worst moment for a client that has no transaction.
//! Counts the connections and the messages it accepted, with their recipients.
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
    /// Take every message; after each `250` for a message, wait `kill_delay` and SIGKILL the
    /// process in `kill_pid` if one is set (and clear it: one kill per pid set).
    KillAfterAccept,
}

pub struct BadSmtp {
    pub port: u16,
    pub connections: Arc<AtomicUsize>,
    pub accepted: Arc<AtomicUsize>,
    /// The RCPT TO addresses of each accepted message, in order.
    pub recipients: Arc<std::sync::Mutex<Vec<Vec<String>>>>,
    /// `Mode::KillAfterAccept`: the client process to kill after the next `250` (0: none).
    pub kill_pid: Arc<std::sync::atomic::AtomicU32>,
    pub kill_delay: std::time::Duration,
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
        let recipients = Arc::new(std::sync::Mutex::new(Vec::new()));
        let kill_pid = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let kill_delay = std::time::Duration::from_millis(5);
        let (c, a) = (connections.clone(), accepted.clone());
        let (r, k) = (recipients.clone(), kill_pid.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let a = a.clone();
                let (r, k) = (r.clone(), k.clone());
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
                    let mut rcpt = Vec::new();
                    while let Ok(Some(line)) = lines.next_line().await {
                        if in_data {
                            if line == "." {
                                in_data = false;
                                done = mode == Mode::MuteAfterFirst;
                                a.fetch_add(1, Ordering::SeqCst);
                                r.lock().unwrap().push(std::mem::take(&mut rcpt));
                                let _ = write.write_all(b"250 2.0.0 queued\r\n").await;
                                let _ = write.flush().await;
                                let pid = k.swap(0, Ordering::SeqCst);
                                if pid != 0 {
                                    tokio::time::sleep(kill_delay).await;
                                    // SAFETY: kill(2) with a pid the test started.
                                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                                }
                            }
                            continue;
                        }
                        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                        if verb == "RCPT" {
                            let to = line[line.find('<').map_or(0, |i| i + 1)..]
                                .trim_end_matches('>')
                                .to_string();
                            rcpt.push(to);
                        }
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
            recipients,
            kill_pid,
            kill_delay,
            task,
        }
    }
}
