//! Why this file exists: when a plugin dies, the useful words are the guest's own (a Python
//! exception with its traceback, a Rust panic with its file and line), but they arrive split
//! between the guest's stderr and wasmtime's trap with its raw backtrace of mangled symbols.
//! This turns both into one short, readable text for `run`'s warning, `test` and `--json`.

use wasmtime::{Trap, WasmBacktrace};

/// Frames of a traceback or backtrace kept in the text (the innermost ones).
const MAX_FRAMES: usize = 4;

/// The readable reason for a trapped call: what the guest's runtime printed (when it printed
/// something recognisable), else the trap and where in the guest it happened.
pub fn describe_trap(error: &wasmtime::Error, stderr: Option<&str>) -> String {
    if let Some(said) = stderr.and_then(guest_said) {
        return said;
    }
    let what = match error.downcast_ref::<Trap>() {
        Some(trap) => trap
            .to_string()
            .trim_start_matches("wasm trap: ")
            .to_string(),
        None => error
            .chain()
            .last()
            .map(|e| e.to_string())
            .unwrap_or_default(),
    };
    let frames = error
        .downcast_ref::<WasmBacktrace>()
        .map(|bt| {
            bt.frames()
                .iter()
                .filter_map(|f| f.func_name().map(demangle))
                .filter(|name| !is_runtime_frame(name))
                .take(MAX_FRAMES)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let mut text = what;
    if !frames.is_empty() {
        text.push_str(&format!(" (in {})", frames.join(" ← ")));
    }
    if let Some(tail) = stderr.map(last_lines).filter(|t| !t.is_empty()) {
        text.push_str(&format!("; stderr: {tail}"));
    }
    text
}

/// What a guest language's runtime said when it died: a Python traceback's exception and
/// frames, or a Rust panic's message and place. None when stderr holds neither.
pub fn guest_said(stderr: &str) -> Option<String> {
    python_exception(stderr).or_else(|| rust_panic(stderr))
}

/// `AttributeError: ... (traceback: app.py:9 in on_message → app.py:12 in helper)` from
/// the last traceback in `stderr`.
fn python_exception(stderr: &str) -> Option<String> {
    let start = stderr.rfind("Traceback (most recent call last):")?;
    let mut frames = Vec::new();
    let mut exception = None;
    for line in stderr[start..].lines().skip(1) {
        if let Some(frame) = line.trim_start().strip_prefix("File \"") {
            // File "/0/app.py", line 12, in helper
            let (file, rest) = frame.split_once('"')?;
            let line_no = rest
                .split("line ")
                .nth(1)
                .and_then(|r| r.split(',').next())
                .unwrap_or("?");
            let func = rest.split(", in ").nth(1).unwrap_or("?");
            frames.push(format!("{}:{line_no} in {func}", guest_path(file)));
        } else if !line.starts_with(' ') && !line.trim().is_empty() {
            exception = Some(line.trim().to_string());
            break;
        }
    }
    let exception = exception?;
    let skip = frames.len().saturating_sub(MAX_FRAMES);
    Some(if frames.is_empty() {
        exception
    } else {
        format!("{exception} (traceback: {})", frames[skip..].join(" → "))
    })
}

/// `panicked at src/lib.rs:18:9: the message` from a Rust panic report in `stderr`; a
/// panic of a language runtime about an exception it already reported is not the reason.
fn rust_panic(stderr: &str) -> Option<String> {
    let start = stderr.rfind("panicked at ")?;
    let report = &stderr[start..];
    let (place, rest) = report.split_once('\n')?;
    let place = place.trim_end_matches(':');
    let message: Vec<&str> = rest
        .lines()
        .take_while(|l| !l.starts_with("note: run with `RUST_BACKTRACE"))
        .filter(|l| !l.trim().is_empty())
        .collect();
    Some(format!("{place}: {}", message.join(" / ")))
}

/// The last few non-empty lines of stderr, on one line.
fn last_lines(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" / ")
}

/// A guest file name without the mount prefix its toolchain gave it (componentize-py's `/0/`).
fn guest_path(file: &str) -> &str {
    match file.strip_prefix('/').and_then(|r| r.split_once('/')) {
        Some((n, rest)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => rest,
        _ => file,
    }
}

/// A frame's function name as its author wrote it: Rust symbols demangled, without the hash.
fn demangle(name: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(name))
}

/// Frames of the language runtime's own abort path, which say nothing about the plugin.
fn is_runtime_frame(name: &str) -> bool {
    name == "abort"
        || name.starts_with("std::sys::")
        || name.starts_with("std::panicking::")
        || name.starts_with("core::panicking::")
        || name.starts_with("__rust")
        || name.starts_with("rust_panic")
        // the glue a bindings generator wraps around an export
        || name.contains("::_export_")
}

#[cfg(test)]
mod tests {
    use super::*;

    // stderr of a componentize-py plugin whose on_message raised (captured from a real run).
    const PYTHON: &str = "Traceback (most recent call last):\n  File \"/0/app.py\", line 9, in on_message\n  File \"/0/app.py\", line 12, in helper\nAttributeError: 'Message' object has no attribute 'no_such_field'\n\nthread '<unnamed>' (1) panicked at runtime/src/lib.rs:1293:29:\nPython function threw an unexpected exception\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
    // stderr of a Rust plugin that panicked.
    const RUST: &str = "\nthread '<unnamed>' (1) panicked at plugins/misbehaving/trap/src/lib.rs:18:9:\nmisbehave-trap: deliberate panic\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";

    #[test]
    fn python_exception_with_its_traceback() {
        assert_eq!(
            guest_said(PYTHON).unwrap(),
            "AttributeError: 'Message' object has no attribute 'no_such_field' \
             (traceback: app.py:9 in on_message → app.py:12 in helper)"
        );
    }

    #[test]
    fn rust_panic_with_its_place() {
        assert_eq!(
            guest_said(RUST).unwrap(),
            "panicked at plugins/misbehaving/trap/src/lib.rs:18:9: misbehave-trap: deliberate panic"
        );
    }

    #[test]
    fn long_tracebacks_keep_the_innermost_frames() {
        let mut s = String::from("Traceback (most recent call last):\n");
        for i in 1..=9 {
            s.push_str(&format!(
                "  File \"/0/app.py\", line {i}, in f{i}\n    code\n"
            ));
        }
        s.push_str("ValueError: bad\n");
        let said = guest_said(&s).unwrap();
        assert!(
            said.starts_with("ValueError: bad (traceback: app.py:6 in f6 → "),
            "{said}"
        );
        assert!(said.ends_with("app.py:9 in f9)"), "{said}");
    }

    #[test]
    fn plain_output_is_not_a_reason() {
        assert_eq!(guest_said("some debug print\nanother\n"), None);
        assert_eq!(last_lines("a\n\nb\nc\nd\n"), "b / c / d");
    }

    #[test]
    fn symbols_are_demangled_and_runtime_frames_dropped() {
        let name = demangle("_RNvNtNtNtNtCshXfaRvt2tfW_3std3sys3pal4wasi7helpers14abort_internal");
        assert_eq!(name, "std::sys::pal::wasi::helpers::abort_internal");
        assert!(is_runtime_frame(&name));
        assert_eq!(demangle("tag_header"), "tag_header");
        assert_eq!(guest_path("/0/app.py"), "app.py");
        assert_eq!(
            guest_path("/lib/python3.12/json/decoder.py"),
            "/lib/python3.12/json/decoder.py"
        );
    }
}
