#!/usr/bin/env bash
# mailpipe benchmarks for issue 5, against a private Dovecot + Postfix. See bench/README.md.
#
# Usage (as root on Debian 12):
#   bash bench/run.sh                      # everything: peers (1k + 10k), latency, coldstart
#   bash bench/run.sh peers [N [ROUNDS]]   # (a) mailpipe vs imapfilter vs sieve-filter vs floor
#   bash bench/run.sh 1000,10000 5,3       #     the same (a first argument that is a number = peers)
#   bash bench/run.sh latency [SAMPLES]    # (b) IDLE daemon: SMTP 250 -> filed, -> reply accepted
#   bash bench/run.sh coldstart [RUNS]     # (c) check / run --once with 5 plugins, cold vs warm cache
# Defaults: N=1000,10000 ROUNDS=5,3 SAMPLES=20 RUNS=5 (for `all`: env BENCH_N, BENCH_ROUNDS,
#           BENCH_SAMPLES, BENCH_RUNS, e.g. BENCH_N=200,1000 BENCH_ROUNDS=1 for a quick check).
# Env:    MAILPIPE_BIN (default: target/release/mailpipe), PLUGIN_DIR (default: target/plugins)
#         BENCH_WORK (default /tmp/mpbench: corpus, golden Maildirs, configs, logs, results)
#         BENCH_TOOLS (default floor,floor-header,mailpipe,imapfilter,sieve-filter,mailpipe-sieve,
#                     sieve-filter-50)
#         BENCH_QUIET_WAIT (default 120: before each peer run, wait up to this many s for an idle CPU)
#         BENCH_KEEP_STACK=1 leaves the stack running afterwards
#
# It starts its OWN tests/mailstack instance (/tmp/mpbench-stack, IMAP on 11143, all ports
# 11xxx) so that it never disturbs the test suite's stack on 10xxx, and stops it at the end.
# Nothing else on the machine should run meanwhile (the numbers are wall clock on 2 cores).
# Results: $BENCH_WORK/results.md (peers), latency/latency.md, coldstart/coldstart.md, and all
# three in $BENCH_WORK/summary.md; raw per-run data in *.jsonl beside them.
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1   # nothing may write __pycache__ into bench/

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
WORK="${BENCH_WORK:-/tmp/mpbench}"
TOOLS="${BENCH_TOOLS:-floor,floor-header,mailpipe,imapfilter,sieve-filter,mailpipe-sieve,sieve-filter-50}"

what="${1:-all}"
if [[ "$what" =~ ^[0-9] ]]; then what=peers; else shift || true; fi
case "$what" in
    all) N="${BENCH_N:-1000,10000}" ROUNDS="${BENCH_ROUNDS:-5,3}" SAMPLES="${BENCH_SAMPLES:-20}" RUNS="${BENCH_RUNS:-5}" ;;
    peers) N="${1:-1000,10000}" ROUNDS="${2:-5,3}" ;;
    latency) SAMPLES="${1:-20}" ;;
    coldstart) RUNS="${1:-5}" ;;
    *) sed -n '2,13p' "$0" >&2; exit 2 ;;
esac

[[ $EUID -eq 0 ]] || { echo "bench/run.sh: run as root (the mail stack and sieve-filter -u need it)" >&2; exit 1; }

export MAILSTACK_DIR=/tmp/mpbench-stack
export MAILSTACK_IMAP_PORT=11143 MAILSTACK_IMAPS_PORT=11993 MAILSTACK_SMTP_PORT=11025
export MAILSTACK_SUBMISSION_PORT=11587 MAILSTACK_SUBMISSIONS_PORT=11465 MAILSTACK_LMTP_PORT=11024
export MAILSTACK_OAUTH_PORT=11080

MAILPIPE_BIN="${MAILPIPE_BIN:-$ROOT/target/release/mailpipe}"
PLUGIN_DIR="${PLUGIN_DIR:-$ROOT/target/plugins}"
[[ -x "$MAILPIPE_BIN" ]] || { echo "bench/run.sh: $MAILPIPE_BIN missing: cargo build --release" >&2; exit 1; }
mkdir -p "$WORK/bin"
# Private copies: the originals may be rebuilt while we run.
cp "$MAILPIPE_BIN" "$WORK/bin/mailpipe"
for p in rules-filer auto-responder subject-tagger forwarder rules-filer-js; do
    [[ -f "$PLUGIN_DIR/$p.wasm" ]] || { echo "bench/run.sh: $PLUGIN_DIR/$p.wasm missing: bash scripts/build-plugins.sh" >&2; exit 1; }
    cp "$PLUGIN_DIR/$p.wasm" "$WORK/bin/"
done
chmod 755 "$WORK" "$WORK/bin"

# Peers: Debian packages (the stack's own packages are installed by tests/mailstack/start.sh).
missing=()
command -v imapfilter >/dev/null || missing+=(imapfilter)
command -v sieve-filter >/dev/null || missing+=(dovecot-sieve)
command -v python3 >/dev/null || missing+=(python3)
if ((${#missing[@]})); then
    echo "installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
        { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; }
fi

if [[ "$what" != coldstart ]]; then
    bash "$ROOT/tests/mailstack/start.sh" >/dev/null
    if [[ "${BENCH_KEEP_STACK:-0}" != 1 ]]; then
        trap 'bash "$ROOT/tests/mailstack/stop.sh" >/dev/null 2>&1 || true' EXIT
    fi
    # shellcheck disable=SC1091
    source "$MAILSTACK_DIR/env.sh"
fi

{
    echo "date: $(date -u +%FT%TZ)"
    echo "kernel: $(uname -r)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') x $(nproc)"
    echo "memory: $(free -g | awk '/Mem:/{print $2}') GB; load: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "mailpipe: $("$WORK/bin/mailpipe" --version) ($(sha256sum "$WORK/bin/mailpipe" | cut -c1-12)), rules-filer $(sha256sum "$WORK/bin/rules-filer.wasm" | cut -c1-12)"
    echo "mailpipe git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- host plugins 2>/dev/null || echo ' (+ uncommitted changes)')"
    echo "dovecot: $(dovecot --version)"
    echo "postfix: $(postconf -h mail_version 2>/dev/null || echo '?')"
    echo "pigeonhole: $(dpkg-query -W -f='${Version}' dovecot-sieve)"
    echo "imapfilter: $(imapfilter -V 2>&1 | head -1)"
    echo "python: $(python3 --version 2>&1)"
} | tee "$WORK/env.txt" >&2

parts=()
rc=0
if [[ "$what" == all || "$what" == peers ]]; then
    python3 "$HERE/bench.py" --n "$N" --rounds "$ROUNDS" --work "$WORK" --tools "$TOOLS" \
        --quiet-wait "${BENCH_QUIET_WAIT:-120}" --mailpipe "$WORK/bin/mailpipe" --plugin "$WORK/bin/rules-filer.wasm" || rc=$?
    parts+=("$WORK/results.md")
fi
if [[ "$what" == all || "$what" == latency ]]; then
    python3 "$HERE/latency.py" --samples "$SAMPLES" --work "$WORK" --mailpipe "$WORK/bin/mailpipe" --plugins "$WORK/bin" || rc=$?
    parts+=("$WORK/latency/latency.md")
fi
if [[ "$what" == all || "$what" == coldstart ]]; then
    python3 "$HERE/coldstart.py" --runs "$RUNS" --work "$WORK" --mailpipe "$WORK/bin/mailpipe" --plugins "$WORK/bin" || rc=$?
    parts+=("$WORK/coldstart/coldstart.md")
fi
if [[ "$what" == all ]]; then
    { echo '```'; cat "$WORK/env.txt"; echo '```'; echo; for p in "${parts[@]}"; do cat "$p"; echo; done; } >"$WORK/summary.md"
    echo "all results: $WORK/summary.md" >&2
fi
exit "$rc"
