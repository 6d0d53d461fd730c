#!/usr/bin/env bash
# The README's second command: the whole test suite on a fresh machine. Builds the plugins
# (installing the wasm32-wasip2 target if needed), then runs every host test (unit and
# end-to-end, tests/) in the one release profile the project uses everywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-plugins.sh
cargo test --release
