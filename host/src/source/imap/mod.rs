//! The IMAP source: speaks IMAP only. Connecting and logging in (`connect`, over the
//! watched stream of `wire`), the server's folder names (`namespace`), what the server can
//! do and holds (`discover`), fetching messages with only the parts the plugins need
//! (`fetch`, `confirmed_large`), and carrying out a message's plan on the server (`plan`,
//! `apply`); logins paced across accounts (`pacer`). It never calls the pipeline, SMTP or
//! metrics: the job layer (`run::imap`) drives it.

pub mod apply;
pub mod connect;
pub mod namespace;
pub mod pacer;
pub mod plan;
pub mod target;
pub mod wire;

use futures::TryStreamExt;
use std::collections::HashSet;

use apply::ServerCaps;
use connect::{completed, timed, ImapError, ImapSession};
use plan::uid_sets;

/// Header on rewritten messages we append: identifies them so that the copy appended back
/// into a watched mailbox is recognised as already processed instead of run again.
pub const REWRITTEN_HEADER: &str = "X-Mailpipe-Rewritten";

/// One message as fetched: only its header block when every plugin needs only headers.
pub struct Fetched {
    pub uid: u32,
    pub flags: Vec<String>,
    /// Kept on rewritten copies (formatted only for those).
    pub internal_date: Option<chrono::DateTime<chrono::FixedOffset>>,
    pub raw: Vec<u8>,
}

/// Of the messages `claimed` to be over `limit` bytes, those whose RFC822.SIZE says so too.
pub async fn confirmed_large(
    session: &mut ImapSession,
    claimed: &[u32],
    limit: u64,
) -> Result<HashSet<u32>, ImapError> {
    let mut out = HashSet::new();
    let requested: HashSet<u32> = claimed.iter().copied().collect();
    for set in uid_sets(claimed) {
        let stream = timed("UID FETCH", session.uid_fetch(&set, "(UID RFC822.SIZE)")).await?;
        let items: Vec<_> = timed("UID FETCH", stream.try_collect::<Vec<_>>()).await?;
        completed(session, "UID FETCH")?;
        out.extend(items.iter().filter_map(|f| {
            let uid = f.uid.filter(|u| requested.contains(u))?;
            (u64::from(f.size?) > limit).then_some(uid)
        }));
    }
    Ok(out)
}

/// Fetch the messages `uids` (ascending). Only requested UIDs are taken (a response for
/// any other UID, or UID 0, is ignored), the command must complete with OK, and a requested
/// message the server did not return must be gone from the mailbox: otherwise the fetch
/// fails, so a message is never passed over while the checkpoint moves on.
pub async fn fetch(
    session: &mut ImapSession,
    uids: &[u32],
    query: &str,
) -> Result<Vec<Fetched>, ImapError> {
    let requested: HashSet<u32> = uids.iter().copied().collect();
    let mut out: Vec<Fetched> = Vec::with_capacity(uids.len());
    for set in uid_sets(uids) {
        let stream = timed("UID FETCH", session.uid_fetch(&set, query)).await?;
        let items: Vec<_> = timed("UID FETCH", stream.try_collect::<Vec<_>>()).await?;
        completed(session, "UID FETCH")?;
        for f in items {
            let Some(uid) = f.uid.filter(|u| requested.contains(u)) else {
                continue;
            };
            // A response without the message (e.g. an unsolicited flag update) is not it.
            let Some(raw) = f.body().or_else(|| f.header()) else {
                continue;
            };
            if out.iter().any(|o| o.uid == uid) {
                continue;
            }
            let raw = raw.to_vec();
            out.push(Fetched {
                uid,
                flags: f.flags().filter_map(flag_name).collect(),
                internal_date: f.internal_date(),
                raw,
            });
        }
    }
    out.sort_by_key(|f| f.uid);
    if out.len() < uids.len() {
        let got: HashSet<u32> = out.iter().map(|f| f.uid).collect();
        let missing: Vec<u32> = uids.iter().copied().filter(|u| !got.contains(u)).collect();
        let mut still_there = Vec::new();
        for set in uid_sets(&missing) {
            let found = timed("UID SEARCH", session.uid_search(format!("UID {set}"))).await?;
            completed(session, "UID SEARCH")?;
            still_there.extend(found.into_iter().filter(|u| requested.contains(u)));
        }
        if !still_there.is_empty() {
            still_there.sort_unstable();
            return Err(ImapError::protocol(
                "UID FETCH",
                format!("the server did not return message(s) {still_there:?}, which still exist"),
            ));
        }
    }
    Ok(out)
}

fn flag_name(f: async_imap::types::Flag<'_>) -> Option<String> {
    use async_imap::types::Flag;
    Some(match f {
        Flag::Seen => "\\Seen".into(),
        Flag::Answered => "\\Answered".into(),
        Flag::Flagged => "\\Flagged".into(),
        Flag::Deleted => "\\Deleted".into(),
        Flag::Draft => "\\Draft".into(),
        Flag::Custom(c) if !c.starts_with('\\') => c.to_string(),
        _ => return None,
    })
}

/// What the server can do, its personal namespace (kept on the session for name mapping)
/// and its folders in the user's form.
pub async fn discover(
    session: &mut ImapSession,
) -> Result<(ServerCaps, HashSet<String>), ImapError> {
    let c = timed("CAPABILITY", session.capabilities()).await?;
    completed(session, "CAPABILITY")?;
    let caps = ServerCaps {
        has_move: c.has_str("MOVE"),
        uidplus: c.has_str("UIDPLUS"),
    };
    // Where personal folders live and what separates levels (RFC 2342), else the
    // delimiter from LIST: folder names in configs and plugins are mapped through it.
    let mut ns = None;
    if c.has_str("NAMESPACE") {
        timed("NAMESPACE", session.run_command_and_check_ok("NAMESPACE")).await?;
        let line = session.get_ref().state().take_namespace_line();
        ns = line
            .as_deref()
            .and_then(namespace::Namespace::from_response);
    }
    let names = {
        let stream = timed("LIST", session.list(Some(""), Some("*"))).await?;
        let names = timed("LIST", stream.try_collect::<Vec<_>>()).await?;
        completed(session, "LIST")?;
        names
    };
    let ns = ns.unwrap_or_else(|| namespace::Namespace {
        prefix: String::new(),
        delim: names
            .iter()
            .find_map(|n| n.delimiter())
            .and_then(|d| d.chars().next())
            .or(Some('/')),
    });
    let folders = names
        .iter()
        .filter_map(|n| crate::model::folder::decode(n.name()))
        .map(|n| ns.to_user(&n))
        .collect();
    session.get_ref().state().namespace = ns;
    Ok((caps, folders))
}
