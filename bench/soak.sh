#!/usr/bin/env bash
# Soak (issue 24, item 9): the whole command over a long run, memory, open files, state size
# and speed per tenth watched from outside (bench/soak.py). As root, nothing else running;
# needs target/release/mailpipe and target/plugins/*.wasm (cargo build --release;
# bash scripts/build-plugins.sh).
#
# Usage:  bash bench/soak.sh offline [N]              (default 1000000; ~1 h with generation)
#         bash bench/soak.sh imap [N [ACCOUNTS]]       (default 100000 over 100 accounts)
# Results: Markdown on stdout, JSON in $WORK/soak-<mode>-N.json (WORK default
# /var/tmp/mpsoak: on this machine's disk, /tmp's block group is slow to make files in).
# MAILPIPE_BIN: another binary to measure (default target/release/mailpipe), e.g. the one
# before a change, to alternate runs of both on one machine.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${BENCH_WORK:-/var/tmp/mpsoak}"
mode="${1:-offline}"
mkdir -p "$WORK/bin/plugins"
cp "${MAILPIPE_BIN:-$ROOT/target/release/mailpipe}" "$WORK/bin/mailpipe"
cp "$ROOT"/target/plugins/{rules-filer,subject-tagger,auto-responder,forwarder}.wasm "$WORK/bin/plugins/"
case "$mode" in
offline)
    python3 "$ROOT/bench/soak.py" offline "${2:-1000000}" "$WORK" "$WORK/bin/mailpipe" "$WORK/bin/plugins"
    ;;
imap)
    [[ $EUID -eq 0 ]] || { echo "bench/soak.sh imap: run as root" >&2; exit 1; }
    n="${2:-100000}"
    accounts="${3:-100}"
    export MAILSTACK_DIR=/var/tmp/mpsoak-stack
    export MAILSTACK_IMAP_PORT=18143 MAILSTACK_IMAPS_PORT=18993 MAILSTACK_SMTP_PORT=18025
    export MAILSTACK_SUBMISSION_PORT=18587 MAILSTACK_SUBMISSIONS_PORT=18465 MAILSTACK_LMTP_PORT=18024
    export MAILSTACK_OAUTH_PORT=18080
    export MAILSTACK_DOVECOT_EXTRA="$WORK/dovecot-many.conf"
    cat >"$MAILSTACK_DOVECOT_EXTRA" <<CONF
default_client_limit = 4000
service imap-login {
  service_count = 0
  client_limit = 4000
}
service imap {
  service_count = 0
  client_limit = 100
  process_limit = 100
}
CONF
    users=$(python3 -c "print(' '.join('s%03d' % i for i in range($accounts)))")
    trap 'bash "$ROOT/tests/mailstack/stop.sh" >/dev/null 2>&1 || true' EXIT
    bash "$ROOT/tests/mailstack/stop.sh" >/dev/null 2>&1 || true
    MAILSTACK_USERS="$users" bash "$ROOT/tests/mailstack/start.sh" >/dev/null
    python3 "$ROOT/bench/soak.py" imap "$n" "$accounts" "$WORK" "$WORK/bin/mailpipe" "$WORK/bin/plugins"
    ;;
*)
    echo "usage: bash bench/soak.sh offline [N] | imap [N [ACCOUNTS]]" >&2
    exit 2
    ;;
esac
