//! POP3 servers that misbehave (tests/badpop3): nothing lost, nothing stored twice, a clear
//! error. An id given to two messages, no UIDL at all, a connection dropped in the middle of
//! RETR or at QUIT, a LIST size smaller than the message, DELE refused, a silent server.

mod badpop3;
mod common;

use badpop3::{BadPop3, Faults, Stored};
use common::mailstack::plugin_toml;
use mailpipe::run::deliver::Deliverer;
use mailpipe::run::pop3::{Pop3Job, Pop3Report};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn msg(i: usize, uid: Option<&str>) -> Stored {
    Stored {
        raw: format!(
            "Received: from mx.test by pop.test; Mon, 7 Dec 2026 10:00:0{} +0000\r\n\
             From: Sender {i} <s{i}@example.org>\r\nTo: me@example.test\r\n\
             Subject: {}\r\nMessage-ID: <p{i}@example.org>\r\n\r\n.line with a dot\r\nbody {i}\r\n",
            i % 10,
            if i.is_multiple_of(2) {
                format!("Your invoice {i}")
            } else {
                format!("Note {i}")
            }
        )
        .into_bytes(),
        uid: uid.map(str::to_string),
        listed_size: None,
    }
}

/// The job for a config reading `server` into `dir/Maildir` (`keep`, `extra` account keys)
/// through the filer.
async fn job(dir: &Path, server: &BadPop3, keep: bool, extra: &str) -> Pop3Job {
    let filer = format!(
        r#"{}
[plugin.config]
rules = [ {{ name = "invoices", folder = "Finance/Invoices", conditions = [ {{ subject = true, op = "contains", value = "invoice" }} ] }} ]
"#,
        plugin_toml("filer", "rules-filer", "")
    );
    job_with(dir, server, keep, extra, &filer, DELIVER_MAILDIR)
        .await
        .0
}

/// Where the messages go by default: `dir/Maildir`.
const DELIVER_MAILDIR: &str = "[account.deliver]\nmaildir = \"Maildir\"\n";

/// The job and its deliverer for a config reading `server` into `dir/Maildir` through
/// `plugins`.
async fn job_with(
    dir: &Path,
    server: &BadPop3,
    keep: bool,
    extra: &str,
    plugins: &str,
    deliver: &str,
) -> (Pop3Job, Arc<Deliverer>) {
    let text = format!(
        r#"
[state]
dir = "state"
[[account]]
name = "me"
address = "me@example.test"
timeout_seconds = 2
{extra}
[account.pop3]
host = "127.0.0.1"
port = {port}
tls = "none"
keep = {keep}
password_command = "echo pw"
{deliver}
{plugins}
"#,
        port = server.port,
    );
    let file = dir.join("mailpipe.toml");
    std::fs::write(&file, text).unwrap();
    let config = mailpipe::config::Config::load(&file).unwrap();
    let store = mailpipe::run::setup::open_store(&config).unwrap();
    // As `run --once` and the daemon do: on a shared store, the account is this process's.
    assert!(store.claim_account("me").unwrap());
    let deliverer = Arc::new(Deliverer::new(&config, store).await.unwrap());
    let job = Pop3Job::new(config.accounts[0].clone(), deliverer.clone(), None).unwrap();
    (job, deliverer)
}

/// Message-IDs of every stored copy (sorted; repeats kept).
fn stored_ids(maildir: &Path) -> Vec<String> {
    let mut ids = Vec::new();
    for folder in [maildir.to_path_buf(), maildir.join(".Finance.Invoices")] {
        for sub in ["new", "cur"] {
            for e in std::fs::read_dir(folder.join(sub))
                .into_iter()
                .flatten()
                .flatten()
            {
                let t = std::fs::read_to_string(e.path()).unwrap();
                ids.push(
                    t.lines()
                        .find(|l| l.starts_with("Message-ID:"))
                        .unwrap()
                        .to_string(),
                );
            }
        }
    }
    ids.sort();
    ids
}

fn maildir(dir: &Path) -> PathBuf {
    dir.join("Maildir")
}

#[tokio::test]
async fn an_id_given_to_two_messages_loses_neither() {
    let server = BadPop3::start(vec![
        msg(1, Some("same")),
        msg(2, Some("same")),
        msg(3, Some("three")),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path(), &server, false, "").await;
    let r = job.pass().await.unwrap();
    assert_eq!((r.processed, r.deleted), (3, 3), "{r:?}");
    assert_eq!(stored_ids(&maildir(dir.path())).len(), 3);
    assert_eq!(server.len(), 0);
    // The dot-stuffed line came back as it was.
    let any = std::fs::read_dir(maildir(dir.path()).join("new"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert!(std::fs::read_to_string(any.path())
        .unwrap()
        .contains("\r\n.line with a dot\r\n"));
}

#[tokio::test]
async fn without_uidl_keep_is_refused_and_delete_works_by_content_across_a_drop_at_quit() {
    let server = BadPop3::start((1..=3).map(|i| msg(i, None)).collect()).await;
    server.set(Faults {
        no_uidl: true,
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let keep = job(dir.path(), &server, true, "").await;
    let e = keep.pass().await.unwrap_err();
    assert!(
        e.to_string().contains("UIDL") && e.to_string().contains("keep = false"),
        "{e}"
    );
    assert!(!e.is_transient());
    assert!(stored_ids(&maildir(dir.path())).is_empty());
    assert_eq!(server.len(), 3);
    drop(keep);

    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path(), &server, false, "").await;
    // The connection drops at QUIT: nothing was deleted on the server.
    server.set(Faults {
        no_uidl: true,
        drop_at_quit: true,
        ..Faults::default()
    });
    let r = job.pass().await.unwrap();
    assert_eq!(r.processed, 3, "{r:?}");
    assert_eq!(r.deleted, 0, "the drop at QUIT is said: {r:?}");
    assert_eq!(server.len(), 3);
    server.set(Faults {
        no_uidl: true,
        ..Faults::default()
    });
    let r = job.pass().await.unwrap();
    assert_eq!(
        r,
        Pop3Report {
            skipped: 3,
            deleted: 3,
            ..Pop3Report::default()
        }
    );
    assert_eq!(server.len(), 0);
    assert_eq!(
        stored_ids(&maildir(dir.path())).len(),
        3,
        "each stored once"
    );
}

#[tokio::test]
async fn a_drop_in_the_middle_of_retr_stores_nothing_half_and_nothing_twice() {
    let server = BadPop3::start((1..=4).map(|i| msg(i, Some(&format!("u{i}")))).collect()).await;
    server.set(Faults {
        drop_in_retr: Some(3),
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path(), &server, false, "").await;
    let e = job.pass().await.unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert!(e.to_string().contains("RETR 3"), "{e}");
    assert_eq!(stored_ids(&maildir(dir.path())).len(), 2);
    assert_eq!(server.len(), 4, "no QUIT: nothing deleted");
    server.set(Faults::default());
    let r = job.pass().await.unwrap();
    assert_eq!((r.processed, r.skipped, r.deleted), (2, 2, 4), "{r:?}");
    let ids = stored_ids(&maildir(dir.path()));
    let mut distinct = ids.clone();
    distinct.dedup();
    assert_eq!((ids.len(), distinct.len()), (4, 4), "{ids:#?}");
    assert_eq!(server.len(), 0);
}

#[tokio::test]
async fn a_message_larger_than_allowed_is_left_on_the_server_whatever_list_said() {
    let mut big = msg(2, Some("big"));
    big.raw.extend(std::iter::repeat_n(b'x', 1_200_000));
    big.raw.extend_from_slice(b"\r\n");
    let mut lying = msg(3, Some("lying"));
    lying.raw.extend(std::iter::repeat_n(b'y', 1_200_000));
    lying.raw.extend_from_slice(b"\r\n");
    lying.listed_size = Some(100);
    let server = BadPop3::start(vec![msg(1, Some("one")), big, lying, msg(4, Some("four"))]).await;
    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path(), &server, false, "max_message_mb = 1").await;
    // LIST said 100 bytes for message 3: found while fetching, the connection is given up.
    let e = job.pass().await.unwrap_err();
    assert!(e.to_string().contains("larger"), "{e}");
    // The next pass leaves both and takes the rest.
    let r = job.pass().await.unwrap();
    assert_eq!(r.left, 2, "{r:?}");
    assert_eq!(stored_ids(&maildir(dir.path())).len(), 2);
    let left: Vec<Option<String>> = server
        .mailbox
        .lock()
        .unwrap()
        .iter()
        .map(|m| m.uid.clone())
        .collect();
    assert_eq!(left, vec![Some("big".into()), Some("lying".into())]);
}

#[tokio::test]
async fn dele_refused_keeps_the_message_and_stores_it_once() {
    let server = BadPop3::start(vec![msg(1, Some("a")), msg(2, Some("b"))]).await;
    server.set(Faults {
        refuse_dele: true,
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path(), &server, false, "").await;
    let r = job.pass().await.unwrap();
    assert_eq!((r.processed, r.deleted), (2, 0), "{r:?}");
    let r = job.pass().await.unwrap();
    assert_eq!((r.processed, r.skipped), (0, 2), "{r:?}");
    assert_eq!(server.len(), 2);
    assert_eq!(stored_ids(&maildir(dir.path())).len(), 2);
    server.set(Faults::default());
    let r = job.pass().await.unwrap();
    assert_eq!(r.deleted, 2);
    assert_eq!(server.len(), 0);
    assert_eq!(server.asked("RETR"), 2, "fetched once each");
}

#[tokio::test]
async fn a_silent_server_is_an_error_within_the_timeout() {
    let server = BadPop3::start(vec![msg(1, Some("a"))]).await;
    server.set(Faults {
        silent: true,
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path(), &server, false, "").await;
    let started = std::time::Instant::now();
    let e = job.pass().await.unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(e.to_string().contains("no answer within 2 s"), "{e}");
    assert!(e.is_transient());
}

#[tokio::test]
async fn without_uidl_a_message_larger_than_list_said_does_not_block_the_others() {
    let mut lying = msg(2, None);
    lying.raw.extend(std::iter::repeat_n(b'y', 1_200_000));
    lying.raw.extend_from_slice(b"\r\n");
    lying.listed_size = Some(100);
    let server = BadPop3::start(vec![msg(1, None), lying, msg(3, None)]).await;
    server.set(Faults {
        no_uidl: true,
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path(), &server, false, "max_message_mb = 1").await;
    assert!(job.pass().await.is_err());
    let r = job.pass().await.unwrap();
    assert_eq!(r.left, 1, "{r:?}");
    assert_eq!(
        stored_ids(&maildir(dir.path())).len(),
        2,
        "the others are read"
    );
    assert_eq!(server.len(), 1, "only the large one stays");
}

#[tokio::test]
async fn a_server_that_refuses_user_is_logged_in_with_auth_plain() {
    let server = BadPop3::start(vec![msg(1, Some("a"))]).await;
    server.set(Faults {
        sasl_only: true,
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path(), &server, false, "").await;
    let r = job.pass().await.unwrap();
    assert_eq!((r.processed, r.deleted), (1, 1), "{r:?}");
    assert_eq!(server.asked("AUTH PLAIN"), 1);
    assert_eq!(
        server.asked("PASS"),
        0,
        "no password after the refused USER"
    );
}

#[tokio::test]
async fn a_forged_future_received_date_does_not_make_old_mail_new() {
    // A server that writes no Received field of its own: the topmost is the sender's, dated
    // in 2099. Found in the first pass, the message was there before mailpipe and gets no
    // reply; one that comes after that pass does.
    let forged = |i: usize| Stored {
        raw: format!(
            "Received: from forged.example; Thu, 1 Jan 2099 00:00:00 +0000\r\n\
             From: Sender {i} <s{i}@example.org>\r\nTo: me@example.test\r\n\
             Subject: Hello {i}\r\nMessage-ID: <f{i}@example.org>\r\n\r\nbody\r\n"
        )
        .into_bytes(),
        uid: Some(format!("f{i}")),
        listed_size: None,
    };
    let server = BadPop3::start(vec![forged(1), forged(2)]).await;
    let dir = tempfile::tempdir().unwrap();
    // The replies stay queued: the SMTP server's port is closed (loopback).
    let smtp = "[account.smtp]\nhost = \"127.0.0.1\"\nport = 9\ntls = \"none\"\n\
                username = \"me\"\npassword_command = \"echo pw\"\n";
    let vacation = format!(
        "{}\n[plugin.config]\naddresses = [\"me@example.test\"]\ndays = 7\nsubject = \"Away\"\nbody = \"Back soon.\"\n",
        plugin_toml("vacation", "auto-responder", "")
    );
    let (job, deliverer) =
        job_with(dir.path(), &server, true, smtp, &vacation, DELIVER_MAILDIR).await;
    let r = job.pass().await.unwrap();
    assert_eq!(r.processed, 2, "{r:?}");
    let replies = || {
        let mut to: Vec<String> = deliverer
            .store()
            .outbox_all()
            .unwrap()
            .iter()
            .flat_map(|e| e.rcpt_to.clone())
            .collect();
        to.sort();
        to
    };
    assert_eq!(
        replies(),
        Vec::<String>::new(),
        "no reply about mail found in the first pass"
    );
    server.mailbox.lock().unwrap().push(forged(3));
    let r = job.pass().await.unwrap();
    assert_eq!((r.processed, r.skipped), (1, 2), "{r:?}");
    assert_eq!(
        replies(),
        vec!["s3@example.org".to_string()],
        "new mail is answered"
    );
}

/// getmail's use: a POP3 box read into an IMAP account (`[account.deliver.imap]`, Dovecot as
/// carol). A message is deleted from the POP3 server only once its copy is on the IMAP
/// server: with the IMAP server unreachable nothing is deleted, and the next pass stores
/// each message once, then deletes it.
#[tokio::test]
async fn a_pop3_box_read_into_an_imap_account_deletes_only_what_is_stored() {
    let stack = common::mailstack::Stack::get();
    let tag = common::mailstack::unique("pop3-imap");
    let stored = |i: usize| {
        let mut m = msg(i, Some(&format!("{tag}-{i}")));
        m.raw = String::from_utf8(m.raw)
            .unwrap()
            .replace("Subject: ", &format!("Subject: {tag} "))
            .into_bytes();
        m
    };
    let server = BadPop3::start(vec![stored(1), stored(2)]).await;
    let dir = tempfile::tempdir().unwrap();
    let table = |port: u16| {
        format!(
            "[account.deliver.imap]\nhost = \"localhost\"\nport = {port}\ntls = \"implicit\"\nca_file = \"{}\"\nusername = \"carol@example.test\"\npassword_command = \"echo secret-carol\"\n",
            stack.ca().display()
        )
    };
    let copies = || async {
        let mut s = stack.session("carol").await;
        let mut n = 0;
        for folder in ["INBOX", "Finance/Invoices"] {
            n += common::mailstack::count(&common::mailstack::list(&mut s, folder).await, &tag);
        }
        let _ = s.logout().await;
        n
    };
    // The IMAP server is down (a closed loopback port): nothing stored, nothing deleted.
    let (down, _) = job_with(dir.path(), &server, false, "", "", &table(1)).await;
    assert!(down.pass().await.is_err());
    drop(down);
    assert_eq!(server.len(), 2, "nothing deleted");
    assert_eq!(copies().await, 0);
    let (job, _) = job_with(
        dir.path(),
        &server,
        false,
        "",
        "",
        &table(stack.port("IMAPS")),
    )
    .await;
    let r = job.pass().await.unwrap();
    assert_eq!((r.processed + r.skipped, r.deleted), (2, 2), "{r:?}");
    assert_eq!(server.len(), 0);
    assert_eq!(copies().await, 2, "each message stored once");
}
