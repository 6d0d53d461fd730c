#!/usr/bin/env bash
# Stop the test mail stack that start.sh started under $MAILSTACK_DIR
# (default /tmp/mailpipe-mailstack): Postfix, Dovecot and the fake OAuth2 server.
#
# Why this exists: tests and CI must be able to end exactly the Dovecot,
# Postfix and OAuth2 server instances of the test stack, found through their
# pid files under the base dir, without ever touching any other process (e.g.
# a system MTA). Mailboxes, TLS material, issued tokens and logs are kept;
# rm -rf "$MAILSTACK_DIR" afterwards for a clean slate. Safe to run when
# nothing is running.

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$HERE/common.sh"

[[ -d "$MAILSTACK_DIR" ]] || exit 0   # nothing was ever started here
ms_lock

# Dovecot's master alone takes ~1 s to exit after SIGTERM, so stop all at once.
rc=0
pids=()
if command -v postfix >/dev/null; then ms_postfix_stop & pids+=($!); fi
if command -v dovecot >/dev/null; then ms_dovecot_stop & pids+=($!); fi
ms_oauth_stop & pids+=($!)
for p in "${pids[@]}"; do wait "$p" || rc=1; done
exit "$rc"
