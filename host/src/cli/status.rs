//! `mailpipe status -c CONFIG [--json]`: what the state store knows, per account and
//! mailbox: how far mailpipe got (checkpoint), messages whose server actions wait for another
//! try or were given up (with the server's reason), messages a plugin failed on (and whether
//! that plugin changed since, so they will be decided again), and the outgoing queue. It only
//! reads; the store can be read while no other mailpipe has it open.

use anyhow::Context;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use mailpipe::config::Config;
use mailpipe::state::{OutboxStatus, Store};

/// Messages listed per kind before "and N more".
const SHOWN: usize = 10;

pub fn run(config: &Path, json_out: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let store = Store::open_config(&config.state, &config.state_dir).with_context(|| {
        format!(
            "cannot open the state store in {} (is a mailpipe daemon using it? status reads it while none runs)",
            config.state.place(&config.state_dir)
        )
    })?;
    // Current fingerprint of every configured plugin, to tell whether a failed one changed.
    let prints: BTreeMap<String, String> = config
        .plugins
        .iter()
        .filter_map(|p| {
            let wasm = mailpipe::plugin::embedded::component_of(p).ok()?;
            Some((
                p.name.clone(),
                mailpipe::plugin::fingerprint(&wasm, &p.config.to_string()),
            ))
        })
        .collect();

    // Per "account/mailbox": checkpoint, waiting plans, given-up plans, plugin failures.
    let mut boxes: BTreeMap<String, Value> = BTreeMap::new();
    for (mailbox, at) in store.checkpoints()? {
        slot(&mut boxes, &mailbox)["checkpoint"] =
            json!({"uidvalidity": at.validity, "last_uid": at.uid});
    }
    let plan_json = |plan: &str| -> Value {
        let v: Value = serde_json::from_str(plan).unwrap_or_default();
        json!({
            "uid": v.get("uid"),
            "attempts": v.get("attempts"),
            "reason": v.get("last_error"),
        })
    };
    for p in store.pending("imap:")? {
        if let Some((mb, _)) = split_key(&p.message_key) {
            push(&mut slot(&mut boxes, &mb)["waiting"], plan_json(&p.plan));
        }
    }
    for p in store.failed_under("imap:")? {
        if let Some((mb, _)) = split_key(&p.message_key) {
            push(&mut slot(&mut boxes, &mb)["given_up"], plan_json(&p.plan));
        }
    }
    for f in store.plugin_failed_under("imap:")? {
        if let Some((mb, uid)) = split_key(&f.message_key) {
            let plugins: BTreeMap<String, String> =
                serde_json::from_str(&f.fingerprints).unwrap_or_default();
            let changed: Vec<&String> = plugins
                .iter()
                .filter(|(name, print)| prints.get(*name) != Some(*print))
                .map(|(name, _)| name)
                .collect();
            push(
                &mut slot(&mut boxes, &mb)["plugin_failed"],
                json!({"uid": uid, "plugins": plugins.keys().collect::<Vec<_>>(), "changed_since": changed}),
            );
        }
    }
    let outbox = store.outbox_all()?;
    let count = |s: OutboxStatus| outbox.iter().filter(|e| e.status == s).count();
    let failed: Vec<Value> = outbox
        .iter()
        .filter(|e| e.status == OutboxStatus::Failed)
        .map(|e| json!({"id": e.id, "to": e.rcpt_to, "plugin": e.plugin, "reason": e.last_error}))
        .collect();
    let queued: Vec<Value> = outbox
        .iter()
        .filter(|e| e.status == OutboxStatus::Queued)
        .map(|e| json!({"id": e.id, "to": e.rcpt_to, "attempts": e.attempts, "held": e.held, "reason": e.last_error}))
        .collect();
    let report = json!({
        "state_dir": config.state_dir,
        "state": config.state.place(&config.state_dir),
        "processed": store.processed_count()?,
        "mailboxes": boxes,
        "outbox": {
            "queued": queued,
            "failed": failed,
            "sent": count(OutboxStatus::Sent),
        },
    });
    if json_out {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", human(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// The entry of one "account/mailbox".
fn slot<'a>(boxes: &'a mut BTreeMap<String, Value>, key: &str) -> &'a mut Value {
    boxes.entry(key.to_string()).or_insert_with(
        || json!({"checkpoint": null, "waiting": [], "given_up": [], "plugin_failed": []}),
    )
}

fn push(list: &mut Value, item: Value) {
    if let Value::Array(a) = list {
        a.push(item);
    }
}

/// "imap:ACCOUNT/MAILBOX/UIDVALIDITY/UID" as ("ACCOUNT/MAILBOX", UID).
fn split_key(key: &str) -> Option<(String, u32)> {
    let rest = key.strip_prefix("imap:")?;
    let (rest, uid) = rest.rsplit_once('/')?;
    let (mailbox, _validity) = rest.rsplit_once('/')?;
    Some((mailbox.to_string(), uid.parse().ok()?))
}

fn human(r: &Value) -> String {
    let mut out = format!(
        "state {}: {} message(s) processed\n",
        r["state"].as_str().unwrap_or_default(),
        r["processed"]
    );
    let empty = serde_json::Map::new();
    for (name, b) in r["mailboxes"].as_object().unwrap_or(&empty) {
        out.push_str(&format!("{name}:"));
        match b["checkpoint"].as_object() {
            Some(c) => out.push_str(&format!(
                " done up to UID {} (UIDVALIDITY {})\n",
                c["last_uid"], c["uidvalidity"]
            )),
            None => out.push_str(" nothing done yet\n"),
        }
        let list = |key: &str| b[key].as_array().cloned().unwrap_or_default();
        let waiting = list("waiting");
        let tried: Vec<&Value> = waiting.iter().filter(|w| w["reason"].is_string()).collect();
        if !waiting.is_empty() {
            out.push_str(&format!(
                "  {} message(s) with actions still to carry out, {} of them refused before\n",
                waiting.len(),
                tried.len()
            ));
            for w in tried.iter().take(SHOWN) {
                out.push_str(&format!(
                    "    UID {}: attempt {}: {}\n",
                    w["uid"],
                    w["attempts"],
                    w["reason"].as_str().unwrap_or_default()
                ));
            }
        }
        let given_up = list("given_up");
        if !given_up.is_empty() {
            out.push_str(&format!(
                "  {} message(s) left where they were after their actions were refused (run --retry-failed once the cause is fixed)\n",
                given_up.len()
            ));
            for g in given_up.iter().take(SHOWN) {
                out.push_str(&format!(
                    "    UID {}: {}\n",
                    g["uid"],
                    g["reason"].as_str().unwrap_or_default()
                ));
            }
            more(&mut out, given_up.len());
        }
        let failed = list("plugin_failed");
        if !failed.is_empty() {
            out.push_str(&format!(
                "  {} message(s) a plugin failed on (decided again once that plugin's code or config changes, or with run --retry-failed)\n",
                failed.len()
            ));
            for f in failed.iter().take(SHOWN) {
                let changed = f["changed_since"].as_array().map_or(0, Vec::len);
                out.push_str(&format!(
                    "    UID {}: {}{}\n",
                    f["uid"],
                    f["plugins"]
                        .as_array()
                        .map(|p| p
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", "))
                        .unwrap_or_default(),
                    if changed > 0 {
                        " (changed since: decided again at the next run)"
                    } else {
                        ""
                    }
                ));
            }
            more(&mut out, failed.len());
        }
    }
    let o = &r["outbox"];
    let queued = o["queued"].as_array().cloned().unwrap_or_default();
    let failed = o["failed"].as_array().cloned().unwrap_or_default();
    out.push_str(&format!(
        "outbox: {} queued, {} failed, {} sent\n",
        queued.len(),
        failed.len(),
        o["sent"]
    ));
    for q in queued
        .iter()
        .filter(|q| q["attempts"].as_u64() > Some(0))
        .take(SHOWN)
    {
        out.push_str(&format!(
            "  queued {} to {}: {} attempt(s), last: {}\n",
            q["id"].as_str().unwrap_or_default(),
            q["to"],
            q["attempts"],
            q["reason"].as_str().unwrap_or_default()
        ));
    }
    for f in failed.iter().take(SHOWN) {
        out.push_str(&format!(
            "  failed {} to {} ({}): {}\n",
            f["id"].as_str().unwrap_or_default(),
            f["to"],
            f["plugin"].as_str().unwrap_or_default(),
            f["reason"].as_str().unwrap_or_default()
        ));
    }
    more(&mut out, failed.len());
    out
}

fn more(out: &mut String, n: usize) {
    if n > SHOWN {
        out.push_str(&format!("    and {} more (--json lists all)\n", n - SHOWN));
    }
}
