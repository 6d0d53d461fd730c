#!/usr/bin/env bash
# Builds {{name}}.wasm from app.py with componentize-py (installed on first use into .venv,
# pinned below), and writes the typed bindings for editors to .bindings/.
set -euo pipefail
COMPONENTIZE_PY_VERSION=0.25.1
cd "$(dirname "$0")"
if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
if [[ "$(.venv/bin/componentize-py --version 2>/dev/null || true)" != "componentize-py $COMPONENTIZE_PY_VERSION" ]]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check \
        "componentize-py==$COMPONENTIZE_PY_VERSION"
fi
rm -rf .bindings
.venv/bin/componentize-py -d wit -w plugin bindings .bindings
# Modules are found here and in .venv only, never in the machine's site-packages.
VIRTUAL_ENV="$PWD/.venv" .venv/bin/componentize-py -q -d wit -w plugin componentize \
    -p . -o {{name}}.wasm.tmp app
mv {{name}}.wasm.tmp {{name}}.wasm
echo "built $PWD/{{name}}.wasm"
