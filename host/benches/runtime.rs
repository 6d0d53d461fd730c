//! Measures what docs/BENCHMARKS.md reports about the plugin runtime: compiling a component
//! vs loading it from our cache, a fresh instance per message vs reusing one, and the whole
//! demo pipeline over the sample mail. Medians over many runs after a warm-up.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailpipe::config::Config;
use mailpipe::message::{view, Email};
use mailpipe::model::message::Needs;
use mailpipe::plugin::readable::Readable;
use mailpipe::plugin::{cache, Clock, PluginRuntime};
use mailpipe::state::Store;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn time<F: FnMut()>(n: usize, mut f: F) -> Duration {
    for _ in 0..n.min(20) {
        f();
    }
    median(
        (0..n)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn samples(root: &Path) -> Vec<Email> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        let mut names: Vec<_> = std::fs::read_dir(root.join("examples/maildir").join(sub))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        names.sort();
        for p in names {
            out.push(Email::new(std::fs::read(p).unwrap(), "INBOX", vec![]));
        }
    }
    out
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned();
    let mails = samples(&root);
    let dir = tempfile::tempdir().unwrap();
    println!(
        "## Plugin runtime (wasmtime 48, {} sample messages)\n",
        mails.len()
    );
    println!("| plugin | .wasm | compile | load from our cache | fresh instance + call | call on a reused instance |");
    println!("|---|---|---|---|---|---|");
    for name in [
        "subject-tagger",
        "auto-responder",
        "forwarder",
        "rules-filer",
        "rules-filer-js",
        "auto-responder-py",
    ] {
        let path = root.join("target/plugins").join(format!("{name}.wasm"));
        let wasm = std::fs::read(&path).expect("run scripts/build-plugins.sh first");
        // Big guest runtimes (JS, Python) take seconds to compile: fewer rounds.
        let (compiles, calls) = if wasm.len() > 1 << 20 {
            (2, 300)
        } else {
            (5, 2000)
        };
        let runtime = PluginRuntime::new(64, Some(dir.path().join("compiled"))).unwrap();
        let engine = runtime.engine().clone();
        let compile = time(compiles, || {
            cache::load_component(&engine, &wasm, None).unwrap();
        });
        cache::load_component(&engine, &wasm, Some(&dir.path().join("c"))).unwrap();
        let cached = time(50, || {
            let (_, u) =
                cache::load_component(&engine, &wasm, Some(&dir.path().join("c"))).unwrap();
            assert_eq!(u, cache::CacheUse::Cached);
        });
        let config = match name {
            "subject-tagger" => serde_json::json!({"tag": "[EXT]"}),
            "auto-responder" | "auto-responder-py" => {
                serde_json::json!({"addresses": ["alice@example.com"], "body": "away"})
            }
            "rules-filer-js" => serde_json::json!({"rules": [
                {"name": "r", "header": "List-Id", "contains": "rust", "folder": "L"}
            ]}),
            _ => serde_json::json!({"rules": []}),
        };
        let mut settings = mailpipe::pipeline::adhoc_plugin_config(&path, config.clone(), vec![])
            .expect("a plugin config");
        settings.name = name.into();
        // The "fresh" column: a new instance per call (the default reuses a warm one).
        settings.fresh_instance = true;
        let loaded = runtime.load(&settings, None).await.unwrap();
        // Parsed once, as the pipeline shares one parse between plugins.
        let msg = Arc::new(Readable::new(mails[0].clone()));
        let mut fresh = Vec::new();
        for i in 0..calls {
            let t = Instant::now();
            let r = runtime.call(&loaded, &msg, None, Clock::System).await;
            if i >= 100 {
                fresh.push(t.elapsed());
            }
            assert!(r.outcome.is_ok(), "{name}: {:?}", r.outcome.err());
        }
        // Reuse: one warm instance, many calls (what the host does by default;
        // docs/PIPELINE.md).
        settings.fresh_instance = false;
        let warm = runtime.load(&settings, None).await.unwrap();
        let mut reused = Vec::new();
        for i in 0..calls {
            let t = Instant::now();
            let r = runtime.call(&warm, &msg, None, Clock::System).await;
            if i >= 100 {
                reused.push(t.elapsed());
            }
            assert!(r.outcome.is_ok(), "{name}: {:?}", r.outcome.err());
        }
        println!(
            "| {name} | {} KiB | {:.1} ms | {:.2} ms | {} | {} |",
            wasm.len() / 1024,
            compile.as_secs_f64() * 1e3,
            cached.as_secs_f64() * 1e3,
            us(median(fresh)),
            us(median(reused))
        );
    }

    // The demo pipeline (4 plugins) over the samples, repeated.
    let cfg_dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root.join("examples/demo.toml"))
        .unwrap()
        .replace(
            "\"../target/demo/state\"",
            &format!("{:?}", cfg_dir.path().join("state")),
        )
        .replace(
            "\"maildir\"",
            &format!("{:?}", root.join("examples/maildir")),
        )
        .replace(
            "\"../target/plugins/",
            &format!("\"{}/target/plugins/", root.display()),
        );
    let file = cfg_dir.path().join("demo.toml");
    std::fs::write(&file, text).unwrap();
    let config = Config::load(&file).unwrap();
    let store = Arc::new(Store::open(&config.state_dir).unwrap());
    let pipeline = mailpipe::run::build_pipeline(&config, Some(store), Clock::System)
        .await
        .unwrap();
    let rounds = 200;
    let mut parse = Duration::ZERO;
    let t = Instant::now();
    let mut plugin_us = 0u64;
    for r in 0..rounds {
        for (i, m) in mails.iter().enumerate() {
            let p = Instant::now();
            std::hint::black_box(view::to_view(m, Needs::Bodies));
            parse += p.elapsed();
            let d = pipeline.process(m, &format!("{r}/{i}")).await;
            plugin_us += d.reports.iter().map(|r| r.elapsed_us).sum::<u64>();
        }
    }
    let total = t.elapsed() - parse;
    let n = (rounds * mails.len()) as f64;
    println!("\n## Demo pipeline (4 Rust plugins, warm instances)\n");
    println!(
        "- {} messages: {:.0} messages/s, {:.0} µs per message",
        n,
        n / total.as_secs_f64(),
        total.as_secs_f64() * 1e6 / n
    );
    println!(
        "- of which in plugin calls: {:.0} µs per message",
        plugin_us as f64 / n
    );
    println!(
        "- parsing + conversion into the WIT record (once, needs=bodies): {:.1} µs per message",
        parse.as_secs_f64() * 1e6 / n
    );
    println!(
        "- pooling allocator: {}",
        if pipeline.runtime.pooling() {
            "on"
        } else {
            "off"
        }
    );
}
