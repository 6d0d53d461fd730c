#!/usr/bin/env bash
# Smoke test of a RUNNING test mail stack (start.sh first): sends mail with
# swaks over SMTP and authenticated submission, then checks Maildir files,
# IMAP/IMAPS (CA verification, wrong CA rejected, CAPABILITY), the
# reduced-capability endpoints, and runs oauth2-selftest.py (tokens on IMAP
# and SMTP, the OAuth2 flows).
#
# Why this exists: when an end-to-end test fails, this tells in seconds whether
# the mail stack itself works. It only adds messages to bob's mailbox.
# Prints "N passed, N failed" for each part; exits non-zero on any failure.
# Usage: selftest.sh [-v]   (-v: also print the OAuth2 IMAP/SMTP dialogues)

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

# The capability profiles, one "name<TAB>address:port<TAB>capabilities" line each.
profiles=""
for line in "${MS_CAPS_PROFILES[@]}"; do
    read -r name addr drop <<<"$line"
    profiles+="$name"$'\t'"$addr:$MAILSTACK_IMAP_PORT"$'\t'"$(ms_profile_caps "$drop")"$'\n'
done

rc=0
TAG="$tag" MS_PROFILES="$profiles" MS_FULL_CAPS="$MS_IMAP_FULL_CAPS" python3 - <<'EOF' || rc=1
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

# Reduced-capability endpoints: the profile's list before login (greeting and
# CAPABILITY; Dovecot adds STARTTLS and AUTH=), in the LOGIN reply (a
# [CAPABILITY] code, or an untagged CAPABILITY if the client asked before
# login) and after login. imaplib keeps the greeting's list in .capabilities
# and the LOGIN reply's in untagged_responses.
login_extra = {"STARTTLS", "AUTH=PLAIN", "AUTH=LOGIN", "AUTH=XOAUTH2", "AUTH=OAUTHBEARER"}
user = "alice@" + env["MAILSTACK_DOMAIN"]

def caps_of(data):
    return set(data[-1].decode().upper().split())

m = imaplib.IMAP4(host, int(env["MAILSTACK_IMAP_PORT"]))
check("127.0.0.1 offers AUTH=XOAUTH2 and AUTH=OAUTHBEARER", {"AUTH=XOAUTH2", "AUTH=OAUTHBEARER"} <= set(m.capabilities))
m.login(user, "secret-alice")
full = {c.upper() for c in env["MS_FULL_CAPS"].split()}
got = caps_of(m.capability()[1])
check("127.0.0.1 keeps the full list (MS_IMAP_FULL_CAPS) after login", got == full,
      "" if got == full else f"missing {sorted(full - got)}, extra {sorted(got - full)}")
m.logout()

for line in env["MS_PROFILES"].splitlines():
    name, hostport, caps = line.split("\t")
    want = {c.upper() for c in caps.split()}
    h, p = hostport.split(":")
    if env.get("MAILSTACK_CAPS_" + name.upper()) != hostport:
        check(f"env.sh has MAILSTACK_CAPS_{name.upper()}={hostport}", False)
    m = imaplib.IMAP4(h, int(p))
    greet = set(m.capabilities)
    m.login(user, "secret-alice")
    in_login = caps_of(m.untagged_responses.get("CAPABILITY", [b""]))
    after = caps_of(m.capability()[1])
    m.logout()
    m = imaplib.IMAP4(h, int(p))
    before = caps_of(m.capability()[1])
    m.login(user, "secret-alice")
    untagged = caps_of(m.untagged_responses.get("CAPABILITY", [b""]))
    m.logout()
    ok = greet == before == want | login_extra and in_login == untagged == after == want
    check(f"{name} ({hostport}) advertises its profile before, in and after LOGIN", ok,
          "" if ok else f"differences: greeting {sorted(greet ^ (want | login_extra))}, "
          f"CAPABILITY before login {sorted(before ^ (want | login_extra))}, LOGIN reply {sorted(in_login ^ want)}, "
          f"after {sorted(after ^ want)}, untagged after early CAPABILITY {sorted(untagged ^ want)}")

print(f"mailstack: {passed} passed, {failed} failed")
raise SystemExit(1 if failed else 0)
EOF

python3 "$HERE/oauth2-selftest.py" "$@" | sed 's/^\([0-9]* passed\)/oauth2: \1/' || rc=1
exit "$rc"
