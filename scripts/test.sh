#!/usr/bin/env bash
# The README's second command: the whole test suite on a fresh machine (as root, Debian 12).
# Builds the plugins (installing the wasm32-wasip2 target if needed), starts the real test
# bed of tests/mailstack (Dovecot + Postfix + a local OAuth2 provider, and Cyrus IMAP; all
# from Debian's packages, installed or unpacked if needed), runs every host test (unit and end-to-end) in the one release profile used everywhere, and
# stops the test bed again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-plugins.sh
# The binary embeds the Sieve interpreter (host/build.rs): the one just built, not a second build.
export MAILPIPE_SIEVE_WASM="$PWD/target/plugins/sieve.wasm"
bash tests/mailstack/start.sh >/dev/null
trap 'bash tests/mailstack/postgres.sh stop >/dev/null 2>&1 || true; bash tests/mailstack/cyrus.sh stop >/dev/null 2>&1 || true; bash tests/mailstack/stop.sh >/dev/null 2>&1 || true' EXIT
# Cyrus IMAP beside Dovecot (both namespace layouts), from Debian's packages unpacked into the
# test bed: the IMAP scenario of tests/imap_servers.rs runs on every server.
bash tests/mailstack/cyrus.sh start >/dev/null
# PostgreSQL from Debian's packages, private to the test bed: the shared state backend's
# tests (the state store's tests run on both backends) and tests/cluster.rs.
eval "$(bash tests/mailstack/postgres.sh start)"
export MAILPIPE_TEST_POSTGRES="$MAILSTACK_POSTGRES_URL"
# tests/cluster.rs keeps 900 IDLE connections on a private Dovecot and
# tests/reconnect_storm.rs 1,000, each watching its
# mailbox with inotify (Linux allows 128 watchers per user by default; Dovecot then polls).
sysctl -q -w fs.inotify.max_user_instances=8192 fs.inotify.max_user_watches=524288 || true
# The benchmarks are not run here (they need ~10 min on a quiet machine, see bench/README.md),
# but they must keep compiling: same profile as the tests, so nothing is built twice.
# One build for everything below: the release profile with the test hooks (`test-hooks`,
# host/Cargo.toml: fault injection and the PostgreSQL pass; never in a build for users).
cargo build --release --features test-hooks --benches
cargo test --release --features test-hooks
# The Sieve interpreter's own tests (a library of the workspace, not a default member).
cargo test --release -p mailpipe-sieve
# The Prometheus alert rules (deploy/prometheus): valid, tested, naming served metrics.
bash tests/alerts/check.sh
# The end-to-end suites once more with every state store on PostgreSQL (a schema per state
# directory, see config/state.rs): the same tests on both backends. The cluster and
# reconnect-storm and failover tests set their backend themselves and ran above.
test_schemas() {
    psql "$MAILSTACK_POSTGRES_URL" -Atc "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'test\_%'"
}
before=$(test_schemas)
MAILPIPE_TEST_STATE_POSTGRES="$MAILSTACK_POSTGRES_URL" cargo test --release --features test-hooks --test '*' -- \
    --skip three_instances_share_300_accounts --skip a_thousand_idle_accounts \
    --skip a_standby_promoted_behind_the_same_address
# Proof that this pass kept its state in PostgreSQL: the suites' stores made schemas there.
after=$(test_schemas)
echo "PostgreSQL pass: $((after - before)) state stores (schemas) made by the suites"
((after > before)) || { echo "the PostgreSQL pass made no schema: its stores were not on PostgreSQL" >&2; exit 1; }
# The plugin tests once more with the example plugins as built for contract 0.1
# (tests/fixtures/contract-0.1): old plugins are held to the same tests (no rebuild).
MAILPIPE_TEST_CONTRACT=0.1 cargo test --release --features test-hooks --test plugins
