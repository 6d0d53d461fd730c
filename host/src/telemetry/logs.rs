//! Log setup: levels (`-v`, `-q`, `--log-level`, or `RUST_LOG` / `MAILPIPE_LOG` with
//! tracing's filter syntax), timestamps, and text or JSON lines (`--log-format json`) on
//! standard error. Standard output stays for results (`--json` decisions, reports).

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event: time, level, message, fields.
    #[default]
    Text,
    /// One JSON object per event, for log collectors.
    Json,
}

/// Install the global subscriber. `verbosity`: -q is -1, -v is 1, -vv is 2.
pub fn init(verbosity: i8, level: Option<&str>, format: LogFormat) -> Result<(), String> {
    // MAILPIPE_DEBUG=1, from before there were levels, means -v.
    let verbosity = if verbosity == 0 && std::env::var_os("MAILPIPE_DEBUG").is_some() {
        1
    } else {
        verbosity
    };
    let default = match verbosity {
        i8::MIN..=-1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    // A plain level applies to mailpipe (other crates, wasmtime and cranelift, speak up at
    // warn and above); a full filter ("mailpipe=debug,wasmtime=info") is taken as it is.
    let directive = |level: &str| {
        if level.contains(['=', ',']) {
            level.to_string()
        } else {
            format!("warn,mailpipe={level}")
        }
    };
    let filter = match level {
        Some(l) => {
            EnvFilter::try_new(directive(l)).map_err(|e| format!("--log-level {l:?}: {e}"))?
        }
        None => match std::env::var("MAILPIPE_LOG").or_else(|_| std::env::var("RUST_LOG")) {
            Ok(spec) if verbosity == 0 && !spec.trim().is_empty() => EnvFilter::try_new(&spec)
                .map_err(|e| format!("RUST_LOG / MAILPIPE_LOG {spec:?}: {e}"))?,
            _ => EnvFilter::new(directive(default)),
        },
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let installed = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.map_err(|e| e.to_string())
}
