//! Why this file exists: `mailpipe sieve`, the command line over each account's Sieve scripts
//! in the state store (issue 23): bring the scripts from an old server in one step
//! (`import --activate`), take them out again (`export`), and list, activate, rename and
//! delete them, with the same rules a ManageSieve client meets (names, quotas, the active
//! script cannot be deleted). A script is compiled before it is stored: one that the
//! interpreter refuses is not stored, and the error names its line and column.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use mailpipe::config::{sieve, Config};
use mailpipe::state::scripts::{self, ScriptLimits};
use mailpipe::state::Store;

#[derive(clap::Subcommand)]
pub enum SieveCommand {
    /// List an account's scripts: name, size, version, and which one is active.
    List {
        #[arg(short, long)]
        config: PathBuf,
        account: String,
    },
    /// Store a script file for an account (checked first; a script of that name is replaced).
    Import {
        #[arg(short, long)]
        config: PathBuf,
        account: String,
        file: PathBuf,
        /// The script's name (default: the file name without `.sieve`).
        #[arg(long)]
        name: Option<String>,
        /// Make it the account's active script.
        #[arg(long)]
        activate: bool,
    },
    /// Print a script (default: the active one).
    Export {
        #[arg(short, long)]
        config: PathBuf,
        account: String,
        name: Option<String>,
        /// Write into this file instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Make a script the active one, or none with `--none`.
    Activate {
        #[arg(short, long)]
        config: PathBuf,
        account: String,
        #[arg(required_unless_present = "none")]
        name: Option<String>,
        #[arg(long, conflicts_with = "name")]
        none: bool,
    },
    /// Rename a script (the active one stays active).
    Rename {
        #[arg(short, long)]
        config: PathBuf,
        account: String,
        from: String,
        to: String,
    },
    /// Delete a script that is not the active one.
    Delete {
        #[arg(short, long)]
        config: PathBuf,
        account: String,
        name: String,
    },
}

pub fn run(cmd: SieveCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SieveCommand::List { config, account } => {
            let (_, store) = open(&config, &account)?;
            let set = scripts::list(&store, &account)?;
            if set.scripts.is_empty() {
                eprintln!("account {account} has no Sieve scripts (add one: mailpipe sieve import -c {} {account} FILE --activate)", config.display());
            }
            let mut out = std::io::stdout().lock();
            for s in &set.scripts {
                let active = if s.active { "  active" } else { "" };
                let _ = writeln!(
                    out,
                    "{}  {} bytes  version {}{active}",
                    s.name,
                    s.text.len(),
                    s.version
                );
            }
        }
        SieveCommand::Import {
            config,
            account,
            file,
            name,
            activate,
        } => {
            let (cfg, store) = open(&config, &account)?;
            let limits = ScriptLimits::of(&cfg);
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {} as UTF-8 text", file.display()))?;
            let name = match name {
                Some(n) => n,
                None => file
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            };
            scripts::have_space(&store, &account, &name, text.len(), &limits)?;
            let personal = scripts::list(&store, &account)?.others(&name);
            sieve::check_script(
                &name,
                &text,
                &personal,
                &sieve::account_global_includes(&cfg),
            )
            .map_err(|e| anyhow::anyhow!("the script is not stored: {e}"))?;
            let version = scripts::put(&store, &account, &name, &text, &limits)?;
            if activate {
                scripts::set_active(&store, &account, Some(&name))?;
            }
            eprintln!(
                "stored {name} ({} bytes, version {version}) for account {account}{}",
                text.len(),
                if activate { ", active" } else { "" }
            );
        }
        SieveCommand::Export {
            config,
            account,
            name,
            output,
        } => {
            let (_, store) = open(&config, &account)?;
            let set = scripts::list(&store, &account)?;
            let script = match &name {
                Some(n) => set.get(n).with_context(|| format!("account {account} has no script named {n:?}"))?,
                None => set.active().with_context(|| {
                    format!("account {account} has no active script; name one (mailpipe sieve list -c {} {account})", config.display())
                })?,
            };
            match output {
                Some(path) => std::fs::write(&path, &script.text)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => {
                    let mut out = std::io::stdout().lock();
                    // A closed pipe (`| head`) ends the output, not the program.
                    let _ = out
                        .write_all(script.text.as_bytes())
                        .and_then(|_| out.flush());
                }
            }
        }
        SieveCommand::Activate {
            config,
            account,
            name,
            none,
        } => {
            let (_, store) = open(&config, &account)?;
            let name = if none { None } else { name };
            scripts::set_active(&store, &account, name.as_deref())?;
            match name {
                Some(n) => eprintln!("{n} is now the active script of account {account}"),
                None => eprintln!("account {account} has no active script now"),
            }
        }
        SieveCommand::Rename {
            config,
            account,
            from,
            to,
        } => {
            let (_, store) = open(&config, &account)?;
            scripts::rename(&store, &account, &from, &to)?;
            eprintln!("renamed {from} to {to} (account {account})");
        }
        SieveCommand::Delete {
            config,
            account,
            name,
        } => {
            let (_, store) = open(&config, &account)?;
            scripts::delete(&store, &account, &name)?;
            eprintln!("deleted {name} (account {account})");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The configuration and its state store, for an account the configuration names.
fn open(path: &Path, account: &str) -> anyhow::Result<(Config, Store)> {
    let config = Config::load(path)?;
    if !config.accounts_settings.table && !config.accounts.iter().any(|a| a.name == account) {
        let names: Vec<&str> = config.accounts.iter().map(|a| a.name.as_str()).collect();
        bail!(
            "{} has no account named {account:?} (accounts: {})",
            path.display(),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        );
    }
    let store = Store::open_config(&config.state, &config.state_dir).with_context(|| {
        format!(
            "cannot open the state store in {} (is a mailpipe daemon using it? stop it, or use ManageSieve)",
            config.state.place(&config.state_dir)
        )
    })?;
    Ok((config, store))
}
