//! `mailpipe explain -c CONFIG MESSAGE-ID`: what happened to one message, from the state
//! store: where it came from, what each plugin decided (its actions, or why it failed), where
//! the message went, its outgoing mail and whether that was sent, and any server actions
//! still waiting or given up.

use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::path::Path;
use std::process::ExitCode;

use mailpipe::config::Config;
use mailpipe::state::Store;

pub fn run(config: &Path, message_id: &str, json_out: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let store = Store::open_config(&config.state, &config.state_dir).with_context(|| {
        format!(
            "cannot open the state store in {} (is a mailpipe daemon using it?)",
            config.state.place(&config.state_dir)
        )
    })?;
    let id = message_id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    if id.is_empty() {
        bail!("give a Message-ID");
    }
    let wanted = format!("<{id}>");
    let outbox = store.outbox_all()?;
    let pending = store.pending("")?;
    let given_up = store.failed_under("")?;
    let mut found = Vec::new();
    for (key, summary) in store.processed_with_message_id(&wanted)? {
        let s: Value = serde_json::from_str(&summary).unwrap_or_default();
        let outgoing: Vec<Value> = outbox
            .iter()
            .filter(|e| e.message_key == key)
            .map(|e| json!({"id": e.id, "plugin": e.plugin, "to": e.rcpt_to, "status": format!("{:?}", e.status).to_lowercase(), "attempts": e.attempts, "reason": e.last_error}))
            .collect();
        let plan = |list: &[mailpipe::state::StoredPlan]| {
            list.iter()
                .find(|p| p.message_key == key)
                .and_then(|p| serde_json::from_str::<Value>(&p.plan).ok())
                .map(|p| json!({"attempts": p["attempts"], "reason": p["last_error"]}))
        };
        found.push(json!({
            "message": key,
            "decided_at_ms": s["at_ms"],
            "plugins": s["plugins"],
            "deliveries": s["deliveries"],
            "outgoing": outgoing,
            "actions_waiting": plan(&pending),
            "actions_given_up": plan(&given_up),
        }));
    }
    if found.is_empty() {
        match config.explain_days {
            0 => bail!("no message with Message-ID {wanted} was processed"),
            days => bail!(
                "no message with Message-ID {wanted} was processed in the last {days} days \
                 ([state] explain_days: what plugins decided is kept that long)"
            ),
        }
    }
    if json_out {
        println!("{}", serde_json::to_string_pretty(&found)?);
        return Ok(ExitCode::SUCCESS);
    }
    for f in &found {
        println!("{} ({wanted})", f["message"].as_str().unwrap_or_default());
        for p in f["plugins"].as_array().into_iter().flatten() {
            println!("  {}", p.as_str().unwrap_or_default());
        }
        if f["plugins"].is_null() {
            println!("  (decided before mailpipe recorded each plugin's actions)");
        }
        println!("  went to: {}", f["deliveries"]);
        for o in f["outgoing"].as_array().into_iter().flatten() {
            println!(
                "  outgoing {} to {} by {}: {}{}",
                o["id"].as_str().unwrap_or_default(),
                o["to"],
                o["plugin"].as_str().unwrap_or_default(),
                o["status"].as_str().unwrap_or_default(),
                o["reason"]
                    .as_str()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            );
        }
        if let Some(w) = f["actions_waiting"].as_object() {
            println!(
                "  server actions not done yet: attempt {}: {}",
                w["attempts"],
                w["reason"].as_str().unwrap_or("-")
            );
        }
        if let Some(g) = f["actions_given_up"].as_object() {
            println!(
                "  server actions given up: {} (run --retry-failed once fixed)",
                g["reason"].as_str().unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
