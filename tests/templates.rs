//! `mailpipe new` for every language, as a plugin author outside the repository would use it:
//! the project is made in a temporary directory, built with the one command its README
//! gives, and must pass `mailpipe test` on the sample message it ships (and fail it when its
//! config says otherwise, so the check can fail). Needs the toolchains scripts/build-plugins.sh
//! installs (wasm32-wasip2, npm, python3-venv, clang + wasi-libc) and their registries.

use std::path::{Path, PathBuf};
use std::process::Command;

fn mailpipe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mailpipe"))
}

/// Run `cmd` in `dir`; panic with its output when it fails.
fn run(dir: &Path, cmd: &mut Command) -> String {
    let out = cmd.current_dir(dir).output().expect("cannot start");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{cmd:?} in {}:\n{text}",
        dir.display()
    );
    text
}

/// A new project `name` in `lang`, outside the repository.
fn new_project(lang: &str, name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    assert!(
        !tmp.path().starts_with(repo),
        "the project must be outside the repository"
    );
    let text = run(tmp.path(), mailpipe().args(["new", name, "--lang", lang]));
    assert!(text.contains("mailpipe test"), "{text}");
    let dir = tmp.path().join(name);
    (tmp, dir)
}

/// The built plugin passes its sample, and fails it when the word is not in the subject.
fn passes_its_sample(dir: &Path, wasm: &str) {
    let text = run(
        dir,
        mailpipe().args([
            "test",
            wasm,
            "sample.eml",
            "--expect",
            "folder=Invoices",
            "--expect",
            "flag=$Invoice",
        ]),
    );
    assert!(text.contains("-> Invoices"), "{text}");
    let out = mailpipe()
        .args(["test", wasm, "sample.eml", "--config", "word=\"refund\""])
        .args(["--expect", "folder=Invoices"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the expectation must be able to fail"
    );
}

#[test]
fn rust_project_builds_and_passes_its_sample() {
    let (_tmp, dir) = new_project("rust", "invoice-filer");
    // The SDK and the contract are in the project, not referenced from elsewhere.
    assert!(dir.join("mailpipe-plugin/wit/plugin.wit").is_file());
    // The vendored SDK carries its licence texts.
    for l in ["LICENSE-MIT", "LICENSE-APACHE"] {
        assert!(dir.join("mailpipe-plugin").join(l).is_file(), "{l}");
    }
    let cargo_build = || {
        let mut c = Command::new("cargo");
        c.args(["build", "--release", "--quiet"])
            .env("CARGO_TARGET_DIR", dir.join("target"));
        c
    };
    run(&dir, &mut cargo_build());
    passes_its_sample(&dir, "target/wasm32-wasip2/release/invoice_filer.wasm");

    // The Rust example of docs/PLUGIN-GUIDE.md compiles in such a project.
    let guide = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/PLUGIN-GUIDE.md"),
    )
    .unwrap();
    let snippet = guide
        .split("```rust\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the guide has a Rust example");
    std::fs::write(dir.join("src/lib.rs"), snippet).unwrap();
    run(&dir, &mut cargo_build());
}

#[test]
fn js_project_builds_type_checks_and_passes_its_sample() {
    let (_tmp, dir) = new_project("js", "invoice-filer-js");
    run(
        &dir,
        Command::new("npm").args(["install", "--no-audit", "--no-fund", "--loglevel=error"]),
    );
    run(&dir, Command::new("npm").args(["run", "build"]));
    // The generated types check the template, and catch a wrong action and a wrong field.
    run(&dir, Command::new("npm").args(["run", "check"]));
    let good = std::fs::read_to_string(dir.join("src/index.js")).unwrap();
    let bad = good
        .replace("tag: 'file-into'", "tag: 'file-in'")
        .replace("msg.subject ??", "msg.subjekt ??");
    assert_ne!(good, bad);
    std::fs::write(dir.join("src/index.js"), bad).unwrap();
    let out = Command::new("npm")
        .args(["run", "check"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("'subjekt' does not exist"), "{text}");
    assert!(text.contains("\"file-in\"' is not assignable"), "{text}");
    std::fs::write(dir.join("src/index.js"), good).unwrap();
    passes_its_sample(&dir, "invoice-filer-js.wasm");
}

#[test]
fn python_project_builds_and_passes_its_sample() {
    let (_tmp, dir) = new_project("python", "invoice-filer-py");
    run(&dir, &mut Command::new("./build.sh"));
    // The editor stubs are there too.
    assert!(dir.join(".bindings/wit_world/__init__.py").is_file());
    passes_its_sample(&dir, "invoice-filer-py.wasm");
}

#[test]
fn c_project_builds_and_passes_its_sample() {
    let (_tmp, dir) = new_project("c", "invoice-filer-c");
    run(&dir, &mut Command::new("./build.sh"));
    passes_its_sample(&dir, "invoice-filer-c.wasm");
}
