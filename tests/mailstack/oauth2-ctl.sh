#!/usr/bin/env bash
# Stop, start or restart only the fake OAuth2 server of the test mail stack
# (oauth2_server.py), for fault-injection tests: token endpoint unreachable,
# Dovecot unable to introspect tokens.
#
# Why this exists: tests of token refresh and of XOAUTH2/OAUTHBEARER logins
# need the provider to go away and come back under a live client. Injected
# HTTP errors and delays need no restart: POST /control/settings (README.md).
# Issued tokens survive a restart (state file); /control/settings too (only
# start.sh resets them).
#
# Usage: oauth2-ctl.sh stop|start|restart|status

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$HERE/common.sh"

ms_lock
mkdir -p "$MS_LOG"
# shellcheck disable=SC2119  # ms_oauth_start without --reset-settings: keep them
case "${1:-}" in
stop) ms_oauth_stop ;;
start) ms_oauth_start ;;
restart) ms_oauth_stop && ms_oauth_start ;;
status)
    if ms_oauth_running; then
        echo "oauth2 server under $MAILSTACK_DIR is running (pid $(ms_oauth_pid), $MAILSTACK_OAUTH_URL)"
    else
        echo "oauth2 server under $MAILSTACK_DIR is not running"
        exit 1
    fi
    ;;
*)
    echo "usage: $0 stop|start|restart|status" >&2
    exit 2
    ;;
esac
