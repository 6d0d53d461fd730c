//! The `mailpipe` command line: `run` the configured pipeline, `check` a config, `test` a
//! plugin, `auth` an OAuth2 account, `status` of the state store. `main.rs` parses and
//! dispatches; commands with more to them live in `cli/`. anyhow lives here, at the edge;
//! the library has typed errors.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

mod cli;

use mailpipe::config::Config;
use mailpipe::run::{self, RunOptions};

#[derive(Parser)]
#[command(
    name = "mailpipe",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("MAILPIPE_COMMIT"), ")"),
    about = "Process email with sandboxed WebAssembly plugins"
)]
struct Cli {
    /// More detail in the log (-v: debug, with plugins' debug lines; -vv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, help_heading = "Logging (any command)")]
    verbose: u8,
    /// Only warnings and errors in the log.
    #[arg(
        short,
        long,
        global = true,
        conflicts_with = "verbose",
        help_heading = "Logging (any command)"
    )]
    quiet: bool,
    /// Log filter: a level (error, warn, info, debug, trace) or tracing directives; wins over
    /// -v/-q and over the RUST_LOG / MAILPIPE_LOG environment variables.
    #[arg(
        long,
        global = true,
        value_name = "LEVEL",
        help_heading = "Logging (any command)"
    )]
    log_level: Option<String>,
    /// Log lines as text (with timestamps) or as JSON objects; on standard error.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        help_heading = "Logging (any command)"
    )]
    log_format: mailpipe::telemetry::logs::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one plugin on messages and print what it decided (for plugin authors and their CI).
    Test(Box<cli::test::TestArgs>),
    /// Run the configured pipeline.
    Run(RunArgs),
    /// Deliver one message from standard input to the account of its recipient, as a mail
    /// server's delivery command (Postfix mailbox_command, .forward, fetchmail's mda); the
    /// exit code follows sysexits.h: 0 delivered, 75 try again later, 65/67 refused.
    Deliver(cli::deliver::DeliverArgs),
    /// Authorise mailpipe once for an account that logs in with OAuth2 (Gmail, Microsoft 365):
    /// stores a refresh token mailpipe renews its access tokens with.
    Auth {
        /// The config file (TOML).
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
        /// The config file (TOML).
        #[arg(short, long)]
        config: PathBuf,
        /// The whole report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// What happened to one message: each plugin's decision, where it went, its outgoing
    /// mail, server actions waiting or given up.
    Explain {
        /// The config file (TOML).
        #[arg(short, long)]
        config: PathBuf,
        /// The message's Message-ID (with or without <>).
        message_id: String,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (roff), e.g. `mailpipe man > /usr/local/share/man/man1/mailpipe.1`.
    Man,
    /// Print the plugin contract (the WIT package plugins are built against), for plugin
    /// projects outside this repository.
    Wit {
        /// Print the contract's types for JavaScript plugins instead (a TypeScript .d.ts)
        #[arg(long)]
        typescript: bool,
        /// The contract version to print (0.1 or 0.2; default: the newest)
        #[arg(long, value_name = "VERSION")]
        contract: Option<String>,
    },
    /// Make a new plugin project (builds anywhere, ships a sample message to test it on).
    New {
        /// The plugin's name: lowercase letters, digits and -, e.g. invoice-filer
        name: String,
        /// The language of the plugin
        #[arg(long, value_enum)]
        lang: cli::new::Lang,
        /// Where to create it (must not exist or be empty; default: ./NAME)
        dir: Option<PathBuf>,
    },
    /// Validate the config and load every plugin.
    Check {
        /// The config file (TOML).
        #[arg(short, long)]
        config: PathBuf,
        /// Also log in to every account's IMAP and SMTP server.
        #[arg(long)]
        connect: bool,
    },
    /// Each account's Sieve scripts in the state store: list, import, export, activate,
    /// rename, delete.
    #[command(subcommand)]
    Sieve(cli::sieve::SieveCommand),
}

/// The options of `mailpipe run`.
#[derive(clap::Args)]
struct RunArgs {
    /// The config file (TOML).
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
    /// Serve Prometheus metrics on http://ADDR/metrics and a health check on /healthz
    /// (e.g. 127.0.0.1:9464; account names are in the metrics, so keep it on loopback
    /// or behind your own access control).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// Seconds between polls of the offline source when not --once.
    #[arg(long, default_value_t = 30)]
    interval: u64,
    /// Offline: messages decided at the same time (default: one per core; 1 decides one
    /// after the other; the results are the same)
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match real_main().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", mailpipe::report::error_chain(&e));
            ExitCode::from(2)
        }
    }
}

/// Parse the command line, start logging and run the command.
async fn real_main() -> anyhow::Result<ExitCode> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // A mail server bounces a message on any exit code but 75 (try again): a mistyped
        // delivery command must keep the mail queued until it is fixed.
        Err(e) if std::env::args().skip(1).any(|a| a == "deliver") && e.use_stderr() => {
            let _ = e.print();
            return Ok(ExitCode::from(cli::deliver::EX_TEMPFAIL));
        }
        Err(e) => e.exit(),
    };
    let verbosity = if cli.quiet {
        -1
    } else {
        cli.verbose.min(2) as i8
    };
    mailpipe::telemetry::logs::init(verbosity, cli.log_level.as_deref(), cli.log_format)
        .map_err(anyhow::Error::msg)?;
    match cli.command {
        Command::Auth {
            config,
            account,
            flow,
            import,
        } => cli::auth::run(&config, &account, flow, import).await,
        Command::Status { config, json } => cli::status::run(&config, json),
        Command::Explain {
            config,
            message_id,
            json,
        } => cli::explain::run(&config, &message_id, json),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "mailpipe",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Wit {
            typescript,
            contract,
        } => wit(typescript, contract.as_deref()),
        Command::New { name, lang, dir } => {
            cli::new::run(&name, lang, dir.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { config, connect } => cli::check::run(&config, connect).await,
        Command::Sieve(cmd) => cli::sieve::run(cmd),
        Command::Run(args) => run_command(args).await,
        Command::Deliver(args) => Ok(cli::deliver::run(args).await),
        Command::Test(args) => cli::test::run(*args).await,
    }
}

/// `mailpipe wit`: print the plugin contract `version` (default: the newest), as WIT or as
/// TypeScript types.
fn wit(typescript: bool, version: Option<&str>) -> anyhow::Result<ExitCode> {
    use mailpipe::contract;
    let chosen = match version {
        None => contract::CURRENT,
        Some(v) => contract::find(v).ok_or_else(|| {
            anyhow::anyhow!(
                "there is no contract {v}: this mailpipe has {}",
                contract::ALL
                    .iter()
                    .map(|c| c.version)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?,
    };
    let text = if typescript {
        contract::typescript::generate(chosen.wit, contract::WORLD)?
    } else {
        chosen.wit.to_string()
    };
    mailpipe::report::stdout(&text);
    Ok(ExitCode::SUCCESS)
}

/// `mailpipe run`: watch the accounts, or process what is there once (`--once`,
/// `--dry-run`) or every `--interval` seconds.
async fn run_command(args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config)?;
    if let Some(addr) = args.metrics {
        serve_metrics(addr).await?;
    }
    let opts = RunOptions {
        dry_run: args.dry_run,
        json: args.json,
        retry_failed: args.retry_failed,
        jobs: args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
    };
    let watch = config.has_accounts() && !args.once && !args.dry_run;
    if watch {
        mailpipe::run::watch_accounts(&config, &opts).await?;
        return Ok(ExitCode::SUCCESS);
    }
    // Set up once: a polling run keeps its plugins loaded and its store open.
    let mut config = config;
    let mut offline = match config.offline {
        Some(_) => Some(run::Offline::new(&config).await?),
        None => None,
    };
    // As in the daemon: SIGINT and SIGTERM end the run after the message it is on, SIGHUP
    // reloads the config between passes (a broken one is reported and the running one kept).
    let mut signals = Signals::new()?;
    loop {
        let stop = offline.as_ref().map(|o| o.stop_handle());
        let mut heard = None;
        let s = {
            let pass = pass(&config, offline.as_mut(), &opts);
            tokio::pin!(pass);
            loop {
                tokio::select! {
                    s = &mut pass => break s?,
                    sig = signals.next(), if heard.is_none() => {
                        tracing::info!(signal = sig, "{}", match sig {
                            "SIGHUP" => "reloading the config after this pass",
                            _ => "stopping after the message being processed",
                        });
                        if sig != "SIGHUP" {
                            if let Some(stop) = &stop {
                                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                            }
                        }
                        heard = Some(sig);
                    }
                }
            }
        };
        log_summary(&s, args.once || args.dry_run);
        if args.once || args.dry_run || heard.is_some_and(|s| s != "SIGHUP") {
            if let Some(sig) = heard.filter(|s| *s != "SIGHUP") {
                tracing::info!(signal = sig, "stopped");
            }
            return Ok(if args.fail_on_plugin_error && s.plugin_failures > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            });
        }
        if heard.is_none() {
            let sleep = tokio::time::sleep(std::time::Duration::from_secs(args.interval));
            tokio::select! {
                _ = sleep => {}
                sig = signals.next() => match sig {
                    "SIGHUP" => heard = Some(sig),
                    _ => {
                        tracing::info!(signal = sig, "stopped");
                        return Ok(ExitCode::SUCCESS);
                    }
                },
            }
        }
        if heard == Some("SIGHUP") {
            match Config::load(&args.config) {
                Err(e) => tracing::error!(signal = "SIGHUP", "{e}; the running config is kept"),
                Ok(new) => {
                    // The old store closes before the new one opens (the embedded one is
                    // locked while open).
                    drop(offline.take());
                    offline = match new.offline {
                        Some(_) => Some(run::Offline::new(&new).await?),
                        None => None,
                    };
                    config = new;
                    tracing::info!(signal = "SIGHUP", "config reloaded");
                }
            }
        }
    }
}

/// SIGINT, SIGTERM and SIGHUP, as one stream of names.
struct Signals {
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
            _ = self.hup.recv() => "SIGHUP",
        }
    }
}

/// Serve /metrics and /healthz on `addr` in the background.
async fn serve_metrics(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--metrics {addr}: cannot listen"))?;
    if !addr.ip().is_loopback() {
        tracing::warn!("metrics on {addr}, not loopback: anyone who can reach it sees account names and counts");
    }
    tracing::info!(%addr, "serving /metrics and /healthz");
    tokio::spawn(mailpipe::telemetry::metrics::serve(listener));
    Ok(())
}

/// One pass over the offline source (if any), then over the accounts; what both did.
async fn pass(
    config: &Config,
    offline: Option<&mut run::Offline>,
    opts: &RunOptions,
) -> anyhow::Result<run::RunSummary> {
    let mut s = run::RunSummary::default();
    if let Some(offline) = offline {
        s = offline.pass(opts).await?;
    }
    if config.has_accounts() {
        let a = run::run_accounts_once(config, opts).await?;
        s.processed += a.processed;
        s.skipped += a.skipped;
        s.plugin_failures += a.plugin_failures;
        s.store_failures += a.store_failures;
        s.retrying += a.retrying;
        s.outbox.sent.extend(a.outbox.sent);
        s.outbox.deferred.extend(a.outbox.deferred);
        s.outbox.failed.extend(a.outbox.failed);
    }
    Ok(s)
}

/// Log what a pass did: `always`, or when something happened.
fn log_summary(s: &run::RunSummary, always: bool) {
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
    // A polling loop says something only when something happened.
    let eventful = s.processed > 0
        || s.unreadable > 0
        || !s.outbox.sent.is_empty()
        || !s.outbox.deferred.is_empty()
        || !s.outbox.failed.is_empty();
    if always || eventful {
        tracing::info!(
            "{} processed, {} already done, {} plugin error(s), {} unreadable{store_failures}; outbox: {} sent, {} deferred, {} failed",
            s.processed,
            s.skipped,
            s.plugin_failures,
            s.unreadable,
            s.outbox.sent.len(),
            s.outbox.deferred.len(),
            s.outbox.failed.len()
        );
    }
}
