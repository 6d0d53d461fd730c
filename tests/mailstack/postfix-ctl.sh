#!/usr/bin/env bash
# Stop, start or flush only the Postfix of the test mail stack (same config),
# for fault-injection tests (SMTP server gone, then back).
#
# Why this exists: tests of SMTP retry logic need to take the SMTP server away
# without touching Dovecot or any other process.
#
# Usage: postfix-ctl.sh stop|start|restart|status|flush
#   flush: retry deferred mail now (e.g. after restart-dovecot.sh)

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$HERE/common.sh"

ms_lock
case "${1:-}" in
stop) ms_postfix_stop ;;
start) ms_postfix_start ;;
restart) ms_postfix_stop && ms_postfix_start ;;
status)
    if ms_postfix_running; then
        echo "postfix under $MAILSTACK_DIR is running (pid $(ms_live_pid "$MS_POSTFIX_PID" master))"
    else
        echo "postfix under $MAILSTACK_DIR is not running"
        exit 1
    fi
    ;;
flush) postqueue -c "$MS_POSTFIX_CONF" -f ;;
*)
    echo "usage: $0 stop|start|restart|status|flush" >&2
    exit 2
    ;;
esac
