#!/usr/bin/env bash
# Run two real Cyrus IMAP 3.6 servers (Debian's build) beside the Dovecot of
# start.sh, one per mailbox-namespace layout, on loopback high ports.
#
# Why this exists: mailpipe must work with servers whose folder names do not
# look like Dovecot's. Cyrus in its Debian default uses "." as separator and
# keeps personal folders under "INBOX." (INBOX.Lists); with altnamespace and
# unixhierarchysep it uses "/" and top-level folders (Lists). The cyrus-imapd
# package conflicts with dovecot-imapd, which the test stack needs, so it is
# never installed: its .debs (and the libraries they need that are missing)
# are downloaded once into $MAILSTACK_DIR/cyrus/debs, unpacked with dpkg -x
# into $MAILSTACK_DIR/cyrus/root and run from there with their own configs.
# Nothing in /etc, /var/lib/cyrus or /run/cyrus is used. See README.md.
#
# Usage:  tests/mailstack/cyrus.sh start    # logs on stderr, `export` lines on stdout
#         tests/mailstack/cyrus.sh stop     # stops both instances (only their own pids)
#         tests/mailstack/cyrus.sh status   # exit 0 if both run and answer
# Env:    MAILSTACK_DIR, MAILSTACK_CYRUS_{DOT,SLASH}_{IMAP,IMAPS}_PORT,
#         MAILSTACK_WAIT_SECS (see common.sh)
# TLS:    uses $MAILSTACK_DIR/tls/server.{pem,key}, made by start.sh (run it first).
# `start` stops running instances under the same dir first; mailboxes are kept
# (rm -rf "$MAILSTACK_DIR/cyrus/dot" "$MAILSTACK_DIR/cyrus/slash" after stop
# for empty accounts; the package cache in cyrus/debs and cyrus/root stays).

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$HERE/common.sh"   # MAILSTACK_DIR/HOST/DOMAIN/USERS/WAIT_SECS, MS_TLS, ms_log, ms_port_open

# ---------------------------------------------------------------- settings ---
CY_BASE="$MAILSTACK_DIR/cyrus"
CY_DEBS="$CY_BASE/debs"                     # downloaded .debs (kept: a warm start needs no apt)
CY_ROOT="$CY_BASE/root"                     # dpkg -x of all of them
CY_BIN="$CY_ROOT/usr/lib/cyrus/bin"
CY_SHIM="$CY_BASE/syslog2file.so"           # LD_PRELOAD: syslog() -> file (there is no syslogd)
CY_APT_LOG="$CY_BASE/apt.log"
CY_APT_LOCK=/tmp/mailpipe-apt.lock          # shared with other scripts that run apt-get
CY_USER=cyrus                               # master drops root to this user (created if missing)
CY_GROUP=mail
CY_LAYOUTS=(dot slash)
# Packages always unpacked; the libraries they need that are not installed
# are added (see cy_resolve_packages). sasl2-bin only for saslpasswd2.
CY_PACKAGES=(cyrus-common cyrus-imapd sasl2-bin)
# Must be installed for real: libsasl2 loads its plugins (PLAIN, LOGIN,
# sasldb) from the system directory only.
CY_SYSTEM_PACKAGES=(libsasl2-2 libsasl2-modules libsasl2-modules-db)

MAILSTACK_CYRUS_DOT_IMAP_PORT="${MAILSTACK_CYRUS_DOT_IMAP_PORT:-13143}"
MAILSTACK_CYRUS_DOT_IMAPS_PORT="${MAILSTACK_CYRUS_DOT_IMAPS_PORT:-13993}"
MAILSTACK_CYRUS_SLASH_IMAP_PORT="${MAILSTACK_CYRUS_SLASH_IMAP_PORT:-14143}"
MAILSTACK_CYRUS_SLASH_IMAPS_PORT="${MAILSTACK_CYRUS_SLASH_IMAPS_PORT:-14993}"

# ----------------------------------------------------------------- helpers ---
cy_dir() { echo "$CY_BASE/$1"; }
cy_pidfile() { echo "$CY_BASE/$1/run/master.pid"; }
cy_port() { # layout imap|imaps
    local v="MAILSTACK_CYRUS_${1^^}_${2^^}_PORT"
    echo "${!v}"
}

# Print the last lines of the Cyrus logs, for error reports.
cy_log_tails() {
    local f
    for f in "$CY_BASE"/*/log/*.log; do
        [[ -s "$f" ]] || continue
        printf -- '----- tail of %s -----\n' "$f" >&2
        tail -n 20 "$f" >&2
    done
}

cy_die() {
    printf '[mailstack] ERROR: %s\n' "$*" >&2
    cy_log_tails
    exit 1
}

# Our own lock (fd 8), not start.sh's: Cyrus and Dovecot may start in
# parallel. The daemons must not inherit it.
cy_lock() {
    mkdir -p "$CY_BASE"
    exec 8>"$CY_BASE/.lock"
    flock -w 300 8 || cy_die "another cyrus.sh has held $CY_BASE/.lock for 300 s"
}

# Pid of the running master of layout $1, or nothing. The pid only counts
# while that process runs OUR master binary (guards against stale pid files,
# pid reuse, and Postfix's master, which has the same process name).
cy_master_pid() {
    local f pid
    f=$(cy_pidfile "$1")
    [[ -r "$f" ]] || return 0
    pid=$(tr -dc '0-9' <"$f")
    [[ -n "$pid" ]] || return 0
    [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == "$CY_BIN/master" ]] && echo "$pid"
    return 0
}

# The address:port pairs layout $1 listens on, read from its own cyrus.conf
# (so that stop waits for the ports of the running config, whatever the env).
cy_conf_ports() {
    local conf
    conf="$(cy_dir "$1")/cyrus.conf"
    [[ -r "$conf" ]] || return 0
    sed -nE 's/.*listen="([0-9.]+:[0-9]+)".*/\1/p' "$conf"
}

cy_wait_ports_closed() {
    local deadline=$((SECONDS + MAILSTACK_WAIT_SECS)) p open
    while :; do
        open=""
        for p in "$@"; do ms_port_open "$p" && open="$open $p"; done
        [[ -z "$open" ]] && return 0
        ((SECONDS < deadline)) || cy_die "ports still open ${MAILSTACK_WAIT_SECS}s after stopping Cyrus:$open"
        sleep 0.2
    done
}

# ------------------------------------------------------- 1. the packages ---
cy_apt() { # apt-get under the shared apt lock, output to the apt log
    (
        flock -w 600 7 || { echo "could not get $CY_APT_LOCK within 600 s" >&2; exit 1; }
        DEBIAN_FRONTEND=noninteractive apt-get "$@"
    ) 7>"$CY_APT_LOCK" </dev/null
}

# The packages to download: CY_PACKAGES plus every library apt would install
# with them (apt's own resolver, on the real system state), as name=version.
# Non-library dependencies (an MTA, gawk, db-util, ...) serve only the
# package scripts, which never run here. libc6 is never replaced.
cy_resolve_packages() {
    cy_apt install --simulate --no-install-recommends "${CY_PACKAGES[@]}" 2>>"$CY_APT_LOG" |
        awk '$1 == "Inst" {
                 v = ($3 ~ /^\[/) ? $4 : $3      # "Inst pkg [old] (new ...)" on upgrades
                 sub(/^\(/, "", v)
                 print $2 "=" v
             }' |
        grep -E '^(cyrus-common|cyrus-imapd|sasl2-bin|lib[^=]*)=' |
        grep -vE '^(libc6|libsasl2-2|libsasl2-modules|libsasl2-modules-db)='
}

cy_lib_path() { # every directory under CY_ROOT that holds shared libraries
    find "$CY_ROOT" -name 'lib*.so*' ! -path '*/sasl2/*' -printf '%h\n' 2>/dev/null | sort -u | paste -sd:
}

# Every program we run must find all its libraries.
cy_check_libs() {
    local missing
    missing=$(LD_LIBRARY_PATH="$(cy_lib_path)" ldd "$CY_BIN"/{master,imapd,idled,ctl_cyrusdb} \
        "$CY_ROOT/usr/sbin/saslpasswd2" 2>&1 | grep 'not found' | sort -u || true)
    [[ -z "$missing" ]] && return 0
    echo "$missing" >&2
    return 1
}

cy_apt_die() {
    [[ -s "$CY_APT_LOG" ]] && { echo "----- tail of $CY_APT_LOG -----"; tail -n 20 "$CY_APT_LOG"; } >&2
    printf '[mailstack] ERROR: %s\n' "$*" >&2
    exit 1
}

# Resolve CY_PACKAGES into file $1 (name=version per line).
cy_resolve_into() {
    local list p ver
    list=$(cy_resolve_packages) || true
    for p in "${CY_PACKAGES[@]}"; do
        grep -q "^$p=" <<<"$list" && continue
        # Installed on this machine already (say sasl2-bin, or cyrus-common): apt simulates
        # nothing for it, but the test bed unpacks its own copy all the same. Its libraries
        # are installed with it, so the system's serve.
        ver=$(apt-cache policy "$p" 2>>"$CY_APT_LOG" | awk '$1 == "Candidate:" { print $2 }')
        [[ -n "$ver" && "$ver" != "(none)" ]] ||
            cy_apt_die "apt cannot resolve $p (apt-get install --simulate ${CY_PACKAGES[*]}; apt-cache policy $p)"
        list+=$'\n'"$p=$ver"
    done
    echo "$list" >"$1.tmp"
    mv "$1.tmp" "$1"
}

# Download the listed .debs that are not in CY_DEBS yet.
cy_download() {
    local want=() name ver
    while IFS='=' read -r name ver; do
        [[ -n "$name" ]] || continue
        compgen -G "$CY_DEBS/${name}_*.deb" >/dev/null || want+=("$name=$ver")
    done <"$CY_DEBS/packages.txt"
    ((${#want[@]})) || return 0
    ms_log "downloading ${#want[@]} packages into $CY_DEBS: ${want[*]%%=*}"
    # As root: the _apt sandbox user may not write to our dir.
    (cd "$CY_DEBS" && cy_apt download -q -o APT::Sandbox::User=root "${want[@]}") >>"$CY_APT_LOG" 2>&1
}

cy_install_packages() {
    # Warm path: unpacked before and still complete -- no apt at all.
    if [[ -f "$CY_ROOT/.complete" && -x "$CY_BIN/master" ]] && cy_check_libs 2>/dev/null; then
        return 0
    fi
    mkdir -p "$CY_DEBS"
    local p missing=()
    for p in "${CY_SYSTEM_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if ! apt-cache show cyrus-imapd >/dev/null 2>&1 || ((${#missing[@]})); then
        ms_log "apt-get update (log: $CY_APT_LOG)"
        cy_apt update -q >>"$CY_APT_LOG" 2>&1 || cy_apt_die "apt-get update failed"
    fi
    if ((${#missing[@]})); then
        ms_log "installing ${missing[*]} (apt-get, log: $CY_APT_LOG)"
        cy_apt install -y -q --no-install-recommends "${missing[@]}" >>"$CY_APT_LOG" 2>&1 ||
            cy_apt_die "apt-get install ${missing[*]} failed"
    fi

    # The list of .debs is resolved once and kept with them. If a download
    # fails (package lists older than the mirror), update and resolve again.
    local try name ver deb
    for try in 1 2; do
        if ((try == 2)); then
            ms_log "apt-get download failed: apt-get update and retry"
            rm -f "$CY_DEBS/packages.txt"
            cy_apt update -q >>"$CY_APT_LOG" 2>&1 || cy_apt_die "apt-get update failed"
        fi
        [[ -s "$CY_DEBS/packages.txt" ]] || cy_resolve_into "$CY_DEBS/packages.txt"
        cy_download && break
        ((try == 1)) || cy_apt_die "apt-get download failed"
    done

    ms_log "unpacking $(wc -l <"$CY_DEBS/packages.txt") packages into $CY_ROOT"
    rm -rf "$CY_ROOT"
    mkdir -p "$CY_ROOT"
    while IFS='=' read -r name ver; do
        [[ -n "$name" ]] || continue
        deb=$(compgen -G "$CY_DEBS/${name}_*.deb" | tail -n 1)
        dpkg -x "$deb" "$CY_ROOT" || cy_die "dpkg -x $deb failed"
    done <"$CY_DEBS/packages.txt"
    [[ -x "$CY_BIN/master" ]] || cy_die "no $CY_BIN/master after unpacking"
    cy_check_libs || cy_die "libraries missing for the unpacked Cyrus (see above); rm -rf $CY_DEBS $CY_ROOT and retry"
    chmod 755 "$CY_BASE" "$CY_ROOT"
    LD_LIBRARY_PATH="$(cy_lib_path)" "$CY_BIN/master" -V >"$CY_ROOT/.complete" 2>&1 ||
        cy_die "$CY_BIN/master -V failed: $(cat "$CY_ROOT/.complete")"
    ms_log "unpacked $(cat "$CY_ROOT/.complete")"
}

# There is no syslogd here and Cyrus logs only through syslog(3); this tiny
# LD_PRELOAD library appends each message to $MAILSTACK_CYRUS_SYSLOG instead.
# Needs a C compiler; without one Cyrus runs without a log.
cy_build_shim() {
    local src="$CY_BASE/syslog2file.c"
    cat >"$src.new" <<'EOF'
/* Generated by mailpipe tests/mailstack/cyrus.sh: syslog(3) -> append to the
 * file named by $MAILSTACK_CYRUS_SYSLOG (there is no syslogd in the test bed). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static char ident[64] = "cyrus";

static void emit(int pri, const char *fmt, va_list ap) {
    const char *path = getenv("MAILSTACK_CYRUS_SYSLOG");
    int saved = errno;
    if (!path || (pri & LOG_PRIMASK) == LOG_DEBUG) return;
    char buf[8192];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S ", &tm);
    n += snprintf(buf + n, sizeof buf - n, "%s[%d]: ", ident, (int)getpid());
    errno = saved; /* for %m */
    if (n < sizeof buf) n += vsnprintf(buf + n, sizeof buf - n, fmt, ap);
    if (n > sizeof buf - 2) n = sizeof buf - 2;
    buf[n++] = '\n';
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd >= 0) {
        ssize_t w = write(fd, buf, n);
        (void)w;
        close(fd);
    }
    errno = saved;
}

void openlog(const char *id, int opt, int fac) {
    (void)opt; (void)fac;
    if (id) snprintf(ident, sizeof ident, "%s", id);
}
void closelog(void) {}
void vsyslog(int pri, const char *fmt, va_list ap) { emit(pri, fmt, ap); }
void __vsyslog_chk(int pri, int flag, const char *fmt, va_list ap) { (void)flag; emit(pri, fmt, ap); }
void syslog(int pri, const char *fmt, ...) {
    va_list ap; va_start(ap, fmt); emit(pri, fmt, ap); va_end(ap);
}
void __syslog_chk(int pri, int flag, const char *fmt, ...) {
    va_list ap; (void)flag; va_start(ap, fmt); emit(pri, fmt, ap); va_end(ap);
}
EOF
    if [[ -f "$CY_SHIM" && -f "$src" ]] && cmp -s "$src" "$src.new"; then
        rm -f "$src.new"
        return 0
    fi
    mv "$src.new" "$src"
    rm -f "$CY_SHIM"
    if ! command -v cc >/dev/null; then
        ms_log "no C compiler: Cyrus will run without a log (apt-get install gcc for one)"
        return 0
    fi
    cc -shared -fPIC -O2 -o "$CY_SHIM.tmp" "$src" 2>>"$CY_APT_LOG" ||
        { ms_log "could not build $CY_SHIM: Cyrus will run without a log"; return 0; }
    chmod 755 "$CY_SHIM.tmp"
    mv "$CY_SHIM.tmp" "$CY_SHIM"
}

cy_ensure_user() {
    id -u "$CY_USER" >/dev/null 2>&1 && return 0
    getent group "$CY_GROUP" >/dev/null || groupadd --system "$CY_GROUP"
    ms_log "creating system user $CY_USER (group $CY_GROUP)"
    useradd --system --gid "$CY_GROUP" --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin --comment "Cyrus IMAP (mailpipe test stack)" "$CY_USER" ||
        cy_die "useradd $CY_USER failed"
}

# ------------------------------------------------------ 2. one instance ---
# $1 = layout. Writes imapd.conf, cyrus.conf, the sasldb and the directories.
cy_write_config() {
    local layout=$1 d sep alt u
    d=$(cy_dir "$layout")
    case "$layout" in
    dot) sep=no alt=no ;;     # Debian's default: "." and personal folders under INBOX.
    slash) sep=yes alt=yes ;; # "/" and personal folders at the top level
    *) cy_die "unknown layout $layout" ;;
    esac
    mkdir -p "$d"/{conf,spool,sieve,tmp,run,log,tls}
    mkdir -p "$d"/conf/{db,proc,socket,log,msg,user,quota,lock}

    cp "$MS_TLS/server.pem" "$d/tls/server.pem"
    cp "$MS_TLS/server.key" "$d/tls/server.key"   # the original is root-only
    chmod 644 "$d/tls/server.pem"
    chmod 600 "$d/tls/server.key"

    cat >"$d/imapd.conf" <<EOF
# Generated by mailpipe tests/mailstack/cyrus.sh -- edits are overwritten.
# Layout "$layout". Every path is under $d; nothing from /etc is read.
configdirectory: $d/conf
defaultpartition: default
partition-default: $d/spool
sievedir: $d/sieve
temp_path: $d/tmp
servername: localhost
syslog_prefix: mailstack-cyrus-$layout

# Namespace layout.
unixhierarchysep: $sep
altnamespace: $alt

# Login with the full address: alice@example.test is user alice in domain
# example.test (mailbox example.test!user.alice).
virtdomains: userid

# Passwords: sasldb file of this instance, checked by libsasl2 (auxprop).
# LOGIN and AUTH PLAIN are allowed without TLS (tests on loopback).
allowplaintext: yes
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: $d/sasldb2
sasl_mech_list: PLAIN LOGIN
# Wrong passwords fail fast (default: a 3 s pause).
failedloginpause: 0

# Every account gets its INBOX (no quota) when it first logs in.
autocreate_quota: 0

tls_server_cert: $d/tls/server.pem
tls_server_key: $d/tls/server.key
tls_versions: tls1_2 tls1_3

# IDLE: idled (DAEMON in cyrus.conf) pushes changes at once; polling is the fallback.
imapidlepoll: 1
# No hashed spool dirs (easier to look at), no delayed DELETE hierarchy.
hashimapspool: false
delete_mode: immediate
EOF

    cat >"$d/cyrus.conf" <<EOF
# Generated by mailpipe tests/mailstack/cyrus.sh -- edits are overwritten.
# master does not pass its -C on, so every command names imapd.conf itself.
START {
  recover     cmd="$CY_BIN/ctl_cyrusdb -C $d/imapd.conf -r"
}
SERVICES {
  imap        cmd="$CY_BIN/imapd -C $d/imapd.conf -U 30" listen="$MAILSTACK_HOST:$(cy_port "$layout" imap)" prefork=0 maxchild=200
  imaps       cmd="$CY_BIN/imapd -s -C $d/imapd.conf -U 30" listen="$MAILSTACK_HOST:$(cy_port "$layout" imaps)" prefork=0 maxchild=200
}
EVENTS {
  checkpoint  cmd="$CY_BIN/ctl_cyrusdb -C $d/imapd.conf -c" period=30
}
DAEMON {
  idled       cmd="$CY_BIN/idled -C $d/imapd.conf"
}
EOF

    # sasldb: login alice@example.test = user alice, realm example.test.
    rm -f "$d/sasldb2"
    for u in $MAILSTACK_USERS; do
        printf 'secret-%s' "$u" |
            LD_LIBRARY_PATH="$(cy_lib_path)" "$CY_ROOT/usr/sbin/saslpasswd2" -f "$d/sasldb2" -p -c \
                -u "$MAILSTACK_DOMAIN" "$u" 2>>"$d/log/master.log" ||
            cy_die "saslpasswd2 for $u@$MAILSTACK_DOMAIN failed"
    done
    : >"$d/log/cyrus.log"
    : >"$d/log/master.log"
    chown -R "$CY_USER:$CY_GROUP" "$d"
    chmod 750 "$d"
    chmod 640 "$d/sasldb2"
}

cy_start_one() {
    local layout=$1 d pid lp env
    d=$(cy_dir "$layout")
    lp=$(cy_lib_path)
    env=(PATH=/usr/sbin:/usr/bin:/sbin:/bin LD_LIBRARY_PATH="$lp" TMPDIR="$d/tmp" LANG=C.UTF-8)
    if [[ -f "$CY_SHIM" ]]; then
        env+=(LD_PRELOAD="$CY_SHIM" MAILSTACK_CYRUS_SYSLOG="$d/log/cyrus.log")
    fi
    # -d: daemon (forks, setsid, returns once the pid file is written);
    # -L: the master's and services' stderr. A clean environment, no
    # inherited locks (fds 8, 9) and no inherited stdout (`$(cyrus.sh start)`).
    # shellcheck disable=SC2094  # -L and >> name the same log on purpose
    env -i "${env[@]}" "$CY_BIN/master" -C "$d/imapd.conf" -M "$d/cyrus.conf" \
        -p "$d/run/master.pid" -L "$d/log/master.log" -d \
        </dev/null >>"$d/log/master.log" 2>&1 8>&- 9>&- ||
        cy_die "Cyrus master ($layout) failed to start"
    local deadline=$((SECONDS + MAILSTACK_WAIT_SECS)) p missing
    while :; do
        pid=$(cy_master_pid "$layout")
        [[ -n "$pid" ]] || cy_die "Cyrus master ($layout) exited at start"
        missing=""
        for p in $(cy_conf_ports "$layout"); do ms_port_open "$p" || missing="$missing $p"; done
        [[ -z "$missing" ]] && break
        ((SECONDS < deadline)) || cy_die "Cyrus ($layout) ports not accepting connections after ${MAILSTACK_WAIT_SECS}s:$missing"
        sleep 0.2
    done
    ms_log "cyrus $layout up (pid $pid, imap $(cy_port "$layout" imap), imaps $(cy_port "$layout" imaps))"
}

cy_stop_one() {
    local layout=$1 pid kids p i left=() ports
    pid=$(cy_master_pid "$layout")
    if [[ -z "$pid" ]]; then
        ms_log "cyrus $layout under $CY_BASE is not running"
        return 0
    fi
    ports=$(cy_conf_ports "$layout")
    # master ends its whole process group on SIGTERM and waits for it; note
    # the children anyway, to end any that outlive it.
    kids=$(pgrep -P "$pid" || true)
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        ms_log "cyrus $layout master (pid $pid) did not exit within 10s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    for p in $kids; do
        [[ "$(readlink "/proc/$p/exe" 2>/dev/null)" == "$CY_BIN"/* ]] && left+=("$p")
    done
    if ((${#left[@]})); then
        ms_log "ending ${#left[@]} leftover Cyrus process(es): ${left[*]}"
        kill -KILL "${left[@]}" 2>/dev/null || true
    fi
    # shellcheck disable=SC2086  # one word per address
    cy_wait_ports_closed $ports
    ms_log "cyrus $layout stopped"
}

# Log every user in once: autocreate makes the INBOXes, and a wrong
# sasldb or TLS setup shows up here instead of in a test.
cy_create_inboxes() {
    local layout=$1
    CY_PORT=$(cy_port "$layout" imap) CY_USERS="$MAILSTACK_USERS" CY_DOMAIN="$MAILSTACK_DOMAIN" \
        CY_HOST="$MAILSTACK_HOST" python3 - <<'EOF' || cy_die "Cyrus ($layout): a test user cannot log in"
import imaplib, os, sys
for u in os.environ["CY_USERS"].split():
    m = imaplib.IMAP4(os.environ["CY_HOST"], int(os.environ["CY_PORT"]), timeout=10)
    try:
        m.login(f"{u}@{os.environ['CY_DOMAIN']}", f"secret-{u}")
        typ, _ = m.select("INBOX")
        if typ != "OK":
            sys.exit(f"{u}: INBOX was not created")
    except imaplib.IMAP4.error as e:
        sys.exit(f"{u}: {e}")
    finally:
        try:
            m.logout()
        except Exception:
            pass
EOF
}

cy_write_env() {
    local v f="$CY_BASE/env.sh"
    {
        echo "# Written by mailpipe tests/mailstack/cyrus.sh: source it to reach the Cyrus test servers."
        for v in MAILSTACK_CYRUS_DOT_IMAP_PORT MAILSTACK_CYRUS_DOT_IMAPS_PORT \
            MAILSTACK_CYRUS_SLASH_IMAP_PORT MAILSTACK_CYRUS_SLASH_IMAPS_PORT; do
            printf 'export %s=%q\n' "$v" "${!v}"
        done
    } >"$f.tmp"
    chmod 644 "$f.tmp"
    mv "$f.tmp" "$f"
}

# ---------------------------------------------------------------- commands ---
cy_cmd_stop() {
    [[ -d "$CY_BASE" ]] || return 0
    local l pids=() rc=0 p
    for l in "${CY_LAYOUTS[@]}"; do cy_stop_one "$l" & pids+=($!); done
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    return "$rc"
}

cy_cmd_status() {
    local l pid p rc=0
    for l in "${CY_LAYOUTS[@]}"; do
        pid=$(cy_master_pid "$l")
        if [[ -z "$pid" ]]; then
            echo "cyrus $l: not running"
            rc=1
            continue
        fi
        for p in $(cy_conf_ports "$l"); do
            ms_port_open "$p" || { echo "cyrus $l: pid $pid, but $p does not answer"; rc=1; continue 2; }
        done
        echo "cyrus $l: running, pid $pid, $(cy_conf_ports "$l" | paste -sd' ')"
    done
    return "$rc"
}

cy_cmd_start() {
    local t0=$SECONDS l p
    [[ $EUID -eq 0 ]] || cy_die "must run as root (unpacks packages, creates the $CY_USER user, drops privileges)"
    [[ "$MAILSTACK_DIR" != *[[:space:]]* ]] || cy_die "MAILSTACK_DIR must not contain spaces (cyrus.conf cmd lines): $MAILSTACK_DIR"
    for p in server.pem server.key; do
        [[ -s "$MS_TLS/$p" ]] || cy_die "no $MS_TLS/$p: run tests/mailstack/start.sh first (it makes the TLS files)"
    done
    mkdir -p "$CY_BASE"
    chmod 755 "$CY_BASE"
    cy_install_packages
    cy_build_shim
    cy_ensure_user

    cy_cmd_stop   # idempotent: a second start restarts

    for l in "${CY_LAYOUTS[@]}"; do
        for p in "$(cy_port "$l" imap)" "$(cy_port "$l" imaps)"; do
            if ms_port_open "$p"; then
                ss -ltnp "sport = :$p" >&2 || true
                cy_die "port $MAILSTACK_HOST:$p is already taken by another process (not Cyrus under $CY_BASE)"
            fi
        done
    done
    for l in "${CY_LAYOUTS[@]}"; do cy_write_config "$l"; done
    cy_write_env   # before starting, like start.sh
    for l in "${CY_LAYOUTS[@]}"; do cy_start_one "$l"; done
    for l in "${CY_LAYOUTS[@]}"; do cy_create_inboxes "$l"; done
    ms_log "cyrus ready under $CY_BASE in $((SECONDS - t0))s (env: $CY_BASE/env.sh)"
    grep '^export ' "$CY_BASE/env.sh"
}

case "${1:-}" in
start) cy_lock; cy_cmd_start ;;
stop) [[ -d "$CY_BASE" ]] || exit 0; cy_lock; cy_cmd_stop ;;
status) cy_cmd_status ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
