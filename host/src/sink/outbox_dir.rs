//! Offline transport: every outgoing message becomes `<id>.eml` (the complete message, as it
//! would go to the SMTP server) plus `<id>.json` (its envelope) in the outbox folder. Written
//! to a temp name and renamed, so a reader never sees half a message.

use serde::Serialize;
use std::path::{Path, PathBuf};

use super::outbox::{SendError, Transport};
use crate::state::OutboxEntry;

pub struct OutboxDir {
    dir: PathBuf,
}

#[derive(Serialize)]
struct Envelope<'a> {
    id: &'a str,
    mail_from: &'a str,
    rcpt_to: &'a [String],
    plugin: &'a str,
    message_key: &'a str,
}

impl OutboxDir {
    pub fn new(dir: &Path) -> OutboxDir {
        OutboxDir {
            dir: dir.to_owned(),
        }
    }

    fn write_atomic(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, self.dir.join(name))
    }
}

impl Transport for OutboxDir {
    async fn send_raw(
        &self,
        entry: &OutboxEntry,
        raw: &[u8],
        at_end: &(dyn Fn() + Sync),
    ) -> Result<(), SendError> {
        at_end();
        let envelope = Envelope {
            id: &entry.id,
            mail_from: &entry.mail_from,
            rcpt_to: &entry.rcpt_to,
            plugin: &entry.plugin,
            message_key: &entry.message_key,
        };
        let json = serde_json::to_vec_pretty(&envelope).expect("envelope serialises");
        std::fs::create_dir_all(&self.dir)
            .and_then(|_| self.write_atomic(&format!("{}.eml", entry.id), raw))
            .and_then(|_| self.write_atomic(&format!("{}.json", entry.id), &json))
            .map_err(|e| SendError::transient(format!("outbox {}: {e}", self.dir.display())))
    }
}
