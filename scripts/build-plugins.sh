#!/usr/bin/env bash
# Builds every plugin: the Rust crates (plugins/examples/*, plugins/misbehaving/*, plugins/testing/*,
# and the Sieve interpreter plugins/sieve/plugin) for wasm32-wasip2 from
# the root workspace and copies the components to <target>/plugins/<crate-name>.wasm, e.g.
# target/plugins/auto-responder.wasm. Runs from any directory; honours CARGO_TARGET_DIR.
# Extra arguments go to `cargo build` (e.g. --locked). PLUGINS="a b" builds only those Rust
# crates and no plugin of another language (scripts/demo.sh builds only what the demo runs).
set -euo pipefail

# Resolve a relative CARGO_TARGET_DIR against the caller's directory before moving to the root.
if [[ -n "${CARGO_TARGET_DIR:-}" && "${CARGO_TARGET_DIR}" != /* ]]; then
    CARGO_TARGET_DIR="$PWD/$CARGO_TARGET_DIR"
    export CARGO_TARGET_DIR
fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"

# The compiler pinned in rust-toolchain.toml with its components and the wasm32-wasip2 target
# (a no-op when they are there; docs/DEPENDENCIES.md says why this version).
if command -v rustup >/dev/null; then
    rustup toolchain install >/dev/null
fi

# The package name is the first `name = "..."` line of each crate's Cargo.toml.
crates=()
for manifest in plugins/examples/*/Cargo.toml plugins/misbehaving/*/Cargo.toml plugins/testing/*/Cargo.toml plugins/sieve/plugin/Cargo.toml; do
    [[ -f "$manifest" ]] || continue
    name="$(sed -n 's/^name *= *"\(.*\)".*/\1/p' "$manifest" | head -n 1)"
    if [[ -n "${PLUGINS:-}" && " $PLUGINS " != *" $name "* ]]; then
        continue
    fi
    crates+=("$name")
done
if [[ ${#crates[@]} -eq 0 ]]; then
    echo "build-plugins: no plugin crates found" >&2
    exit 1
fi

packages=()
for crate in "${crates[@]}"; do
    packages+=(-p "$crate")
done
cargo build --release --target wasm32-wasip2 "${packages[@]}" "$@"

out="$target_dir/plugins"
mkdir -p "$out"
for crate in "${crates[@]}"; do
    # cargo names the artifact after the lib target: dashes become underscores.
    cp "$target_dir/wasm32-wasip2/release/${crate//-/_}.wasm" "$out/$crate.wasm"
    printf '%8d KiB  %s\n' $(( $(wc -c <"$out/$crate.wasm") / 1024 )) "$out/$crate.wasm"
done

# Plugins in other languages: each language folder has its own build.sh that installs its
# toolchain from the registries (npm, PyPI, Debian) when missing and writes to the same place.
for lang_build in plugins/js/build.sh plugins/python/build.sh plugins/c/build.sh; do
    if [[ -f "$lang_build" && -z "${PLUGINS:-}" ]]; then
        echo "== $lang_build"
        bash "$lang_build"
    fi
done
