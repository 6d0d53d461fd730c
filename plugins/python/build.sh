#!/usr/bin/env bash
# Builds the Python plugins in plugins/python/*/ (each a folder with an app.py exporting
# `class WitWorld`) with componentize-py into <target>/plugins/<folder-name>.wasm, e.g.
# target/plugins/auto-responder-py.wasm. Runs from any directory; honours CARGO_TARGET_DIR like
# scripts/build-plugins.sh. Needs python3 (with venv) and PyPI; the first run creates
# plugins/python/.venv and installs the pinned componentize-py there.
#
# No bindings are committed or generated here: `componentize-py componentize` generates the
# real `wit_world` bindings on the fly. `bash build.sh --stubs` also writes the IDE/type-checker
# stubs to plugins/python/.bindings/ (gitignored).
set -euo pipefail

COMPONENTIZE_PY_VERSION=0.25.1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../build-env.sh
source "$here/../build-env.sh"
venv="$here/.venv"
cpy="$venv/bin/componentize-py"

if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
if [[ "$("$cpy" --version 2>/dev/null || true)" != "componentize-py $COMPONENTIZE_PY_VERSION" ]]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "componentize-py==$COMPONENTIZE_PY_VERSION"
fi

if [[ "${1:-}" == "--stubs" ]]; then
    "$cpy" -d "$wit" -w plugin bindings "$here/.bindings"
    echo "stubs written to $here/.bindings (point your IDE's extra path there)"
fi

apps=()
for app in "$here"/*/app.py; do
    [[ -f "$app" ]] && apps+=("$(dirname "$app")")
done
if [[ ${#apps[@]} -eq 0 ]]; then
    echo "build.sh: no plugins/python/*/app.py found" >&2
    exit 1
fi

mkdir -p "$out"
for dir in "${apps[@]}"; do
    name="$(basename "$dir")"
    # Modules are found in the plugin's folder, the stdlib and (VIRTUAL_ENV) our venv only, never
    # in whatever site-packages the machine has. The build imports app.py to pre-initialise
    # the component, which leaves a __pycache__ beside it (gitignored).
    (cd "$dir" && VIRTUAL_ENV="$venv" "$cpy" -q -d "$wit" -w plugin \
        componentize -p "$dir" -o "$out/$name.wasm.tmp" app)
    mv "$out/$name.wasm.tmp" "$out/$name.wasm"
    printf '%8d KiB  %s\n' $(( $(wc -c <"$out/$name.wasm") / 1024 )) "$out/$name.wasm"
done
