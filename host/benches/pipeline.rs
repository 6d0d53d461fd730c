//! The offline pipeline benchmark of docs/BENCHMARKS.md (issue 5): the deterministic corpus of
//! bench/corpus.py (10,000 messages by default) through rules-filer + auto-responder +
//! subject-tagger (Rust), and the same with the JavaScript rules filer, on one core (a
//! current-thread runtime), with the time split by stage: parsing, conversion into the WIT
//! record, plugin calls, action application, and the state commit. A no-op plugin measures
//! what the host adds to every plugin call. Several rounds after a warm-up; medians.
//!
//! Run: `bash bench/offline.sh` (builds the plugins and the corpus, then this), or
//! `MAILPIPE_BENCH_CORPUS=DIR cargo bench --bench pipeline` with a corpus already made.
//! Env: MAILPIPE_BENCH_ROUNDS (default 3), MAILPIPE_BENCH_LIMIT (use the first N messages).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailpipe::config::RecipientPattern;
use mailpipe::config::{Identity, PluginConfig};
use mailpipe::message::{view, Email};
use mailpipe::model::message::Needs;
use mailpipe::pipeline::commit_for;
use mailpipe::pipeline::{adhoc_plugin_config, parallel, Pipeline};
use mailpipe::plugin::readable::Readable;
use mailpipe::plugin::{Clock, PluginRuntime};
use mailpipe::state::Store;
use serde_json::json;

fn plugin(root: &Path, name: &str, config: serde_json::Value) -> PluginConfig {
    let path = root.join("target/plugins").join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} missing: run scripts/build-plugins.sh",
        path.display()
    );
    let mut p = adhoc_plugin_config(&path, config, vec![RecipientPattern::Sender])
        .expect("a plugin config");
    p.name = name.into();
    p
}

/// A 50-rule script in the shape Roundcube's managesieve plugin writes (one `# rule:[...]`
/// comment and one `if` each: subjects, senders, lists, flags), the last three filing the
/// corpus's lists as `filer` does; for the built-in Sieve interpreter.
fn sieve_50(root: &Path) -> PluginConfig {
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("roundcube-50.sieve");
    let mut s = String::from(
        "require [\"fileinto\",\"imap4flags\",\"relational\",\"comparator-i;ascii-numeric\"];\n",
    );
    for i in 0..47 {
        let rule = match i % 4 {
            0 => format!("if header :contains \"subject\" \"project-{i}\"\n{{\n\tfileinto \"Projects/P{i}\";\n\tstop;\n}}\n"),
            1 => format!("if address :is \"from\" [\"person{i}@partner{i}.example\", \"other{i}@partner{i}.example\"]\n{{\n\taddflag \"\\\\Flagged\";\n\tfileinto \"Partners/{i}\";\n}}\n"),
            2 => format!("if allof (header :contains \"list-id\" \"list{i}.example.org\", not header :contains \"subject\" \"urgent\")\n{{\n\tfileinto \"Lists/L{i}\";\n\tstop;\n}}\n"),
            _ => format!("if anyof (header :matches \"subject\" \"*[ticket-{i}]*\", address :domain :is \"from\" \"vendor{i}.example\")\n{{\n\tfileinto \"Tickets/{i}\";\n}}\n"),
        };
        s.push_str(&format!("# rule:[rule {i}]\n{rule}"));
    }
    for (f, id) in [
        ("Lists/A", "rust-users.lists.example.org"),
        ("Lists/B", "dev.mailpipe.example.net"),
        ("Lists/C", "ankuendigungen.gruppe.example.de"),
    ] {
        s.push_str(&format!("# rule:[{f}]\nif header :contains \"List-Id\" \"{id}\"\n{{\n\tfileinto \"{f}\";\n\tstop;\n}}\n"));
    }
    std::fs::write(&path, s).unwrap();
    let mut p = adhoc_plugin_config(&path, json!({}), vec![RecipientPattern::Sender])
        .expect("the Sieve script");
    p.name = "sieve-50".into();
    p
}

/// The filing rules of the peer benchmark (bench/bench.py), for the Rust and the JS filer.
fn filer(root: &Path, js: bool) -> PluginConfig {
    let lists = [
        ("Lists/A", "rust-users.lists.example.org"),
        ("Lists/B", "dev.mailpipe.example.net"),
        ("Lists/C", "ankuendigungen.gruppe.example.de"),
    ];
    if js {
        let mut rules: Vec<_> = lists
            .iter()
            .map(|(f, id)| json!({"name": f, "folder": f, "header": "List-Id", "contains": id}))
            .collect();
        rules.push(
            json!({"name": "boss", "flags": ["\\Flagged"], "from": "*dana.boss@corp.example*"}),
        );
        return plugin(root, "rules-filer-js", json!({ "rules": rules }));
    }
    let mut rules: Vec<_> = lists
        .iter()
        .map(|(f, id)| {
            json!({"name": f, "folder": f,
                   "conditions": [{"header": "List-Id", "op": "contains", "value": id}]})
        })
        .collect();
    rules.push(json!({"name": "boss", "flags": ["\\Flagged"],
        "conditions": [{"address": "from", "op": "contains", "value": "dana.boss@corp.example"}]}));
    plugin(root, "rules-filer", json!({ "rules": rules }))
}

fn responder(root: &Path) -> PluginConfig {
    plugin(
        root,
        "auto-responder",
        json!({"addresses": ["alice@example.test"], "days": 7,
               "subject": "Away", "body": "I am away until Monday."}),
    )
}

fn tagger(root: &Path) -> PluginConfig {
    plugin(
        root,
        "subject-tagger",
        json!({"tag": "[EXT]", "when_from_not": ["*@example.test"]}),
    )
}

fn corpus(root: &Path) -> Vec<Email> {
    let dir = std::env::var_os("MAILPIPE_BENCH_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/bench/corpus-10000-seed5"));
    assert!(
        dir.join("manifest.json").is_file(),
        "no corpus in {}: run bench/offline.sh (or python3 bench/corpus.py 10000 DIR)",
        dir.display()
    );
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    names.sort();
    if let Some(n) = std::env::var("MAILPIPE_BENCH_LIMIT")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        names.truncate(n);
    }
    names
        .iter()
        .map(|p| Email::new(std::fs::read(p).unwrap(), "INBOX", vec![]))
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p) as usize]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Per-round sums, in µs.
#[derive(Default, Clone, Copy)]
struct Stages {
    parse: f64,
    convert: f64,
    plugins: f64,
    apply: f64,
    commit: f64,
    total: f64,
    /// Each plugin's calls, in pipeline order.
    per_plugin: [f64; 3],
}

async fn pipeline_of(plugins: Vec<PluginConfig>, store: Arc<Store>) -> Pipeline {
    let runtime = PluginRuntime::new(64, None).unwrap();
    let mut loaded = Vec::new();
    for p in &plugins {
        loaded.push(runtime.load(p, Some(store.clone())).await.unwrap());
    }
    Pipeline {
        runtime,
        plugins: loaded,
        identity: Identity {
            address: "alice@example.test".into(),
            name: Some("Alice".into()),
        },
        limits: Default::default(),
        store: Some(store),
        clock: Clock::Fixed(1_800_000_000_000),
        enabled: Default::default(),
        account_scripts: Default::default(),
    }
}

/// One pass over the corpus as `mailpipe run` does it per message: decide, then commit the
/// decision (not synced; synced every 200 messages, like an IMAP chunk).
async fn round(p: &Pipeline, store: &Store, mails: &[Email], tag: &str) -> Stages {
    let mut s = Stages::default();
    let needs = p.needs();
    let started = Instant::now();
    for (i, m) in mails.iter().enumerate() {
        let t0 = Instant::now();
        let parsed = view::parse(&m.raw, needs);
        let t1 = Instant::now();
        std::hint::black_box(view::convert(&parsed, m, needs));
        let t2 = Instant::now();
        drop(parsed);
        let d = p.process(m, &format!("{tag}/{i}")).await;
        let t3 = Instant::now();
        let mut commit = commit_for(&d, 0);
        commit.durable = false;
        store.commit_message(&commit).unwrap();
        if i % 200 == 199 {
            store.sync().unwrap();
        }
        let t4 = Instant::now();
        let calls: f64 = d.reports.iter().map(|r| r.elapsed_us as f64).sum();
        for (sum, r) in s.per_plugin.iter_mut().zip(&d.reports) {
            *sum += r.elapsed_us as f64;
        }
        assert_eq!(d.failed_plugins().count(), 0, "{:?}", d.reports);
        s.parse += us(t1 - t0);
        s.convert += us(t2 - t1);
        s.plugins += calls;
        // process() parses and converts once more itself: what is left is applying actions.
        s.apply += (us(t3 - t2) - calls - us(t2 - t0)).max(0.0);
        s.commit += us(t4 - t3);
    }
    store.sync().unwrap();
    s.total = us(started.elapsed()) - s.parse - s.convert;
    s
}

/// The same pass with `jobs` messages decided at the same time (pipeline/parallel.rs, as
/// `mailpipe run --jobs`): messages per second, decide + commit.
async fn round_parallel(
    p: &Arc<Pipeline>,
    store: &Store,
    mails: &[Email],
    tag: &str,
    jobs: usize,
) -> f64 {
    use futures::StreamExt;
    let started = Instant::now();
    let numbered = mails.iter().enumerate();
    let mut decided = parallel::decide_ahead(p.clone(), numbered, jobs, |(i, m)| {
        ((*m).clone(), format!("{tag}/{i}"))
    });
    let mut in_order = parallel::InOrder::new(jobs);
    while let Some(((i, m), early)) = decided.next().await {
        let key = format!("{tag}/{i}");
        let d = in_order.settle(p, m, &key, early, true).await;
        assert_eq!(d.failed_plugins().count(), 0, "{:?}", d.reports);
        let mut commit = commit_for(&d, 0);
        commit.durable = false;
        store.commit_message(&commit).unwrap();
        if i % 200 == 199 {
            store.sync().unwrap();
        }
    }
    store.sync().unwrap();
    mails.len() as f64 / started.elapsed().as_secs_f64()
}

/// Messages per second with 1 and 2 messages decided at the same time.
async fn bench_cores(name: &str, plugins: Vec<PluginConfig>, mails: &[Email], rounds: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let p = Arc::new(pipeline_of(plugins, store.clone()).await);
    round_parallel(&p, &store, &mails[..mails.len().min(500)], "warm", 2).await;
    let mut rates = Vec::new();
    for jobs in [1, 2] {
        let all: Vec<f64> = {
            let mut all = Vec::new();
            for r in 0..rounds {
                all.push(round_parallel(&p, &store, mails, &format!("j{jobs}r{r}"), jobs).await);
            }
            all
        };
        rates.push(median(all));
    }
    println!(
        "| {name} | {} | {:.0} | {:.0} | {:.2}× |",
        mails.len(),
        rates[0],
        rates[1],
        rates[1] / rates[0]
    );
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// One row of the per-stage table; returns a note with each plugin's share.
async fn bench(name: &str, plugins: Vec<PluginConfig>, mails: &[Email], rounds: usize) -> String {
    let names: Vec<String> = plugins.iter().map(|p| p.name.clone()).collect();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let p = pipeline_of(plugins, store.clone()).await;
    // Warm-up: the first 500 messages (caches, allocator, instances).
    round(&p, &store, &mails[..mails.len().min(500)], "warm").await;
    let mut all = Vec::new();
    for r in 0..rounds {
        all.push(round(&p, &store, mails, &format!("r{r}")).await);
    }
    let n = mails.len() as f64;
    let med = |f: fn(&Stages) -> f64| median(all.iter().map(f).collect()) / n;
    let total = med(|s| s.total);
    println!(
        "| {name} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
        mails.len(),
        1e6 / total,
        total,
        med(|s| s.parse),
        med(|s| s.convert),
        med(|s| s.plugins),
        med(|s| s.apply),
        med(|s| s.commit),
    );
    let shares: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            format!(
                "{name} {:.1}",
                median(all.iter().map(|s| s.per_plugin[i]).collect()) / n
            )
        })
        .collect();
    format!(
        "- {name}: µs per message in each plugin's calls: {}",
        shares.join(", ")
    )
}

/// `p` with the component its plugin had when built for contract 0.1 (tests/fixtures).
fn as_0_1(root: &Path, mut p: PluginConfig) -> PluginConfig {
    let file = p.path.file_name().unwrap().to_owned();
    p.path = root.join("tests/fixtures/contract-0.1").join(file);
    p
}

/// The host's cost of one call: the no-op plugin over every message (warm instance), built
/// for the newest contract (it reads nothing of the message) and for 0.1 (the whole message
/// record is copied into it; tests/fixtures/contract-0.1).
async fn overhead(root: &Path, mails: &[Email]) {
    let runtime = PluginRuntime::new(64, None).unwrap();
    let fixture = root.join("tests/fixtures/contract-0.1/noop.wasm");
    let mut noop_0_1 = adhoc_plugin_config(&fixture, json!({}), vec![]).expect("a plugin config");
    noop_0_1.name = "noop-0.1".into();
    // Each message parsed beforehand, as the pipeline shares one parse between plugins.
    let messages: Vec<_> = mails
        .iter()
        .map(|m| {
            let r = Arc::new(Readable::new(m.clone()));
            r.view(Needs::Headers);
            r
        })
        .collect();
    let headers: Vec<f64> = messages
        .iter()
        .map(|m| m.view(Needs::Headers).headers.len() as f64)
        .collect();
    for (contract, settings) in [("0.2", plugin(root, "noop", json!({}))), ("0.1", noop_0_1)] {
        let noop = runtime.load(&settings, None).await.unwrap();
        for m in messages.iter().take(500) {
            runtime.call(&noop, m, None, Clock::System).await;
        }
        let mut times = Vec::with_capacity(messages.len());
        for m in &messages {
            let t = Instant::now();
            let r = runtime.call(&noop, m, None, Clock::System).await;
            times.push(us(t.elapsed()));
            assert!(r.outcome.is_ok());
        }
        println!(
            "\nHost overhead per plugin call (no-op plugin for contract {contract}, warm instance, \
             needs=headers, {} messages): median {:.1} µs, p90 {:.1} µs, p99 {:.1} µs (messages \
             have a median of {:.0} header fields)",
            messages.len(),
            median(times.clone()),
            percentile(times.clone(), 0.9),
            percentile(times, 0.99),
            median(headers.clone())
        );
    }
    let mut fresh_cfg = plugin(root, "noop", json!({}));
    fresh_cfg.fresh_instance = true;
    let fresh = runtime.load(&fresh_cfg, None).await.unwrap();
    let mut times = Vec::new();
    for m in messages.iter().take(2000) {
        let t = Instant::now();
        runtime.call(&fresh, m, None, Clock::System).await;
        times.push(us(t.elapsed()));
    }
    println!(
        "The same with `fresh_instance = true` (new instance per call, contract 0.2): median {:.1} µs",
        median(times)
    );
}

// Two worker threads: the one-core tables run one task (one thread at a time); the "both
// cores" table decides on both.
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned();
    let rounds: usize = std::env::var("MAILPIPE_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let load = Instant::now();
    let mails = corpus(&root);
    let bytes: usize = mails.iter().map(|m| m.raw.len()).sum();
    let mut sizes: Vec<f64> = mails.iter().map(|m| m.raw.len() as f64).collect();
    sizes.sort_by(|a, b| a.partial_cmp(b).unwrap());
    eprintln!("corpus loaded in {:.1} s", load.elapsed().as_secs_f64());
    println!(
        "## Offline pipeline: {} messages, {:.0} MB, median {:.1} KB, max {:.0} KB; one core; median of {rounds} rounds\n",
        mails.len(),
        bytes as f64 / 1e6,
        median(sizes.clone()) / 1e3,
        sizes.last().copied().unwrap_or(0.0) / 1e3
    );
    println!("µs per message; \"total\" is decide + commit. \"parse\" and \"convert\" are what a full view of each message costs, measured apart: 0.1 plugins get it whole; for 0.2 plugins the pipeline makes only the parts they read\n");
    println!("| pipeline | messages | messages/s | total | parse | convert to WIT | plugin calls | apply actions | commit |");
    println!("|---|---|---|---|---|---|---|---|---|");
    // MAILPIPE_BENCH_ONLY=sieve: the 50-rule Sieve script alone, one core then two.
    if std::env::var("MAILPIPE_BENCH_ONLY").as_deref() == Ok("sieve") {
        let note = bench(
            "a 50-rule Roundcube-style Sieve script (built-in interpreter)",
            vec![sieve_50(&root)],
            &mails,
            rounds,
        )
        .await;
        println!("\n{note}");
        bench_cores(
            "the 50-rule Sieve script",
            vec![sieve_50(&root)],
            &mails,
            rounds,
        )
        .await;
        return;
    }
    // MAILPIPE_BENCH_ONLY=rust: the first pipeline alone (for a profiler), nothing else.
    if std::env::var("MAILPIPE_BENCH_ONLY").as_deref() == Ok("rust") {
        let note = bench(
            "rules-filer + auto-responder + subject-tagger (Rust, contract 0.2)",
            vec![filer(&root, false), responder(&root), tagger(&root)],
            &mails,
            rounds,
        )
        .await;
        println!("\n{note}");
        return;
    }
    let notes = [
        bench(
            "rules-filer + auto-responder + subject-tagger (Rust, contract 0.2)",
            vec![filer(&root, false), responder(&root), tagger(&root)],
            &mails,
            rounds,
        )
        .await,
        bench(
            "the same three built for contract 0.1 (tests/fixtures)",
            vec![
                as_0_1(&root, filer(&root, false)),
                as_0_1(&root, responder(&root)),
                as_0_1(&root, tagger(&root)),
            ],
            &mails,
            rounds,
        )
        .await,
        bench(
            "a 50-rule Roundcube-style Sieve script (built-in interpreter)",
            vec![sieve_50(&root)],
            &mails,
            rounds,
        )
        .await,
        bench(
            "rules-filer-js (JS, 0.1) + auto-responder + subject-tagger",
            vec![filer(&root, true), responder(&root), tagger(&root)],
            &mails,
            rounds,
        )
        .await,
    ];
    println!();
    for note in notes {
        println!("{note}");
    }
    println!(
        "\n## Both cores: messages decided at the same time (`run --jobs`), decide + commit\n"
    );
    println!(
        "| pipeline | messages | messages/s, 1 at a time | messages/s, 2 at a time | speed-up |"
    );
    println!("|---|---|---|---|---|");
    bench_cores(
        "rules-filer + auto-responder + subject-tagger (Rust)",
        vec![filer(&root, false), responder(&root), tagger(&root)],
        &mails,
        rounds,
    )
    .await;
    bench_cores(
        "rules-filer-js (JS) + auto-responder + subject-tagger",
        vec![filer(&root, true), responder(&root), tagger(&root)],
        &mails,
        rounds,
    )
    .await;
    overhead(&root, &mails).await;
    println!(
        "\nPeak RSS of the benchmark process: {:.0} MB (includes the corpus, {:.0} MB, held in memory)",
        peak_rss_mb(),
        bytes as f64 / 1e6
    );
}
