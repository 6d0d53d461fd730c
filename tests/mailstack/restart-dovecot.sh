#!/usr/bin/env bash
# Stop and start only the Dovecot of the test mail stack (same config), for
# fault-injection tests: IMAP clients get disconnected, and Postfix defers
# LMTP deliveries while Dovecot is down (it retries every few seconds).
#
# Why this exists: tests of reconnect/retry logic need to kill the IMAP server
# under a live client without restarting the whole stack.
#
# Usage: restart-dovecot.sh [--down-secs N]   (stay down N seconds, default 0)

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$HERE/common.sh"

ms_lock
down=0
if [[ "${1:-}" == --down-secs ]]; then down="${2:?--down-secs needs a number}"; fi

ms_dovecot_stop
sleep "$down"
ms_dovecot_start
