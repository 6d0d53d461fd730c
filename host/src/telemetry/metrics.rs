//! Metrics for `mailpipe run --metrics 127.0.0.1:PORT`: counters, gauges and histograms kept
//! in one process-wide registry, served as Prometheus text on `/metrics`, with a health check
//! on `/healthz` (200 while every account's last pass succeeded, 503 with the reasons
//! otherwise). The stages record into it (`record_decision`, `inc`, `set`); nothing is kept
//! unless the registry is in use, and it never affects mail handling.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::pipeline::{Decision, PluginStatus};

/// Upper bounds of the plugin call latency histogram, in seconds.
const BUCKETS: [f64; 10] = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Registry {
    counters: BTreeMap<(&'static str, Labels), f64>,
    gauges: BTreeMap<(&'static str, Labels), f64>,
    histograms: BTreeMap<(&'static str, Labels), ([u64; BUCKETS.len()], u64, f64)>,
    help: BTreeMap<&'static str, &'static str>,
    /// Per account: None while healthy, else why not.
    health: BTreeMap<String, Option<String>>,
}

/// Whether anything is recorded: only once `serve` runs (`run --metrics`).
static ENABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn on() -> bool {
    ENABLED.load(std::sync::atomic::Ordering::Relaxed)
}

fn registry() -> &'static Mutex<Registry> {
    static R: OnceLock<Mutex<Registry>> = OnceLock::new();
    R.get_or_init(Default::default)
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

/// Add `by` to a counter.
pub fn inc(name: &'static str, help: &'static str, pairs: &[(&'static str, &str)], by: f64) {
    if !on() {
        return;
    }
    let mut r = registry().lock().expect("not poisoned");
    r.help.insert(name, help);
    *r.counters.entry((name, labels(pairs))).or_default() += by;
}

/// Set a gauge.
pub fn set(name: &'static str, help: &'static str, pairs: &[(&'static str, &str)], value: f64) {
    if !on() {
        return;
    }
    let mut r = registry().lock().expect("not poisoned");
    r.help.insert(name, help);
    r.gauges.insert((name, labels(pairs)), value);
}

/// Record one observation (seconds) in a histogram.
pub fn observe(name: &'static str, help: &'static str, pairs: &[(&'static str, &str)], secs: f64) {
    if !on() {
        return;
    }
    let mut r = registry().lock().expect("not poisoned");
    r.help.insert(name, help);
    let h = r.histograms.entry((name, labels(pairs))).or_default();
    for (i, bound) in BUCKETS.iter().enumerate() {
        if secs <= *bound {
            h.0[i] += 1;
        }
    }
    h.1 += 1;
    h.2 += secs;
}

/// An account's pass finished: healthy (None) or not (the error).
pub fn account_health(account: &str, problem: Option<String>) {
    if !on() {
        return;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    if problem.is_none() {
        set(
            "mailpipe_last_successful_pass_timestamp_seconds",
            "When an account's last pass succeeded (Unix time).",
            &[("account", account)],
            now,
        );
    }
    registry()
        .lock()
        .expect("not poisoned")
        .health
        .insert(account.to_string(), problem);
}

/// Count a decided message and its plugins' calls and failures.
pub fn record_decision(account: &str, d: &Decision) {
    if !on() {
        return;
    }
    inc(
        "mailpipe_messages_processed_total",
        "Messages decided.",
        &[("account", account)],
        1.0,
    );
    for r in &d.reports {
        if matches!(r.status, PluginStatus::Skipped) {
            continue;
        }
        observe(
            "mailpipe_plugin_call_seconds",
            "Time of one plugin call.",
            &[("plugin", &r.plugin)],
            r.elapsed_us as f64 / 1e6,
        );
        if matches!(r.status, PluginStatus::Failed { .. }) {
            inc(
                "mailpipe_plugin_failures_total",
                "Plugin calls that failed (their actions were discarded).",
                &[("account", account), ("plugin", &r.plugin)],
                1.0,
            );
        }
    }
    if d.failed_plugins().count() > 0 {
        inc(
            "mailpipe_messages_failed_total",
            "Messages on which at least one plugin failed.",
            &[("account", account)],
            1.0,
        );
    }
}

/// Count what one flush of the outbox did, and how much is still queued.
pub fn record_flush(store: &crate::state::Store, r: &crate::sink::outbox::FlushReport) {
    if !on() {
        return;
    }
    for (name, help, n) in [
        (
            "mailpipe_outbox_sent_total",
            "Outgoing messages the SMTP server (or outbox folder) took.",
            r.sent.len(),
        ),
        (
            "mailpipe_outbox_retries_total",
            "Sending attempts that failed for now and will be tried again.",
            r.deferred.len(),
        ),
        (
            "mailpipe_outbox_failed_total",
            "Outgoing messages refused for good.",
            r.failed.len(),
        ),
    ] {
        inc(name, help, &[], n as f64);
    }
    if let Ok(q) = store.outbox_pending() {
        set(
            "mailpipe_outbox_queued",
            "Outgoing messages waiting to be sent.",
            &[],
            q.len() as f64,
        );
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn label_text(l: &Labels, extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = l
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// The registry in Prometheus' text format.
pub fn render() -> String {
    let r = registry().lock().expect("not poisoned");
    let mut out = String::new();
    let mut typed = std::collections::BTreeSet::new();
    let mut head = |out: &mut String, name: &'static str, kind: &str| {
        if typed.insert(name) {
            let _ = writeln!(out, "# HELP {name} {}", r.help.get(name).unwrap_or(&""));
            let _ = writeln!(out, "# TYPE {name} {kind}");
        }
    };
    for ((name, l), v) in &r.counters {
        head(&mut out, name, "counter");
        let _ = writeln!(out, "{name}{} {v}", label_text(l, None));
    }
    for ((name, l), v) in &r.gauges {
        head(&mut out, name, "gauge");
        let _ = writeln!(out, "{name}{} {v}", label_text(l, None));
    }
    for ((name, l), (buckets, count, sum)) in &r.histograms {
        head(&mut out, name, "histogram");
        for (bound, n) in BUCKETS.iter().zip(buckets) {
            let _ = writeln!(
                out,
                "{name}_bucket{} {n}",
                label_text(l, Some(("le", bound.to_string())))
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{} {count}",
            label_text(l, Some(("le", "+Inf".into())))
        );
        let _ = writeln!(out, "{name}_sum{} {sum}", label_text(l, None));
        let _ = writeln!(out, "{name}_count{} {count}", label_text(l, None));
    }
    out
}

/// The health check: Ok while no account's last pass failed, else the reasons.
pub fn health() -> Result<(), String> {
    let r = registry().lock().expect("not poisoned");
    let bad: Vec<String> = r
        .health
        .iter()
        .filter_map(|(a, p)| p.as_ref().map(|p| format!("{a}: {p}")))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad.join("\n"))
    }
}

/// Serve `/metrics` and `/healthz` on `addr` (loopback unless the user says otherwise)
/// until the process ends.
pub async fn serve(listener: tokio::net::TcpListener) {
    ENABLED.store(true, std::sync::atomic::Ordering::Relaxed);
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            // The request head may come in several pieces: read until its blank line (or
            // 2 KiB, or 5 s), or the path may be cut off.
            let mut buf = [0u8; 2048];
            let mut n = 0;
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
            while n < buf.len() && !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                match tokio::time::timeout_at(deadline, stream.read(&mut buf[n..])).await {
                    Ok(Ok(0)) => break,
                    Ok(Ok(got)) => n += got,
                    _ => return,
                }
            }
            let head = String::from_utf8_lossy(&buf[..n]);
            let path = head.split_whitespace().nth(1).unwrap_or("/");
            let (status, body, kind) = match path {
                "/metrics" => ("200 OK", render(), "text/plain; version=0.0.4"),
                "/healthz" => match health() {
                    Ok(()) => ("200 OK", "ok\n".to_string(), "text/plain"),
                    Err(why) => ("503 Service Unavailable", format!("{why}\n"), "text/plain"),
                },
                _ => (
                    "404 Not Found",
                    "/metrics or /healthz\n".into(),
                    "text/plain",
                ),
            };
            let reply = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text() {
        ENABLED.store(true, std::sync::atomic::Ordering::Relaxed);
        inc("t_total", "A test counter.", &[("account", "a\"b")], 2.0);
        observe("t_seconds", "A test histogram.", &[("plugin", "p")], 0.003);
        set("t_gauge", "A test gauge.", &[], 7.0);
        let text = render();
        assert!(
            text.contains("# TYPE t_total counter\nt_total{account=\"a\\\"b\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_bucket{plugin=\"p\",le=\"0.001\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_bucket{plugin=\"p\",le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("t_seconds_count{plugin=\"p\"} 1\n"), "{text}");
        assert!(text.contains("t_gauge 7\n"), "{text}");
        account_health("x", Some("login failed".into()));
        assert!(health().unwrap_err().contains("x: login failed"));
        account_health("x", None);
        assert!(health().is_ok());
    }
}
