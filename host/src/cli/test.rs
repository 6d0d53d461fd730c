//! `mailpipe test`: run one plugin on messages and show what it decided, like `sieve-test`,
//! for plugin authors and their CI. Messages come from files, a Maildir (or a folder of .eml
//! files) or standard input (`-`); the plugin and its settings from the command line or from
//! a config's `[[plugin]]` (`-c CONFIG --plugin NAME`); `--expect` turns the result into a
//! check that fails the command.

use anyhow::{bail, Context};
use serde_json::json;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use mailpipe::config::RecipientPattern;
use mailpipe::config::{parse_overrides, Config, Identity, PluginConfig, PluginLimits};
use mailpipe::message::Email;
use mailpipe::pipeline::{adhoc_plugin_config, Decision, Pipeline, PluginStatus};
use mailpipe::plugin::{Clock, LoadedPlugin, PluginRuntime};
use mailpipe::report;
use mailpipe::run;
use mailpipe::state::Store;

/// Where `mailpipe test` keeps compiled plugins between runs (JS and Python components
/// take seconds to compile): $MAILPIPE_CACHE_DIR, else $XDG_CACHE_HOME/mailpipe, else
/// ~/.cache/mailpipe.
fn user_cache_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("MAILPIPE_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("mailpipe")))
        .or_else(|| env("HOME").map(|d| d.join(".cache/mailpipe")))
        .map(|d| d.join("compiled"))
}

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  mailpipe test plugin.wasm message.eml --config days=3\n  mailpipe test plugin.wasm ~/Maildir --json\n  mailpipe test -c mailpipe.toml --plugin vacation message.eml --expect reply\n  cat message.eml | mailpipe test plugin.wasm - --expect folder=Lists"
)]
pub struct TestArgs {
    /// PLUGIN.wasm then MESSAGE... (without --plugin), or only MESSAGE... (with -c and
    /// --plugin). A message is a file, a Maildir or folder of .eml files, or - for stdin.
    #[arg(required = true, value_name = "PLUGIN.wasm | MESSAGE")]
    args: Vec<PathBuf>,
    /// Take the plugin, its table, limits and allowed recipients from this config...
    #[arg(
        short = 'c',
        long = "config-file",
        value_name = "CONFIG",
        requires = "plugin"
    )]
    config_file: Option<PathBuf>,
    /// ...and this [[plugin]] of it.
    #[arg(long, value_name = "NAME", requires = "config_file")]
    plugin: Option<String>,
    /// Plugin config entry, KEY=VALUE with VALUE in TOML (repeatable; added to the table).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
    /// Print the documented JSON form (docs/JSON.md); one object per line for several messages.
    #[arg(long)]
    json: bool,
    /// Who the plugin may send to (repeatable; default "$sender").
    #[arg(long = "allow-send-to", value_name = "PATTERN")]
    allow_send_to: Vec<String>,
    /// The user's address, used as From of generated mail.
    #[arg(long)]
    identity: Option<String>,
    /// Keep the plugin's key-value state in this directory across runs.
    #[arg(long)]
    state: Option<PathBuf>,
    /// The time the plugin sees, in ms since the epoch (default: now).
    #[arg(long)]
    now_ms: Option<i64>,
    /// Mailbox the message is said to come from.
    #[arg(long, default_value = "INBOX")]
    mailbox: String,
    /// Memory limit of the plugin (default as in a config: 64).
    #[arg(long)]
    memory_mb: Option<u64>,
    /// Time limit of one call (default as in a config: 1000).
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// A check on every message's result; the command exits 1 when one fails (repeatable):
    /// folder=NAME, flag=NAME, reply, no-reply, forward, no-forward, notify, no-notify, discard,
    /// refuse, no-refuse, keep, ok (the plugin did not fail).
    #[arg(long, value_name = "CHECK")]
    expect: Vec<String>,
    /// Decide on a file even when it looks like a binary file, not a message.
    #[arg(long)]
    force: bool,
    /// Decide as at delivery time (LMTP, `mailpipe deliver`), where a plugin may refuse the
    /// message (Sieve's reject); without it, as after delivery (IMAP, POP3, a Maildir).
    #[arg(long)]
    delivery: bool,
}

/// The messages named on the command line: (label, bytes).
fn read_messages(paths: &[PathBuf]) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for p in paths {
        if p == Path::new("-") {
            let mut raw = Vec::new();
            std::io::stdin()
                .read_to_end(&mut raw)
                .context("reading the message from standard input")?;
            out.push(("-".to_string(), raw));
        } else if p.is_dir() {
            let source = mailpipe::source::maildir::MaildirSource::new(p);
            let entries = source
                .list()
                .with_context(|| format!("cannot list {}", p.display()))?;
            if entries.is_empty() {
                bail!(
                    "{}: no messages (a Maildir's cur/ and new/, or .eml files)",
                    p.display()
                );
            }
            for e in entries {
                let m = source.read(&e)?;
                out.push((e.label(), m.email.raw.to_vec()));
            }
        } else {
            let raw = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
            out.push((p.display().to_string(), raw));
        }
    }
    Ok(out)
}

fn is_forward(kind: mailpipe::actions::OutgoingKind) -> bool {
    use mailpipe::actions::OutgoingKind::*;
    matches!(kind, Redirect | ForwardAttachment)
}

/// Whether `d` meets `check`; Err(what was found) when it does not.
fn expectation(check: &str, d: &Decision) -> Result<(), String> {
    let folders: Vec<&str> = d.deliveries.iter().map(|x| x.folder.as_str()).collect();
    let count = |kind: &str| d.outgoing.iter().filter(|o| o.kind.label() == kind).count();
    let failed = d.failed_plugins().count() > 0;
    let ok = match check.split_once('=') {
        Some(("folder", f)) => folders.contains(&f),
        Some(("flag", f)) => d.flags.iter().any(|x| x.eq_ignore_ascii_case(f)),
        None if check == "reply" => count("reply") > 0,
        None if check == "no-reply" => count("reply") == 0,
        None if check == "forward" => d.outgoing.iter().any(|o| is_forward(o.kind)),
        None if check == "no-forward" => !d.outgoing.iter().any(|o| is_forward(o.kind)),
        None if check == "notify" => count("notification") > 0,
        None if check == "no-notify" => count("notification") == 0,
        None if check == "discard" => d.discarded(),
        None if check == "refuse" => d.refused.is_some(),
        None if check == "no-refuse" => d.refused.is_none(),
        None if check == "keep" => folders.contains(&d.email.mailbox.as_str()),
        None if check == "ok" => !failed,
        _ => {
            return Err(format!(
                "unknown check {check:?} (see mailpipe test --help)"
            ))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected {check}, got folders {folders:?}, flags {:?}, {} outgoing{}",
            d.flags,
            d.outgoing.len(),
            if failed { ", the plugin failed" } else { "" }
        ))
    }
}

/// `mailpipe test`: exit status 1 when the plugin failed on a message or an expectation
/// was not met.
pub async fn run(a: TestArgs) -> anyhow::Result<ExitCode> {
    let overrides = parse_overrides(&a.config).map_err(anyhow::Error::msg)?;
    let (mut settings, identity, message_paths) = match (&a.config_file, &a.plugin) {
        (Some(file), Some(name)) => from_config(&a, file, name, &overrides)?,
        _ => from_command_line(&a, &overrides)?,
    };
    let identity = identity_flag(&a, identity)?;
    limit_flags(&a, &mut settings.limits);
    let messages = read_messages(&message_paths)?;
    for (label, raw) in &messages {
        if !mailpipe::message::looks_like_message(raw) {
            if a.force {
                tracing::warn!(
                    "{label} does not look like a message; deciding on it anyway (--force)"
                );
            } else {
                bail!(
                    "{label} does not look like a message (it looks like a binary file); \
                     --force decides on it anyway"
                );
            }
        }
    }
    let temp = std::env::temp_dir().join(format!("mailpipe-test-{}", std::process::id()));
    let state_dir = a.state.clone().unwrap_or_else(|| temp.clone());
    let store = Arc::new(Store::open(&state_dir)?);
    let runtime = PluginRuntime::new(settings.limits.memory_mb, user_cache_dir())?;
    let loaded = match load_plugin(&runtime, &settings, &store).await {
        Ok(l) => l,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&temp);
            return Err(e);
        }
    };
    let clock = a.now_ms.map_or(Clock::System, Clock::Fixed);
    let pipeline = Pipeline {
        runtime,
        plugins: loaded,
        identity,
        limits: settings.limits,
        store: Some(store.clone()),
        clock,
        enabled: Default::default(),
        account_scripts: Default::default(),
    };
    let info = &pipeline.plugins[0].info;
    if !a.json {
        report::stdout(&format!(
            "plugin {} {} (needs {})\n",
            info.name,
            info.version,
            report::needs_name(info.needs)
        ));
    }
    let (failures, unmet) = test_messages(&a, &pipeline, &store, &messages).await?;
    drop(store);
    let _ = std::fs::remove_dir_all(&temp);
    if unmet > 0 && !a.json {
        eprintln!("{unmet} expectation(s) not met");
    }
    Ok(if failures > 0 || unmet > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// What to test: the plugin's settings, the identity its mail comes from, the messages.
type Setup = (PluginConfig, Identity, Vec<PathBuf>);

/// `-c CONFIG --plugin NAME`: that `[[plugin]]` with the `--config` overrides added to its
/// table, and the config's identity; every argument is a message.
fn from_config(
    a: &TestArgs,
    file: &Path,
    name: &str,
    overrides: &toml::Table,
) -> anyhow::Result<Setup> {
    let config = Config::load(file)?;
    let Some(p) = config.plugins.iter().find(|p| p.name == *name) else {
        bail!(
            "no [[plugin]] named {name:?} in {}; plugins: {}",
            file.display(),
            config
                .plugins
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let mut settings = p.clone();
    if let serde_json::Value::Object(table) = &mut settings.config {
        for (k, v) in serde_json::to_value(overrides)?
            .as_object()
            .into_iter()
            .flatten()
        {
            table.insert(k.clone(), v.clone());
        }
    }
    Ok((settings, config.identity.clone(), a.args.clone()))
}

/// PLUGIN.wasm MESSAGE...: the plugin with the `--config` table and `--allow-send-to`
/// recipients (default: the sender), from me@example.com.
fn from_command_line(a: &TestArgs, overrides: &toml::Table) -> anyhow::Result<Setup> {
    let Some((plugin, messages)) = a.args.split_first().filter(|(_, m)| !m.is_empty()) else {
        bail!("give PLUGIN.wasm and at least one MESSAGE (or -c CONFIG --plugin NAME)");
    };
    let allow = if a.allow_send_to.is_empty() {
        vec![RecipientPattern::Sender]
    } else {
        a.allow_send_to
            .iter()
            .map(|p| RecipientPattern::parse(p).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()?
    };
    let settings = adhoc_plugin_config(plugin, serde_json::to_value(overrides)?, allow)
        .map_err(anyhow::Error::msg)?;
    let identity = Identity {
        address: "me@example.com".into(),
        name: None,
    };
    Ok((settings, identity, messages.to_vec()))
}

/// `--identity`, when given, instead of `identity`.
fn identity_flag(a: &TestArgs, identity: Identity) -> anyhow::Result<Identity> {
    Ok(match &a.identity {
        Some(address) => {
            mailpipe::model::address::validate_addr_spec(address).context("--identity")?;
            Identity {
                address: address.clone(),
                name: None,
            }
        }
        None => identity,
    })
}

/// `--memory-mb` and `--timeout-ms` into `limits`, each kept in its range.
fn limit_flags(a: &TestArgs, limits: &mut PluginLimits) {
    limits.memory_mb = a.memory_mb.unwrap_or(limits.memory_mb).clamp(1, 4096);
    limits.timeout_ms = a.timeout_ms.unwrap_or(limits.timeout_ms).clamp(1, 600_000);
}

/// Load the plugin of `settings`; an error when it cannot be loaded or refuses its
/// configuration (each problem on a line).
async fn load_plugin(
    runtime: &PluginRuntime,
    settings: &PluginConfig,
    store: &Arc<Store>,
) -> anyhow::Result<Vec<LoadedPlugin>> {
    let loaded =
        run::load_plugins(runtime, std::slice::from_ref(settings), Some(store.clone())).await?;
    if !loaded[0].config_problems.is_empty() {
        let problems: Vec<String> = loaded[0]
            .config_problems
            .iter()
            .map(|c| match &c.key {
                Some(key) => format!("  `{key}`: {}", c.message),
                None => format!("  {}", c.message),
            })
            .collect();
        anyhow::bail!(
            "plugin {} refuses its configuration:\n{}",
            loaded[0].name,
            problems.join("\n")
        );
    }
    Ok(loaded)
}

/// Run `pipeline` on each message, print the result and check it against `--expect`:
/// (messages the plugin failed on, expectations not met).
async fn test_messages(
    a: &TestArgs,
    pipeline: &Pipeline,
    store: &Store,
    messages: &[(String, Vec<u8>)],
) -> anyhow::Result<(usize, usize)> {
    let mut failures = 0;
    let mut unmet = 0;
    let several = messages.len() > 1;
    for (label, raw) in messages {
        let email = Email::new(raw.clone(), a.mailbox.clone(), Vec::new());
        let key = match a.delivery {
            true => mailpipe::model::key::delivery_key("test", "", "", raw),
            false => run::test_message_key(Path::new(label), raw),
        };
        let decision = pipeline.process(&email, &key).await;
        // Keep the plugin's state when --state was given, so vacation memory can be tried out.
        if a.state.is_some() {
            let mut commit = mailpipe::pipeline::commit_for(&decision, mailpipe::clock::now_ms());
            commit.outbox.clear();
            store.commit_message(&commit)?;
        }
        let report = &decision.reports[0];
        if matches!(report.status, PluginStatus::Failed { .. }) {
            failures += 1;
        }
        let problems: Vec<String> = a
            .expect
            .iter()
            .filter_map(|c| expectation(c, &decision).err())
            .collect();
        unmet += problems.len();
        print_result(
            a,
            label,
            &decision,
            &pipeline.plugins[0],
            several,
            &problems,
        )?;
    }
    Ok((failures, unmet))
}

fn print_result(
    a: &TestArgs,
    label: &str,
    decision: &Decision,
    plugin: &mailpipe::plugin::LoadedPlugin,
    several: bool,
    problems: &[String],
) -> anyhow::Result<()> {
    use std::fmt::Write as _;
    let report = &decision.reports[0];
    let info = &plugin.info;
    // Written at once through `report::stdout`: a reader that went away (`| head`) ends the
    // command quietly instead of a panic.
    let mut out = String::new();
    if a.json {
        let mut v = report::decision_json(label, decision);
        v["plugin"] = json!({"name": info.name, "version": info.version, "needs": report::needs_name(info.needs)});
        v["logs"] = json!(report::log_lines(decision, true));
        if !a.expect.is_empty() {
            v["expectations_failed"] = json!(problems);
        }
        if several {
            out = serde_json::to_string(&v)?;
        } else {
            out = serde_json::to_string_pretty(&v)?;
        }
        out.push('\n');
        report::stdout(&out);
        return Ok(());
    }
    for line in report::log_lines(decision, true) {
        let _ = writeln!(out, "  log {line}");
    }
    if let PluginStatus::Applied { actions, .. } = &report.status {
        out.push_str("actions:\n");
        for action in actions {
            let _ = writeln!(out, "  {}", action.to_json());
        }
    }
    out.push_str(&report::human(label, decision));
    for o in &decision.outgoing {
        let _ = writeln!(
            out,
            "--- outgoing {} (MAIL FROM:<{}> RCPT TO:{:?}) ---",
            o.id, o.mail_from, o.rcpt_to
        );
        let _ = writeln!(out, "{}", String::from_utf8_lossy(&o.raw));
    }
    for p in problems {
        let _ = writeln!(out, "    !! {p}");
    }
    report::stdout(&out);
    Ok(())
}
