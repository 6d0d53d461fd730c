//! Completing forwards that were decided on a message's header block only. When every plugin
//! needs only headers, an IMAP pass fetches only header blocks; a forward, though, carries the
//! whole original. Its outbox entry is therefore queued "held", and before a plan moves or
//! removes its message, the complete message is fetched and the forward built again from it
//! (same id, date and recipients). Held entries are never sent; one whose original is gone
//! is marked failed with the reason, never sent without its body.

use crate::message::Email;
use crate::source::imap::apply::{fetch_one, Part};
use crate::source::imap::connect::{ImapError, ImapSession};
use crate::source::imap::plan::Plan;
use crate::state::{OutboxStatus, Store};

/// Build the held forwards of `plans` from their complete messages in the selected mailbox
/// `mailbox`. Returns warnings for forwards that could not be completed.
pub async fn complete(
    session: &mut ImapSession,
    store: &Store,
    mailbox: &str,
    plans: &[Plan],
    max_bytes: usize,
) -> Result<Vec<String>, ImapError> {
    let mut warnings = Vec::new();
    for p in plans.iter().filter(|p| !p.forwards.is_empty()) {
        let mut held = Vec::new();
        for spec in &p.forwards {
            if let Some(entry) = store.outbox_entry(&spec.id)?.filter(|e| e.held) {
                held.push((spec, entry));
            }
        }
        if held.is_empty() {
            continue; // completed before an interruption
        }
        let original = fetch_one(session, p.uid, Part::Whole).await?;
        for (spec, mut entry) in held {
            let failure = match &original {
                None => Some(format!(
                    "message {} of {mailbox} disappeared before its body could be read for the forward",
                    p.uid
                )),
                Some(raw) => {
                    let out = spec.build(&Email::new(raw.clone(), mailbox, Vec::new()));
                    if out.len() > max_bytes {
                        Some(format!(
                            "the forward of message {} would be {} bytes, over max_outgoing_bytes = {max_bytes}",
                            p.uid,
                            out.len()
                        ))
                    } else {
                        store.outbox_complete(&entry, &out)?;
                        None
                    }
                }
            };
            if let Some(why) = failure {
                entry.held = false;
                entry.status = OutboxStatus::Failed;
                entry.last_error = Some(why.clone());
                store.outbox_update(&entry)?;
                warnings.push(format!("not sent: {why}"));
            }
        }
    }
    Ok(warnings)
}
