//! Shared helpers of the end-to-end tests: where the built plugins and sample mail are, and
//! a way to run a pipeline of real plugin components over a message.
#![allow(dead_code)]

pub mod mailstack;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mailpipe::config::RecipientPattern;
use mailpipe::config::{Identity, PluginConfig, PluginLimits};
use mailpipe::message::Email;
use mailpipe::pipeline::{Decision, Pipeline, PluginStatus};
use mailpipe::plugin::{Clock, PluginRuntime};
use mailpipe::state::Store;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A plugin built by scripts/build-plugins.sh. Missing plugins fail the test loudly.
/// With `MAILPIPE_TEST_CONTRACT=0.1`, the plugins kept as built for contract 0.1
/// (tests/fixtures/contract-0.1) are used where there is one: scripts/test.sh runs the plugin
/// tests once more that way, so old plugins are held to the same tests as new ones.
pub fn plugin_path(name: &str) -> PathBuf {
    if std::env::var("MAILPIPE_TEST_CONTRACT").as_deref() == Ok("0.1") {
        let old = root()
            .join("tests/fixtures/contract-0.1")
            .join(format!("{name}.wasm"));
        if old.is_file() {
            return old;
        }
    }
    let p = root().join("target/plugins").join(format!("{name}.wasm"));
    assert!(
        p.is_file(),
        "{} is missing: run scripts/build-plugins.sh first",
        p.display()
    );
    p
}

/// A sample message from examples/maildir by its number (1..=14).
pub fn sample(n: u32) -> Email {
    for sub in ["new", "cur"] {
        let dir = root().join("examples/maildir").join(sub);
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&format!("17000000{n:02}.")) {
                let flags = mailpipe::source::maildir::flags_from_info(
                    name.split_once(":2,").map_or("", |x| x.1),
                );
                return Email::new(std::fs::read(e.path()).unwrap(), "INBOX", flags);
            }
        }
    }
    panic!("sample message {n} not found");
}

pub fn identity() -> Identity {
    Identity {
        address: "alice@example.com".into(),
        name: Some("Alice Example".into()),
    }
}

/// Settings for one plugin in a test pipeline.
pub fn plugin(name: &str, wasm: &str, config: serde_json::Value) -> PluginConfig {
    PluginConfig {
        name: name.into(),
        kind: mailpipe::config::PluginKind::Wasm,
        path: plugin_path(wasm),
        limits: PluginLimits::default(),
        allow_send_to: vec![RecipientPattern::Sender],
        forward_automated: false,
        send_about_mail_since: Default::default(),
        fresh_instance: false,
        config,
    }
}

pub fn allow(p: &mut PluginConfig, patterns: &[&str]) {
    p.allow_send_to = patterns
        .iter()
        .map(|s| RecipientPattern::parse(s).unwrap())
        .collect();
}

/// A pipeline of real plugins with its own state store in `dir`.
pub struct TestPipeline {
    pub pipeline: Pipeline,
    pub store: Arc<Store>,
    pub _dir: tempfile::TempDir,
}

impl TestPipeline {
    pub async fn new(plugins: Vec<PluginConfig>) -> TestPipeline {
        Self::with_clock(plugins, Clock::Fixed(1_795_737_600_000)).await
    }

    pub async fn with_clock(plugins: Vec<PluginConfig>, clock: Clock) -> TestPipeline {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let max_mem = plugins
            .iter()
            .map(|p| p.limits.memory_mb)
            .max()
            .unwrap_or(64);
        // Shared between tests and runs: the JS and Python components take seconds to compile.
        let runtime =
            PluginRuntime::new(max_mem, Some(root().join("target/test-compiled"))).unwrap();
        let loaded = mailpipe::run::load_plugins(&runtime, &plugins, Some(store.clone()))
            .await
            .unwrap();
        TestPipeline {
            pipeline: Pipeline {
                runtime,
                plugins: loaded,
                identity: identity(),
                limits: Default::default(),
                store: Some(store.clone()),
                clock,
                enabled: Default::default(),
                account_scripts: Default::default(),
            },
            store,
            _dir: dir,
        }
    }

    pub async fn run(&self, email: &Email, key: &str) -> Decision {
        self.pipeline.process(email, key).await
    }

    /// Run and commit the decision's state changes, as `mailpipe run` does.
    pub async fn run_commit(&self, email: &Email, key: &str) -> Decision {
        let d = self.run(email, key).await;
        self.store
            .commit_message(&mailpipe::pipeline::commit_for(&d, 0))
            .unwrap();
        d
    }
}

pub fn status(d: &Decision, plugin: &str) -> PluginStatus {
    d.reports
        .iter()
        .find(|r| r.plugin == plugin)
        .unwrap_or_else(|| panic!("no report for {plugin}"))
        .status
        .clone()
}

pub fn folders(d: &Decision) -> Vec<String> {
    d.deliveries.iter().map(|x| x.folder.clone()).collect()
}

pub fn raw_text(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

/// Value of a header in raw bytes (first, unfolded, undecoded).
pub fn header_of(raw: &[u8], name: &str) -> Option<String> {
    Email::new(raw.to_vec(), "INBOX", vec![]).header(name)
}

/// The demo config (examples/demo.toml) with its state, mail store and outbox in `dir` and
/// absolute paths to the sample mailbox and the built plugins. The sample mailbox's files are
/// all older than a test's first run, and the tests that use the demo are about mail that
/// arrives while mailpipe runs: the plugins that send mail are told to answer older mail too
/// (`send_about_mail_since = "all"`). The default (nothing about mail that was there before)
/// has tests of its own (tests/offline.rs, `first_run_*`).
pub fn demo_toml(dir: &std::path::Path) -> String {
    demo_toml_as_shipped(dir)
        .replace(
            "auto-responder.wasm\"\n",
            "auto-responder.wasm\"\nsend_about_mail_since = \"all\"\n",
        )
        .replace(
            "forwarder.wasm\"\n",
            "forwarder.wasm\"\nsend_about_mail_since = \"all\"\n",
        )
}

/// The demo config with its paths moved as `demo_toml` does, its plugins as shipped.
pub fn demo_toml_as_shipped(dir: &std::path::Path) -> String {
    std::fs::read_to_string(root().join("examples/demo.toml"))
        .unwrap()
        .replace(
            "\"../target/demo/state\"",
            &format!("{:?}", dir.join("state")),
        )
        .replace(
            "\"maildir\"",
            &format!("{:?}", root().join("examples/maildir")),
        )
        .replace(
            "\"../target/demo/mail\"",
            &format!("{:?}", dir.join("mail")),
        )
        .replace(
            "\"../target/demo/outbox\"",
            &format!("{:?}", dir.join("outbox")),
        )
        .replace(
            "\"../target/plugins/",
            &format!("\"{}/", root().join("target/plugins").display()),
        )
}

/// `demo_toml` written to `dir/demo.toml`.
pub fn demo_file(dir: &std::path::Path) -> std::path::PathBuf {
    let file = dir.join("demo.toml");
    std::fs::write(&file, demo_toml(dir)).unwrap();
    file
}

/// Every file below `dir`, sorted (none when it does not exist).
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
