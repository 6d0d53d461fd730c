#!/usr/bin/env bash
# Start a self-contained real mail stack (Dovecot IMAP/IMAPS/POP3/POP3S/LMTP + Postfix
# SMTP/submission + a fake OAuth2 provider) on loopback high ports, for
# mailpipe's end-to-end tests.
#
# Why this exists: mailpipe talks to real IMAP and SMTP servers; mocks do not
# catch TLS, AUTH, IDLE, MOVE or delivery behaviour. This script turns a fresh
# Debian 12 machine (as root) into such a server without touching the system
# mail setup: every config, socket, queue, log, pid file and mailbox lives under
# $MAILSTACK_DIR (default /tmp/mailpipe-mailstack). See README.md beside it.
#
# Usage:  tests/mailstack/start.sh            # logs on stderr, `export` lines on stdout
#         eval "$(tests/mailstack/start.sh)"  # or: source $MAILSTACK_DIR/env.sh
# Env:    MAILSTACK_DIR, MAILSTACK_{IMAP,IMAPS,POP3,POP3S,SMTP,SUBMISSION,SUBMISSIONS,LMTP,OAUTH}_PORT,
#         MAILSTACK_VMAIL_UID, MAILSTACK_WAIT_SECS (see common.sh)
# Running it again stops the running stack under the same dir first; mailboxes
# and TLS material are kept (rm -rf "$MAILSTACK_DIR" after stop.sh for a clean slate).

MS_IGNORE_ENV_FILE=1
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$HERE/common.sh"

[[ $EUID -eq 0 ]] || ms_die "must run as root (daemons bind ports and drop privileges)"
MS_T0=$SECONDS
ms_lock

# --------------------------------------------------------- 1. packages ---
ms_install_packages() {
    # libnet-ssleay-perl lets swaks speak TLS (it is only a Recommends).
    # python3 runs oauth2_server.py; curl is for oauth2-selftest.py; strace slows a
    # process's disk writes for the crash tests (a slow disk, without a test hook in
    # mailpipe); libfaketime moves a process's wall clock for the clock tests; dovecot-sieve
    # is Pigeonhole, the reference Sieve engine of tests/sieve_differential.rs (sieve-test);
    # sieve-connect is the ManageSieve client of tests/managesieve.rs; dovecot-pop3d serves POP3.
    local pkgs=(dovecot-imapd dovecot-pop3d dovecot-lmtpd dovecot-sieve postfix openssl swaks libnet-ssleay-perl python3 curl strace libfaketime sieve-connect)
    local missing=() p made_policy=0
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0

    ms_log "installing ${missing[*]} (apt-get, log: $MS_LOG/apt.log)"
    # "No configuration": the postfix package must not prompt nor write /etc/postfix/main.cf.
    debconf-set-selections <<<"postfix postfix/main_mailer_type select No configuration"
    debconf-set-selections <<<"postfix postfix/mailname string mail.example.test"
    # Keep the package scripts from starting the system dovecot/postfix (on
    # ports 25/143/993) while installing: the standard Debian policy-rc.d hook.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\n# temporary, from mailpipe tests/mailstack/start.sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    # /tmp/mailpipe-apt.lock: other scripts of the project (cyrus.sh, other
    # base dirs) may run apt-get at the same time; apt's own lock would make
    # the second one fail instead of wait.
    local rc=0
    {
        flock -w 900 8 &&
            DEBIAN_FRONTEND=noninteractive apt-get update -q &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
                -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
    } 8>/tmp/mailpipe-apt.lock </dev/null >>"$MS_LOG/apt.log" 2>&1 || rc=$?
    ((made_policy)) && rm -f /usr/sbin/policy-rc.d
    if ((rc != 0)); then
        tail -n 30 "$MS_LOG/apt.log" >&2
        ms_die "apt-get install ${missing[*]} failed (exit $rc)"
    fi
    # Never start the system instances at boot either.
    if command -v systemctl >/dev/null; then
        systemctl disable dovecot.service dovecot.socket postfix.service >/dev/null 2>&1 || true
    fi
    update-rc.d dovecot disable >/dev/null 2>&1 || true
    update-rc.d postfix disable >/dev/null 2>&1 || true
}

# The Debian system services must not be left running on 25/143/993 (an
# earlier install without policy-rc.d may have started them).
ms_stop_system_services() {
    if [[ -d /run/systemd/system ]]; then
        local u
        for u in dovecot.socket dovecot.service postfix.service; do
            if systemctl is-active --quiet "$u" 2>/dev/null; then
                ms_log "stopping system $u"
                systemctl disable --now "$u" >/dev/null 2>&1 || true
            fi
        done
    fi
    if [[ -n "$(ms_live_pid /run/dovecot/master.pid dovecot)" ]]; then
        ms_log "stopping the system dovecot (/etc/dovecot)"
        service dovecot stop >/dev/null 2>&1 || doveadm stop >/dev/null 2>&1 || true
        update-rc.d dovecot disable >/dev/null 2>&1 || true
    fi
    if [[ -n "$(ms_live_pid /var/spool/postfix/pid/master.pid master)" ]]; then
        ms_log "stopping the system postfix (/etc/postfix)"
        service postfix stop >/dev/null 2>&1 || postfix stop >/dev/null 2>&1 || true
        update-rc.d postfix disable >/dev/null 2>&1 || true
    fi
    local p
    for p in 25 110 143 993 995; do
        if ms_port_open "$p"; then
            ms_log "WARNING: something still listens on 127.0.0.1:$p (not ours):"
            ss -ltnp "sport = :$p" >&2 || true
        fi
    done
}

# ------------------------------------------------------ 2. directories ---
ms_check_traversable() {
    local d="$MAILSTACK_DIR" mode
    while [[ "$d" != / ]]; do
        mode=$(stat -c '%a' "$d")
        ((8#$mode & 1)) || ms_die "$d (mode $mode) is not world-traversable (o+x); the daemons drop privileges and cannot reach $MAILSTACK_DIR. Pick another MAILSTACK_DIR."
        d=$(dirname "$d")
    done
}

ms_make_dirs() {
    mkdir -p "$MS_TLS" "$MS_LOG" "$MS_MAIL/$MAILSTACK_DOMAIN" "$MS_DOVECOT/state" \
        "$MS_POSTFIX_CONF" "$MS_POSTFIX_QUEUE" "$MS_POSTFIX_DATA" "$MS_OAUTH"
    chmod 755 "$MAILSTACK_DIR" "$MS_TLS" "$MS_LOG" "$MS_DOVECOT" "$MS_POSTFIX" "$MS_POSTFIX_CONF" "$MS_POSTFIX_QUEUE"
    ms_check_traversable
    # Mail files belong to a bare numeric uid/gid; no passwd entry needed.
    chown "$MAILSTACK_VMAIL_UID:$MAILSTACK_VMAIL_UID" "$MS_MAIL" "$MS_MAIL/$MAILSTACK_DOMAIN"
    chmod 755 "$MS_MAIL" "$MS_MAIL/$MAILSTACK_DOMAIN"
    # Postfix insists that data_directory belongs to the postfix user.
    chown postfix:postfix "$MS_POSTFIX_DATA"
    chmod 700 "$MS_POSTFIX_DATA"
    # Dovecot's base_dir holds unix sockets: paths are limited to ~107 bytes.
    ((${#MS_DOVECOT_RUN} <= 70)) || ms_die "MAILSTACK_DIR is too long for unix socket paths: $MS_DOVECOT_RUN"
}

# ------------------------------------------------------------- 3. TLS ---
# A throw-away CA (CA:TRUE) and a separate leaf (CA:FALSE, SAN localhost +
# 127.0.0.1) signed by it: rustls rejects a self-signed CA cert as server cert.
# wrong-ca.pem is an unrelated CA for negative tests. Kept across restarts
# while still valid.
ms_make_tls() {
    local t="$MS_TLS"
    if [[ -s $t/ca.pem && -s $t/ca.key && -s $t/server.pem && -s $t/server.key && -s $t/wrong-ca.pem ]] &&
        openssl x509 -checkend 86400 -noout -in "$t/server.pem" >/dev/null 2>&1 &&
        openssl verify -CAfile "$t/ca.pem" "$t/server.pem" >/dev/null 2>&1; then
        ms_log "reusing TLS material in $t"
        return 0
    fi
    ms_log "generating TLS CA + leaf certificate in $t"
    cat >"$t/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = mailpipe mailstack test CA
[dn_wrong]
CN = mailpipe mailstack WRONG CA
[dn_leaf]
CN = localhost
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[v3_leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    (
        set -e
        cd "$t"
        rm -f ./*.pem ./*.key ./*.csr
        openssl req -x509 "${ec[@]}" -config openssl.cnf -extensions v3_ca -days 3650 -sha256 \
            -keyout ca.key -out ca.pem
        openssl req -new "${ec[@]}" -config openssl.cnf -subj /CN=localhost \
            -keyout server.key -out server.csr
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial "0x$(openssl rand -hex 12)" \
            -days 825 -sha256 -extfile openssl.cnf -extensions v3_leaf -out server.pem
        openssl req -x509 "${ec[@]}" -config openssl.cnf -extensions v3_ca -subj "/CN=mailpipe mailstack WRONG CA" \
            -days 3650 -sha256 -keyout wrong-ca.key -out wrong-ca.pem
        rm -f server.csr wrong-ca.key
        chmod 600 ca.key server.key
        chmod 644 ca.pem server.pem wrong-ca.pem
        openssl verify -CAfile ca.pem server.pem
    ) >>"$MS_LOG/tls.log" 2>&1 || ms_die "TLS generation failed (see $MS_LOG/tls.log)"
}

# ---------------------------------------------------------- 4. Dovecot ---
ms_write_dovecot_conf() {
    local u users="$MS_DOVECOT/users" dh=""
    # passwd-file: login name is the full address, password secret-<user>.
    : >"$users"
    for u in $MAILSTACK_USERS; do
        printf '%s@%s:{PLAIN}secret-%s::::::\n' "$u" "$MAILSTACK_DOMAIN" "$u" >>"$users"
    done
    chown root:dovecot "$users"
    chmod 640 "$users"
    [[ -r /usr/share/dovecot/dh.pem ]] && dh="ssl_dh = </usr/share/dovecot/dh.pem"

    # OAuth2 bearer tokens (XOAUTH2 / OAUTHBEARER) are checked by asking the
    # fake provider on every login (RFC 7662 introspection, no cache), so a
    # token revoked or expired through its /control endpoints fails at once.
    cat >"$MS_DOVECOT/dovecot-oauth2.conf.ext" <<EOF
# Generated by mailpipe tests/mailstack/start.sh -- edits are overwritten.
introspection_mode = post
introspection_url = $MAILSTACK_OAUTH_URL/introspect
username_attribute = username
active_attribute = active
active_value = true
# A provider that is down or hangs must not hold a login for long.
timeout_msecs = 5000
EOF
    chmod 644 "$MS_DOVECOT/dovecot-oauth2.conf.ext"

    # Reduced-capability endpoints (MS_CAPS_PROFILES): one more imap listener
    # per profile, and a local-IP filter that sets an explicit imap_capability.
    # Both imap-login (greeting, CAPABILITY before login) and imap (the
    # [CAPABILITY] of the LOGIN reply, CAPABILITY after login) read it from
    # that filter. It only changes what is advertised: the commands still work.
    local line name addr drop listeners="" filters=""
    for line in "${MS_CAPS_PROFILES[@]}"; do
        read -r name addr drop <<<"$line"
        listeners+="  inet_listener imap-$name {
    address = $addr
    port = $MAILSTACK_IMAP_PORT
  }
"
        filters+="local $addr {   # profile $name: without $drop
  protocol imap {
    imap_capability = $(ms_profile_caps "$drop")
  }
}
"
    done

    cat >"$MS_DOVECOT_CONF" <<EOF
# Generated by mailpipe tests/mailstack/start.sh -- edits are overwritten.
# Self-contained: nothing from /etc/dovecot is included.
instance_name = mailpipe-mailstack
base_dir = $MS_DOVECOT_RUN
state_dir = $MS_DOVECOT/state
log_path = $MS_LOG/dovecot.log
info_log_path = $MS_LOG/dovecot.log
auth_verbose = yes
verbose_proctitle = yes

protocols = imap lmtp pop3
listen = $MAILSTACK_HOST

ssl = yes
ssl_cert = <$MS_TLS/server.pem
ssl_key = <$MS_TLS/server.key
ssl_min_protocol = TLSv1.2
$dh

# Tests log in with LOGIN over plain TCP on loopback.
disable_plaintext_auth = no
# apop: POP3 APOP (RFC 1939), possible because the passdb keeps plaintext passwords;
# pop3-login then puts the APOP timestamp <...> in its greeting.
auth_mechanisms = plain login apop xoauth2 oauthbearer
auth_username_format = %Lu
# No auth cache (the default, spelled out): every token login asks the OAuth2
# server, so revoking or expiring a token takes effect on the next login.
auth_cache_size = 0
# Wrong passwords must fail fast for negative tests: no 2 s failure delay, and
# no per-IP auth penalty (4-15 s before EVERY later login from 127.0.0.1, good
# password or not, once one failed). Dovecot 2.3 has no setting for the
# latter (login_trusted_networks no longer skips it); not creating anvil's
# penalty socket disables it (common.sh also deletes a stale one, else the
# auth process retries it for 5 s). A failure still takes ~0.5 s: Dovecot's
# failure queue is checked on a 500 ms timer.
auth_failure_delay = 0
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}

# Passwords only for PLAIN/LOGIN/APOP, tokens only for XOAUTH2/OAUTHBEARER: a
# wrong password never costs an HTTP round trip to the OAuth2 server (and
# fails as fast as before), and a token is never compared with a password.
passdb {
  driver = passwd-file
  mechanisms = plain login apop
  args = scheme=PLAIN username_format=%u $users
}
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = $MS_DOVECOT/dovecot-oauth2.conf.ext
}
userdb {
  driver = passwd-file
  args = username_format=%u $users
  default_fields = uid=$MAILSTACK_VMAIL_UID gid=$MAILSTACK_VMAIL_UID home=$MS_MAIL/%d/%n
}

# Maildir, one directory per folder (LAYOUT=fs); "/" is the hierarchy separator.
mail_location = maildir:$MS_MAIL/%d/%n/Maildir:LAYOUT=fs
first_valid_uid = 500
recipient_delimiter = +
lda_mailbox_autocreate = yes
lda_mailbox_autosubscribe = yes

namespace inbox {
  inbox = yes
  separator = /
  prefix =
  mailbox Drafts {
    special_use = \Drafts
  }
  mailbox Junk {
    special_use = \Junk
  }
  mailbox Sent {
    special_use = \Sent
  }
  mailbox Trash {
    special_use = \Trash
  }
}

service imap-login {
  inet_listener imap {
    address = $MAILSTACK_HOST
    port = $MAILSTACK_IMAP_PORT
  }
  inet_listener imaps {
    address = $MAILSTACK_HOST
    port = $MAILSTACK_IMAPS_PORT
    ssl = yes
  }
  # Reduced-capability profiles (plain IMAP; STARTTLS is offered but the
  # certificate does not name these addresses).
$listeners}

service pop3-login {
  inet_listener pop3 {
    address = $MAILSTACK_HOST
    port = $MAILSTACK_POP3_PORT
  }
  inet_listener pop3s {
    address = $MAILSTACK_HOST
    port = $MAILSTACK_POP3S_PORT
    ssl = yes
  }
}

service lmtp {
  inet_listener lmtp {
    address = $MAILSTACK_HOST
    port = $MAILSTACK_LMTP_PORT
  }
}

service auth {
  # Postfix submission authenticates users through this socket (SASL).
  unix_listener ${MS_SASL_SOCKET##*/} {   # relative to base_dir
    mode = 0660
    user = postfix
    group = postfix
  }
}

protocol imap {
  # Tests open many connections for one user from 127.0.0.1 (default 10).
  mail_max_userip_connections = 200
}

protocol pop3 {
  # Dovecot's default, spelled out: tests may rely on the UIDL form.
  pop3_uidl_format = %08Xu%08Xv
}

# Pigeonhole at delivery, for a user with ~/.dovecot.sieve only (no test user has one; the
# benchmark bench/lmtp.py writes one for carol to compare mailpipe with Dovecot + Sieve).
# Vacation replies go out through the stack's Postfix.
protocol lmtp {
  mail_plugins = \$mail_plugins sieve
}
plugin {
  sieve = file:~/sieve;active=~/.dovecot.sieve
}
submission_host = $MAILSTACK_HOST:$MAILSTACK_SMTP_PORT

protocol lmtp {
  postmaster_address = postmaster@$MAILSTACK_DOMAIN
}

$filters
${MAILSTACK_DOVECOT_EXTRA:+!include $MAILSTACK_DOVECOT_EXTRA}
EOF
    chmod 644 "$MS_DOVECOT_CONF"
    doveconf -c "$MS_DOVECOT_CONF" -n >"$MS_LOG/dovecot-config-check.log" 2>&1 ||
        { cat "$MS_LOG/dovecot-config-check.log" >&2; ms_die "invalid dovecot config $MS_DOVECOT_CONF"; }
}

# ---------------------------------------------------------- 5. Postfix ---
ms_write_postfix_conf() {
    local c="$MS_POSTFIX_CONF" u
    : >"$c/vmailbox.new"
    for u in $MAILSTACK_USERS; do
        printf '%s@%s OK\n' "$u" "$MAILSTACK_DOMAIN" >>"$c/vmailbox.new"
    done
    # deliver.<domain> goes to `mailpipe deliver` through pipe(8), as a mail server hands
    # mail to a delivery command (tests/deliver.rs writes $MAILSTACK_DIR/mailpipe/deliver).
    printf 'deliver.%s mailpipe:\n' "$MAILSTACK_DOMAIN" >"$c/transport.new"
    # lmtp.<domain> goes to mailpipe's LMTP server (tests/deliver.rs starts the daemon).
    printf 'lmtp.%s lmtp:inet:%s:%s\n' "$MAILSTACK_DOMAIN" "$MAILSTACK_HOST" "$MAILSTACK_MAILPIPE_LMTP_PORT" >>"$c/transport.new"
    # pipe(8) runs its command as a user that is not root.
    id mpdeliver >/dev/null 2>&1 ||
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin mpdeliver
    mkdir -p "$MAILSTACK_DIR/mailpipe"

    cat >"$c/main.cf.new" <<EOF
# Generated by mailpipe tests/mailstack/start.sh -- edits are overwritten.
# Run as: postfix -c $c start
compatibility_level = 3.6
queue_directory = $MS_POSTFIX_QUEUE
data_directory = $MS_POSTFIX_DATA
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-mailstack
# There is no syslog: postlogd writes here. The file MUST lie under
# maillog_file_prefixes or "postfix start" fails without a word.
maillog_file = $MS_LOG/postfix.log
maillog_file_prefixes = $MS_LOG

myhostname = mail.$MAILSTACK_DOMAIN
mydomain = $MAILSTACK_DOMAIN
myorigin = \$myhostname
mydestination =
inet_interfaces = $MAILSTACK_HOST
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
biff = no
append_dot_mydomain = no
readme_directory = no
smtpd_banner = \$myhostname ESMTP mailpipe-mailstack

# No local delivery, no aliases.
local_recipient_maps =
local_transport = error:local delivery is disabled in the mailpipe test stack
alias_maps =
alias_database =

# The only destination: virtual mailboxes of the test domain, delivered to
# Dovecot over LMTP. (virtual_alias_domains is empty on purpose: a catch-all
# in virtual_alias_maps would otherwise make the domain alias-only.)
virtual_alias_domains =
virtual_alias_maps =
virtual_mailbox_domains = $MAILSTACK_DOMAIN
virtual_mailbox_maps = texthash:$c/vmailbox
virtual_transport = lmtp:inet:$MAILSTACK_HOST:$MAILSTACK_LMTP_PORT
recipient_delimiter = +

# Relay nothing, anywhere: mail that is not for the test domain fails, but for
# deliver.<domain> and lmtp.<domain>, which transport_maps hands to mailpipe.
relay_domains = deliver.$MAILSTACK_DOMAIN, lmtp.$MAILSTACK_DOMAIN
transport_maps = texthash:$c/transport
mailpipe_destination_recipient_limit = 1
default_transport = error:outbound mail is disabled in the mailpipe test stack
relay_transport = error:outbound mail is disabled in the mailpipe test stack

# No DNS at all (nothing may leave loopback).
smtp_dns_support_level = disabled
disable_dns_lookups = yes
lmtp_dns_support_level = disabled
smtp_host_lookup = native
lmtp_host_lookup = native
smtpd_peername_lookup = no

# Port $MAILSTACK_SMTP_PORT: no AUTH; accepts mail for the test domain only.
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions =
smtpd_tls_security_level = may
smtpd_tls_cert_file = $MS_TLS/server.pem
smtpd_tls_key_file = $MS_TLS/server.key
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = $MS_SASL_SOCKET
smtpd_sasl_auth_enable = no
smtpd_tls_auth_only = no

# Test-friendly throttling: no flow delay, no error sleeps, quick retries
# (fault-injection tests stop Dovecot and expect the queue to drain soon).
in_flow_delay = 0
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 100
smtpd_hard_error_limit = 200
smtpd_client_connection_count_limit = 200
message_size_limit = 52428800
queue_run_delay = 5s
minimal_backoff_time = 5s
maximal_backoff_time = 15s
maximal_queue_lifetime = 1h
bounce_queue_lifetime = 1h
EOF

    cat >"$c/master.cf.new" <<EOF
# Generated by mailpipe tests/mailstack/start.sh -- edits are overwritten.
# Nothing is chrooted (chroot column "n"). No smtp client: nothing leaves.
# service type  private unpriv  chroot  wakeup  maxproc command + args
$MAILSTACK_HOST:$MAILSTACK_SMTP_PORT inet n - n - - smtpd
$MAILSTACK_HOST:$MAILSTACK_SUBMISSION_PORT inet n - n - - smtpd
  -o syslog_name=postfix-mailstack/submission
  -o smtpd_tls_security_level=may
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_auth_only=no
  -o smtpd_relay_restrictions=reject_unauth_destination
  -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject
$MAILSTACK_HOST:$MAILSTACK_SUBMISSIONS_PORT inet n - n - - smtpd
  -o syslog_name=postfix-mailstack/submissions
  -o smtpd_tls_wrappermode=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=reject_unauth_destination
  -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
mailpipe  unix  -       n       n       -       -       pipe
  flags=DR user=mpdeliver argv=$MAILSTACK_DIR/mailpipe/deliver -f \${sender} -a \${recipient}
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
    # Files are replaced only when their content changes: every postfix
    # command waits until a just-written main.cf is ~2 s old (it rereads it
    # every 0.3 s in case an editor is still writing it), which would nearly
    # double a restart.
    local f
    for f in main.cf master.cf vmailbox transport; do
        chmod 644 "$c/$f.new"
        if cmp -s "$c/$f.new" "$c/$f"; then rm -f "$c/$f.new"; else mv -f "$c/$f.new" "$c/$f"; fi
    done
    # Creates the queue directories with the right owners, and reports errors.
    postfix -c "$c" check >"$MS_LOG/postfix-check.log" 2>&1 ||
        { cat "$MS_LOG/postfix-check.log" >&2; ms_die "postfix -c $c check failed"; }
}

# ------------------------------------------------------------ 6. start ---
ms_write_env() {
    local v f="$MAILSTACK_DIR/env.sh"
    {
        echo "# Written by mailpipe tests/mailstack/start.sh: source it to reach the test mail stack."
        for v in MAILSTACK_DIR MAILSTACK_HOST MAILSTACK_DOMAIN MAILSTACK_IMAP_PORT MAILSTACK_IMAPS_PORT \
            MAILSTACK_POP3_PORT MAILSTACK_POP3S_PORT \
            MAILSTACK_SMTP_PORT MAILSTACK_SUBMISSION_PORT MAILSTACK_SUBMISSIONS_PORT MAILSTACK_LMTP_PORT \
            MAILSTACK_MAILPIPE_LMTP_PORT \
            MAILSTACK_CA MAILSTACK_WRONG_CA MAILSTACK_OAUTH_PORT MAILSTACK_OAUTH_URL; do
            printf 'export %s=%q\n' "$v" "${!v}"
        done
        # MAILSTACK_CAPS_<PROFILE>=address:port, and the list of profiles.
        local line name addr names=()
        for line in "${MS_CAPS_PROFILES[@]}"; do
            read -r name addr _ <<<"$line"
            names+=("$name")
            printf 'export MAILSTACK_CAPS_%s=%q\n' "${name^^}" "$addr:$MAILSTACK_IMAP_PORT"
        done
        printf 'export MAILSTACK_CAPS_PROFILES=%q\n' "${names[*]}"
    } >"$f.tmp"
    chmod 644 "$f.tmp"
    mv "$f.tmp" "$f"
}

mkdir -p "$MS_LOG"
ms_install_packages
ms_stop_system_services

# Idempotent: stop whatever runs under this dir (stop.sh uses the ports of the
# previous run, from its env.sh).
if ms_dovecot_running || ms_postfix_running || ms_oauth_running; then
    ms_log "a stack is already running under $MAILSTACK_DIR: stopping it first"
    MS_IGNORE_ENV_FILE=0 "$HERE/stop.sh"
fi

# shellcheck disable=SC2046  # one word per address
for port in $(ms_dovecot_addrs) "$MAILSTACK_SMTP_PORT" "$MAILSTACK_SUBMISSION_PORT" \
    "$MAILSTACK_SUBMISSIONS_PORT" "$MAILSTACK_OAUTH_PORT"; do
    if ms_port_open "$port"; then
        ss -ltnp "sport = :${port##*:}" >&2 || true
        [[ $port == *:* ]] || port="$MAILSTACK_HOST:$port"
        ms_die "$port is already taken by another process (not a stack under $MAILSTACK_DIR)"
    fi
done

ms_make_dirs
ms_make_tls
ms_write_dovecot_conf
ms_write_postfix_conf
# Fresh logs for this run (kept across restart-dovecot.sh / postfix-ctl.sh).
for f in dovecot.log postfix.log oauth2.log dovecot-start.log postfix-start.log; do : >"$MS_LOG/$f"; done

ms_write_env       # before starting, so that stop.sh knows the ports even if a start fails
# The OAuth2 server first: Dovecot asks it about every token login. Issued
# tokens are kept; settings changed by earlier tests are not.
ms_oauth_start --reset-settings
ms_dovecot_start   # before postfix: postfix needs its LMTP port and SASL socket
ms_postfix_start

ms_log "mail stack ready under $MAILSTACK_DIR in $((SECONDS - MS_T0))s (env: $MAILSTACK_DIR/env.sh)"
grep '^export ' "$MAILSTACK_DIR/env.sh"
