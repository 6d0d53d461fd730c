//! Offline delivery: stores the processed message (with its final flags and bytes) into the
//! folders of a Maildir store. The default layout is Maildir++, what Dovecot, Courier and
//! most mail programs use for `~/Maildir`: INBOX is the root, a folder is a dot-directory
//! (`Lists/rust` is `<root>/.Lists.rust`, names in modified UTF-7 as Dovecot writes them,
//! with a `maildirfolder` file). `layout = "fs"` keeps one plain Maildir per folder
//! (`<root>/INBOX`, `<root>/Lists/rust`; Dovecot's `LAYOUT=fs`). File names are derived from
//! the message key and folder, so delivering the same message again after a crash replaces
//! the file instead of duplicating it. Keywords go to the folder's `dovecot-keywords` file.
//!
//! The cost of a delivery does not grow with the folder: a folder's directories are made
//! once per run, its keywords re-read only when the file changed, and no folder is listed
//! except to clean up after a crash. Each delivery leaves a `tmp/<name>.unsettled` marker (a
//! link to the stored file) until the caller has committed it (`settle`); finding one when
//! delivering means the earlier delivery of that message was never committed, and only then
//! is the folder searched for that copy (it may carry other flags, so another name).

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::config::Layout;
use crate::message::Email;
use crate::model::decision::Delivery;

#[derive(Debug, thiserror::Error)]
#[error("mail store {path}: {source}")]
pub struct StoreError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// What the mail store needs of a decided message (the job layer gives it a pipeline
/// decision).
pub trait Deliverable {
    /// The message's key: its file names are derived from it (idempotent re-delivery).
    fn key(&self) -> &str;
    fn email(&self) -> &Email;
    /// The folders it goes to; none: discarded.
    fn deliveries(&self) -> &[Delivery];
    fn flags(&self) -> &[String];
}

pub struct MailStore {
    root: PathBuf,
    layout: Layout,
    /// Folders made ready in this run, with their keywords as last read.
    folders: Mutex<HashMap<PathBuf, Folder>>,
}

/// What is known of one folder directory.
#[derive(Default)]
struct Folder {
    keywords: Vec<String>,
    /// (modification time, length) of `dovecot-keywords` when `keywords` was read.
    keywords_stamp: Option<(SystemTime, u64)>,
    /// Its directories were made in this run and not yet synced (`make_durable`).
    fresh: bool,
}

/// Up to this many stored copies are made durable one by one; more, by one `syncfs`.
const SYNC_ONE_BY_ONE: usize = 16;

/// What happened to one requested delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered {
    pub folder: String,
    pub path: PathBuf,
    /// Set when the requested folder was missing and the message went to its own mailbox.
    pub fallback_from: Option<String>,
    /// Removed by `settle` once the message's decision is committed.
    pub unsettled: PathBuf,
}

impl MailStore {
    pub fn new(root: &Path, layout: Layout) -> MailStore {
        MailStore {
            root: root.to_owned(),
            layout,
            folders: Mutex::new(HashMap::new()),
        }
    }

    /// Make stored copies durable: once this returns, their bytes and their names (and the
    /// folders made for them) survive a power loss, so a decision committed after this never
    /// points at a message the disk lost. A few copies are synced one by one (file, then its
    /// directory); a batch larger than `SYNC_ONE_BY_ONE` syncs the mail store's file system
    /// once (Linux `syncfs`), which costs less than hundreds of fsyncs.
    pub fn make_durable(&self, delivered: &[Delivered]) -> Result<(), StoreError> {
        if delivered.is_empty() {
            return Ok(());
        }
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StoreError { path, source }
        };
        let fresh: Vec<PathBuf> = {
            let mut folders = self.folders.lock().unwrap();
            folders
                .iter_mut()
                .filter(|(_, f)| f.fresh)
                .map(|(p, f)| {
                    f.fresh = false;
                    p.clone()
                })
                .collect()
        };
        #[cfg(target_os = "linux")]
        if delivered.len() > SYNC_ONE_BY_ONE {
            let root = std::fs::File::open(&self.root).map_err(io(&self.root))?;
            use std::os::fd::AsRawFd;
            // SAFETY: syncfs only reads the descriptor, which `root` keeps open.
            if unsafe { libc::syncfs(root.as_raw_fd()) } != 0 {
                return Err(io(&self.root)(std::io::Error::last_os_error()));
            }
            return Ok(());
        }
        let mut dirs = std::collections::BTreeSet::new();
        for d in delivered {
            let f = std::fs::File::open(&d.path).map_err(io(&d.path))?;
            f.sync_all().map_err(io(&d.path))?;
            if let Some(dir) = d.path.parent() {
                dirs.insert(dir.to_owned());
            }
        }
        for folder in fresh {
            // A folder made now: its subdirectories' names, and its own in its parent.
            for sub in ["cur", "new", "tmp"] {
                dirs.insert(folder.join(sub));
            }
            dirs.insert(folder.clone());
            if let Some(parent) = folder.parent() {
                dirs.insert(parent.to_owned());
            }
        }
        for dir in dirs {
            let f = std::fs::File::open(&dir).map_err(io(&dir))?;
            f.sync_all().map_err(io(&dir))?;
        }
        Ok(())
    }

    /// The deliveries' decisions are committed: a crash can no longer deliver them again.
    pub fn settle(&self, delivered: &[Delivered]) {
        for d in delivered {
            let _ = std::fs::remove_file(&d.unsettled);
        }
    }

    /// The markers a process killed between its commit and its `settle` left behind (it ran
    /// before this one: call this before delivering). Each names a message that is either
    /// committed (the marker is stale: `Leftovers::settle` removes it) or not (it is delivered
    /// again, which settles it). Looks into each folder's `tmp/` once.
    pub fn leftovers(&self) -> Leftovers {
        let mut found = Vec::new();
        for (folder, dir) in self.folder_dirs() {
            let Ok(entries) = std::fs::read_dir(dir.join("tmp")) else {
                continue;
            };
            let bases: std::collections::HashSet<String> = entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    Some(name.strip_suffix(".unsettled")?.to_owned())
                })
                .collect();
            if !bases.is_empty() {
                found.push((folder, dir, bases));
            }
        }
        Leftovers { found }
    }

    /// Every folder of the store: (its name, its directory).
    fn folder_dirs(&self) -> Vec<(String, PathBuf)> {
        let mut out = vec![];
        match self.layout {
            Layout::MaildirPlusPlus => {
                out.push(("INBOX".to_owned(), self.root.clone()));
                for e in std::fs::read_dir(&self.root)
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let Some(rest) = name.strip_prefix('.') else {
                        continue;
                    };
                    if rest.is_empty() || rest == "." || !e.path().join("tmp").is_dir() {
                        continue;
                    }
                    let levels: Option<Vec<String>> =
                        rest.split('.').map(crate::model::folder::decode).collect();
                    if let Some(levels) = levels {
                        out.push((levels.join("/"), e.path()));
                    }
                }
            }
            Layout::Fs => {
                // A folder is a directory with a tmp/; folders nest (a few levels, not links).
                let mut todo = vec![(String::new(), self.root.clone(), 0)];
                while let Some((name, dir, depth)) = todo.pop() {
                    if !name.is_empty() && dir.join("tmp").is_dir() {
                        out.push((name.clone(), dir.clone()));
                    }
                    if depth >= 16 {
                        continue;
                    }
                    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                        let sub = e.file_name().to_string_lossy().into_owned();
                        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                        if !is_dir || ["cur", "new", "tmp"].contains(&sub.as_str()) {
                            continue;
                        }
                        let full = if name.is_empty() {
                            sub
                        } else {
                            format!("{name}/{sub}")
                        };
                        todo.push((full, e.path(), depth + 1));
                    }
                }
            }
        }
        out
    }

    /// The directory of `folder` (UTF-8, "/" between levels), or why this layout cannot
    /// hold it.
    pub fn folder_path(&self, folder: &str) -> Result<PathBuf, String> {
        match self.layout {
            Layout::Fs => Ok(folder
                .split('/')
                .fold(self.root.clone(), |p, seg| p.join(seg))),
            Layout::MaildirPlusPlus if folder.eq_ignore_ascii_case("INBOX") => {
                Ok(self.root.clone())
            }
            Layout::MaildirPlusPlus => {
                if let Some(seg) = folder.split('/').find(|s| s.contains('.')) {
                    return Err(format!(
                        "folder {folder:?}: {seg:?} holds \".\", the level separator of Maildir++ (layout = \"fs\" can hold it)"
                    ));
                }
                let name: Vec<String> = folder
                    .split('/')
                    .map(crate::model::folder::encode)
                    .collect();
                Ok(self.root.join(format!(".{}", name.join("."))))
            }
        }
    }

    /// Store the message in every folder of the decision.
    pub fn deliver(&self, decision: &impl Deliverable) -> Result<Vec<Delivered>, StoreError> {
        let mut done: Vec<Delivered> = Vec::new();
        for d in decision.deliveries() {
            let own = &decision.email().mailbox;
            let (folder, fallback_from) = if self.exists(&d.folder) || d.create || d.folder == *own
            {
                (d.folder.clone(), None)
            } else {
                (own.clone(), Some(d.folder.clone()))
            };
            if done.iter().any(|x| x.folder == folder) {
                continue;
            }
            let d = Delivery {
                folder: folder.clone(),
                create: true,
            };
            let (path, unsettled) = match self.write(decision, &d) {
                // Removed behind our back (another program, a user): made again, once.
                Err(e) if e.source.kind() == std::io::ErrorKind::NotFound => {
                    self.folders.lock().unwrap().clear();
                    self.write(decision, &d)?
                }
                r => r?,
            };
            done.push(Delivered {
                folder,
                path,
                fallback_from,
                unsettled,
            });
        }
        Ok(done)
    }

    fn exists(&self, folder: &str) -> bool {
        self.folder_path(folder)
            .is_ok_and(|p| self.folders.lock().unwrap().contains_key(&p) || p.join("cur").is_dir())
    }

    fn write(
        &self,
        decision: &impl Deliverable,
        d: &Delivery,
    ) -> Result<(PathBuf, PathBuf), StoreError> {
        let dir = self.folder_path(&d.folder).map_err(|m| StoreError {
            path: self.root.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, m),
        })?;
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StoreError { path, source }
        };
        self.prepare(&dir)?;
        let base = base_name(decision.key(), &d.folder);
        let info = self.info_letters(&dir, decision.flags())?;
        let (sub, name) = if info.is_empty() {
            ("new", base.clone())
        } else {
            ("cur", format!("{base}:2,{info}"))
        };
        let unsettled = dir.join("tmp").join(format!("{base}.unsettled"));
        let tmp = dir.join("tmp").join(&base);
        std::fs::write(&tmp, &decision.email().raw).map_err(io(&tmp))?;
        let dest = dir.join(sub).join(&name);
        std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
        // The marker is a link, not a new file: a directory entry costs a few µs, a new inode
        // can cost most of a millisecond on a busy ext4.
        match std::fs::hard_link(&dest, &unsettled) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // Delivered before and never committed: that copy may carry other flags
                // (another name); it is replaced, not kept twice.
                for other in ["cur", "new"] {
                    if let Ok(entries) = std::fs::read_dir(dir.join(other)) {
                        for e in entries.flatten() {
                            let n = e.file_name().to_string_lossy().into_owned();
                            if n.starts_with(&base) && e.path() != dest {
                                let _ = std::fs::remove_file(e.path());
                            }
                        }
                    }
                }
            }
            Err(e) => return Err(io(&unsettled)(e)),
        }
        Ok((dest, unsettled))
    }

    /// Make a folder's directories (and the Maildir++ folder marker), once per run.
    fn prepare(&self, dir: &Path) -> Result<(), StoreError> {
        if self.folders.lock().unwrap().contains_key(dir) {
            return Ok(());
        }
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StoreError { path, source }
        };
        let fresh = !dir.join("tmp").is_dir();
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(io(dir))?;
        }
        if self.layout == Layout::MaildirPlusPlus && dir != self.root {
            // Maildir++ marks a folder (as opposed to the root) with this empty file.
            let marker = dir.join("maildirfolder");
            if !marker.exists() {
                std::fs::write(&marker, b"").map_err(io(&marker))?;
            }
        }
        self.folders.lock().unwrap().insert(
            dir.to_owned(),
            Folder {
                fresh,
                ..Folder::default()
            },
        );
        Ok(())
    }

    /// Maildir info letters for the flags, registering keywords in `dovecot-keywords`
    /// (at most 26 per folder, as Dovecot allows; others are left out).
    fn info_letters(&self, dir: &Path, flags: &[String]) -> Result<String, StoreError> {
        let mut letters: Vec<char> = Vec::new();
        let system = |f: &String| f.starts_with('\\');
        if flags.iter().all(system) {
            // No keyword: `dovecot-keywords` need not be looked at.
            letters.extend(flags.iter().filter_map(|f| system_letter(f)));
            letters.sort_unstable();
            letters.dedup();
            return Ok(letters.into_iter().collect());
        }
        let kw_path = dir.join("dovecot-keywords");
        let stamp = |p: &Path| {
            std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        };
        let mut folders = self.folders.lock().unwrap();
        let folder = folders.entry(dir.to_owned()).or_default();
        // Read again only when another program (or another run) changed it.
        let now = stamp(&kw_path);
        if now != folder.keywords_stamp || now.is_none() && !folder.keywords.is_empty() {
            folder.keywords = std::fs::read_to_string(&kw_path)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.split_once(' ').map(|(_, k)| k.to_string()))
                .collect();
            folder.keywords_stamp = now;
        }
        let keywords = &mut folder.keywords;
        let before = keywords.len();
        for f in flags {
            let letter = match system_letter(f) {
                Some(l) => Some(l),
                None if system(f) => None,
                None => {
                    let idx = keywords.iter().position(|k| k == f).or_else(|| {
                        (keywords.len() < 26).then(|| {
                            keywords.push(f.clone());
                            keywords.len() - 1
                        })
                    });
                    idx.map(|i| (b'a' + i as u8) as char)
                }
            };
            letters.extend(letter);
        }
        if keywords.len() != before {
            let text: String = keywords
                .iter()
                .enumerate()
                .map(|(i, k)| format!("{i} {k}\n"))
                .collect();
            let tmp = dir.join("tmp").join("dovecot-keywords.new");
            if let Err(source) =
                std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, &kw_path))
            {
                // Read from the file again next time: it holds what is true.
                *folder = Folder::default();
                return Err(StoreError {
                    path: kw_path.clone(),
                    source,
                });
            }
            folder.keywords_stamp = stamp(&kw_path);
        }
        letters.sort_unstable();
        letters.dedup();
        Ok(letters.into_iter().collect())
    }
}

/// Markers left by a process that died between its commit and its `settle`
/// (`MailStore::leftovers`), by folder.
#[derive(Debug, Default)]
pub struct Leftovers {
    /// (folder name, its directory, the base names marked in its tmp/).
    found: Vec<(String, PathBuf, std::collections::HashSet<String>)>,
}

impl Leftovers {
    pub fn is_empty(&self) -> bool {
        self.found.iter().all(|(_, _, bases)| bases.is_empty())
    }

    /// Message `key` is committed: its markers are stale and go. Costs a hash per folder
    /// with markers, no look at the disk unless one is found.
    pub fn settle(&mut self, key: &str) {
        for (folder, dir, bases) in &mut self.found {
            let base = base_name(key, folder);
            if bases.remove(&base) {
                let _ = std::fs::remove_file(dir.join("tmp").join(format!("{base}.unsettled")));
            }
        }
    }
}

/// The name every copy of message `key` in `folder` starts with (its flags follow): the same
/// on every delivery, so a delivery again replaces the copy instead of adding one.
fn base_name(key: &str, folder: &str) -> String {
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    h.update([0]);
    h.update(folder.as_bytes());
    format!("{}.mailpipe", hex::encode(&h.finalize()[..12]))
}

/// The Maildir info letter of an IMAP system flag.
fn system_letter(flag: &str) -> Option<char> {
    match flag.to_ascii_lowercase().as_str() {
        "\\draft" => Some('D'),
        "\\flagged" => Some('F'),
        "\\answered" => Some('R'),
        "\\seen" => Some('S'),
        "\\deleted" => Some('T'),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_directories_of_both_layouts() {
        let pp = MailStore::new(Path::new("/m"), Layout::MaildirPlusPlus);
        assert_eq!(pp.folder_path("INBOX").unwrap(), Path::new("/m"));
        assert_eq!(
            pp.folder_path("Lists/rust").unwrap(),
            Path::new("/m/.Lists.rust")
        );
        // Dovecot's default Maildir++ names are modified UTF-7.
        assert_eq!(
            pp.folder_path("Finance/Rechnungen-Ü").unwrap(),
            Path::new("/m/.Finance.Rechnungen-&ANw-")
        );
        let e = pp.folder_path("Tom.Jones").unwrap_err();
        assert!(e.contains("Maildir++"), "{e}");
        let fs = MailStore::new(Path::new("/m"), Layout::Fs);
        assert_eq!(fs.folder_path("INBOX").unwrap(), Path::new("/m/INBOX"));
        assert_eq!(
            fs.folder_path("Tom.Jones").unwrap(),
            Path::new("/m/Tom.Jones")
        );
    }

    struct Decided {
        key: String,
        email: Email,
        to: Vec<Delivery>,
        flags: Vec<String>,
    }

    impl Deliverable for Decided {
        fn key(&self) -> &str {
            &self.key
        }
        fn email(&self) -> &Email {
            &self.email
        }
        fn deliveries(&self) -> &[Delivery] {
            &self.to
        }
        fn flags(&self) -> &[String] {
            &self.flags
        }
    }

    fn decided(key: &str, folders: &[&str]) -> Decided {
        Decided {
            key: key.into(),
            email: Email::new(&b"Subject: x\r\n\r\nhi\r\n"[..], "INBOX", vec![]),
            to: folders
                .iter()
                .map(|f| Delivery {
                    folder: f.to_string(),
                    create: true,
                })
                .collect(),
            flags: vec![],
        }
    }

    fn markers(root: &Path) -> usize {
        let mut n = 0;
        let mut todo = vec![root.to_owned()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(d).unwrap().flatten() {
                if e.file_type().unwrap().is_dir() {
                    todo.push(e.path());
                } else if e.file_name().to_string_lossy().ends_with(".unsettled") {
                    n += 1;
                }
            }
        }
        n
    }

    #[test]
    fn leftover_markers_of_a_committed_message_are_found_and_removed_in_both_layouts() {
        for layout in [Layout::MaildirPlusPlus, Layout::Fs] {
            let dir = tempfile::tempdir().unwrap();
            let store = MailStore::new(dir.path(), layout);
            let folders = ["INBOX", "Finance/Rechnungen-Ü", "Lists/rust"];
            store.deliver(&decided("k1", &folders)).unwrap();
            store.deliver(&decided("k2", &folders[1..])).unwrap();
            assert_eq!(markers(dir.path()), 5, "{layout:?}");
            // A later process: k1 was committed (its markers are stale), k2 was not.
            let fresh = MailStore::new(dir.path(), layout);
            let mut left = fresh.leftovers();
            assert!(!left.is_empty());
            left.settle("k1");
            assert_eq!(markers(dir.path()), 2, "{layout:?}: k1's three went");
            left.settle("k3");
            assert_eq!(
                markers(dir.path()),
                2,
                "{layout:?}: another key takes nothing"
            );
            left.settle("k2");
            assert_eq!(markers(dir.path()), 0, "{layout:?}");
            assert!(fresh.leftovers().is_empty());
        }
    }
}
