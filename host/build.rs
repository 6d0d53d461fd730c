//! Why this file exists: the Sieve interpreter ships inside the mailpipe binary (issue 22: a
//! user needs no toolchain to run the Sieve scripts they have). It is a plugin like any other
//! (plugins/sieve/plugin, contract 0.4), so it is built here for wasm32-wasip2 and embedded by
//! `plugin/embedded.rs`. `MAILPIPE_SIEVE_WASM=FILE` embeds a component built already (CI builds
//! every plugin first; scripts/test.sh points here so nothing is built twice). Without the
//! `sieve` feature nothing is built and the binary says so when a config asks for Sieve.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=MAILPIPE_SIEVE_WASM");
    commit();
    if env::var_os("CARGO_FEATURE_SIEVE").is_none() {
        return;
    }
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dest = out.join("sieve.wasm");
    if let Some(prebuilt) = env::var_os("MAILPIPE_SIEVE_WASM").filter(|v| !v.is_empty()) {
        let prebuilt = PathBuf::from(prebuilt);
        println!("cargo:rerun-if-changed={}", prebuilt.display());
        std::fs::copy(&prebuilt, &dest)
            .unwrap_or_else(|e| panic!("MAILPIPE_SIEVE_WASM={}: {e}", prebuilt.display()));
        return;
    }
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest.parent().expect("host/ is in the workspace root");
    for input in [
        "plugins/sieve/Cargo.toml",
        "plugins/sieve/src",
        "plugins/sieve/plugin/Cargo.toml",
        "plugins/sieve/plugin/src",
        "plugins/sdk/Cargo.toml",
        "plugins/sdk/src",
        "plugins/sdk-0.4/Cargo.toml",
        "wit/v0.4",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(input).display());
    }
    // A target directory of its own: the outer build holds the lock on its own one.
    // OUT_DIR is <target>/release/build/mailpipe-HASH/out.
    let target_dir = out
        .ancestors()
        .nth(3)
        .map(|t| t.join("sieve-embed"))
        .unwrap_or_else(|| out.join("sieve-embed"));
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            "sieve",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    // What the outer build set for its own target must not leak into the wasm build.
    for var in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("running cargo to build the Sieve plugin");
    if !status.success() {
        panic!(
            "building the Sieve plugin (plugins/sieve/plugin) for wasm32-wasip2 failed; \
             install the target with `rustup target add wasm32-wasip2`, or build without \
             the Sieve interpreter: --no-default-features"
        );
    }
    let built = target_dir.join("wasm32-wasip2/release/sieve.wasm");
    copy(&built, &dest);
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
}

/// `MAILPIPE_COMMIT`: the commit the binary is built from (`mailpipe --version` names it), or
/// "unknown" outside a git checkout (a source tarball).
fn commit() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest.parent().expect("host/ is in the workspace root");
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(root)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=MAILPIPE_COMMIT={commit}");
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        let dir = root.join(dir);
        println!("cargo:rerun-if-changed={}", dir.join("HEAD").display());
        // The branch's ref file, where it has one (a missing file would rerun this always).
        if let Some(head) = git(&["symbolic-ref", "-q", "HEAD"]) {
            if dir.join(&head).is_file() {
                println!("cargo:rerun-if-changed={}", dir.join(head).display());
            }
        }
    }
}
