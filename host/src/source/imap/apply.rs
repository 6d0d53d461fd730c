//! Carries out a batch of plans in the selected mailbox, batched by destination: one UID
//! MOVE / COPY / STORE per destination and flag set, with UID sets collapsed into ranges
//! (measured: one MOVE per message costs ~16 ms in a 10k-message Dovecot folder, one bulk
//! MOVE ~0.05 ms per message). Rewritten messages are APPENDed (flags and internal date
//! kept) before the original is removed — never the other way round.

use futures::TryStreamExt;
use std::collections::{BTreeMap, HashSet};

use super::connect::{completed, timed, ImapError, ImapSession};
use super::plan::{uid_sets, Plan};
use super::utf7;
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
}

/// Apply `plans` of messages in `mailbox`, which must be the selected mailbox. `resumed`:
/// the plans were decided by an earlier, interrupted run, which may have appended some
/// rewritten copies already: those are looked for (by our marker header) before appending,
/// so a crash between an APPEND and the removal of the original never leaves two copies.
pub async fn apply(
    session: &mut ImapSession,
    mailbox: &str,
    plans: &mut [Plan],
    caps: ServerCaps,
    folders: &mut HashSet<String>,
    resumed: bool,
) -> Result<ApplyReport, ImapError> {
    let mut report = ApplyReport::default();
    ensure_folders(session, plans, folders, &mut report).await?;

    // Flags first, on the original, so that copies and moves carry them.
    let mut add: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut remove: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for p in plans
        .iter()
        .filter(|p| p.rewritten.is_none() && !p.discarded())
    {
        let (a, r) = (p.flags_added(), p.flags_removed());
        if !a.is_empty() {
            add.entry(a.join(" ")).or_default().push(p.uid);
        }
        if !r.is_empty() {
            remove.entry(r.join(" ")).or_default().push(p.uid);
        }
    }
    for (flags, uids) in &add {
        store(session, uids, &format!("+FLAGS.SILENT ({flags})")).await?;
    }
    for (flags, uids) in &remove {
        store(session, uids, &format!("-FLAGS.SILENT ({flags})")).await?;
    }

    // Copies and moves, one command per destination.
    let mut copies: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut moves: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for p in plans
        .iter()
        .filter(|p| p.rewritten.is_none() && !p.targets.is_empty())
    {
        let (last, rest) = p.targets.split_last().expect("not empty");
        for (t, _) in rest {
            copies.entry(t.clone()).or_default().push(p.uid);
        }
        let group = if p.keep { &mut copies } else { &mut moves };
        group.entry(last.0.clone()).or_default().push(p.uid);
    }
    for (dest, uids) in &copies {
        for set in uid_sets(uids) {
            timed("UID COPY", session.uid_copy(&set, utf7::encode(dest))).await?;
        }
        report.copied += uids.len();
    }
    let mut to_remove: Vec<u32> = Vec::new();
    for (dest, uids) in &moves {
        for set in uid_sets(uids) {
            if caps.has_move {
                timed("UID MOVE", session.uid_mv(&set, utf7::encode(dest))).await?;
            } else {
                timed("UID COPY", session.uid_copy(&set, utf7::encode(dest))).await?;
            }
        }
        if !caps.has_move {
            to_remove.extend(uids);
        }
        report.moved += uids.len();
    }

    // Rewritten messages: the new version goes everywhere first, then the original goes.
    let mut left_mailbox = false;
    for p in plans.iter().filter(|p| p.rewritten.is_some()) {
        if left_mailbox {
            // The original's body is read from the mailbox, by UID.
            timed("SELECT", session.select(utf7::encode(mailbox))).await?;
            completed(session, "SELECT")?;
            left_mailbox = false;
        }
        let mut raw = base64_decode(p.rewritten.as_deref().unwrap_or_default())
            .ok_or_else(|| ImapError::protocol("APPEND", "corrupt rewritten message in plan"))?;
        if p.body_from_original {
            match fetch_text(session, p.uid).await? {
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
        let mut dests: Vec<&str> = p.targets.iter().map(|(t, _)| t.as_str()).collect();
        if p.keep {
            dests.insert(0, mailbox);
        }
        let marker = resumed
            .then(|| HeaderBlock::parse(&raw).values(REWRITTEN_HEADER).next())
            .flatten()
            .map(|v| String::from_utf8_lossy(v).trim().to_string());
        for dest in dests {
            if let Some(marker) = &marker {
                left_mailbox = true;
                if has_copy(session, dest, marker).await? {
                    continue;
                }
            }
            timed(
                "APPEND",
                session.append(utf7::encode(dest), Some(&flags), date.as_deref(), &raw),
            )
            .await?;
            report.appended += 1;
        }
        to_remove.push(p.uid);
    }
    if left_mailbox {
        timed("SELECT", session.select(utf7::encode(mailbox))).await?;
        completed(session, "SELECT")?;
    }
    to_remove.extend(plans.iter().filter(|p| p.discarded()).map(|p| p.uid));
    if !to_remove.is_empty() {
        store(session, &to_remove, "+FLAGS.SILENT (\\Deleted)").await?;
        if caps.uidplus {
            for set in uid_sets(&to_remove) {
                let stream = timed("UID EXPUNGE", session.uid_expunge(&set)).await?;
                timed("UID EXPUNGE", stream.try_collect::<Vec<_>>()).await?;
                completed(session, "UID EXPUNGE")?;
            }
        } else {
            report
                .warnings
                .push("server lacks UIDPLUS: removed messages are left flagged \\Deleted".into());
        }
        report.removed += to_remove.len();
    }
    Ok(report)
}

/// Whether `folder` already holds our rewritten copy carrying `marker` (leaves `folder`
/// selected read-only).
async fn has_copy(
    session: &mut ImapSession,
    folder: &str,
    marker: &str,
) -> Result<bool, ImapError> {
    timed("EXAMINE", session.examine(utf7::encode(folder))).await?;
    completed(session, "EXAMINE")?;
    let found = timed(
        "UID SEARCH",
        session.uid_search(format!("HEADER {REWRITTEN_HEADER} \"{marker}\"")),
    )
    .await?;
    completed(session, "UID SEARCH")?;
    Ok(!found.is_empty())
}

/// The body of message `uid` (everything after its header block).
async fn fetch_text(session: &mut ImapSession, uid: u32) -> Result<Option<Vec<u8>>, ImapError> {
    let stream = timed(
        "UID FETCH",
        session.uid_fetch(uid.to_string(), "(UID BODY.PEEK[TEXT])"),
    )
    .await?;
    let items: Vec<_> = timed("UID FETCH", stream.try_collect::<Vec<_>>()).await?;
    completed(session, "UID FETCH")?;
    Ok(items
        .iter()
        .find(|f| f.uid == Some(uid))
        .map(|f| f.text().map(<[u8]>::to_vec).unwrap_or_default()))
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
async fn ensure_folders(
    session: &mut ImapSession,
    plans: &mut [Plan],
    folders: &mut HashSet<String>,
    report: &mut ApplyReport,
) -> Result<(), ImapError> {
    for p in plans.iter_mut() {
        let mut kept = Vec::new();
        for (t, create) in std::mem::take(&mut p.targets) {
            if folders.contains(&t) {
                kept.push((t, create));
            } else if create {
                // A concurrent client may have created it meanwhile: "already exists" is fine.
                if let Err(e) = timed("CREATE", session.create(utf7::encode(&t))).await {
                    if !e.to_string().to_ascii_lowercase().contains("exists") {
                        return Err(e);
                    }
                }
                folders.insert(t.clone());
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
