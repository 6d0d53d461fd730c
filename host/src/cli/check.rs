//! `mailpipe check -c CONFIG [--connect]`: is this config ready to run? Why it exists beside
//! the config parser: a config can be valid TOML with every plugin loading and still fail on
//! every message (a typo in a plugin's own table only the plugin knows about). So what each
//! plugin says of its configuration when loaded (`check-config`, contract 0.2) is reported,
//! and each plugin is also called once on a sample message, with nothing kept of the call;
//! both against the key's line in the TOML file.

use std::process::ExitCode;
use std::sync::Arc;

use mailpipe::config::{at_key, Config, PluginLines};
use mailpipe::message::Email;
use mailpipe::plugin::readable::Readable;
use mailpipe::plugin::{CallFailure, Clock};
use mailpipe::run;
use mailpipe::state::Store;

/// The message every plugin is tried on (also the sample `mailpipe new` projects ship).
const SAMPLE: &[u8] = include_bytes!("../../../plugins/templates/sample.eml");

pub async fn run(config: &std::path::Path, connect: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let store = Arc::new(Store::open_config(&config.state, &config.state_dir)?);
    let pipeline =
        run::build_pipeline_unchecked(&config, Some(store.clone()), Clock::System).await?;
    let problems = run::config_problems(&config, &pipeline);
    for problem in &problems {
        println!("{problem}");
    }
    // What went wrong, by kind, for the last line.
    let mut kinds: Vec<&str> = Vec::new();
    if !problems.is_empty() {
        kinds.push("plugins refused their configuration");
    }
    let mut failed = !problems.is_empty();
    // Every account file (and row of the accounts table) too: one that cannot be used is
    // named with its line.
    let rows = run::account_rows(&config, &store)?;
    let (files, errors) = config.account_files_and_rows(&rows);
    for e in &errors {
        println!("{e}");
    }
    failed |= !errors.is_empty();
    if !errors.is_empty() {
        kinds.insert(0, "account files cannot be used");
    }
    let mut sample_failed = false;
    // Each plugin alone, so one that stops or discards does not hide the next one's problem.
    let msg = Arc::new(Readable::new(Email::new(SAMPLE.to_vec(), "INBOX", vec![])));
    for plugin in &pipeline.plugins {
        if !plugin.config_problems.is_empty() {
            continue; // said above; it would not be run
        }
        // The store is read (as in a run) but the call's writes are dropped with its result.
        let call = pipeline
            .runtime
            .call(plugin, &msg, Some(store.clone()), Clock::System)
            .await;
        if let Err(failure) = call.outcome {
            failed = true;
            sample_failed = true;
            let lines = config.plugin_lines.get(&*plugin.name);
            println!("{}", problem(&config.file, &plugin.name, lines, &failure));
        }
    }
    if failed {
        if sample_failed {
            kinds.push("plugins failed on a sample message");
        }
        println!("{}: {} (above)", config.file.display(), kinds.join(", "));
        return Ok(ExitCode::from(1));
    }
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
    print!("{}", run::describe_plugins(&pipeline));
    if let Some(dir) = &config.accounts_settings.dir {
        let n = files.iter().filter(|f| f.path.starts_with(dir)).count();
        println!("  {n} account file(s) in {}", dir.display());
    }
    if config.accounts_settings.table {
        let n = files.len()
            - files
                .iter()
                .filter(|f| {
                    config
                        .accounts_settings
                        .dir
                        .as_ref()
                        .is_some_and(|d| f.path.starts_with(d))
                })
                .count();
        println!("  {n} account(s) in the accounts table of the state store");
    }
    // Mail at delivery time: where each account's mail goes, and whether it can be written
    // there (as the user running this; `deliver` runs as the mail server's delivery user).
    if let Some(l) = &config.lmtp {
        println!("  LMTP server: {}", describe_listen(&l.listen));
    }
    for a in config
        .accounts
        .iter()
        .chain(files.iter().map(|f| &f.account))
    {
        let Some(d) = &a.deliver else { continue };
        let ready = match d {
            mailpipe::config::DeliverTarget::Maildir { maildir, .. } => writable_dir(maildir),
            // Reached with --connect (the server's login is probed there).
            mailpipe::config::DeliverTarget::Imap(_) => Ok(()),
        };
        match ready {
            Ok(()) => println!(
                "  account {}: mail to {} delivered into {}",
                a.name,
                a.recipients.join(", "),
                d.describe()
            ),
            Err(why) => {
                failed = true;
                println!("  account {}: FAILED: {why}", a.name);
            }
        }
    }
    if connect {
        for (name, result) in run::probe_accounts(&config, &rows).await {
            match result {
                Ok(what) => println!("  account {name}: {what}"),
                Err(e) => {
                    failed = true;
                    println!("  account {name}: FAILED: {e}");
                }
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `[lmtp] listen` as the config writes it.
fn describe_listen(listen: &mailpipe::config::LmtpListen) -> String {
    match listen {
        mailpipe::config::LmtpListen::Tcp(a) => a.to_string(),
        mailpipe::config::LmtpListen::Unix(p) => format!("unix:{}", p.display()),
    }
}

/// Whether a Maildir can be written at `dir`: it, or the nearest directory above it that
/// exists (where it would be made), is a directory this user may write into.
fn writable_dir(dir: &std::path::Path) -> Result<(), String> {
    let existing = dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(std::path::Path::new("/"));
    if !existing.is_dir() {
        return Err(format!(
            "{} is not a directory (the Maildir {} cannot be made)",
            existing.display(),
            dir.display()
        ));
    }
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(existing.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: access only reads the NUL-terminated path.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
        return Err(format!(
            "{} cannot be written by this user ({}), so the Maildir {} cannot be delivered into",
            existing.display(),
            std::io::Error::last_os_error(),
            dir.display()
        ));
    }
    Ok(())
}

/// `FILE:LINE: plugin NAME: ...`: at the line of the config key the plugin's error names,
/// else at the plugin's `name`.
fn problem(
    file: &std::path::Path,
    plugin: &str,
    lines: Option<&PluginLines>,
    failure: &CallFailure,
) -> String {
    let text = match failure {
        CallFailure::Returned(text) => without_json_position(text),
        other => format!("fails on a sample message: {other}"),
    };
    at_key(file, plugin, lines, named_key(&text).as_deref(), &text)
}

/// The config key a plugin's error is about, in the words JSON libraries and our templates
/// use: "unknown field `x`", "missing field `x`", "unknown key `x`", "`x` must be ...".
fn named_key(text: &str) -> Option<String> {
    for marker in [
        "unknown field `",
        "missing field `",
        "unknown key `",
        "key `",
    ] {
        if let Some(rest) = text.split(marker).nth(1) {
            return rest.split('`').next().map(str::to_string);
        }
    }
    None
}

/// serde_json's " at line 1 column 11" points into the JSON the host generated from the TOML
/// table, which the user never saw: the TOML line is given instead.
fn without_json_position(text: &str) -> String {
    match text.rfind(" at line ") {
        Some(i) if text[i..].contains(" column ") => text[..i].to_string(),
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::Path;

    #[test]
    fn a_refused_key_is_reported_at_its_toml_line() {
        let lines = PluginLines {
            name: 10,
            config_keys: BTreeMap::from([("adresses".to_string(), 14)]),
        };
        let failure = CallFailure::Returned(
            "invalid plugin configuration: unknown field `adresses`, expected one of \
             `addresses`, `body` at line 1 column 11"
                .into(),
        );
        assert_eq!(
            problem(Path::new("m.toml"), "vacation", Some(&lines), &failure),
            "m.toml:14: plugin vacation: `adresses`: invalid plugin configuration: unknown \
             field `adresses`, expected one of `addresses`, `body`"
        );
        // A missing key has no line of its own: the plugin's name.
        let missing = CallFailure::Returned("missing field `body`".into());
        assert!(
            problem(Path::new("m.toml"), "vacation", Some(&lines), &missing)
                .starts_with("m.toml:10: plugin vacation: `body`")
        );
        // Nested keys point at their top-level key.
        assert_eq!(lines.of_key("adresses[2].x"), 14);
    }

    #[test]
    fn other_failures_are_said_at_the_plugin() {
        let lines = PluginLines {
            name: 3,
            config_keys: BTreeMap::new(),
        };
        let text = problem(
            Path::new("m.toml"),
            "slow",
            Some(&lines),
            &CallFailure::Timeout(1000),
        );
        assert_eq!(
            text,
            "m.toml:3: plugin slow: fails on a sample message: timed out after 1000 ms"
        );
    }
}
