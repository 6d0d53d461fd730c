//! Carries out a batch of plans in the selected mailbox, batched by destination: one UID
//! MOVE / COPY / STORE per destination and flag set, with UID sets collapsed into ranges
//! (measured: one MOVE per message costs ~16 ms in a 10k-message Dovecot folder, one bulk
//! MOVE ~0.05 ms per message). Rewritten messages are APPENDed (flags and internal date
//! kept) before the original is removed — never the other way round.

use futures::TryStreamExt;
use std::collections::{BTreeMap, HashSet};

use super::connect::server_name;
use super::connect::{completed, timed, ImapError, ImapSession};
use super::plan::{uid_sets, Plan};
use super::REWRITTEN_HEADER;
use crate::message::encode::base64_decode;
use crate::message::rewrite::HeaderBlock;

#[derive(Debug, Clone, Copy)]
pub struct ServerCaps {
    pub has_move: bool,
    pub uidplus: bool,
}

#[derive(Debug, Default)]
pub struct ApplyReport {
    pub moved: usize,
    pub copied: usize,
    pub appended: usize,
    pub removed: usize,
    pub warnings: Vec<String>,
    /// Plans a step of which the server refused (UID, the refusal): their other steps were
    /// not carried out; the caller keeps them for another attempt.
    pub refused: Vec<(u32, String)>,
}

/// Which plans failed in this attempt; a failed plan takes no further step.
#[derive(Default)]
struct Refusals(BTreeMap<u32, String>);

impl Refusals {
    /// The server's name for `dest`, or None when it has none (the plans of `uids` fail).
    fn name_for(
        &mut self,
        session: &ImapSession,
        dest: &str,
        uids: &[u32],
    ) -> Result<Option<String>, ImapError> {
        match server_name(session, dest) {
            Ok(n) => Ok(Some(n)),
            Err(e) => self.record(Err(e), uids).map(|_| None),
        }
    }

    fn has(&self, uid: u32) -> bool {
        self.0.contains_key(&uid)
    }

    /// Run one server step for `uids`: a refusal marks them failed (the pass goes on);
    /// any other error (connection, timeout) ends the attempt.
    fn record(&mut self, result: Result<(), ImapError>, uids: &[u32]) -> Result<bool, ImapError> {
        match result {
            Ok(()) => Ok(true),
            Err(e @ ImapError::Refused { .. }) => {
                let text = e.to_string();
                for &u in uids {
                    self.0.entry(u).or_insert_with(|| text.clone());
                }
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

/// Apply `plans` of messages in `mailbox`, which must be the selected mailbox. `resumed`:
/// the plans were decided by an earlier, interrupted run, which may have appended some
/// rewritten copies already: those are looked for (by our marker header) before appending,
/// so a crash between an APPEND and the removal of the original never leaves two copies.
/// A step the server refuses (NO/BAD) affects only the plans it concerns: they are reported
/// in `ApplyReport::refused` with the steps they completed recorded in `Plan::done`, and
/// everything else is carried out.
pub async fn apply(
    session: &mut ImapSession,
    mailbox: &str,
    plans: &mut [Plan],
    caps: ServerCaps,
    folders: &mut HashSet<String>,
    resumed: bool,
) -> Result<ApplyReport, ImapError> {
    let mut report = ApplyReport::default();
    let mut refused = Refusals::default();
    ensure_folders(session, plans, folders, &mut report, &mut refused).await?;
    let index: BTreeMap<u32, usize> = plans.iter().enumerate().map(|(i, p)| (p.uid, i)).collect();
    let mark_done = |plans: &mut [Plan], uids: &[u32], step: &str| {
        for u in uids {
            if let Some(&i) = index.get(u) {
                plans[i].done.push(step.to_string());
            }
        }
    };

    // Flags first, on the original, so that copies and moves carry them.
    let mut add: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut remove: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for p in plans.iter().filter(|p| {
        p.rewritten.is_none() && !p.discarded() && !p.is_done("flags") && !refused.has(p.uid)
    }) {
        let (a, r) = (p.flags_added(), p.flags_removed());
        if !a.is_empty() {
            add.entry(a.join(" ")).or_default().push(p.uid);
        }
        if !r.is_empty() {
            remove.entry(r.join(" ")).or_default().push(p.uid);
        }
    }
    let mut flagged: Vec<u32> = Vec::new();
    for (sign, groups) in [("+", &add), ("-", &remove)] {
        for (flags, uids) in groups {
            let uids: Vec<u32> = uids.iter().copied().filter(|u| !refused.has(*u)).collect();
            let r = store(session, &uids, &format!("{sign}FLAGS.SILENT ({flags})")).await;
            if refused.record(r, &uids)? {
                flagged.extend(uids);
            }
        }
    }
    flagged.retain(|u| !refused.has(*u));
    flagged.sort_unstable();
    flagged.dedup();
    mark_done(plans, &flagged, "flags");

    // Copies and moves, one command per destination.
    let mut copies: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut moves: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for p in plans
        .iter()
        .filter(|p| p.rewritten.is_none() && !p.targets.is_empty())
    {
        let (last, rest) = p.targets.split_last().expect("not empty");
        for (t, _) in rest {
            if !p.is_done(&format!("copy:{t}")) {
                copies.entry(t.clone()).or_default().push(p.uid);
            }
        }
        let group = if p.keep { &mut copies } else { &mut moves };
        if !(p.keep && p.is_done(&format!("copy:{}", last.0))) {
            group.entry(last.0.clone()).or_default().push(p.uid);
        }
    }
    for (dest, uids) in &copies {
        let uids: Vec<u32> = uids.iter().copied().filter(|u| !refused.has(*u)).collect();
        let Some(name) = refused.name_for(session, dest, &uids)? else {
            continue;
        };
        for set in uid_sets(&uids) {
            let r = timed("UID COPY", session.uid_copy(&set, &name)).await;
            refused.record(r, &uids)?;
        }
        let done: Vec<u32> = uids.iter().copied().filter(|u| !refused.has(*u)).collect();
        report.copied += done.len();
        mark_done(plans, &done, &format!("copy:{dest}"));
    }
    let mut to_remove: Vec<u32> = Vec::new();
    for (dest, uids) in &moves {
        // A plan that failed a step stays where it is, whole.
        let uids: Vec<u32> = uids.iter().copied().filter(|u| !refused.has(*u)).collect();
        let Some(name) = refused.name_for(session, dest, &uids)? else {
            continue;
        };
        for set in uid_sets(&uids) {
            let r = if caps.has_move {
                let before = session.get_ref().state().copyuids();
                let r = timed("UID MOVE", session.uid_mv(&set, &name)).await;
                let confirmed = session.get_ref().state().copyuids() > before;
                if r.is_ok() && !confirmed {
                    verify_moved(session, &set).await
                } else {
                    r
                }
            } else {
                timed("UID COPY", session.uid_copy(&set, &name)).await
            };
            refused.record(r, &uids)?;
        }
        let done: Vec<u32> = uids.iter().copied().filter(|u| !refused.has(*u)).collect();
        if !caps.has_move {
            mark_done(plans, &done, &format!("copy:{dest}"));
            to_remove.extend(&done);
        }
        report.moved += done.len();
    }

    // Rewritten messages: the new version goes everywhere first, then the original goes.
    let mut left_mailbox = false;
    for p in plans.iter_mut() {
        if p.rewritten.is_none() || refused.has(p.uid) {
            continue;
        }
        if left_mailbox {
            // The original's body is read from the mailbox, by UID.
            let own = server_name(session, mailbox)?;
            timed("SELECT", session.select(own)).await?;
            completed(session, "SELECT")?;
            left_mailbox = false;
        }
        let mut raw = base64_decode(p.rewritten.as_deref().unwrap_or_default())
            .ok_or_else(|| ImapError::protocol("APPEND", "corrupt rewritten message in plan"))?;
        if p.body_from_original {
            match fetch_one(session, p.uid, Part::Text).await? {
                Some(body) => raw.extend(body),
                None => {
                    // Gone from the server meanwhile (another client): no copy without its
                    // body is ever stored.
                    report.warnings.push(format!(
                        "message {} disappeared before its rewritten version was stored",
                        p.uid
                    ));
                    continue;
                }
            }
        }
        let flags = format!("({})", p.flags_after.join(" "));
        let date = p.internal_date.as_ref().map(|d| format!("\"{d}\""));
        let mut dests: Vec<String> = p.targets.iter().map(|(t, _)| t.clone()).collect();
        if p.keep {
            dests.insert(0, mailbox.to_string());
        }
        let marker = (resumed || p.attempts > 0)
            .then(|| HeaderBlock::parse(&raw).values(REWRITTEN_HEADER).next())
            .flatten()
            .map(|v| String::from_utf8_lossy(v).trim().to_string());
        let uid = p.uid;
        for dest in dests {
            let step = format!("copy:{dest}");
            if p.is_done(&step) {
                continue;
            }
            if let Some(marker) = &marker {
                left_mailbox = true;
                if has_copy(session, &dest, marker).await? {
                    continue;
                }
            }
            let r = match server_name(session, &dest) {
                Ok(name) => {
                    timed(
                        "APPEND",
                        session.append(name, Some(&flags), date.as_deref(), &raw),
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            if !refused.record(r, &[uid])? {
                break;
            }
            p.done.push(step);
            report.appended += 1;
        }
        if !refused.has(uid) {
            to_remove.push(uid);
        }
    }
    if left_mailbox {
        let own = server_name(session, mailbox)?;
        timed("SELECT", session.select(own)).await?;
        completed(session, "SELECT")?;
    }
    to_remove.extend(
        plans
            .iter()
            .filter(|p| p.discarded() && !refused.has(p.uid))
            .map(|p| p.uid),
    );
    if !to_remove.is_empty() {
        let r = store(session, &to_remove, "+FLAGS.SILENT (\\Deleted)").await;
        refused.record(r, &to_remove)?;
        to_remove.retain(|u| !refused.has(*u));
        if caps.uidplus {
            for set in uid_sets(&to_remove) {
                let r = async {
                    let stream = timed("UID EXPUNGE", session.uid_expunge(&set)).await?;
                    timed("UID EXPUNGE", stream.try_collect::<Vec<_>>()).await?;
                    completed(session, "UID EXPUNGE")
                }
                .await;
                refused.record(r, &to_remove)?;
            }
        } else if !to_remove.is_empty() {
            // Without UIDPLUS only a plain EXPUNGE exists, and it removes every message
            // flagged \Deleted, also those another client flagged and may still want back.
            // It is sent only when all of them are ours.
            let r = async {
                let deleted = timed("UID SEARCH", session.uid_search("DELETED")).await?;
                completed(session, "UID SEARCH")?;
                let ours: HashSet<u32> = to_remove.iter().copied().collect();
                let others = deleted.iter().filter(|u| !ours.contains(u)).count();
                if others > 0 {
                    return Ok(Some(others));
                }
                let stream = timed("EXPUNGE", session.expunge()).await?;
                timed("EXPUNGE", stream.try_collect::<Vec<_>>()).await?;
                completed(session, "EXPUNGE").map(|_| None)
            }
            .await;
            match r {
                Ok(Some(others)) => report.warnings.push(format!(
                    "{mailbox}: the server lacks UIDPLUS and {others} other message(s) there are flagged \\Deleted by another client; \
                     {} message(s) mailpipe moved away are left flagged \\Deleted until that client expunges",
                    to_remove.len()
                )),
                other => {
                    refused.record(other.map(|_| ()), &to_remove)?;
                }
            }
        }
        report.removed += to_remove.iter().filter(|u| !refused.has(**u)).count();
    }
    report.refused = refused.0.into_iter().collect();
    Ok(report)
}

/// A MOVE the server said OK to without telling where the messages went (no COPYUID):
/// check that they left. Any still here count as refused, so their plans stay pending.
async fn verify_moved(session: &mut ImapSession, set: &str) -> Result<(), ImapError> {
    let still = timed("UID SEARCH", session.uid_search(format!("UID {set}"))).await?;
    completed(session, "UID SEARCH")?;
    if still.is_empty() {
        Ok(())
    } else {
        let mut still: Vec<u32> = still.into_iter().collect();
        still.sort_unstable();
        Err(ImapError::Refused {
            context: "UID MOVE".into(),
            message: format!("the server said OK, but message(s) {still:?} did not move"),
        })
    }
}

/// Whether `folder` already holds our rewritten copy carrying `marker` (leaves `folder`
/// selected read-only).
async fn has_copy(
    session: &mut ImapSession,
    folder: &str,
    marker: &str,
) -> Result<bool, ImapError> {
    let name = server_name(session, folder)?;
    timed("EXAMINE", session.examine(name)).await?;
    completed(session, "EXAMINE")?;
    let found = timed(
        "UID SEARCH",
        session.uid_search(format!("HEADER {REWRITTEN_HEADER} \"{marker}\"")),
    )
    .await?;
    completed(session, "UID SEARCH")?;
    Ok(!found.is_empty())
}

/// What of one message to read with `fetch_one`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The whole message (`BODY.PEEK[]`).
    Whole,
    /// Everything after its header block (`BODY.PEEK[TEXT]`).
    Text,
}

/// One part of message `uid` of the selected mailbox; None when the message is gone.
pub async fn fetch_one(
    session: &mut ImapSession,
    uid: u32,
    part: Part,
) -> Result<Option<Vec<u8>>, ImapError> {
    let item = match part {
        Part::Whole => "(UID BODY.PEEK[])",
        Part::Text => "(UID BODY.PEEK[TEXT])",
    };
    let stream = timed("UID FETCH", session.uid_fetch(uid.to_string(), item)).await?;
    let items: Vec<_> = timed("UID FETCH", stream.try_collect::<Vec<_>>()).await?;
    completed(session, "UID FETCH")?;
    Ok(items
        .iter()
        .filter(|f| f.uid == Some(uid))
        .find_map(|f| match part {
            Part::Whole => f.body(),
            Part::Text => f.text().or(Some(&[])),
        })
        .map(<[u8]>::to_vec))
}

async fn store(session: &mut ImapSession, uids: &[u32], query: &str) -> Result<(), ImapError> {
    for set in uid_sets(uids) {
        let stream = timed("UID STORE", session.uid_store(&set, query)).await?;
        timed("UID STORE", stream.try_collect::<Vec<_>>()).await?;
        completed(session, "UID STORE")?;
    }
    Ok(())
}

/// Create missing folders the plans may create; re-route the others to the mailbox itself.
/// A CREATE the server refuses fails only the plans that file into that folder.
async fn ensure_folders(
    session: &mut ImapSession,
    plans: &mut [Plan],
    folders: &mut HashSet<String>,
    report: &mut ApplyReport,
    refused: &mut Refusals,
) -> Result<(), ImapError> {
    let mut refused_folders: BTreeMap<String, ImapError> = BTreeMap::new();
    for p in plans.iter_mut() {
        let mut kept = Vec::new();
        for (t, create) in std::mem::take(&mut p.targets) {
            // "INBOX.Lists" on Cyrus is the folder LIST calls "Lists".
            let known = session.get_ref().state().namespace.canonical(&t);
            if folders.contains(&known) {
                kept.push((t, create));
            } else if create {
                if let Some(e) = refused_folders.get(&t) {
                    refused.record(Err(clone_refusal(e)), &[p.uid])?;
                    kept.push((t, create));
                    continue;
                }
                // A concurrent client may have created it meanwhile: "already exists" is fine.
                let created = match server_name(session, &t) {
                    Ok(name) => timed("CREATE", session.create(name)).await,
                    Err(e) => Err(e),
                };
                match created {
                    Ok(()) => {}
                    Err(e) if e.to_string().to_ascii_lowercase().contains("exists") => {}
                    Err(e @ ImapError::Refused { .. }) => {
                        refused.record(Err(clone_refusal(&e)), &[p.uid])?;
                        refused_folders.insert(t.clone(), e);
                        kept.push((t, create));
                        continue;
                    }
                    Err(e) => return Err(e),
                }
                folders.insert(known);
                kept.push((t, create));
            } else {
                report.warnings.push(format!(
                    "folder {t:?} does not exist (create = false): message {} kept",
                    p.uid
                ));
                p.keep = true;
            }
        }
        p.targets = kept;
    }
    Ok(())
}

fn clone_refusal(e: &ImapError) -> ImapError {
    match e {
        ImapError::Refused { context, message } => ImapError::Refused {
            context: context.clone(),
            message: message.clone(),
        },
        other => ImapError::protocol("CREATE", other),
    }
}
