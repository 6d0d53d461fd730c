//! The `mailpipe` command line: `test` one plugin on one message, `run` the configured
//! pipeline, `check` a config, `auth` an OAuth2 account. anyhow lives here, at the edge; the library has typed errors.

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

mod cli;

use mailpipe::actions::recipients::RecipientPattern;
use mailpipe::config::{parse_overrides, Config, Identity};
use mailpipe::message::Email;
use mailpipe::pipeline::{adhoc_plugin_config, Pipeline, PluginStatus};
use mailpipe::plugin::{Clock, PluginRuntime};
use mailpipe::report;
use mailpipe::runner::{self, RunOptions};
use mailpipe::state::Store;

#[derive(Parser)]
#[command(
    name = "mailpipe",
    version,
    about = "Process email with sandboxed WebAssembly plugins"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one plugin on one message and print its actions (for plugin authors).
    Test(TestArgs),
    /// Run the configured pipeline.
    Run {
        #[arg(short, long)]
        config: PathBuf,
        /// Process what is there, then exit (otherwise poll the source).
        #[arg(long)]
        once: bool,
        /// Decide and print, but store, send and remember nothing.
        #[arg(long)]
        dry_run: bool,
        /// One JSON object per message on stdout.
        #[arg(long)]
        json: bool,
        /// Decide again, under the config as it is now, the messages whose server actions were
        /// refused until mailpipe gave up (say, a folder the server would not create) and the
        /// messages a plugin failed on (those are also decided again by themselves once that
        /// plugin's code or config changes).
        #[arg(long)]
        retry_failed: bool,
        /// Exit with status 1 when a plugin failed on any message (for scripts; the messages
        /// are still kept and recorded).
        #[arg(long)]
        fail_on_plugin_error: bool,
        /// Seconds between polls of the offline source when not --once.
        #[arg(long, default_value_t = 30)]
        interval: u64,
    },
    /// Authorise mailpipe once for an account that logs in with OAuth2 (Gmail, Microsoft 365):
    /// stores a refresh token mailpipe renews its access tokens with.
    Auth {
        #[arg(short, long)]
        config: PathBuf,
        /// The account's name in the config.
        account: String,
        /// How to sign in (default: device if the provider offers it for mail, else browser).
        #[arg(long, value_enum)]
        flow: Option<cli::auth::Flow>,
        /// Store a refresh token read from standard input instead (one obtained by another tool).
        #[arg(long, conflicts_with = "flow")]
        import: bool,
    },
    /// What the state store knows: progress per mailbox, actions waiting or given up,
    /// messages a plugin failed on, and the outgoing queue.
    Status {
        #[arg(short, long)]
        config: PathBuf,
        /// The whole report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Validate the config and load every plugin.
    Check {
        #[arg(short, long)]
        config: PathBuf,
        /// Also log in to every account's IMAP and SMTP server.
        #[arg(long)]
        connect: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    // Like every Unix filter: `mailpipe run --json | head` ends quietly when the reader goes
    // away, instead of panicking on the next line it prints. State is transactional, so
    // ending at any point loses nothing (the SIGKILL tests show it).
    // SAFETY: only resets a process-wide signal disposition to its default.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match real_main().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn real_main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Auth {
            config,
            account,
            flow,
            import,
        } => cli::auth::run(&config, &account, flow, import).await,
        Command::Status { config, json } => cli::status::run(&config, json),
        Command::Check { config, connect } => {
            let config = Config::load(&config)?;
            let store = Arc::new(Store::open(&config.state_dir)?);
            let pipeline = runner::build_pipeline(&config, Some(store), Clock::System).await?;
            println!(
                "{}: ok, {} plugin(s), pooling allocator {}",
                config.file.display(),
                pipeline.plugins.len(),
                if pipeline.runtime.pooling() {
                    "on"
                } else {
                    "off (fallback)"
                }
            );
            print!("{}", runner::describe_plugins(&pipeline));
            if connect {
                let mut failed = false;
                for (name, result) in runner::probe_accounts(&config).await {
                    match result {
                        Ok(what) => println!("  account {name}: {what}"),
                        Err(e) => {
                            failed = true;
                            println!("  account {name}: FAILED: {e}");
                        }
                    }
                }
                if failed {
                    return Ok(ExitCode::from(1));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            config,
            once,
            dry_run,
            json,
            retry_failed,
            fail_on_plugin_error,
            interval,
        } => {
            let config = Config::load(&config)?;
            let opts = RunOptions {
                dry_run,
                json,
                retry_failed,
            };
            let watch = !config.accounts.is_empty() && !once && !dry_run;
            if watch {
                runner::watch_accounts(&config, &opts).await?;
                return Ok(ExitCode::SUCCESS);
            }
            loop {
                let mut s = runner::RunSummary::default();
                if config.offline.is_some() {
                    s = runner::run_offline(&config, &opts).await?;
                }
                if !config.accounts.is_empty() {
                    let a = runner::run_accounts_once(&config, &opts).await?;
                    s.processed += a.processed;
                    s.skipped += a.skipped;
                    s.plugin_failures += a.plugin_failures;
                    s.store_failures += a.store_failures;
                    s.retrying += a.retrying;
                    s.outbox.sent.extend(a.outbox.sent);
                    s.outbox.deferred.extend(a.outbox.deferred);
                    s.outbox.failed.extend(a.outbox.failed);
                }
                let mut store_failures = String::new();
                if s.store_failures > 0 {
                    store_failures += &format!(
                        ", {} not filed as decided (kept in place; see above)",
                        s.store_failures
                    );
                }
                if s.retrying > 0 {
                    store_failures += &format!(
                        ", {} with actions the server refused (tried again later)",
                        s.retrying
                    );
                }
                eprintln!(
                    "{} processed, {} already done, {} plugin error(s), {} unreadable{store_failures}; outbox: {} sent, {} deferred, {} failed",
                    s.processed,
                    s.skipped,
                    s.plugin_failures,
                    s.unreadable,
                    s.outbox.sent.len(),
                    s.outbox.deferred.len(),
                    s.outbox.failed.len()
                );
                if once || dry_run {
                    return Ok(if fail_on_plugin_error && s.plugin_failures > 0 {
                        ExitCode::from(1)
                    } else {
                        ExitCode::SUCCESS
                    });
                }
                tokio::time::sleep(std::time::Duration::from_secs(interval)).await;
            }
        }
        Command::Test(args) => test_plugin(args).await,
    }
}

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
struct TestArgs {
    plugin: PathBuf,
    message: PathBuf,
    /// Plugin config entry, KEY=VALUE with VALUE in TOML (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
    /// Print the documented JSON form (docs/JSON.md).
    #[arg(long)]
    json: bool,
    /// Who the plugin may send to (repeatable; default "$sender").
    #[arg(long = "allow-send-to", value_name = "PATTERN")]
    allow_send_to: Vec<String>,
    /// The user's address, used as From of generated mail.
    #[arg(long, default_value = "me@example.com")]
    identity: String,
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
}

async fn test_plugin(a: TestArgs) -> anyhow::Result<ExitCode> {
    let table = parse_overrides(&a.config).map_err(anyhow::Error::msg)?;
    let allow = if a.allow_send_to.is_empty() {
        vec![RecipientPattern::Sender]
    } else {
        a.allow_send_to
            .iter()
            .map(|p| RecipientPattern::parse(p).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()?
    };
    mailpipe::message::address::validate_addr_spec(&a.identity).context("--identity")?;
    let raw = std::fs::read(&a.message)
        .with_context(|| format!("cannot read {}", a.message.display()))?;
    let mut settings = adhoc_plugin_config(&a.plugin, serde_json::to_value(&table)?, allow);
    settings.limits.memory_mb = a
        .memory_mb
        .unwrap_or(settings.limits.memory_mb)
        .clamp(1, 4096);
    settings.limits.timeout_ms = a
        .timeout_ms
        .unwrap_or(settings.limits.timeout_ms)
        .clamp(1, 600_000);
    let temp = std::env::temp_dir().join(format!("mailpipe-test-{}", std::process::id()));
    let state_dir = a.state.clone().unwrap_or_else(|| temp.clone());
    let store = Arc::new(Store::open(&state_dir)?);
    let runtime = PluginRuntime::new(settings.limits.memory_mb, user_cache_dir())?;
    let loaded = runner::load_plugins(
        &runtime,
        std::slice::from_ref(&settings),
        Some(store.clone()),
    )
    .await;
    let loaded = match loaded {
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
        identity: Identity {
            address: a.identity.clone(),
            name: None,
        },
        limits: settings.limits,
        store: Some(store.clone()),
        clock,
    };
    let email = Email::new(raw.clone(), a.mailbox.clone(), Vec::new());
    let key = runner::test_message_key(&a.message, &raw);
    let decision = pipeline.process(&email, &key).await;
    // Keep the plugin's state when --state was given, so vacation memory can be tried out.
    if a.state.is_some() {
        let mut commit = runner::commit_for(&decision, runner::now_ms());
        commit.outbox.clear();
        store.commit_message(&commit)?;
    }
    drop(store);
    let _ = std::fs::remove_dir_all(&temp);

    let info = &pipeline.plugins[0].info;
    let report = &decision.reports[0];
    let failed = matches!(report.status, PluginStatus::Failed { .. });
    if a.json {
        let mut v = report::decision_json(&a.message.display().to_string(), &decision);
        v["plugin"] = json!({"name": info.name, "version": info.version, "needs": report::needs_name(info.needs)});
        v["logs"] = json!(report::log_lines(&decision, true));
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "plugin {} {} (needs {:?})",
            info.name, info.version, info.needs
        );
        for line in report::log_lines(&decision, true) {
            println!("  log {line}");
        }
        if let PluginStatus::Applied { actions, .. } = &report.status {
            println!("actions:");
            for action in actions {
                println!("  {}", report::action_json(action));
            }
        }
        print!(
            "{}",
            report::human(&a.message.display().to_string(), &decision)
        );
        for o in &decision.outgoing {
            println!(
                "--- outgoing {} (MAIL FROM:<{}> RCPT TO:{:?}) ---",
                o.id, o.mail_from, o.rcpt_to
            );
            println!("{}", String::from_utf8_lossy(&o.raw));
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
