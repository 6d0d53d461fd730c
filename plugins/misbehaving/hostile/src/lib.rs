//! misbehave-hostile: a TEST plugin that attacks the host on purpose, one attack per
//! `attack` config value, so the hardening tests (tests/hardening.rs) can prove each is bounded:
//! blocking sleeps, filling or deleting plugin state, flag and header bombs, huge error text,
//! folder names the mail store uses itself, and reading the WASI wall clock. Never deploy it.

use mailpipe_plugin::{
    config_string, kv, Action, FolderTarget, Header, Message, Needs, Plugin, PluginInfo, Reply,
};

struct Hostile;

fn folder(name: &str) -> Action {
    Action::FileInto(FolderTarget {
        folder: name.into(),
        create: true,
    })
}

impl Plugin for Hostile {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "misbehave-hostile".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            needs: Needs::Headers,
        }
    }

    fn on_message(msg: &Message) -> Result<Vec<Action>, String> {
        let attack = config_string("attack").unwrap_or_default();
        match attack.as_str() {
            // Blocks in WASI (monotonic clock subscription + poll), not in guest code.
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(12));
                Ok(vec![])
            }
            // 64 KiB values under new keys, 200 per message: the total grows per message.
            "kv-fill" => {
                let value = vec![b'x'; 64 * 1024];
                let base = msg.message_id().unwrap_or_default();
                for i in 0..200 {
                    kv::set(&format!("{base}/{i}"), &value, None);
                }
                Ok(vec![])
            }
            "kv-delete-big" => {
                let key = "k".repeat(4 << 20);
                for _ in 0..100 {
                    kv::delete(&key);
                }
                Ok(vec![])
            }
            "flags" => Ok(vec![Action::AddFlags(
                (0..80_000).map(|i| format!("$K{i}")).collect(),
            )]),
            "reply-headers" => Ok(vec![Action::Reply(Reply {
                subject: None,
                text: "hi".into(),
                html: None,
                headers: (0..40_000)
                    .map(|i| Header {
                        name: format!("X-H{i}"),
                        value: "v".repeat(900),
                    })
                    .collect(),
            })]),
            // Answers everything: only the host's loop guard stands between it and a loop.
            "reply-always" => Ok(vec![Action::Reply(Reply {
                subject: None,
                text: "auto".into(),
                html: None,
                headers: vec![],
            })]),
            "big-error" => Err("e".repeat(30 << 20)),
            "reserved-folder" => Ok(vec![folder("A"), folder("A/dovecot-keywords")]),
            // The year the WASI wall clock says, as a keyword: `--now-ms` must fix it too.
            "wasi-clock" => {
                let secs = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                Ok(vec![Action::AddFlags(vec![format!("$Secs{secs}")])])
            }
            // A trap with nothing on stderr (as C code hitting a bug would): the host must
            // still say what and where.
            "unreachable" => deep_in_the_plugin(),
            other => Err(format!("unknown attack {other:?}")),
        }
    }
}

#[inline(never)]
fn deep_in_the_plugin() -> Result<Vec<Action>, String> {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    unreachable!()
}

mailpipe_plugin::export!(Hostile);
