//! `mailpipe deliver`: one message on standard input delivered for one recipient, as a mail
//! transfer agent's delivery command (Postfix's `mailbox_command`, a `.forward` pipe,
//! fetchmail's `mda`). The exit code is all the MTA goes by (sysexits.h): 0 only once the
//! message is durably stored and its decision committed; 75 (EX_TEMPFAIL) makes the MTA keep
//! it and try again. Postfix returns the message to its sender for any other code, so every
//! failure a fix can mend (a config typo, a busy or unreachable state store, a full disk,
//! even a panic) gives 75, never 1, 2 or 101.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use mailpipe::config::Config;
use mailpipe::run::deliver::{Deliverer, Envelope};

/// sysexits.h: what an MTA understands.
pub const EX_OK: u8 = 0;
/// The input is not a message (or is larger than the account takes): returned to the sender.
pub const EX_DATAERR: u8 = 65;
/// No account takes mail for the recipient: returned to the sender ("unknown user").
pub const EX_NOUSER: u8 = 67;
/// Try again later: the message stays in the MTA's queue.
pub const EX_TEMPFAIL: u8 = 75;
/// Refused by the recipient's filter (Sieve's reject): returned to the sender with the
/// reason printed on standard error.
pub const EX_NOPERM: u8 = 77;

/// How long a delivery may take before it gives up with EX_TEMPFAIL: under Postfix's
/// `command_time_limit` (1000 s), which would otherwise kill it and count a failure.
const DEADLINE: Duration = Duration::from_secs(600);

/// How long to wait for the embedded state store while another process holds it (another
/// delivery, a `run`): it serves one process at a time.
const STORE_WAIT: Duration = Duration::from_secs(60);

/// The options of `mailpipe deliver`.
#[derive(clap::Args, Debug)]
pub struct DeliverArgs {
    /// The config file (TOML).
    #[arg(short, long)]
    pub config: PathBuf,
    /// The envelope sender (default: $SENDER as Postfix sets it, else the mbox "From " line
    /// of the input, else the null sender).
    #[arg(short = 'f', long = "from", value_name = "SENDER")]
    pub sender: Option<String>,
    /// The envelope recipient (default: $RECIPIENT as Postfix sets it).
    #[arg(short = 'a', long = "recipient", value_name = "ADDRESS")]
    pub recipient: Option<String>,
    /// Deliver to this account whatever the recipient (default: the account whose
    /// `recipients` name it).
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
}

/// Run the delivery; the exit code is the MTA's answer.
pub async fn run(args: DeliverArgs) -> ExitCode {
    // A panic anywhere below must defer the message, not bounce it (101).
    let task = tokio::spawn(async move {
        match tokio::time::timeout(DEADLINE, deliver(args)).await {
            Ok(code) => code,
            Err(_) => {
                eprintln!(
                    "mailpipe: delivery took over {} s; the MTA will try again",
                    DEADLINE.as_secs()
                );
                EX_TEMPFAIL
            }
        }
    });
    ExitCode::from(task.await.unwrap_or_else(|e| {
        eprintln!("mailpipe: internal error ({e}); the MTA will try again");
        EX_TEMPFAIL
    }))
}

async fn deliver(args: DeliverArgs) -> u8 {
    let temp = |what: String| {
        eprintln!("mailpipe: {what}; the MTA will try again");
        EX_TEMPFAIL
    };
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => return temp(e.to_string()),
    };
    let recipient = match args
        .recipient
        .clone()
        .or_else(|| std::env::var("RECIPIENT").ok())
        .filter(|r| !r.trim().is_empty())
    {
        Some(r) => r.trim().to_string(),
        None => return temp("no recipient: give -a ADDRESS (or set $RECIPIENT)".into()),
    };
    let max = config
        .accounts
        .iter()
        .map(|a| a.max_message_bytes)
        .max()
        .unwrap_or(50 << 20);
    let mut raw = Vec::new();
    if let Err(e) = std::io::stdin().lock().take(max + 1).read_to_end(&mut raw) {
        return temp(format!("reading the message from standard input: {e}"));
    }
    let (from_line, raw) = split_mbox_from_line(&raw);
    let sender = args
        .sender
        .clone()
        .or_else(|| std::env::var("SENDER").ok())
        .or(from_line)
        .unwrap_or_default();
    let sender = if sender == "<>" || sender == "MAILER-DAEMON" {
        String::new()
    } else {
        sender
    };
    if sender.chars().any(char::is_control) || recipient.chars().any(char::is_control) {
        eprintln!("mailpipe: the envelope holds a control character: refused");
        return EX_DATAERR;
    }
    if !mailpipe::message::looks_like_message(raw) {
        eprintln!("mailpipe: the input is not an email message (binary, or no header)");
        return EX_DATAERR;
    }
    // A daemon with an LMTP server holds the (embedded) store: the message goes through it.
    if let (Some(lmtp), None) = (&config.lmtp, &args.account) {
        match handoff(&lmtp.listen, &sender, &recipient, raw).await {
            Ok(Some(code)) => return code,
            Ok(None) => {} // no daemon listening: delivered here
            Err(e) => {
                return temp(format!(
                    "handing the message to the daemon's LMTP server: {e}"
                ))
            }
        }
    }
    let store = match open_store_waiting(&config).await {
        Ok(s) => s,
        Err(e) => {
            return temp(format!(
                "{e:#}{}",
                if config.lmtp.is_none() {
                    " (a daemon using this store? give it an [lmtp] server: deliver then hands messages to it)"
                } else {
                    ""
                }
            ))
        }
    };
    let deliverer = match Deliverer::new(&config, store).await {
        Ok(d) => d,
        Err(e) => return temp(format!("{e:#}")),
    };
    let Some(account) = deliverer
        .account_for(&recipient, args.account.as_deref())
        .cloned()
    else {
        eprintln!(
            "mailpipe: no account takes mail for {recipient}{} (accounts with [account.deliver]: {})",
            args.account
                .as_deref()
                .map(|a| format!(" (--account {a})"))
                .unwrap_or_default(),
            deliverer
                .accounts()
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return EX_NOUSER;
    };
    if raw.len() as u64 > account.max_message_bytes {
        // The rest is read and dropped: the mail server sees our answer, not a broken pipe.
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        eprintln!(
            "mailpipe: the message is larger than account {} takes (max_message_mb)",
            account.name
        );
        return EX_DATAERR;
    }
    let envelope = Envelope {
        sender,
        recipient,
        original_recipient: std::env::var("ORIGINAL_RECIPIENT")
            .ok()
            .filter(|o| !o.is_empty()),
    };
    match deliverer.deliver(&account, &envelope, raw).await {
        Ok(d) if d.refused.is_some() => {
            // Postfix puts what the command printed into the bounce it returns.
            let reason = d.refused.unwrap_or_default();
            tracing::info!(account = %account.name, key = %d.key, "refused: {reason}");
            eprintln!("mailpipe: refused by the recipient's filter: {reason}");
            EX_NOPERM
        }
        Ok(d) => {
            if d.again {
                tracing::info!(account = %account.name, key = %d.key, "delivered before: nothing stored or sent again");
            } else {
                tracing::info!(account = %account.name, key = %d.key, folders = ?d.folders, "delivered");
            }
            // Delivered: what follows can no longer change the answer.
            let _ = tokio::time::timeout(account.timeout * 2, deliverer.flush(&account)).await;
            EX_OK
        }
        Err(e) if e.is_transient() => temp(e.to_string()),
        Err(e) => {
            eprintln!("mailpipe: {e}");
            EX_DATAERR
        }
    }
}

/// Hand the message to the daemon's LMTP server, if one listens: the exit code its answer
/// means; None when nothing listens there.
async fn handoff(
    listen: &mailpipe::config::LmtpListen,
    sender: &str,
    recipient: &str,
    raw: &[u8],
) -> Result<Option<u8>, String> {
    use mailpipe::config::LmtpListen;
    match listen {
        LmtpListen::Tcp(addr) => match tokio::net::TcpStream::connect(addr).await {
            Ok(s) => lmtp_client(s, sender, recipient, raw).await.map(Some),
            Err(_) => Ok(None),
        },
        LmtpListen::Unix(path) => match tokio::net::UnixStream::connect(path).await {
            Ok(s) => lmtp_client(s, sender, recipient, raw).await.map(Some),
            Err(_) => Ok(None),
        },
    }
}

/// One LMTP transaction for one recipient; the exit code its final answer means.
async fn lmtp_client<S>(stream: S, sender: &str, recipient: &str, raw: &[u8]) -> Result<u8, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    let (r, mut w) = tokio::io::split(stream);
    let mut r = tokio::io::BufReader::new(r);
    let io = |e: std::io::Error| e.to_string();
    let mut replies = Vec::new();
    replies.push(lmtp_reply(&mut r).await?);
    for command in [
        "LHLO localhost".to_string(),
        format!("MAIL FROM:<{sender}>"),
        format!("RCPT TO:<{recipient}>"),
        "DATA".to_string(),
    ] {
        if !matches!(replies.last(), Some((220 | 250, _))) {
            break;
        }
        w.write_all(format!("{command}\r\n").as_bytes())
            .await
            .map_err(io)?;
        w.flush().await.map_err(io)?;
        replies.push(lmtp_reply(&mut r).await?);
    }
    let (code, text) = match replies.last() {
        Some((354, _)) => {
            w.write_all(&lmtp_data(raw)).await.map_err(io)?;
            w.flush().await.map_err(io)?;
            let done = lmtp_reply(&mut r).await?;
            let _ = w.write_all(b"QUIT\r\n").await;
            done
        }
        Some(refused) => refused.clone(),
        None => unreachable!("the greeting was read"),
    };
    eprintln!("mailpipe: the daemon's LMTP server said: {text}");
    Ok(match code {
        200..=299 => EX_OK,
        400..=499 => EX_TEMPFAIL,
        _ if text.contains(" 5.1.1 ") => EX_NOUSER,
        _ if text.contains(" 5.7.1 ") => EX_NOPERM,
        _ => EX_DATAERR,
    })
}

/// The last line of one LMTP reply: its code and text.
async fn lmtp_reply<R>(r: &mut R) -> Result<(u16, String), String>
where
    R: tokio::io::AsyncBufRead + Unpin,
{
    use tokio::io::AsyncBufReadExt;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.map_err(|e| e.to_string())? == 0 {
            return Err("the connection closed".into());
        }
        let code = line
            .get(..3)
            .and_then(|c| c.parse().ok())
            .ok_or(format!("not an LMTP reply: {line:?}"))?;
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok((code, line.trim_end().to_string()));
        }
    }
}

/// The message as LMTP data: lines end in CRLF, a leading dot is doubled, and the end
/// marker follows.
fn lmtp_data(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 32 + 8);
    for line in raw.split_inclusive(|&b| b == b'\n') {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        if body.starts_with(b".") {
            out.push(b'.');
        }
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// The state store, waiting while another process holds the embedded one. Clearing out
/// expired state scans the whole store: one delivery process in an hour does it (marked by
/// a file's time in the state directory), not every message's.
async fn open_store_waiting(config: &Config) -> anyhow::Result<Arc<mailpipe::state::Store>> {
    use anyhow::Context as _;
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(20);
    loop {
        match mailpipe::state::Store::open_config(&config.state, &config.state_dir) {
            Ok(s) => {
                let mark = config.state_dir.join("deliver-maintained");
                let due = std::fs::metadata(&mark)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_none_or(|age| age >= mailpipe::run::MAINTENANCE_EVERY);
                if due {
                    mailpipe::run::maintain(&s, config)?;
                    let _ = std::fs::write(&mark, b"");
                }
                return Ok(Arc::new(s));
            }
            Err(e) if started.elapsed() >= STORE_WAIT => {
                return Err(e).with_context(|| {
                    format!(
                        "cannot open the state store in {}",
                        config.state_dir.display()
                    )
                })
            }
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
        }
    }
}

/// An mbox "From sender date" line in front of the message (what some MTAs hand a delivery
/// command): its sender, and the message without it.
fn split_mbox_from_line(raw: &[u8]) -> (Option<String>, &[u8]) {
    if !raw.starts_with(b"From ") {
        return (None, raw);
    }
    let end = raw
        .iter()
        .position(|&b| b == b'\n')
        .map_or(raw.len(), |i| i + 1);
    let line = String::from_utf8_lossy(&raw[5..end]);
    let sender = line.split_whitespace().next().map(str::to_string);
    (sender, &raw[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lmtp_data_has_crlf_doubled_dots_and_its_end() {
        assert_eq!(
            lmtp_data(b"Subject: x\n\n.hidden\r\nlast"),
            b"Subject: x\r\n\r\n..hidden\r\nlast\r\n.\r\n".to_vec()
        );
    }

    #[test]
    fn an_mbox_from_line_gives_the_sender_and_goes() {
        let (s, rest) = split_mbox_from_line(
            b"From bob@example.test  Mon Dec  7 10:00:00 2026\nSubject: x\n\n",
        );
        assert_eq!(s.as_deref(), Some("bob@example.test"));
        assert_eq!(rest, b"Subject: x\n\n");
        let (s, rest) = split_mbox_from_line(b"Subject: x\n\n");
        assert_eq!((s, rest), (None, &b"Subject: x\n\n"[..]));
    }
}
