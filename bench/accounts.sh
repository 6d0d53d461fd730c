#!/usr/bin/env bash
# Many accounts in one instance (issue 14): N IMAP accounts (one file each in an accounts
# directory), all IDLE on a private Dovecot tuned for many connections, one mailpipe daemon.
# Measures: time until all are connected, memory per account, open files, CPU while idle,
# and how long a new message for one of them takes to be filed. As root, nothing else
# running; needs target/release/mailpipe and target/plugins/rules-filer.wasm.
#
# Usage:  bash bench/accounts.sh [N ...]      (default: 1000 10000)
# Results: one JSON line per N on stdout, $WORK/accounts-N.json, logs in $WORK (default
# /tmp/mpaccounts).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${BENCH_WORK:-/tmp/mpaccounts}"
[[ $EUID -eq 0 ]] || { echo "bench/accounts.sh: run as root" >&2; exit 1; }
sizes=("$@")
((${#sizes[@]})) || sizes=(1000 10000)
mkdir -p "$WORK/bin"
cp "$ROOT/target/release/mailpipe" "$ROOT/target/plugins/rules-filer.wasm" "$WORK/bin/"

export MAILSTACK_DIR=/tmp/mpaccounts-stack
export MAILSTACK_IMAP_PORT=12143 MAILSTACK_IMAPS_PORT=12993 MAILSTACK_SMTP_PORT=12025
export MAILSTACK_SUBMISSION_PORT=12587 MAILSTACK_SUBMISSIONS_PORT=12465 MAILSTACK_LMTP_PORT=12024
export MAILSTACK_OAUTH_PORT=12080
# Dovecot for many connections: one login process for all (high-performance mode), IMAP
# processes that each serve many clients, limits above the number of accounts.
export MAILSTACK_DOVECOT_EXTRA="$WORK/dovecot-many.conf"
cat >"$MAILSTACK_DOVECOT_EXTRA" <<CONF
default_client_limit = 15000
default_process_limit = 1000
default_vsz_limit = 2G
service imap-login {
  service_count = 0
  client_limit = 15000
  process_min_avail = 2
}
service imap {
  service_count = 0
  client_limit = 200
  process_limit = 1000
}
service anvil {
  client_limit = 15000
}
service auth {
  client_limit = 15000
}
service auth-worker {
  client_limit = 1
}
CONF
# Every IDLE connection watches its Maildir with inotify.
sysctl -q -w fs.inotify.max_user_instances=65536 fs.inotify.max_user_watches=1048576 || true
ulimit -n "$(ulimit -Hn)"
trap 'bash "$ROOT/tests/mailstack/stop.sh" >/dev/null 2>&1 || true' EXIT
for n in "${sizes[@]}"; do
    users=$(python3 -c "print(' '.join('u%05d' % i for i in range(1, $n + 1)))")
    bash "$ROOT/tests/mailstack/stop.sh" >/dev/null 2>&1 || true
    MAILSTACK_USERS="$users" bash "$ROOT/tests/mailstack/start.sh" >/dev/null
    # shellcheck disable=SC1091
    source "$MAILSTACK_DIR/env.sh"
    python3 "$ROOT/bench/accounts.py" "$n" "$WORK" "$WORK/bin/mailpipe" "$WORK/bin/rules-filer.wasm"
done
