#!/usr/bin/env python3
"""OAuth2 smoke test of a RUNNING test mail stack (start.sh first).

Why this exists: it shows in seconds whether the fake OAuth2 provider
(oauth2_server.py), Dovecot's oauth2 passdb and Postfix's SASL through Dovecot
work together: XOAUTH2 and OAUTHBEARER with good, expired, revoked and
someone else's tokens on IMAP and SMTP submission; refresh; the device flow
and the authorization-code flow with PKCE driven by curl. It also pins down
the exact failure dialogues that mailpipe has to handle.

Usage: oauth2-selftest.py [-v]    (-v prints every IMAP/SMTP dialogue)
Prints "N passed, N failed"; exits non-zero on any failure. It only issues
tokens and logs in; mailboxes are not changed.
"""

import base64
import hashlib
import imaplib
import json
import os
import secrets
import socket
import ssl
import subprocess
import sys
import time
from urllib.parse import parse_qs, urlsplit

VERBOSE = "-v" in sys.argv[1:]


def load_env():
    env = dict(os.environ)
    path = os.path.join(env.get("MAILSTACK_DIR", "/tmp/mailpipe-mailstack"), "env.sh")
    if "MAILSTACK_OAUTH_URL" not in env:
        try:
            for line in open(path):
                if line.startswith("export ") and "=" in line:
                    k, v = line[7:].strip().split("=", 1)
                    env[k] = v.strip("'\"")
        except OSError:
            sys.exit(f"no {path}: run tests/mailstack/start.sh first")
    return env


ENV = load_env()
HOST = ENV["MAILSTACK_HOST"]
URL = ENV["MAILSTACK_OAUTH_URL"]
DOMAIN = ENV["MAILSTACK_DOMAIN"]
ALICE, BOB = "alice@" + DOMAIN, "bob@" + DOMAIN
IMAP_PORT = int(ENV["MAILSTACK_IMAP_PORT"])
SUB_PORT = int(ENV["MAILSTACK_SUBMISSION_PORT"])
SUBS_PORT = int(ENV["MAILSTACK_SUBMISSIONS_PORT"])
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    passed, failed = passed + bool(ok), failed + (not ok)
    print(("ok   " if ok else "FAIL ") + name + (f"  ({detail})" if detail and not ok else ""))
    return ok


# ------------------------------------------------------------- HTTP ---
def curl(*args):
    """(status, body as JSON or text, headers) of one curl call (curl, as a person would)."""
    p = subprocess.run(["curl", "-sS", "-D", "-", "--max-time", "10", *args], capture_output=True)
    if p.returncode != 0:
        raise RuntimeError(f"curl {' '.join(args)}: {p.stderr.decode().strip()}")
    head, _, body = p.stdout.decode().partition("\r\n\r\n")
    status = int(head.split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head.split("\r\n")[1:])}
    try:
        body = json.loads(body)
    except ValueError:
        pass
    return status, body, headers


def control(path, body=None):
    if body is None:
        return curl(URL + path)[1]
    status, out, _ = curl("-X", "POST", "-H", "Content-Type: application/json", "--data", json.dumps(body), URL + path)
    assert status == 200, f"{path}: {status} {out}"
    return out


def token(*form, basic=False):
    """POST /token with the client's credentials in the body (or HTTP Basic)."""
    creds = ["-u", "mailpipe-test:test-secret"] if basic else \
        ["--data-urlencode", "client_id=mailpipe-test", "--data-urlencode", "client_secret=test-secret"]
    args = []
    for f in form:
        args += ["--data-urlencode", f]
    return curl(*creds, *args, URL + "/token")


# ------------------------------------------------------------- SASL ---
def b64(s):
    return base64.b64encode(s.encode()).decode()


def xoauth2(user, tok):
    return b64(f"user={user}\x01auth=Bearer {tok}\x01\x01")


def oauthbearer(user, tok, port):
    return b64(f"n,a={user},\x01host={HOST}\x01port={port}\x01auth=Bearer {tok}\x01\x01")


class Dialogue:
    """A line-based client that records every line, for -v and for failures."""

    def __init__(self, sock, name):
        self.f, self.lines, self.name = sock.makefile("rwb"), [], name

    def send(self, line):
        self.lines.append("C: " + line)
        self.f.write(line.encode() + b"\r\n")
        self.f.flush()

    def recv(self):
        line = self.f.readline().decode().rstrip("\r\n")
        self.lines.append("S: " + line)
        return line

    def recv_smtp(self):
        while True:
            line = self.recv()
            if len(line) < 4 or line[3] != "-":
                return line

    def show(self):
        if VERBOSE:
            print(f"  --- {self.name}")
            for line in self.lines:
                print("    " + (line if len(line) < 130 else line[:127] + "..."))


def imap_auth(mech, payload, fail_reply, sasl_ir):
    """AUTHENTICATE; on a challenge send fail_reply. (tagged reply, challenge or None, dialogue)."""
    d = Dialogue(socket.create_connection((HOST, IMAP_PORT), timeout=10), f"IMAP AUTHENTICATE {mech}")
    d.recv()
    if sasl_ir:
        d.send(f"a AUTHENTICATE {mech} {payload}")
    else:
        d.send(f"a AUTHENTICATE {mech}")
        assert d.recv() == "+ ", d.lines
        d.send(payload)
    line, challenge = d.recv(), None
    if line.startswith("+ "):
        challenge = line[2:]
        d.send(fail_reply)
        line = d.recv()
    d.send("z LOGOUT")
    d.f.close()
    d.show()
    return line, challenge, d


def smtp_auth(port, mech, payload, fail_reply, tls=False):
    """AUTH with an initial response; on 334 send fail_reply. (final reply, challenge or None, dialogue)."""
    sock = socket.create_connection((HOST, port), timeout=10)
    if tls:
        ctx = ssl.create_default_context(cafile=ENV["MAILSTACK_CA"])
        sock = ctx.wrap_socket(sock, server_hostname="localhost")
    d = Dialogue(sock, f"SMTP {port} AUTH {mech}")
    d.recv_smtp()
    d.send("EHLO selftest.example.test")
    d.recv_smtp()
    ehlo = [l for l in d.lines if l.startswith("S: 250")]
    d.send(f"AUTH {mech} {payload}")
    line, challenge = d.recv_smtp(), None
    if line.startswith("334"):
        challenge = line[4:]
        d.send(fail_reply)
        line = d.recv_smtp()
    d.send("QUIT")
    d.recv_smtp()
    d.f.close()
    d.show()
    d.ehlo = ehlo
    return line, challenge, d


XOAUTH2_CHALLENGE = b64('{"status":"401","schemes":"bearer","scope":"mail"}')
OAUTHBEARER_CHALLENGE = b64('{"status":"invalid_token"}')
IMAP_NO = "a NO [AUTHENTICATIONFAILED] Authentication failed."
SMTP_535 = "535 5.7.8 Error: authentication failed: (reason unavailable)"


def imap_ok(mech, user, tok, sasl_ir=True):
    payload = xoauth2(user, tok) if mech == "XOAUTH2" else oauthbearer(user, tok, IMAP_PORT)
    line, _, d = imap_auth(mech, payload, "", sasl_ir)
    return line.startswith("a OK "), d


def imap_refused(mech, user, tok):
    """True if the login fails with exactly the documented dialogue."""
    if mech == "XOAUTH2":
        line, ch, d = imap_auth(mech, xoauth2(user, tok), "", sasl_ir=False)
        return ch == XOAUTH2_CHALLENGE and line == IMAP_NO, d
    line, ch, d = imap_auth(mech, oauthbearer(user, tok, IMAP_PORT), "AQ==", sasl_ir=True)
    return ch == OAUTHBEARER_CHALLENGE and line == IMAP_NO, d


def smtp_refused(mech, user, tok, port=SUB_PORT, tls=False):
    if mech == "XOAUTH2":
        line, ch, d = smtp_auth(port, mech, xoauth2(user, tok), "", tls)
        return ch == XOAUTH2_CHALLENGE and line == SMTP_535, d
    line, ch, d = smtp_auth(port, mech, oauthbearer(user, tok, port), "AQ==", tls)
    return ch == OAUTHBEARER_CHALLENGE and line == SMTP_535, d


def detail(d):
    return " | ".join(d.lines[-6:])


def main():
    stats0 = control("/control/stats")
    alice = control("/control/issue", {"username": ALICE})
    bob = control("/control/issue", {"username": BOB})
    check("/control/issue gives an access and a refresh token",
          alice["access_token"].startswith("mpat_") and alice["refresh_token"].startswith("mprt_")
          and alice["expires_in"] == 3600, str(alice))

    # ---- IMAP, good token
    for mech in ("XOAUTH2", "OAUTHBEARER"):
        for ir in (True, False):
            ok, d = imap_ok(mech, ALICE, alice["access_token"], sasl_ir=ir)
            check(f"IMAP {mech} {'with' if ir else 'without'} SASL-IR, valid token: OK", ok, detail(d))
    # ---- someone else's token
    for mech in ("XOAUTH2", "OAUTHBEARER"):
        ok, d = imap_refused(mech, ALICE, bob["access_token"])
        check(f"IMAP {mech} as alice with bob's token: challenge + NO", ok, detail(d))
    # ---- expired / revoked
    expired = control("/control/issue", {"username": ALICE})["access_token"]
    control("/control/expire", {"token": expired})
    revoked = control("/control/issue", {"username": ALICE})["access_token"]
    control("/control/revoke", {"token": revoked})
    short = control("/control/issue", {"username": ALICE, "expires_in": 1})["access_token"]
    for mech in ("XOAUTH2", "OAUTHBEARER"):
        t0 = time.time()
        ok, d = imap_refused(mech, ALICE, expired)
        check(f"IMAP {mech} with an expired token: challenge + NO (in {time.time() - t0:.1f} s)", ok, detail(d))
        ok, d = imap_refused(mech, ALICE, revoked)
        check(f"IMAP {mech} with a revoked token: challenge + NO", ok, detail(d))
    ok, d = imap_ok("XOAUTH2", ALICE, "mpat_no-such-token")
    check("IMAP XOAUTH2 with an unknown token is refused", not ok, detail(d))
    time.sleep(1.1)
    ok, d = imap_refused("XOAUTH2", ALICE, short)
    check("IMAP XOAUTH2 with a token past its expires_in (1 s) is refused", ok, detail(d))

    # ---- revoking a refresh token kills its access tokens and the refresh itself
    fam = control("/control/issue", {"username": ALICE})
    control("/control/revoke", {"token": fam["refresh_token"]})
    ok, d = imap_refused("XOAUTH2", ALICE, fam["access_token"])
    check("revoking a refresh token also revokes its access tokens", ok, detail(d))
    st, body, _ = token("grant_type=refresh_token", "refresh_token=" + fam["refresh_token"])
    check("refresh with a revoked refresh token: 400 invalid_grant",
          st == 400 and body.get("error") == "invalid_grant", f"{st} {body}")

    # ---- password logins unchanged, wrong ones still fast
    m = imaplib.IMAP4(HOST, IMAP_PORT)
    check("IMAP LOGIN with the password still works", m.login(ALICE, "secret-alice")[0] == "OK")
    m.logout()
    for who in (ALICE, "nobody@" + DOMAIN):
        m = imaplib.IMAP4(HOST, IMAP_PORT)
        t0 = time.time()
        try:
            m.login(who, "wrong")
            check(f"wrong password for {who} is refused", False)
        except imaplib.IMAP4.error:
            took = time.time() - t0
            check(f"wrong password for {who} is refused fast ({took:.2f} s)", took < 1.0, f"{took:.2f} s")
    m = imaplib.IMAP4(HOST, IMAP_PORT)
    try:
        m.login(ALICE, alice["access_token"])
        check("a token is not accepted as a LOGIN password", False)
    except imaplib.IMAP4.error:
        check("a token is not accepted as a LOGIN password", True)

    # ---- SMTP submission (587 plain, 465 implicit TLS)
    line, _, d = smtp_auth(SUB_PORT, "XOAUTH2", xoauth2(ALICE, alice["access_token"]), "")
    check("submission EHLO advertises AUTH ... XOAUTH2 OAUTHBEARER",
          any("AUTH PLAIN LOGIN XOAUTH2 OAUTHBEARER" in l for l in d.ehlo), " ".join(d.ehlo))
    check("submission AUTH XOAUTH2, valid token: 235", line.startswith("235 "), detail(d))
    line, _, d = smtp_auth(SUB_PORT, "OAUTHBEARER", oauthbearer(ALICE, alice["access_token"], SUB_PORT), "AQ==")
    check("submission AUTH OAUTHBEARER, valid token: 235", line.startswith("235 "), detail(d))
    for mech in ("XOAUTH2", "OAUTHBEARER"):
        ok, d = smtp_refused(mech, ALICE, expired)
        check(f"submission AUTH {mech}, expired token: 334 challenge + 535", ok, detail(d))
        ok, d = smtp_refused(mech, ALICE, revoked)
        check(f"submission AUTH {mech}, revoked token: 334 challenge + 535", ok, detail(d))
        ok, d = smtp_refused(mech, ALICE, bob["access_token"])
        check(f"submission AUTH {mech} as alice with bob's token: 334 challenge + 535", ok, detail(d))
    line, _, d = smtp_auth(SUBS_PORT, "OAUTHBEARER", oauthbearer(ALICE, alice["access_token"], SUBS_PORT), "AQ==",
                           tls=True)
    check("submissions (implicit TLS) AUTH OAUTHBEARER, valid token: 235", line.startswith("235 "), detail(d))
    ok, d = smtp_refused("XOAUTH2", ALICE, revoked, port=SUBS_PORT, tls=True)
    check("submissions (implicit TLS) AUTH XOAUTH2, revoked token: 334 + 535", ok, detail(d))

    # ---- refresh
    for basic in (False, True):
        st, body, hdrs = token("grant_type=refresh_token", "refresh_token=" + alice["refresh_token"], basic=basic)
        good = st == 200 and body.get("token_type") == "Bearer" and body.get("expires_in") == 3600 \
            and "refresh_token" not in body and body["access_token"] != alice["access_token"]
        check(f"refresh_token grant (secret {'via HTTP Basic' if basic else 'in the body'}): new access token",
              good and hdrs.get("cache-control") == "no-store", f"{st} {body}")
        if good:
            ok, d = imap_ok("XOAUTH2", ALICE, body["access_token"])
            check("  the refreshed access token logs in", ok, detail(d))
    st, body, _ = curl("--data-urlencode", "grant_type=refresh_token", "--data-urlencode",
                       "refresh_token=" + alice["refresh_token"], "-d", "client_id=mailpipe-test",
                       "-d", "client_secret=wrong", URL + "/token")
    check("wrong client_secret: 401 invalid_client", st == 401 and body.get("error") == "invalid_client",
          f"{st} {body}")
    st, body, _ = token("grant_type=refresh_token", "refresh_token=mprt_unknown")
    check("unknown refresh token: 400 invalid_grant", st == 400 and body.get("error") == "invalid_grant",
          f"{st} {body}")

    # ---- device flow (RFC 8628)
    st, dev, _ = curl("-d", "client_id=mailpipe-test", "-d", "scope=mail", URL + "/device")
    check("POST /device: device_code, user_code, verification_uri, interval",
          st == 200 and dev.get("verification_uri") == URL + "/activate" and dev.get("interval") == 1
          and dev.get("expires_in") == 600, f"{st} {dev}")
    poll = ("grant_type=" + DEVICE_GRANT, "device_code=" + dev["device_code"])
    st, body, _ = token(*poll)
    check("device poll before approval: authorization_pending", body.get("error") == "authorization_pending",
          f"{st} {body}")
    control("/control/approve", {"user_code": dev["user_code"], "username": ALICE})
    time.sleep(dev["interval"])
    st, body, _ = token(*poll)
    good = st == 200 and "refresh_token" in body and "access_token" in body
    check("device poll after /control/approve: access + refresh token", good, f"{st} {body}")
    if good:
        ok, d = imap_ok("OAUTHBEARER", ALICE, body["access_token"])
        check("  the device-flow token logs in", ok, detail(d))
    st, body, _ = token(*poll)
    check("device_code used twice: invalid_grant", body.get("error") == "invalid_grant", f"{st} {body}")

    # ---- authorization code + PKCE (RFC 6749 4.1, RFC 7636, RFC 8252 loopback redirect)
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    redirect = "http://127.0.0.1:45678/callback"
    st, _, hdrs = curl("-G", "--data-urlencode", "response_type=code", "--data-urlencode", "client_id=mailpipe-test",
                       "--data-urlencode", "redirect_uri=" + redirect, "--data-urlencode", "state=st4te",
                       "--data-urlencode", "code_challenge=" + challenge,
                       "--data-urlencode", "code_challenge_method=S256", "--data-urlencode", "scope=mail",
                       "--data-urlencode", "login_hint=" + ALICE, URL + "/authorize")
    loc = urlsplit(hdrs.get("location", ""))
    q = parse_qs(loc.query)
    check("GET /authorize: 302 to the redirect_uri with code and state",
          st == 302 and f"{loc.scheme}://{loc.netloc}{loc.path}" == redirect and q.get("state") == ["st4te"]
          and "code" in q, f"{st} {hdrs.get('location')}")
    code = q.get("code", [""])[0]
    st, body, _ = token("grant_type=authorization_code", "code=" + code, "redirect_uri=" + redirect,
                        "code_verifier=" + verifier[:-1] + ("A" if verifier[-1] != "A" else "B"))
    check("authorization_code with a wrong code_verifier: invalid_grant", body.get("error") == "invalid_grant",
          f"{st} {body}")
    st, body, _ = token("grant_type=authorization_code", "code=" + code, "redirect_uri=" + redirect,
                        "code_verifier=" + verifier)
    good = st == 200 and "refresh_token" in body
    check("authorization_code with the right code_verifier: access + refresh token", good, f"{st} {body}")
    if good:
        ok, d = imap_ok("XOAUTH2", ALICE, body["access_token"])
        check("  the authorization-code token logs in", ok, detail(d))
    st, body, _ = curl("-G", "-d", "response_type=code", "-d", "client_id=mailpipe-test",
                       "--data-urlencode", "redirect_uri=" + redirect, "-d", "code_challenge=" + challenge,
                       "-d", "code_challenge_method=S256", URL + "/authorize")
    check("GET /authorize without login_hint: 400 page", st == 400, str(st))

    # ---- stats
    stats = control("/control/stats")

    def ok_count(s, gt):
        return s["token"].get(gt, {}).get("ok", 0)

    check("/control/stats counts grants and introspections",
          ok_count(stats, "refresh_token") - ok_count(stats0, "refresh_token") == 2
          and ok_count(stats, DEVICE_GRANT) - ok_count(stats0, DEVICE_GRANT) == 1
          and ok_count(stats, "authorization_code") - ok_count(stats0, "authorization_code") == 1
          and stats["introspect"]["active"] > stats0["introspect"]["active"]
          and stats["introspect"]["inactive"] > stats0["introspect"]["inactive"], json.dumps(stats))

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
