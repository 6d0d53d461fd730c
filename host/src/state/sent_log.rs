//! The sent log: the first record that a server accepted an outgoing message, written the
//! moment its `250` arrives and before anything else happens.
//!
//! SMTP has no transaction: between the server's acceptance and our durable "sent" mark
//! there is always a window in which a crash makes us send the message again. The durable
//! mark is a commit that waits for the disk (milliseconds, longer on a busy store), so a
//! `kill -9` in that window repeated a vacation reply now and then. This log shrinks the
//! window to one `write(2)`: the id is appended to a file in the state directory, the kernel
//! holds it from then on, and only a power loss or a kernel crash before the page cache
//! reaches the disk can lose it (the same promise MTAs make of their queue files). The
//! durable mark follows; once no id is in flight the log is emptied again. On the next
//! open, ids still in the log are marked sent without being sent (`Store::open`).
//!
//! One window is left that no client can close: from the end of the message to the
//! server's `250` (the server commits its queue file in between, milliseconds). A crash
//! there leaves the message in doubt: the server may have it. For an automatic answer (a
//! vacation reply, a notification) a second copy is the greater harm, so such a message is
//! written here as "?ID" before it is sent, and an id found that way, and not accepted after,
//! is not sent again (`Store::open` says so in the log). Forwards are sent again: a copy
//! twice is better than a message lost.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::StateError;

/// The file, in the state directory.
pub const FILE_NAME: &str = "outbox-sent.log";

pub struct SentLog {
    path: PathBuf,
    inner: Mutex<Inner>,
}

struct Inner {
    file: File,
    /// Ids recorded whose durable mark is not committed yet (kept while that commit fails,
    /// so this process does not send them again either); the log is emptied when none is.
    in_flight: HashSet<String>,
    /// Automatic answers being sent now ("?ID" lines): in doubt if the process dies.
    sending: HashSet<String>,
}

/// What a log holds when it is opened: what a process that died left behind.
#[derive(Debug, Default, PartialEq)]
pub struct Found {
    /// Accepted by a server, the durable mark not committed.
    pub accepted: Vec<String>,
    /// Automatic answers the process was sending when it died (not accepted as far as the
    /// log knows): the server may or may not have them.
    pub in_doubt: Vec<String>,
}

impl Found {
    pub fn is_empty(&self) -> bool {
        self.accepted.is_empty() && self.in_doubt.is_empty()
    }
}

impl SentLog {
    /// Open (or create) the log under `dir`; returns it with the ids it still held: messages
    /// a server accepted whose durable mark a crash prevented, and automatic answers a
    /// crash cut short while they were being sent.
    pub fn open(dir: &Path) -> Result<(SentLog, Found), StateError> {
        let path = dir.join(FILE_NAME);
        let io = |source| StateError::Io {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(io)?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(io)?;
        // A line cut short by a crash in the middle of its write is not an id (ids are hex of
        // a fixed length, `actions::outgoing_id`, and end with a newline once written whole).
        let mut found = Found::default();
        for line in text
            .split_inclusive('\n')
            .filter_map(|l| l.strip_suffix('\n'))
            .filter(|l| !l.is_empty())
        {
            match line.strip_prefix('?') {
                Some(id) => found.in_doubt.push(id.to_string()),
                None => found.accepted.push(line.to_string()),
            }
        }
        found.in_doubt.retain(|id| !found.accepted.contains(id));
        Ok((
            SentLog {
                path,
                inner: Mutex::new(Inner {
                    file,
                    in_flight: HashSet::new(),
                    sending: HashSet::new(),
                }),
            },
            found,
        ))
    }

    /// Record that `id` was accepted: one append, not waiting for the disk. Call `settled`
    /// once its durable mark is committed.
    pub fn record(&self, id: &str) -> Result<(), StateError> {
        debug_assert!(!id.contains('\n'));
        let mut inner = self.lock();
        inner.in_flight.insert(id.to_string());
        let line = format!("{id}\n");
        inner
            .file
            .write_all(line.as_bytes())
            .map_err(|e| self.io(e))
    }

    /// An automatic answer is about to be sent: if the process dies before `record` or
    /// `abandon`, it is in doubt and is not sent again.
    pub fn intent(&self, id: &str) -> Result<(), StateError> {
        debug_assert!(!id.contains('\n'));
        let mut inner = self.lock();
        inner.sending.insert(id.to_string());
        let line = format!("?{id}\n");
        inner
            .file
            .write_all(line.as_bytes())
            .map_err(|e| self.io(e))
    }

    /// The attempt of `id` ended without an acceptance (refused, or the connection failed
    /// before the message's end): it is no longer in doubt.
    pub fn abandon(&self, id: &str) -> Result<(), StateError> {
        let mut inner = self.lock();
        inner.sending.remove(id);
        Self::empty_if_idle(&mut inner).map_err(|e| self.io(e))
    }

    fn empty_if_idle(inner: &mut Inner) -> std::io::Result<()> {
        if inner.in_flight.is_empty() && inner.sending.is_empty() {
            inner.file.set_len(0)?;
        }
        Ok(())
    }

    /// Whether `id` was accepted by a server but its durable mark is not committed yet.
    pub fn holds(&self, id: &str) -> bool {
        self.lock().in_flight.contains(id)
    }

    /// The durable mark of `id` is committed: with none left in flight the log is emptied,
    /// so it never grows beyond the messages being sent at one moment.
    pub fn settled(&self, id: &str) -> Result<(), StateError> {
        let mut inner = self.lock();
        inner.in_flight.remove(id);
        inner.sending.remove(id);
        Self::empty_if_idle(&mut inner).map_err(|e| self.io(e))
    }

    /// Empty the log now (after the ids found at open were marked sent durably).
    pub fn clear(&self) -> Result<(), StateError> {
        let mut inner = self.lock();
        Self::empty_if_idle(&mut inner).map_err(|e| self.io(e))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn io(&self, source: std::io::Error) -> StateError {
        StateError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_survive_a_process_that_never_settled_them() {
        let dir = tempfile::tempdir().unwrap();
        let (log, found) = SentLog::open(dir.path()).unwrap();
        assert!(found.is_empty());
        log.record("aa").unwrap();
        log.record("bb").unwrap();
        log.settled("aa").unwrap();
        assert!(log.holds("bb") && !log.holds("aa"));
        // "bb" is still in flight: nothing is emptied yet.
        drop(log); // the process dies here: no settled() for "bb"
        let (log, found) = SentLog::open(dir.path()).unwrap();
        assert_eq!(found.accepted, vec!["aa".to_string(), "bb".to_string()]);
        log.clear().unwrap();
        let (_log, found) = SentLog::open(dir.path()).unwrap();
        assert!(found.is_empty(), "cleared: {found:?}");
    }

    #[test]
    fn emptied_once_nothing_is_in_flight_and_appends_after_that() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = SentLog::open(dir.path()).unwrap();
        log.record("aa").unwrap();
        log.settled("aa").unwrap();
        assert_eq!(
            std::fs::metadata(dir.path().join(FILE_NAME)).unwrap().len(),
            0
        );
        log.record("cc").unwrap();
        drop(log);
        let (_log, found) = SentLog::open(dir.path()).unwrap();
        assert_eq!(found.accepted, vec!["cc".to_string()]);
    }

    #[test]
    fn a_line_cut_short_is_not_an_id() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "aa\nbb").unwrap();
        let (_log, found) = SentLog::open(dir.path()).unwrap();
        assert_eq!(found.accepted, vec!["aa".to_string()]);
    }

    #[test]
    fn an_answer_cut_short_while_sending_is_in_doubt_until_its_attempt_ends() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = SentLog::open(dir.path()).unwrap();
        // Sent and accepted; refused; and one the process was sending when it died.
        log.intent("aa").unwrap();
        log.record("aa").unwrap();
        log.settled("aa").unwrap();
        log.intent("bb").unwrap();
        log.abandon("bb").unwrap();
        assert_eq!(
            std::fs::metadata(dir.path().join(FILE_NAME)).unwrap().len(),
            0
        );
        log.intent("cc").unwrap();
        log.intent("dd").unwrap();
        log.record("dd").unwrap();
        drop(log);
        let (log, found) = SentLog::open(dir.path()).unwrap();
        assert_eq!(found.in_doubt, vec!["cc".to_string()]);
        assert_eq!(found.accepted, vec!["dd".to_string()]);
        log.clear().unwrap();
        assert!(SentLog::open(dir.path()).unwrap().1.is_empty());
    }
}
