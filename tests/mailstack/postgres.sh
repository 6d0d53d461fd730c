#!/usr/bin/env bash
# Run a private PostgreSQL server (Debian 12's PostgreSQL 15) on 127.0.0.1 for
# the tests of mailpipe that need a real database.
#
# Why this exists: mailpipe's tests of its PostgreSQL storage must run against a
# real server (transactions, durability with fsync on, many connections), and
# must never use or change the system cluster (/etc/postgresql, port 5432). This
# script installs the `postgresql` package if no server binary is there, keeps
# the system cluster stopped after such an install, and runs its own cluster
# under $MAILSTACK_DIR/postgres as the `postgres` user: data directory, config,
# unix socket and log all live there. See README.md beside it.
#
# Usage:  tests/mailstack/postgres.sh start    # logs on stderr, one `export` line on stdout
#         eval "$(tests/mailstack/postgres.sh start)"   # or: source $MAILSTACK_DIR/postgres/env.sh
#         tests/mailstack/postgres.sh stop     # pg_ctl stop of this data dir only
#         tests/mailstack/postgres.sh status   # exit 0 if it runs and accepts connections
# Env:    MAILSTACK_DIR, MAILSTACK_PG_PORT (default 15432), MAILSTACK_WAIT_SECS (see common.sh)
# Gives:  MAILSTACK_POSTGRES_URL=postgres://mailpipe:secret-pg@127.0.0.1:<port>/mailpipe
#         (role mailpipe: LOGIN CREATEDB, owns database mailpipe).
# `start` is idempotent: when the cluster already runs on the same port it only
# prints the env line; a stopped cluster is started again with its data (initdb
# only happens once). rm -rf "$MAILSTACK_DIR/postgres" after `stop` for an
# empty cluster. stop.sh does NOT stop PostgreSQL.

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$HERE/common.sh"   # MAILSTACK_DIR/HOST/WAIT_SECS, ms_log, ms_port_open, ms_pid_alive

# ---------------------------------------------------------------- settings ---
MAILSTACK_PG_PORT="${MAILSTACK_PG_PORT:-15432}"
PG_BASE="$MAILSTACK_DIR/postgres"          # root-owned; the parts below belong to postgres
PG_DATA="$PG_BASE/data"                    # the cluster (initdb), mode 700
PG_RUN="$PG_BASE/run"                      # unix_socket_directories (not /var/run/postgresql)
PG_LOGFILE="$PG_BASE/postgres.log"         # the server's stderr (pg_ctl -l)
PG_APT_LOG="$PG_BASE/apt.log"
PG_ENV="$PG_BASE/env.sh"                   # start.sh rewrites $MAILSTACK_DIR/env.sh, so ours is separate
PG_APT_LOCK=/tmp/mailpipe-apt.lock         # shared with start.sh and cyrus.sh
PG_OS_USER=postgres                        # created by the postgresql-common package
PG_ROLE=mailpipe
PG_PASSWORD=secret-pg
PG_DATABASE=mailpipe
PG_BIN=""                                  # set by pg_find_bin

[[ "$MAILSTACK_PG_PORT" =~ ^[1-9][0-9]{0,4}$ ]] && ((MAILSTACK_PG_PORT >= 1 && MAILSTACK_PG_PORT <= 65535)) ||
    { echo "[mailstack] ERROR: MAILSTACK_PG_PORT must be a port number (1..65535): $MAILSTACK_PG_PORT" >&2; exit 1; }
MAILSTACK_POSTGRES_URL="postgres://$PG_ROLE:$PG_PASSWORD@$MAILSTACK_HOST:$MAILSTACK_PG_PORT/$PG_DATABASE"

# ----------------------------------------------------------------- helpers ---
# An error, without ($PG_LOGFILE) or with the end of the server log.
pg_fail() {
    printf '[mailstack] ERROR: %s\n' "$*" >&2
    exit 1
}
pg_die() {
    printf '[mailstack] ERROR: %s\n' "$*" >&2
    if [[ -s "$PG_LOGFILE" ]]; then
        printf -- '----- tail of %s -----\n' "$PG_LOGFILE" >&2
        tail -n 25 "$PG_LOGFILE" >&2
    fi
    exit 1
}

# Our own lock (fd 6): PostgreSQL may start in parallel with start.sh (fd 9)
# and cyrus.sh (fd 8). The server must not inherit it (see pg_start).
pg_lock() {
    exec 6>"$PG_BASE/.lock"
    flock -w 300 6 || pg_fail "another postgres.sh has held $PG_BASE/.lock for 300 s"
}

# Run a command as the postgres user, with a clean environment (no PGHOST,
# PGUSER, ... of the caller) and a working directory it may enter. initdb and
# pg_ctl refuse to run as root.
pg_as() {
    (cd / && runuser -u "$PG_OS_USER" -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@")
}

# The newest installed server: /usr/lib/postgresql/<ver>/bin (never PATH, where
# Debian puts the pg_wrapper scripts). A data dir made by another major
# version needs that version's binaries.
pg_find_bin() {
    local want="" d
    [[ -s "$PG_DATA/PG_VERSION" ]] && want=$(<"$PG_DATA/PG_VERSION")
    if [[ -n "$want" ]]; then
        [[ -x "/usr/lib/postgresql/$want/bin/postgres" ]] ||
            pg_fail "$PG_DATA was made by PostgreSQL $want, which is not installed; stop, rm -rf $PG_BASE and start again"
        PG_BIN="/usr/lib/postgresql/$want/bin"
        return 0
    fi
    d=$(compgen -G '/usr/lib/postgresql/*/bin/postgres' | sort -V | tail -n 1 || true)
    [[ -n "$d" ]] || return 1
    PG_BIN="${d%/postgres}"
}

# Pid of the postmaster running on OUR data dir, or nothing. postmaster.pid
# holds pid, data dir, start time, port, socket dir, ... (one per line); the
# pid only counts while it is alive (not a zombie) and runs a postgres binary
# (guards against a stale pid file and pid reuse).
pg_pid() {
    local f="$PG_DATA/postmaster.pid" pid dir
    [[ -r "$f" ]] || return 0
    { read -r pid; read -r dir; } <"$f" || true
    [[ "$pid" =~ ^[0-9]+$ && "$dir" == "$PG_DATA" ]] || return 0
    ms_pid_alive "$pid" || return 0
    [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == /usr/lib/postgresql/*/bin/postgres ]] && echo "$pid"
    return 0
}

# The port the running postmaster listens on (line 4 of postmaster.pid).
pg_running_port() { sed -n 4p "$PG_DATA/postmaster.pid" 2>/dev/null | tr -dc '0-9'; }

# True if the server answers on 127.0.0.1:$1 (TCP, as a client would come).
pg_ready() { "$PG_BIN/pg_isready" -q -h "$MAILSTACK_HOST" -p "$1" -d "$PG_DATABASE" -t 2 </dev/null >/dev/null 2>&1; }

# ------------------------------------------------------- 1. the package ---
pg_apt() { # apt-get under the shared apt lock, output to the apt log
    (
        flock -w 900 8 || { echo "could not get $PG_APT_LOCK within 900 s" >&2; exit 1; }
        DEBIAN_FRONTEND=noninteractive apt-get "$@"
    ) 8>"$PG_APT_LOCK" </dev/null >>"$PG_APT_LOG" 2>&1
}

pg_have_server() { compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; }

pg_install_package() {
    pg_have_server && return 0
    ms_log "installing postgresql (apt-get, log: $PG_APT_LOG)"
    # Keep the package scripts from starting the system cluster on port 5432
    # (the standard Debian policy-rc.d hook, as in start.sh). The package still
    # creates that cluster (/etc/postgresql/<ver>/main); it is stopped and set
    # to "manual" below.
    local made_policy=0 rc=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\n# temporary, from mailpipe tests/mailstack/postgres.sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    pg_apt update -q &&
        pg_apt install -y -q --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold postgresql || rc=$?
    ((made_policy)) && rm -f /usr/sbin/policy-rc.d
    if ((rc != 0)); then
        tail -n 30 "$PG_APT_LOG" >&2
        pg_fail "apt-get install postgresql failed (exit $rc)"
    fi
    pg_have_server || pg_fail "no /usr/lib/postgresql/*/bin/postgres after installing postgresql"
    pg_find_bin
    pg_disable_system_clusters
    ms_log "installed $("$PG_BIN/postgres" --version)"
}

# The system cluster(s) the package made: stopped now (an install without
# policy-rc.d, or an init system that ignores it, may have started them) and
# never started at boot ("manual" in start.conf: only pg_ctlcluster starts it).
pg_disable_system_clusters() {
    local conf ver name
    for conf in /etc/postgresql/*/*/start.conf; do
        [[ -e "$conf" ]] || continue
        name=$(basename "$(dirname "$conf")")
        ver=$(basename "$(dirname "$(dirname "$conf")")")
        ms_log "stopping and disabling the system cluster $ver/$name (we never use it)"
        pg_ctlcluster "$ver" "$name" stop >>"$PG_APT_LOG" 2>&1 || true
        sed -i -E 's/^[[:space:]]*auto[[:space:]]*$/manual/' "$conf"
    done
    if command -v systemctl >/dev/null; then
        systemctl disable postgresql.service >/dev/null 2>&1 || true
    fi
    update-rc.d postgresql disable >/dev/null 2>&1 || true
}

# ------------------------------------------------------- 2. the cluster ---
pg_make_dirs() {
    # The path goes into postgresql.conf as a quoted string.
    [[ "$PG_BASE" != *[[:space:]\'\",]* ]] || pg_fail "MAILSTACK_DIR must not contain spaces, quotes or commas: $MAILSTACK_DIR"
    id -u "$PG_OS_USER" >/dev/null 2>&1 || pg_fail "no system user $PG_OS_USER (the postgresql-common package creates it)"
    mkdir -p "$PG_RUN"
    chown "$PG_OS_USER:$PG_OS_USER" "$PG_RUN"
    chmod 755 "$PG_RUN"
    [[ -e "$PG_LOGFILE" ]] || : >"$PG_LOGFILE"
    chown "$PG_OS_USER:$PG_OS_USER" "$PG_LOGFILE"
    chmod 644 "$PG_LOGFILE"
    pg_as test -w "$PG_RUN" ||
        pg_fail "user $PG_OS_USER cannot reach $PG_RUN: every parent of $MAILSTACK_DIR must be world-traversable (o+x). Pick another MAILSTACK_DIR."
    # Unix socket paths are limited to 107 bytes.
    local sock="$PG_RUN/.s.PGSQL.$MAILSTACK_PG_PORT.lock"
    ((${#sock} <= 100)) || pg_fail "MAILSTACK_DIR is too long for the unix socket path $sock"
}

# initdb once. It writes into data.new, which becomes data only when initdb
# succeeded, so a half-made cluster is never started (and a failed attempt is
# simply made again).
pg_initdb() {
    [[ -s "$PG_DATA/PG_VERSION" ]] && return 0
    [[ ! -e "$PG_DATA" ]] || pg_fail "$PG_DATA exists but holds no cluster (no PG_VERSION); remove it and start again"
    local new="$PG_DATA.new"
    rm -rf "$new"
    mkdir -p "$new"
    chown "$PG_OS_USER:$PG_OS_USER" "$new"
    chmod 700 "$new"
    ms_log "initdb $PG_DATA ($("$PG_BIN/postgres" --version))"
    # Superuser "postgres", reachable only through the unix socket as the OS
    # user postgres (peer). UTF-8; byte-order collation (C), Unicode character
    # classes (C.UTF-8). Data checksums: a test of durability should notice a
    # torn page.
    pg_as "$PG_BIN/initdb" -D "$new" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
        --encoding=UTF8 --lc-collate=C --lc-ctype=C.UTF-8 --data-checksums \
        </dev/null >"$PG_BASE/initdb.log" 2>&1 ||
        { tail -n 25 "$PG_BASE/initdb.log" >&2; rm -rf "$new"; pg_fail "initdb failed (see $PG_BASE/initdb.log)"; }
    # Our settings come last, so they win over initdb's.
    printf "\n# mailpipe tests/mailstack/postgres.sh: its settings (rewritten at every start)\ninclude 'mailstack.conf'\n" \
        >>"$new/postgresql.conf"
    mv "$new" "$PG_DATA"
}

# TLS with the test bed's server certificate (localhost, 127.0.0.1; signed by
# $MAILSTACK_CA) when start.sh made it: mailpipe's TLS to PostgreSQL is tested
# against it (verified, and refused with the wrong CA). Plain connections stay
# allowed (pg_hba "host").
pg_ssl_conf() {
    if [[ -r "$MS_TLS/server.pem" && -r "$MS_TLS/server.key" ]]; then
        install -m 600 -o "$PG_OS_USER" -g "$PG_OS_USER" "$MS_TLS/server.pem" "$PG_DATA/server.crt"
        install -m 600 -o "$PG_OS_USER" -g "$PG_OS_USER" "$MS_TLS/server.key" "$PG_DATA/server.key"
        printf "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
    else
        printf "# No TLS: the test bed's certificate is not there (run start.sh first).\nssl = off\n"
    fi
}

# Written at every start (not while it runs: `start` on a running cluster does
# not touch it).
pg_write_conf() {
    cat >"$PG_DATA/mailstack.conf" <<EOF
# Generated by mailpipe tests/mailstack/postgres.sh -- edits are overwritten.
# Loopback only, never anything else; the socket lives beside the data dir.
listen_addresses = '$MAILSTACK_HOST'
port = $MAILSTACK_PG_PORT
unix_socket_directories = '$PG_RUN'
# Tests open many connections at once (default 100).
max_connections = 300
# Durability is tested: never turn these off here.
fsync = on
synchronous_commit = on
full_page_writes = on
password_encryption = scram-sha-256
$(pg_ssl_conf)
# The log goes to stderr, which pg_ctl -l sends to $PG_LOGFILE.
logging_collector = off
log_destination = 'stderr'
log_line_prefix = '%m [%p] %q%u@%d '
log_timezone = 'UTC'
timezone = 'UTC'
EOF
    # Password (SCRAM) over TCP from 127.0.0.1 only; the unix socket lets the
    # OS user postgres in as the superuser (the setup below) and others with a
    # password. Everything else is refused.
    cat >"$PG_DATA/pg_hba.conf" <<EOF
# Generated by mailpipe tests/mailstack/postgres.sh -- edits are overwritten.
# TYPE  DATABASE  USER      ADDRESS        METHOD
local   all       postgres                 peer
local   all       all                      scram-sha-256
host    all       all       127.0.0.1/32   scram-sha-256
EOF
    chown "$PG_OS_USER:$PG_OS_USER" "$PG_DATA/mailstack.conf" "$PG_DATA/pg_hba.conf"
    chmod 600 "$PG_DATA/mailstack.conf" "$PG_DATA/pg_hba.conf"
}

pg_check_port_free() {
    if ms_port_open "$MAILSTACK_PG_PORT"; then
        ss -ltnp "sport = :$MAILSTACK_PG_PORT" >&2 || true
        pg_fail "$MAILSTACK_HOST:$MAILSTACK_PG_PORT is already taken by another process (not the cluster in $PG_DATA)"
    fi
}

pg_start() {
    # pg_ctl -w waits until the server accepts connections or has exited; its
    # child runs in its own session (a Ctrl-C of the caller does not reach the
    # server). The server must inherit neither our stdout (a `$(postgres.sh
    # start)` would hang) nor the locks (fds 6, 8, 9).
    pg_as "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOGFILE" -w -t "$MAILSTACK_WAIT_SECS" start \
        </dev/null >>"$PG_BASE/pg_ctl.log" 2>&1 6>&- 8>&- 9>&- ||
        pg_die "pg_ctl start failed or the server did not come up within ${MAILSTACK_WAIT_SECS}s (see $PG_LOGFILE)"
    # Then wait (bounded) until it answers where clients come from: TCP on loopback.
    local deadline=$((SECONDS + MAILSTACK_WAIT_SECS))
    until pg_ready "$MAILSTACK_PG_PORT"; do
        [[ -n "$(pg_pid)" ]] || pg_die "the PostgreSQL server exited at start (see $PG_LOGFILE)"
        ((SECONDS < deadline)) ||
            pg_die "PostgreSQL does not accept connections on $MAILSTACK_HOST:$MAILSTACK_PG_PORT after ${MAILSTACK_WAIT_SECS}s"
        sleep 0.2
    done
    ms_log "postgres up (pid $(pg_pid), $MAILSTACK_HOST:$MAILSTACK_PG_PORT, data $PG_DATA)"
}

# The role and database of the tests, made or repaired at every start
# (idempotent). The superuser comes in through the unix socket (peer).
pg_setup_role() {
    pg_as "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_RUN" -p "$MAILSTACK_PG_PORT" -U postgres -d postgres \
        >>"$PG_BASE/pg_ctl.log" 2>&1 <<EOF || pg_die "creating role $PG_ROLE / database $PG_DATABASE failed (see $PG_BASE/pg_ctl.log)"
DO \$\$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_ROLE') THEN
        CREATE ROLE $PG_ROLE;
    END IF;
END
\$\$;
ALTER ROLE $PG_ROLE WITH LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
SELECT 'CREATE DATABASE $PG_DATABASE OWNER $PG_ROLE'
    WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_DATABASE') \gexec
ALTER DATABASE $PG_DATABASE OWNER TO $PG_ROLE;
EOF
}

pg_write_env() {
    {
        echo "# Written by mailpipe tests/mailstack/postgres.sh: source it to reach the test PostgreSQL."
        printf 'export MAILSTACK_POSTGRES_URL=%s\n' "$MAILSTACK_POSTGRES_URL"
    } >"$PG_ENV.tmp"
    chmod 644 "$PG_ENV.tmp"
    mv "$PG_ENV.tmp" "$PG_ENV"
}

pg_print_env() { grep '^export ' "$PG_ENV"; }

# ---------------------------------------------------------------- commands ---
pg_cmd_stop() {
    local pid port i
    pid=$(pg_pid)
    if [[ -z "$pid" ]]; then
        ms_log "postgres under $PG_BASE is not running"
        return 0
    fi
    port=$(pg_running_port)
    pg_find_bin || pg_fail "no /usr/lib/postgresql/*/bin/pg_ctl"
    # Fast: roll back open transactions, end the sessions, checkpoint. Only
    # the postmaster of this data dir gets the signal; it ends its own children.
    if ! pg_as "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop </dev/null >>"$PG_BASE/pg_ctl.log" 2>&1; then
        ms_log "pg_ctl stop -m fast did not finish within 60 s: -m immediate"
        pg_as "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w -t 30 stop </dev/null >>"$PG_BASE/pg_ctl.log" 2>&1 ||
            pg_die "pg_ctl stop failed (see $PG_BASE/pg_ctl.log)"
    fi
    # The pid file is gone now; the process itself may linger as a zombie (see ms_pid_alive).
    for ((i = 0; i < 100; i++)); do
        ms_pid_alive "$pid" || break
        sleep 0.1
    done
    if [[ -n "$port" ]]; then
        ms_wait_ports_closed "$port" || pg_die "postgres stopped but port $port is still open"
    fi
    ms_log "postgres stopped"
}

pg_cmd_status() {
    local pid port
    pid=$(pg_pid)
    if [[ -z "$pid" ]]; then
        echo "postgres: not running ($PG_DATA)"
        return 1
    fi
    port=$(pg_running_port)
    pg_find_bin || true
    if [[ -z "$PG_BIN" ]] || ! pg_ready "$port"; then
        echo "postgres: pid $pid, but $MAILSTACK_HOST:$port does not accept connections"
        return 1
    fi
    echo "postgres: running, pid $pid, $MAILSTACK_HOST:$port, data $PG_DATA"
}

pg_cmd_start() {
    local t0=$SECONDS pid port
    pid=$(pg_pid)
    if [[ -n "$pid" ]]; then
        port=$(pg_running_port)
        if [[ "$port" == "$MAILSTACK_PG_PORT" ]]; then
            ms_log "postgres already running (pid $pid, $MAILSTACK_HOST:$port)"
            pg_find_bin || pg_fail "no /usr/lib/postgresql/*/bin/postgres"
            pg_ready "$port" || pg_die "postgres (pid $pid) runs but does not accept connections on $MAILSTACK_HOST:$port"
            pg_write_env
            pg_print_env
            return 0
        fi
        ms_log "postgres runs on port $port, $MAILSTACK_PG_PORT wanted: restarting it"
        pg_cmd_stop
    fi

    pg_install_package
    if ms_port_open 5432; then
        ms_log "WARNING: something listens on $MAILSTACK_HOST:5432 (not ours; this script never uses it):"
        ss -ltnp "sport = :5432" >&2 || true
    fi
    pg_find_bin || pg_fail "no /usr/lib/postgresql/*/bin/postgres"   # newest, or the data dir's version
    pg_make_dirs
    pg_initdb
    pg_check_port_free
    pg_write_conf
    pg_start
    pg_setup_role
    pg_ready "$MAILSTACK_PG_PORT" || pg_die "postgres does not answer after the role setup"
    pg_write_env   # only for a server that runs (stop and status use postmaster.pid, not this)
    ms_log "postgres ready under $PG_BASE in $((SECONDS - t0))s (env: $PG_ENV)"
    pg_print_env
}

case "${1:-}" in
start | stop | status)
    [[ $EUID -eq 0 ]] || pg_fail "must run as root (installs packages, runs the server as $PG_OS_USER)"
    ;;&
start)
    mkdir -p "$PG_BASE"
    chmod 755 "$MAILSTACK_DIR" "$PG_BASE"
    pg_lock
    pg_cmd_start
    ;;
stop)
    [[ -d "$PG_DATA" ]] || exit 0   # nothing was ever started here
    pg_lock
    pg_cmd_stop
    ;;
status) pg_cmd_status ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
