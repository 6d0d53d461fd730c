# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this
# Shared settings and helpers for the mailstack scripts (start.sh, stop.sh,
# restart-dovecot.sh, postfix-ctl.sh, oauth2-ctl.sh, selftest.sh). Sourced,
# never run directly.
#
# Why this exists: the end-to-end tests of mailpipe need a real IMAP/SMTP server.
# All scripts must agree on the same paths, ports and pid files, and must only
# ever touch the daemons that live under $MAILSTACK_DIR, so that knowledge is
# kept in one place here.

set -euo pipefail
umask 022   # the daemons run as other users and must read what we create

# ---------------------------------------------------------------- settings ---
# Everything lives under one base directory. Every parent of it must be
# world-traversable (o+x) because the daemons drop privileges.
MAILSTACK_DIR="${MAILSTACK_DIR:-/tmp/mailpipe-mailstack}"
if [[ "$MAILSTACK_DIR" != /* ]]; then
    echo "[mailstack] ERROR: MAILSTACK_DIR must be an absolute path: $MAILSTACK_DIR" >&2
    exit 1
fi
MAILSTACK_DIR="${MAILSTACK_DIR%/}"
# If a previous start.sh wrote an env.sh, its ports win over the defaults so that
# restart-dovecot.sh / postfix-ctl.sh / stop.sh wait for the right ports. Explicit
# environment variables still win over both. start.sh sets MS_IGNORE_ENV_FILE=1:
# a new start takes defaults + environment only.
_ms_saved_env="$(declare -px 2>/dev/null | grep -E '^declare -x MAILSTACK_[A-Z_]+=' || true)"
if [[ "${MS_IGNORE_ENV_FILE:-0}" != 1 && -r "$MAILSTACK_DIR/env.sh" ]]; then
    # shellcheck disable=SC1091
    source "$MAILSTACK_DIR/env.sh"
    eval "$_ms_saved_env"
fi
unset _ms_saved_env

MAILSTACK_HOST=127.0.0.1                      # loopback only, never anything else
MAILSTACK_DOMAIN=example.test
MAILSTACK_IMAP_PORT="${MAILSTACK_IMAP_PORT:-10143}"
MAILSTACK_IMAPS_PORT="${MAILSTACK_IMAPS_PORT:-10993}"
# POP3 defaults follow the IMAP ports (10143 -> 10110, 10993 -> 10995): the private
# stacks of tests/cluster.rs, tests/reconnect_storm.rs and bench/*.sh move only the
# ports they know of, and fixed POP3 defaults would clash with the shared stack's.
MAILSTACK_POP3_PORT="${MAILSTACK_POP3_PORT:-$((MAILSTACK_IMAP_PORT - 33))}"
MAILSTACK_POP3S_PORT="${MAILSTACK_POP3S_PORT:-$((MAILSTACK_IMAPS_PORT + 2))}"
MAILSTACK_SMTP_PORT="${MAILSTACK_SMTP_PORT:-10025}"
MAILSTACK_SUBMISSION_PORT="${MAILSTACK_SUBMISSION_PORT:-10587}"
MAILSTACK_SUBMISSIONS_PORT="${MAILSTACK_SUBMISSIONS_PORT:-10465}"  # implicit TLS (RFC 8314)
MAILSTACK_LMTP_PORT="${MAILSTACK_LMTP_PORT:-10024}"
# Where Postfix hands lmtp.<domain> mail to mailpipe's own LMTP server (a daemon a test starts).
MAILSTACK_MAILPIPE_LMTP_PORT="${MAILSTACK_MAILPIPE_LMTP_PORT:-10026}"
MAILSTACK_OAUTH_PORT="${MAILSTACK_OAUTH_PORT:-10080}"   # fake OAuth2 server (oauth2_server.py)
MAILSTACK_VMAIL_UID="${MAILSTACK_VMAIL_UID:-5000}"   # owner of the Maildir files; needs no passwd entry
MAILSTACK_USERS="${MAILSTACK_USERS:-alice bob carol dave erin frank}" # password of each is secret-<user>
MAILSTACK_WAIT_SECS="${MAILSTACK_WAIT_SECS:-30}"
MAILSTACK_DOVECOT_EXTRA="${MAILSTACK_DOVECOT_EXTRA:-}"  # a file of more Dovecot settings (bench/accounts.py: many connections)

# Reduced-capability IMAP endpoints: the same Dovecot and mailboxes, reached on
# another loopback address (all of 127.0.0.0/8 is local on Linux, nothing to
# configure) at port MAILSTACK_IMAP_PORT. Dovecot 2.3 can filter settings by
# local IP (`local ADDR { }`) but not by port, hence one address per profile.
# Each line: profile, address, capabilities it does not advertise ("*": all
# but IMAP4rev1). start.sh turns them into imap_capability settings.
MS_CAPS_PROFILES=(
    "nomove 127.0.0.2 MOVE"
    "nouidplus 127.0.0.3 UIDPLUS"
    "noidle 127.0.0.4 IDLE"
    "nocondstore 127.0.0.5 CONDSTORE QRESYNC"
    "noliteralplus 127.0.0.6 LITERAL+ LITERAL-"
    "nospecialuse 127.0.0.7 SPECIAL-USE"
    "nonamespace 127.0.0.8 NAMESPACE"
    "minimal 127.0.0.9 *"
)
# What Dovecot 2.3.19 advertises after login on 127.0.0.1 with this config
# (imap-client.c: CAPABILITY_STRING, then LITERAL+, NOTIFY and SPECIAL-USE).
# An explicit imap_capability replaces all of it, before and after login; only
# STARTTLS and AUTH=... are still added before login. selftest.sh checks that
# this list still matches the server.
MS_IMAP_FULL_CAPS="IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES \
THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS \
LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY \
MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE"

# The capability list of a profile: $1 = the names it drops, as in
# MS_CAPS_PROFILES ("*": everything but IMAP4rev1).
ms_profile_caps() {
    local drop=" $1 " c out=()
    if [[ "$1" == "*" ]]; then echo IMAP4rev1; return; fi
    for c in $MS_IMAP_FULL_CAPS; do
        [[ "$drop" == *" $c "* ]] || out+=("$c")
    done
    echo "${out[*]}"
}

# Derived paths.
MAILSTACK_OAUTH_URL="http://$MAILSTACK_HOST:$MAILSTACK_OAUTH_PORT"
MS_OAUTH="$MAILSTACK_DIR/oauth2"
MS_OAUTH_PID="$MS_OAUTH/oauth2_server.pid"
MS_OAUTH_STATE="$MS_OAUTH/state.json"        # issued tokens survive a restart of the server
MS_OAUTH_SERVER="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/oauth2_server.py"
MS_TLS="$MAILSTACK_DIR/tls"
MAILSTACK_CA="$MS_TLS/ca.pem"                # CA of the server certificate
MAILSTACK_WRONG_CA="$MS_TLS/wrong-ca.pem"    # unrelated CA, for negative tests
MS_LOG="$MAILSTACK_DIR/log"
MS_MAIL="$MAILSTACK_DIR/mail"
MS_DOVECOT="$MAILSTACK_DIR/dovecot"
MS_DOVECOT_CONF="$MS_DOVECOT/dovecot.conf"
MS_DOVECOT_RUN="$MS_DOVECOT/run"            # dovecot base_dir (sockets, master.pid)
MS_DOVECOT_PID="$MS_DOVECOT_RUN/master.pid"
MS_SASL_SOCKET="$MS_DOVECOT_RUN/auth-postfix"
MS_POSTFIX="$MAILSTACK_DIR/postfix"
MS_POSTFIX_CONF="$MS_POSTFIX/conf"           # postfix config_directory (main.cf, master.cf)
MS_POSTFIX_QUEUE="$MS_POSTFIX/spool"         # postfix queue_directory
MS_POSTFIX_DATA="$MS_POSTFIX/data"           # postfix data_directory (owned by postfix)
MS_POSTFIX_PID="$MS_POSTFIX_QUEUE/pid/master.pid"

# ----------------------------------------------------------------- helpers ---
ms_log() { printf '[mailstack] %s\n' "$*" >&2; }

# Print the last lines of the daemon logs, for error reports.
ms_log_tails() {
    local f
    for f in "$MS_LOG"/dovecot.log "$MS_LOG"/postfix.log "$MS_LOG"/oauth2.log "$MS_LOG"/*-start.log; do
        [[ -s "$f" ]] || continue
        printf -- '----- tail of %s -----\n' "$f" >&2
        tail -n 25 "$f" >&2
    done
}

ms_die() {
    printf '[mailstack] ERROR: %s\n' "$*" >&2
    ms_log_tails
    exit 1
}

# True if something accepts TCP connections on 127.0.0.1:$1, or on $1 if it
# is HOST:PORT.
ms_port_open() {
    local host=$MAILSTACK_HOST port=$1
    if [[ $1 == *:* ]]; then host=${1%:*} port=${1##*:}; fi
    timeout 2 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null
}

# Every address:port Dovecot listens on (for waiting and for port checks).
ms_dovecot_addrs() {
    local line addr
    echo "$MAILSTACK_IMAP_PORT" "$MAILSTACK_IMAPS_PORT" "$MAILSTACK_POP3_PORT" "$MAILSTACK_POP3S_PORT" \
        "$MAILSTACK_LMTP_PORT"
    for line in "${MS_CAPS_PROFILES[@]}"; do
        read -r _ addr _ <<<"$line"
        echo "$addr:$MAILSTACK_IMAP_PORT"
    done
}

# Wait (bounded) until every given port accepts connections.
ms_wait_ports() {
    local deadline=$((SECONDS + MAILSTACK_WAIT_SECS)) p missing
    while :; do
        missing=""
        for p in "$@"; do ms_port_open "$p" || missing="$missing $p"; done
        [[ -z "$missing" ]] && return 0
        if ((SECONDS >= deadline)); then
            ms_die "ports not accepting connections after ${MAILSTACK_WAIT_SECS}s:$missing"
        fi
        sleep 0.2
    done
}

# Wait (bounded) until no given port accepts connections; fail otherwise.
ms_wait_ports_closed() {
    local deadline=$((SECONDS + MAILSTACK_WAIT_SECS)) p open
    while :; do
        open=""
        for p in "$@"; do ms_port_open "$p" && open="$open $p"; done
        [[ -z "$open" ]] && return 0
        if ((SECONDS >= deadline)); then
            ms_log "ports still open after ${MAILSTACK_WAIT_SECS}s:$open"
            ss -ltnp 2>/dev/null | grep -E ":($(echo "$open" | sed -E 's/ [^ ]*:/ /g' | tr ' ' '|' | sed 's/^|//'))\b" >&2 || true
            return 1
        fi
        sleep 0.2
    done
}

# Pid stored in file $1 if that process is alive and its command is $2 (e.g.
# "dovecot" or "master"); prints nothing otherwise. Guards against stale pid
# files whose number now belongs to an unrelated process.
ms_live_pid() {
    local file=$1 comm=$2 pid
    [[ -r "$file" ]] || return 0
    pid=$(tr -dc '0-9' <"$file")
    [[ -n "$pid" ]] || return 0
    if ms_pid_alive "$pid" && [[ "$(ps -o comm= -p "$pid" 2>/dev/null)" == "$comm" ]]; then
        echo "$pid"
    fi
}

# True if process $1 exists and has not exited. `kill -0` is not enough: it
# also succeeds for a zombie, and the daemons' parent is PID 1, which in this
# kind of container reaps exited orphans only about every 2 s.
ms_pid_alive() {
    local st
    st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    st=${st##*) }   # the state follows "(comm) ", and comm may contain spaces
    [[ ${st%% *} != Z ]]
}

# Wait (bounded) for process $1 to exit; SIGKILL it (and only it, plus its
# direct children) if it does not.
ms_wait_pid_gone() {
    local pid=$1 what=$2 i
    for ((i = 0; i < 100; i++)); do
        ms_pid_alive "$pid" || return 0
        sleep 0.1
    done
    ms_log "$what (pid $pid) did not exit within 10s, sending SIGKILL"
    pkill -KILL -P "$pid" 2>/dev/null || true
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
}

# End the given former children of a stopped master that are still alive and
# still run a dovecot/postfix binary (guards against pid reuse): TERM, then
# KILL after 5 s. (Dovecot's lmtp, auth and stats processes usually stay
# while Postfix keeps connections to them.)
ms_kill_leftovers() {
    local p i left=()
    for p in "$@"; do
        ms_pid_alive "$p" || continue
        case "$(readlink "/proc/$p/exe" 2>/dev/null)" in
        /usr/lib/dovecot/* | /usr/sbin/dovecot | /usr/lib/postfix/*) left+=("$p") ;;
        esac
    done
    ((${#left[@]})) || return 0
    ms_log "ending ${#left[@]} leftover process(es) of the stopped master: ${left[*]}"
    kill -TERM "${left[@]}" 2>/dev/null || true
    local alive
    for ((i = 0; i < 50; i++)); do
        alive=()
        for p in "${left[@]}"; do ms_pid_alive "$p" && alive+=("$p"); done
        ((${#alive[@]})) || return 0
        sleep 0.1
    done
    kill -KILL "${alive[@]}" 2>/dev/null || true
}

# Serialise the scripts per base dir (e.g. two test binaries both running
# start.sh). Nested calls (start.sh -> stop.sh) inherit the lock. The daemons
# must not inherit fd 9, or they would hold the lock for ever.
ms_lock() {
    [[ "${MS_LOCK_HELD:-}" == "$MAILSTACK_DIR" ]] && return 0
    mkdir -p "$MAILSTACK_DIR"
    exec 9>"$MAILSTACK_DIR/.lock"
    flock -w 300 9 || ms_die "another mailstack script has held $MAILSTACK_DIR/.lock for 300 s"
    export MS_LOCK_HELD="$MAILSTACK_DIR"
}

# ------------------------------------------------------- daemon control ---
ms_dovecot_running() { [[ -n "$(ms_live_pid "$MS_DOVECOT_PID" dovecot)" ]]; }
ms_postfix_running() { [[ -n "$(ms_live_pid "$MS_POSTFIX_PID" master)" ]]; }

ms_dovecot_start() {
    [[ -r "$MS_DOVECOT_CONF" ]] || ms_die "no $MS_DOVECOT_CONF; run start.sh first"
    ms_dovecot_running && ms_die "dovecot under $MAILSTACK_DIR is already running"
    # With auth penalties disabled (mode 0, see start.sh) dovecot does not
    # create this socket; a stale one from an older run would make every auth
    # process retry it for 5 s.
    rm -f "$MS_DOVECOT_RUN/anvil-auth-penalty"
    # The dovecot master keeps inherited stdout/stderr open for ever, so never
    # let it inherit the caller's (a `$(start.sh)` would hang).
    dovecot -c "$MS_DOVECOT_CONF" </dev/null >>"$MS_LOG/dovecot-start.log" 2>&1 9>&- \
        || ms_die "dovecot -c $MS_DOVECOT_CONF failed"
    # shellcheck disable=SC2046  # one word per address
    ms_wait_ports $(ms_dovecot_addrs)
    ms_log "dovecot up (pid $(ms_live_pid "$MS_DOVECOT_PID" dovecot))"
}

ms_dovecot_stop() {
    local pid
    pid=$(ms_live_pid "$MS_DOVECOT_PID" dovecot)
    if [[ -z "$pid" ]]; then
        ms_log "dovecot under $MAILSTACK_DIR is not running"
        return 0
    fi
    # Dovecot forks every service straight from its master. Dovecot 2.3 leaves
    # logged-in IMAP sessions (and the auth/log/stats processes serving them)
    # running after its master exits -- systemd would kill the whole cgroup, we
    # have no such thing -- so note the children now and end leftovers below.
    local kids
    kids=$(pgrep -P "$pid" || true)
    kill -TERM "$pid" 2>/dev/null || true
    ms_wait_pid_gone "$pid" dovecot
    # shellcheck disable=SC2086
    ms_kill_leftovers $kids
    # shellcheck disable=SC2046  # one word per address
    ms_wait_ports_closed $(ms_dovecot_addrs) || ms_die "dovecot stopped but its ports are still open"
    ms_log "dovecot stopped"
}

ms_postfix_start() {
    [[ -r "$MS_POSTFIX_CONF/main.cf" ]] || ms_die "no $MS_POSTFIX_CONF/main.cf; run start.sh first"
    ms_postfix_running && ms_die "postfix under $MAILSTACK_DIR is already running"
    # `postfix start` fails silently if maillog_file is not under
    # maillog_file_prefixes; main.cf takes care of that. Output goes to a file
    # for the same reason as dovecot's.
    postfix -c "$MS_POSTFIX_CONF" start </dev/null >>"$MS_LOG/postfix-start.log" 2>&1 9>&- \
        || ms_die "postfix -c $MS_POSTFIX_CONF start failed (see $MS_LOG/postfix-start.log)"
    ms_wait_ports "$MAILSTACK_SMTP_PORT" "$MAILSTACK_SUBMISSION_PORT" "$MAILSTACK_SUBMISSIONS_PORT"
    ms_log "postfix up (pid $(ms_live_pid "$MS_POSTFIX_PID" master))"
}

ms_postfix_stop() {
    local pid
    pid=$(ms_live_pid "$MS_POSTFIX_PID" master)
    if [[ -z "$pid" ]]; then
        ms_log "postfix under $MAILSTACK_DIR is not running"
        return 0
    fi
    local kids
    kids=$(pgrep -P "$pid" || true)
    postfix -c "$MS_POSTFIX_CONF" stop </dev/null >>"$MS_LOG/postfix-start.log" 2>&1 \
        || kill -TERM "$pid" 2>/dev/null || true
    ms_wait_pid_gone "$pid" "postfix master"
    # shellcheck disable=SC2086
    ms_kill_leftovers $kids
    ms_wait_ports_closed "$MAILSTACK_SMTP_PORT" "$MAILSTACK_SUBMISSION_PORT" "$MAILSTACK_SUBMISSIONS_PORT" \
        || ms_die "postfix stopped but its ports are still open"
    ms_log "postfix stopped"
}

# The fake OAuth2 server is a plain python3 process: its pid file is written by
# ms_oauth_start, and the pid only counts while that process still runs
# oauth2_server.py with this base dir's state file (guards against a stale pid
# file, pid reuse, and another stack's server; the port may have changed).
ms_oauth_pid() {
    local pid
    [[ -r "$MS_OAUTH_PID" ]] || return 0
    pid=$(tr -dc '0-9' <"$MS_OAUTH_PID")
    [[ -n "$pid" ]] && ms_pid_alive "$pid" || return 0
    # (Not ms_live_pid's comm check: python3 may be python3.11 or a pyenv shim's.)
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--state $MS_OAUTH_STATE"; then
        echo "$pid"
    fi
}
ms_oauth_running() { [[ -n "$(ms_oauth_pid)" ]]; }

# Start oauth2_server.py in the background. $1=--reset-settings (start.sh)
# puts the test knobs of /control/settings back to their defaults; issued
# tokens are always kept (state file).
ms_oauth_start() {
    ms_oauth_running && ms_die "the OAuth2 server under $MAILSTACK_DIR is already running"
    [[ -r "$MS_OAUTH_SERVER" ]] || ms_die "missing $MS_OAUTH_SERVER"
    # Else the wait below would take another program's port for ours.
    if ms_port_open "$MAILSTACK_OAUTH_PORT"; then
        ss -ltnp "sport = :$MAILSTACK_OAUTH_PORT" >&2 || true
        ms_die "$MAILSTACK_HOST:$MAILSTACK_OAUTH_PORT is already taken by another process (not the OAuth2 server under $MAILSTACK_DIR)"
    fi
    mkdir -p "$MS_OAUTH"
    # setsid: its own session, so a Ctrl-C meant for the test run that called
    # start.sh does not kill it behind stop.sh's back. Like the daemons, it must
    # not inherit the lock (fd 9) or the caller's stdout.
    setsid python3 -u "$MS_OAUTH_SERVER" --host "$MAILSTACK_HOST" --port "$MAILSTACK_OAUTH_PORT" \
        --state "$MS_OAUTH_STATE" ${1:+"$1"} </dev/null >>"$MS_LOG/oauth2.log" 2>&1 9>&- &
    local pid=$! deadline=$((SECONDS + MAILSTACK_WAIT_SECS))
    echo "$pid" >"$MS_OAUTH_PID"
    # Not ms_wait_ports: if python exits at once (e.g. port taken) say so now.
    until ms_port_open "$MAILSTACK_OAUTH_PORT" && ms_pid_alive "$pid"; do
        ms_pid_alive "$pid" || ms_die "the OAuth2 server exited at start (see $MS_LOG/oauth2.log)"
        ((SECONDS < deadline)) || ms_die "the OAuth2 server does not accept connections on port $MAILSTACK_OAUTH_PORT after ${MAILSTACK_WAIT_SECS}s"
        sleep 0.1
    done
    ms_log "oauth2 server up (pid $pid, $MAILSTACK_OAUTH_URL)"
}

ms_oauth_stop() {
    local pid
    pid=$(ms_oauth_pid)
    if [[ -z "$pid" ]]; then
        ms_log "oauth2 server under $MAILSTACK_DIR is not running"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    ms_wait_pid_gone "$pid" "oauth2 server"
    rm -f "$MS_OAUTH_PID"
    ms_wait_ports_closed "$MAILSTACK_OAUTH_PORT" || ms_die "the OAuth2 server stopped but its port is still open"
    ms_log "oauth2 server stopped"
}
