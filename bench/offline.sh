#!/usr/bin/env bash
# Offline pipeline benchmark (issue 5; no mail server): the deterministic corpus of N messages
# (default 10000) through rules-filer + auto-responder + subject-tagger (Rust) and the same with
# the JS rules filer, on one core, per stage. Builds the plugins and the corpus first.
#
# Usage:  bash bench/offline.sh [N [ROUNDS]]      results on stdout (Markdown) and in
#         target/bench/offline-N.md
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N="${1:-10000}"
ROUNDS="${2:-3}"
cd "$ROOT"
export PYTHONDONTWRITEBYTECODE=1
bash scripts/build-plugins.sh >&2
corpus="$ROOT/target/bench/corpus-$N-seed5"
if [[ ! -f "$corpus/manifest.json" ]]; then
    echo "generating corpus $corpus" >&2
    python3 bench/corpus.py "$N" "$corpus" --seed 5 >&2
fi
MAILPIPE_BENCH_CORPUS="$corpus" MAILPIPE_BENCH_ROUNDS="$ROUNDS" \
    cargo bench --bench pipeline | tee "$ROOT/target/bench/offline-$N.md"
