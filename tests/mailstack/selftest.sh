#!/usr/bin/env bash
# Smoke test of a RUNNING test mail stack (start.sh first): sends mail with
# swaks over SMTP and authenticated submission, then checks Maildir files and
# IMAP/IMAPS (CA verification, wrong CA rejected, CAPABILITY).
#
# Why this exists: when an end-to-end test fails, this tells in seconds whether
# the mail stack itself works. It only adds messages to bob's mailbox.
# Prints "N passed, N failed"; exits non-zero on any failure.

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$HERE/common.sh"
[[ -r "$MAILSTACK_DIR/env.sh" ]] || ms_die "no $MAILSTACK_DIR/env.sh: run start.sh first"
# shellcheck disable=SC1091
source "$MAILSTACK_DIR/env.sh"

tag="selftest-$$-$RANDOM"
swaks --silent 2 -s "$MAILSTACK_HOST" -p "$MAILSTACK_SMTP_PORT" -f someone@elsewhere.test \
    -t "bob@$MAILSTACK_DOMAIN" --h-Subject "$tag smtp" --body "via smtp" ||
    ms_die "swaks via SMTP port $MAILSTACK_SMTP_PORT failed"
swaks --silent 2 -s "$MAILSTACK_HOST" -p "$MAILSTACK_SUBMISSION_PORT" -f "alice@$MAILSTACK_DOMAIN" \
    -t "bob@$MAILSTACK_DOMAIN" -a LOGIN -au "alice@$MAILSTACK_DOMAIN" -ap secret-alice \
    --h-Subject "$tag submission" --body "via submission" ||
    ms_die "swaks via submission port $MAILSTACK_SUBMISSION_PORT failed"

TAG="$tag" python3 - <<'EOF'
import glob, imaplib, os, ssl, time

env = os.environ
host, tag = env["MAILSTACK_HOST"], env["TAG"]
user, pw = "bob@" + env["MAILSTACK_DOMAIN"], "secret-bob"
passed = failed = 0

def check(name, ok, detail=""):
    global passed, failed
    passed, failed = passed + bool(ok), failed + (not ok)
    print(("ok   " if ok else "FAIL ") + name + (f"  ({detail})" if detail else ""))

def maildir_hits():
    files = glob.glob(f"{env['MAILSTACK_DIR']}/mail/{env['MAILSTACK_DOMAIN']}/bob/Maildir/[nc][eu][wr]/*")
    return sum(tag.encode() in open(f, "rb").read() for f in files)

deadline = time.time() + 15
while maildir_hits() < 2 and time.time() < deadline:
    time.sleep(0.2)
check("both messages are files in bob's Maildir", maildir_hits() == 2, f"{maildir_hits()} found")

def search(m):
    m.select("INBOX")
    return len(m.search(None, "SUBJECT", tag)[1][0].split())

m = imaplib.IMAP4(host, int(env["MAILSTACK_IMAP_PORT"]))
m.login(user, pw)
caps = m.capability()[1][0].decode().split()
check("IMAP CAPABILITY has MOVE IDLE UIDPLUS", {"MOVE", "IDLE", "UIDPLUS"} <= set(caps))
check("IMAP LIST separator is /", b'"/"' in m.list()[1][0])
check("IMAP SEARCH finds both messages", search(m) == 2)
m.logout()

ctx = ssl.create_default_context(cafile=env["MAILSTACK_CA"])
m = imaplib.IMAP4_SSL("localhost", int(env["MAILSTACK_IMAPS_PORT"]), ssl_context=ctx)
m.login(user, pw)
check("IMAPS with MAILSTACK_CA + hostname localhost", search(m) == 2)
m.logout()

try:
    bad = ssl.create_default_context(cafile=env["MAILSTACK_WRONG_CA"])
    imaplib.IMAP4_SSL("localhost", int(env["MAILSTACK_IMAPS_PORT"]), ssl_context=bad)
    check("IMAPS with MAILSTACK_WRONG_CA is rejected", False)
except ssl.SSLCertVerificationError:
    check("IMAPS with MAILSTACK_WRONG_CA is rejected", True)

m = imaplib.IMAP4(host, int(env["MAILSTACK_IMAP_PORT"]))
try:
    m.login(user, "wrong")
    check("wrong password is refused", False)
except imaplib.IMAP4.error:
    check("wrong password is refused", True)

print(f"{passed} passed, {failed} failed")
raise SystemExit(1 if failed else 0)
EOF
