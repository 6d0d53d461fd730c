#!/usr/bin/env bash
# Builds the JavaScript plugins in plugins/js/*/ (each a folder with an index.js, an ES module
# exporting `info` and `onMessage`) into <target>/plugins/<folder-name>.wasm, e.g.
# target/plugins/rules-filer-js.wasm. Runs from any directory; honours CARGO_TARGET_DIR like
# scripts/build-plugins.sh. Needs node >= 18 and npm (the npm registry on first run).
#
# Backend: componentize-qjs (QuickJS, pinned in package.json/package-lock.json), with --sync
# because the host does not enable the component-model async ABI. It beat componentize-js
# (StarlingMonkey) here: 1.6 MB instead of 12 MB, ~6x faster first-load compile, 2-3x faster
# calls, and it fits in 4 MiB of memory (StarlingMonkey needs >= 16). The components import
# only WASI 0.2 cli/io/clocks/filesystem/random (which the host links) and never wasi:http.
#
# `npm ci` runs only when node_modules is missing or older than package.json/package-lock.json.
# A plugin is rebuilt only when its folder, the WIT, the lock or this script changed
# (`--force` rebuilds all).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../build-env.sh
source "$here/../build-env.sh"
# JS plugins stay on contract 0.1 (which the host loads unchanged): componentize-qjs 0.4.5 never
# gives back the borrowed `message` handle of a 0.2 `on-message` call, so every such call traps
# ("borrow handles still remain at the end of the call"). See docs/PLUGIN-CONTRACT.md.
wit="$root/wit/v0.1"
force=0
[[ "${1:-}" == "--force" ]] && force=1

for tool in node npm; do
    if ! command -v "$tool" >/dev/null; then
        echo "plugins/js/build.sh: $tool not found (install Node.js >= 18 with npm)" >&2
        exit 1
    fi
done

# Install the pinned toolchain. The stamp holds the checksum of the manifests it was installed
# from, so an edited package.json or lock triggers a clean reinstall.
stamp="$here/node_modules/.mailpipe-installed"
want="$(cd "$here" && cat package.json package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" || ! -x "$here/node_modules/.bin/componentize-qjs" ]]; then
    echo "plugins/js: installing the JS toolchain (npm)"
    if [[ -f "$here/package-lock.json" ]]; then
        (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
    else
        (cd "$here" && npm install --no-audit --no-fund --loglevel=error)
        want="$(cd "$here" && cat package.json package-lock.json | sha256sum | cut -d' ' -f1)"
    fi
    echo "$want" >"$stamp"
fi
cqjs="$here/node_modules/.bin/componentize-qjs"

plugins=()
for entry in "$here"/*/index.js; do
    [[ -f "$entry" && "$entry" != "$here/node_modules/"* ]] && plugins+=("$(dirname "$entry")")
done
if [[ ${#plugins[@]} -eq 0 ]]; then
    echo "plugins/js/build.sh: no plugins/js/*/index.js found" >&2
    exit 1
fi

mkdir -p "$out"
for dir in "${plugins[@]}"; do
    name="$(basename "$dir")"
    wasm="$out/$name.wasm"
    if [[ $force -eq 0 && -f "$wasm" ]] &&
        [[ -z "$(find "$dir" "$wit" "$here/package-lock.json" "${BASH_SOURCE[0]}" -newer "$wasm" -print -quit)" ]]; then
        printf '%8d KiB  %s (up to date)\n' $(( $(wc -c <"$wasm") / 1024 )) "$wasm"
        continue
    fi
    # Bare imports (npm packages in plugins/js/node_modules) resolve under --module-root; the
    # JS is evaluated at build time (Wizer snapshot), so top-level code runs here, not per call.
    "$cqjs" --wit "$wit" --world plugin --sync --js "$dir/index.js" --module-root "$here" \
        -o "$wasm.tmp"
    # The host links no wasi:http: refuse a component that would fail to load for that reason.
    if grep -aq 'wasi:http/' "$wasm.tmp"; then
        rm -f "$wasm.tmp"
        echo "plugins/js/build.sh: $name refers to wasi:http, which the host does not provide" >&2
        exit 1
    fi
    mv "$wasm.tmp" "$wasm"
    printf '%8d KiB  %s\n' $(( $(wc -c <"$wasm") / 1024 )) "$wasm"
done
