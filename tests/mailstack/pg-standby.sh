#!/usr/bin/env bash
# A PostgreSQL primary with a streaming standby (synchronous replication), private to the
# test bed, for the test of a standby promoted when the primary dies (tests/imap_daemon.rs,
# `a_standby_promoted_…`): the test puts its own proxy in front, as a failover address does.
#
# Why this exists: a shared state store that fails over to a replica must lose nothing that
# mailpipe was told was committed; that needs a real replica, not a restarted server. Runs
# beside postgres.sh's cluster (which it does not touch), with Debian's PostgreSQL binaries
# (postgres.sh installs them), as the postgres user, under $MAILSTACK_DIR/pg-pair.
#
# Usage:  tests/mailstack/pg-standby.sh start     # fresh pair; prints the primary's and the
#                                                 # standby's URL, one per line
#         tests/mailstack/pg-standby.sh promote   # kill the primary (immediate), promote the standby
#         tests/mailstack/pg-standby.sh stop      # stop both
# Env:    MAILSTACK_DIR, MAILSTACK_PG_PAIR_PORT (default 15442; the standby listens on +1)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$HERE/common.sh"

BASE="$MAILSTACK_DIR/pg-pair"
PRIMARY_PORT="${MAILSTACK_PG_PAIR_PORT:-15442}"
STANDBY_PORT=$((PRIMARY_PORT + 1))
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[[ -x "$PG_BIN/postgres" ]] || { echo "pg-standby.sh: no PostgreSQL server (run postgres.sh start once)" >&2; exit 1; }

as_pg() { (cd / && runuser -u postgres -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"); }
ctl() { as_pg "$PG_BIN/pg_ctl" -D "$BASE/$1" "${@:2}" </dev/null >>"$BASE/pg_ctl.log" 2>&1; }

stop_both() {
    for d in primary standby; do
        [[ -f "$BASE/$d/postmaster.pid" ]] && ctl "$d" stop -m fast -w || true
    done
}

case "${1:-}" in
start)
    [[ -d "$BASE" ]] && stop_both
    rm -rf "$BASE"
    mkdir -p "$BASE"
    chown postgres:postgres "$BASE"
    as_pg "$PG_BIN/initdb" -D "$BASE/primary" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
        </dev/null >"$BASE/initdb.log" 2>&1 || { tail -20 "$BASE/initdb.log" >&2; exit 1; }
    cat >>"$BASE/primary/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PRIMARY_PORT
unix_socket_directories = '$BASE'
wal_level = replica
max_wal_senders = 4
EOF
    cat >"$BASE/primary/pg_hba.conf" <<EOF
local all all trust
host all all 127.0.0.1/32 scram-sha-256
host replication postgres 127.0.0.1/32 trust
EOF
    ctl primary -l "$BASE/primary.log" -w start
    as_pg "$PG_BIN/psql" -h "$BASE" -p "$PRIMARY_PORT" -U postgres -q \
        -c "CREATE ROLE mailpipe LOGIN PASSWORD 'secret-pg'" -c "CREATE DATABASE mailpipe OWNER mailpipe" \
        </dev/null >/dev/null
    as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -D "$BASE/standby" -R -X stream \
        </dev/null >>"$BASE/pg_ctl.log" 2>&1
    # The standby, once promoted, has no standby of its own to wait for.
    cat >>"$BASE/standby/postgresql.conf" <<EOF
port = $STANDBY_PORT
synchronous_standby_names = ''
EOF
    ctl standby -l "$BASE/standby.log" -w start
    # From now on a commit waits until the standby has it: a promotion loses nothing that was
    # committed. (Set only now: with no standby yet, the commits above would wait forever.)
    as_pg "$PG_BIN/psql" -h "$BASE" -p "$PRIMARY_PORT" -U postgres -q \
        -c "ALTER SYSTEM SET synchronous_standby_names = '*'" -c "SELECT pg_reload_conf()" \
        </dev/null >/dev/null
    echo "postgres://mailpipe:secret-pg@127.0.0.1:$PRIMARY_PORT/mailpipe"
    echo "postgres://mailpipe:secret-pg@127.0.0.1:$STANDBY_PORT/mailpipe"
    ;;
promote)
    ctl primary stop -m immediate -w
    ctl standby promote -w
    ;;
stop)
    stop_both
    ;;
*)
    echo "usage: pg-standby.sh start | promote | stop" >&2
    exit 2
    ;;
esac
