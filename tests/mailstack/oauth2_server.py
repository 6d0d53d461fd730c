#!/usr/bin/env python3
"""Fake OAuth2 authorization server of the mailpipe test mail stack.

Why this exists: mailpipe logs in to IMAP/SMTP with OAuth2 bearer tokens
(XOAUTH2 / OAUTHBEARER), refreshes them from a refresh token, and obtains them
in `mailpipe auth` through the device flow (RFC 8628) or the loopback
authorization-code flow with PKCE (RFC 8252 / RFC 7636). Real providers cannot
be reached from the test machines, so this server plays the provider, and
Dovecot asks it whether a token is valid (RFC 7662 introspection). Tests steer
it through /control/* (issue, approve, revoke, expire tokens; change settings;
read call counts). Python 3 standard library only; started by start.sh.

Endpoints (all JSON unless noted; see README.md):
  POST /token          grant_type refresh_token | device_code | authorization_code
  POST /device         device authorization request (RFC 8628 3.1)
  GET  /authorize      auto-consents as login_hint, 302 to the loopback redirect_uri
  GET  /activate       a small HTML page for the device flow (manual use only)
  POST /introspect     RFC 7662, for Dovecot
  GET  /.well-known/oauth-authorization-server   RFC 8414 metadata
  POST /control/issue | approve | revoke | expire | settings | reset
  GET  /control/stats | settings | state
State lives in memory and is written to --state after every change, so a
restart keeps issued tokens.
"""

import argparse
import base64
import copy
import hashlib
import html
import json
import os
import re
import secrets
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote_plus, urlencode, urlsplit

CLIENT_ID = "mailpipe-test"
CLIENT_SECRET = "test-secret"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_SCOPE = "mail"
CODE_LIFETIME = 600          # authorization codes, seconds
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"   # RFC 8628 6.1: no vowels, no look-alikes

# Settings a test may change through POST /control/settings (reset restores these).
DEFAULT_SETTINGS = {
    "access_token_lifetime": 3600,    # expires_in of newly issued access tokens
    "rotate_refresh_tokens": False,   # refresh_token grant returns a new refresh token, the old one dies
    "require_client_secret": False,   # False: a request without any secret is a public client (allowed)
    "device_interval": 1,             # "interval" of new device authorizations, seconds
    "device_expires_in": 600,         # lifetime of new device codes, seconds
    "slow_down_increment": 5,         # RFC 8628 3.5: the interval grows by this much after each slow_down
    "authorize_deny": False,          # /authorize redirects with error=access_denied instead of a code
    "token_error": None,              # e.g. {"status": 503, "error": "temporarily_unavailable"}: every /token fails so
    "token_delay": 0.0,               # seconds /token waits before answering (client timeouts)
    "introspect_delay": 0.0,          # seconds /introspect waits before answering
}

LOCK = threading.RLock()
STATE = {}
STATE_FILE = None


def fresh_state():
    return {
        "settings": copy.deepcopy(DEFAULT_SETTINGS),
        "grants": {},          # id -> {username, scope, client_id, revoked}
        "refresh_tokens": {},  # token -> {grant, state: active|rotated|expired}
        "access_tokens": {},   # token -> {grant, username, scope, exp, iat, revoked}
        "devices": {},         # device_code -> {user_code, scope, expires, interval, status, username, last_poll}
        "codes": {},           # authorization code -> {username, scope, redirect_uri, challenge, expires, used, grant}
        "stats": {"token": {}, "introspect": {"active": 0, "inactive": 0}, "device": {"ok": 0, "error": 0},
                  "authorize": {"ok": 0, "error": 0}},
    }


def save():
    """Write the state atomically (caller holds LOCK)."""
    if not STATE_FILE:
        return
    tmp = STATE_FILE + ".tmp"
    with open(tmp, "w") as f:
        json.dump(STATE, f, indent=1, sort_keys=True)
    os.replace(tmp, STATE_FILE)


def load(path):
    global STATE
    STATE = fresh_state()
    if path and os.path.exists(path):
        try:
            with open(path) as f:
                saved = json.load(f)
            for k in STATE:
                if k in saved:
                    STATE[k] = saved[k]
            # Settings added in a newer version of this file get their defaults.
            STATE["settings"] = {**copy.deepcopy(DEFAULT_SETTINGS), **STATE["settings"]}
            log(f"loaded state from {path}: {len(STATE['access_tokens'])} access, "
                f"{len(STATE['refresh_tokens'])} refresh tokens")
        except (OSError, ValueError) as e:
            log(f"ignoring unreadable state file {path}: {e}")
            STATE = fresh_state()


def log(msg):
    sys.stderr.write(time.strftime("%Y-%m-%d %H:%M:%S ") + msg + "\n")
    sys.stderr.flush()


def new_token(prefix):
    return prefix + secrets.token_urlsafe(24)


def new_user_code():
    with LOCK:
        while True:
            c = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
            c = c[:4] + "-" + c[4:]
            if not any(d["user_code"] == c for d in STATE["devices"].values()):
                return c


def norm_user_code(c):
    return re.sub(r"[^A-Z]", "", str(c).upper())


class OAuthError(Exception):
    """An RFC 6749 5.2 error response."""

    def __init__(self, error, description, status=400, headers=None):
        super().__init__(error)
        self.error, self.description, self.status = error, description, status
        self.headers = headers or {}


# ------------------------------------------------------------- tokens ---
def issue_grant(username, scope):
    gid = secrets.token_hex(8)
    STATE["grants"][gid] = {"username": username, "scope": scope, "client_id": CLIENT_ID, "revoked": False,
                            "created": int(time.time())}
    return gid


def issue_refresh(gid):
    rt = new_token("mprt_")
    STATE["refresh_tokens"][rt] = {"grant": gid, "state": "active"}
    return rt


def issue_access(gid, lifetime=None):
    g = STATE["grants"][gid]
    if lifetime is None:
        lifetime = int(STATE["settings"]["access_token_lifetime"])
    now = int(time.time())
    at = new_token("mpat_")
    STATE["access_tokens"][at] = {"grant": gid, "username": g["username"], "scope": g["scope"],
                                  "iat": now, "exp": now + int(lifetime), "revoked": False}
    return at, int(lifetime)


def access_token_status(at):
    """(record, None) if `at` is a valid access token, else (record or None, reason)."""
    rec = STATE["access_tokens"].get(at)
    if rec is None:
        return None, "unknown"
    if rec["revoked"] or STATE["grants"].get(rec["grant"], {}).get("revoked", True):
        return rec, "revoked"
    if rec["exp"] <= time.time():
        return rec, "expired"
    return rec, None


def token_response(gid, with_refresh):
    at, lifetime = issue_access(gid)
    body = {"access_token": at, "token_type": "Bearer", "expires_in": lifetime,
            "scope": STATE["grants"][gid]["scope"]}
    if with_refresh:
        body["refresh_token"] = issue_refresh(gid)
    return body


# ------------------------------------------------------- grant types ---
def grant_refresh(form):
    rt = form.get("refresh_token")
    if not rt:
        raise OAuthError("invalid_request", "refresh_token is missing")
    rec = STATE["refresh_tokens"].get(rt)
    if rec is None:
        raise OAuthError("invalid_grant", "unknown refresh token")
    g = STATE["grants"].get(rec["grant"])
    if g is None or g["revoked"]:
        raise OAuthError("invalid_grant", "the refresh token has been revoked")
    if rec["state"] == "rotated":
        raise OAuthError("invalid_grant", "the refresh token was replaced by a newer one (rotation)")
    if rec["state"] == "expired":
        raise OAuthError("invalid_grant", "the refresh token has expired")
    if "scope" in form:
        wanted, granted = set(form["scope"].split()), set(g["scope"].split())
        if not wanted <= granted:
            raise OAuthError("invalid_scope", f"scope {form['scope']!r} exceeds the granted {g['scope']!r}")
    rotate = bool(STATE["settings"]["rotate_refresh_tokens"])
    body = token_response(rec["grant"], with_refresh=rotate)
    if rotate:
        rec["state"] = "rotated"
    return body


def grant_device(form):
    dc = form.get("device_code")
    if not dc:
        raise OAuthError("invalid_request", "device_code is missing")
    d = STATE["devices"].get(dc)
    if d is None:
        raise OAuthError("invalid_grant", "unknown device_code")
    now = time.time()
    if d["status"] == "used":
        raise OAuthError("invalid_grant", "this device_code has already been exchanged for tokens")
    if d["status"] == "denied":
        raise OAuthError("access_denied", "the user denied the authorization request")
    if now >= d["expires"]:
        raise OAuthError("expired_token", "the device_code has expired; start a new device authorization")
    if d["status"] == "pending":
        last, d["last_poll"] = d.get("last_poll"), now
        # 50 ms of slack for timer jitter; the first poll is never too early.
        if last is not None and now - last < d["interval"] - 0.05:
            d["interval"] += int(STATE["settings"]["slow_down_increment"])
            raise OAuthError("slow_down", f"polling too fast; wait at least {d['interval']} s between requests")
        raise OAuthError("authorization_pending", "the user has not approved the request yet")
    # approved
    d["status"] = "used"
    gid = issue_grant(d["username"], d["scope"])
    return token_response(gid, with_refresh=True)


def pkce_s256(verifier):
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def grant_code(form):
    code = form.get("code")
    if not code:
        raise OAuthError("invalid_request", "code is missing")
    c = STATE["codes"].get(code)
    if c is None:
        raise OAuthError("invalid_grant", "unknown authorization code")
    if c["used"]:
        # RFC 6749 4.1.2: a code used twice revokes what it was exchanged for.
        if c.get("grant") in STATE["grants"]:
            STATE["grants"][c["grant"]]["revoked"] = True
        raise OAuthError("invalid_grant", "the authorization code has already been used (its tokens are revoked now)")
    if time.time() >= c["expires"]:
        raise OAuthError("invalid_grant", "the authorization code has expired")
    if form.get("redirect_uri") != c["redirect_uri"]:
        raise OAuthError("invalid_grant", f"redirect_uri {form.get('redirect_uri')!r} differs from the one given "
                                          f"to /authorize ({c['redirect_uri']!r})")
    verifier = form.get("code_verifier")
    if not verifier:
        raise OAuthError("invalid_request", "code_verifier is missing (PKCE is required)")
    if not re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", verifier):
        raise OAuthError("invalid_request", "code_verifier must be 43-128 characters of [A-Za-z0-9-._~] (RFC 7636 4.1)")
    if pkce_s256(verifier) != c["challenge"]:
        raise OAuthError("invalid_grant", "PKCE verification failed: S256(code_verifier) != code_challenge")
    c["used"] = True
    c["grant"] = issue_grant(c["username"], c["scope"])
    return token_response(c["grant"], with_refresh=True)


GRANTS = {"refresh_token": grant_refresh, DEVICE_GRANT: grant_device, "authorization_code": grant_code}


# ------------------------------------------------------------- HTTP ---
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive for Dovecot's HTTP client; every answer has Content-Length
    server_version = "mailpipe-fake-oauth2/1"

    def log_message(self, fmt, *args):
        log("%s %s" % (self.client_address[0], fmt % args))

    # ---- plumbing
    def send(self, status, body, headers=None, ctype="application/json"):
        data = (json.dumps(body) if ctype == "application/json" else body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype + ("; charset=utf-8" if not ctype.endswith("json") else ""))
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def page(self, status, title, text):
        self.send(status, f"<!doctype html><title>{html.escape(title)}</title><h1>{html.escape(title)}</h1>"
                          f"<p>{html.escape(text)}</p>\n", ctype="text/html")

    def body(self):
        return self.raw_body

    def form(self):
        """The x-www-form-urlencoded body; RFC 6749 3.2: no parameter twice."""
        raw = parse_qs(self.body().decode("utf-8", "replace"), keep_blank_values=True)
        twice = [k for k, v in raw.items() if len(v) > 1]
        if twice:
            raise OAuthError("invalid_request", f"parameter(s) given more than once: {', '.join(twice)}")
        return {k: v[0] for k, v in raw.items()}

    def json_in(self):
        data = self.body()
        try:
            obj = json.loads(data) if data.strip() else {}
        except ValueError:
            raise OAuthError("invalid_request", "the body is not JSON")
        if not isinstance(obj, dict):
            raise OAuthError("invalid_request", "the body must be a JSON object")
        return obj

    def query(self):
        return {k: v[0] for k, v in parse_qs(urlsplit(self.path).query, keep_blank_values=True).items()}

    def client_auth(self, form):
        """RFC 6749 2.3.1: client_secret in the body or HTTP Basic, not both."""
        basic_id = basic_secret = None
        auth = self.headers.get("Authorization", "")
        if auth[:6].lower() == "basic ":
            try:
                dec = base64.b64decode(auth[6:].strip(), validate=True).decode()
                basic_id, _, basic_secret = dec.partition(":")
                basic_id, basic_secret = unquote_plus(basic_id), unquote_plus(basic_secret)
            except (ValueError, UnicodeDecodeError):
                raise OAuthError("invalid_client", "malformed HTTP Basic credentials", 401,
                                 {"WWW-Authenticate": 'Basic realm="mailpipe-fake-oauth2"'})
        if basic_id is not None and "client_secret" in form:
            raise OAuthError("invalid_request", "client authenticated with both HTTP Basic and client_secret")
        client_id = basic_id if basic_id is not None else form.get("client_id")
        secret = basic_secret if basic_id is not None else form.get("client_secret")
        hdrs = {"WWW-Authenticate": 'Basic realm="mailpipe-fake-oauth2"'} if basic_id is not None else {}
        if basic_id is not None and form.get("client_id") not in (None, basic_id):
            raise OAuthError("invalid_client", "client_id in the body differs from HTTP Basic", 401, hdrs)
        if not client_id:
            raise OAuthError("invalid_client", "client_id is missing", 401, hdrs)
        if client_id != CLIENT_ID:
            raise OAuthError("invalid_client", f"unknown client_id {client_id!r}", 401, hdrs)
        if secret is None:
            if STATE["settings"]["require_client_secret"]:
                raise OAuthError("invalid_client", "client_secret is required", 401, hdrs)
        elif secret != CLIENT_SECRET:
            raise OAuthError("invalid_client", "wrong client_secret", 401, hdrs)

    def oauth_error(self, e):
        self.send(e.status, {"error": e.error, "error_description": e.description}, e.headers)

    # ---- dispatch
    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def dispatch(self, method):
        # Read the whole body first, whatever the route: an unread body would be
        # taken for the next request on this keep-alive connection.
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = -1
        if n < 0 or n > 1 << 20 or self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self.send(400, {"error": "invalid_request",
                            "error_description": "bad Content-Length (chunked bodies are not supported)"})
            return
        self.raw_body = self.rfile.read(n) if n else b""
        path = urlsplit(self.path).path.rstrip("/") or "/"
        routes = {
            ("POST", "/token"): self.token,
            ("POST", "/device"): self.device,
            ("GET", "/authorize"): self.authorize,
            ("GET", "/activate"): self.activate_page,
            ("POST", "/activate"): self.activate_post,
            ("POST", "/introspect"): self.introspect,
            ("GET", "/.well-known/oauth-authorization-server"): self.metadata,
            ("POST", "/control/issue"): self.c_issue,
            ("POST", "/control/approve"): self.c_approve,
            ("POST", "/control/revoke"): self.c_revoke,
            ("POST", "/control/expire"): self.c_expire,
            ("POST", "/control/settings"): self.c_settings,
            ("GET", "/control/settings"): self.c_settings,
            ("GET", "/control/stats"): self.c_stats,
            ("GET", "/control/state"): self.c_state,
            ("POST", "/control/reset"): self.c_reset,
        }
        fn = routes.get((method, path))
        if fn is None:
            allowed = [m for (m, p) in routes if p == path]
            if allowed:
                self.send(405, {"error": "method_not_allowed"}, {"Allow": ", ".join(allowed)})
            else:
                self.send(404, {"error": "not_found", "error_description": f"no endpoint {method} {path}"})
            return
        try:
            fn()
        except OAuthError as e:
            self.oauth_error(e)
        except Exception as e:  # a bug here must show up in the test log, not hang the client
            log(f"internal error in {method} {path}: {e!r}")
            self.send(500, {"error": "server_error", "error_description": repr(e)})

    def base_url(self):
        return f"http://{self.server.server_address[0]}:{self.server.server_address[1]}"

    # ---- /token
    def token(self):
        form = self.form()
        gt = form.get("grant_type", "")
        with LOCK:
            delay = float(STATE["settings"]["token_delay"])
        if delay > 0:
            time.sleep(delay)
        with LOCK:
            s = STATE["settings"]
            st = STATE["stats"]["token"].setdefault(gt or "(none)", {"ok": 0, "error": 0, "errors": {}})
            try:
                if s["token_error"]:
                    te = s["token_error"]
                    raise OAuthError(te.get("error", "temporarily_unavailable"),
                                     te.get("error_description", "injected failure (/control/settings token_error)"),
                                     int(te.get("status", 503)))
                if not gt:
                    raise OAuthError("invalid_request", "grant_type is missing")
                self.client_auth(form)
                if gt not in GRANTS:
                    raise OAuthError("unsupported_grant_type", f"grant_type {gt!r} is not supported")
                body = GRANTS[gt](form)
                st["ok"] += 1
                log(f"/token {gt}: ok for {STATE['access_tokens'][body['access_token']]['username']}")
            except OAuthError as e:
                st["error"] += 1
                st["errors"][e.error] = st["errors"].get(e.error, 0) + 1
                log(f"/token {gt}: {e.status} {e.error}: {e.description}")
                save()
                raise
            save()
        self.send(200, body, {"Pragma": "no-cache"})

    # ---- /device (RFC 8628 3.1)
    def device(self):
        form = self.form()
        with LOCK:
            try:
                self.client_auth(form)
            except OAuthError:
                STATE["stats"]["device"]["error"] += 1
                save()
                raise
            s = STATE["settings"]
            dc, uc = new_token("mpdc_"), new_user_code()
            STATE["devices"][dc] = {"user_code": uc, "client_id": CLIENT_ID,
                                    "scope": form.get("scope") or DEFAULT_SCOPE,
                                    "expires": time.time() + int(s["device_expires_in"]),
                                    "interval": int(s["device_interval"]), "status": "pending",
                                    "username": None, "last_poll": None}
            STATE["stats"]["device"]["ok"] += 1
            save()
            body = {"device_code": dc, "user_code": uc, "verification_uri": self.base_url() + "/activate",
                    "verification_uri_complete": self.base_url() + "/activate?user_code=" + quote(uc),
                    "expires_in": int(s["device_expires_in"]), "interval": int(s["device_interval"])}
        log(f"/device: user_code {uc}")
        self.send(200, body)

    # ---- /authorize (RFC 6749 4.1.1 + RFC 7636; auto-consent)
    def authorize(self):
        q = self.query()

        def bad(text):
            with LOCK:
                STATE["stats"]["authorize"]["error"] += 1
                save()
            log(f"/authorize: 400 {text}")
            self.page(400, "Bad authorization request", text)

        if q.get("client_id") != CLIENT_ID:
            return bad(f"unknown client_id {q.get('client_id')!r}")
        ru = q.get("redirect_uri", "")
        try:
            u = urlsplit(ru)
            port = u.port
        except ValueError:
            u, port = None, None
        if not (u and u.scheme == "http" and u.hostname in ("127.0.0.1", "localhost", "::1") and port
                and not u.fragment):
            return bad(f"redirect_uri {ru!r} must be http://127.0.0.1:PORT/..., http://localhost:PORT/... "
                       "or http://[::1]:PORT/... (RFC 8252 loopback redirect)")

        def redirect(params):
            if "state" in q:
                params["state"] = q["state"]
            loc = ru + ("&" if u.query else "?") + urlencode(params)
            log(f"/authorize: 302 {loc}")
            self.send(302, "", {"Location": loc}, ctype="text/plain")

        def redirect_error(error, text):
            with LOCK:
                STATE["stats"]["authorize"]["error"] += 1
                save()
            redirect({"error": error, "error_description": text})

        if not q.get("login_hint"):
            return bad("login_hint is missing: this fake server consents as the user named there")
        if q.get("response_type") != "code":
            return redirect_error("unsupported_response_type", "only response_type=code is supported")
        if not q.get("code_challenge"):
            return redirect_error("invalid_request", "code_challenge is missing (PKCE is required)")
        if q.get("code_challenge_method") != "S256":
            return redirect_error("invalid_request", "code_challenge_method must be S256")
        with LOCK:
            if STATE["settings"]["authorize_deny"]:
                return redirect_error("access_denied", "the user denied access (authorize_deny setting)")
            code = new_token("mpac_")
            STATE["codes"][code] = {"username": q["login_hint"], "scope": q.get("scope") or DEFAULT_SCOPE,
                                    "redirect_uri": ru, "challenge": q["code_challenge"],
                                    "expires": time.time() + CODE_LIFETIME, "used": False, "grant": None}
            STATE["stats"]["authorize"]["ok"] += 1
            save()
        redirect({"code": code})

    # ---- /activate: for a person trying the device flow by hand
    def activate_page(self):
        uc = html.escape(self.query().get("user_code", ""))
        self.send(200, f"""<!doctype html><title>Device activation</title><h1>mailpipe fake OAuth2: activate a device</h1>
<form method=post action=/activate><p>Code <input name=user_code value="{uc}"></p>
<p>Sign in as <input name=username value="alice@example.test"></p>
<p><button name=action value=approve>Approve</button> <button name=action value=deny>Deny</button></p></form>
""", ctype="text/html")

    def activate_post(self):
        form = self.form()
        deny = form.get("action") == "deny"
        ok, text = approve(form.get("user_code", ""), form.get("username"), deny)
        self.page(200 if ok else 400, "Done" if ok else "Error", text)

    # ---- /introspect (RFC 7662)
    def introspect(self):
        form = self.form()
        with LOCK:
            delay = float(STATE["settings"]["introspect_delay"])
        if delay > 0:
            time.sleep(delay)
        token = form.get("token", "")
        with LOCK:
            rec, why = access_token_status(token)
            if why is None:
                STATE["stats"]["introspect"]["active"] += 1
                body = {"active": True, "username": rec["username"], "scope": rec["scope"], "client_id": CLIENT_ID,
                        "token_type": "Bearer", "exp": rec["exp"], "iat": rec["iat"]}
            else:
                STATE["stats"]["introspect"]["inactive"] += 1
                body = {"active": False}
            save()
        log(f"/introspect: {'active for ' + rec['username'] if why is None else 'inactive (' + why + ')'}")
        self.send(200, body)

    def metadata(self):
        b = self.base_url()
        self.send(200, {"issuer": b, "authorization_endpoint": b + "/authorize", "token_endpoint": b + "/token",
                        "device_authorization_endpoint": b + "/device", "introspection_endpoint": b + "/introspect",
                        "grant_types_supported": ["authorization_code", "refresh_token", DEVICE_GRANT],
                        "response_types_supported": ["code"], "code_challenge_methods_supported": ["S256"],
                        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post",
                                                                  "none"]})

    # ---- /control/*
    def c_issue(self):
        j = self.json_in()
        user = j.get("username")
        if not isinstance(user, str) or not user:
            raise OAuthError("invalid_request", "username is required")
        exp = j.get("expires_in")
        if exp is not None and not isinstance(exp, int):
            raise OAuthError("invalid_request", "expires_in must be an integer")
        with LOCK:
            gid = issue_grant(user, j.get("scope") or DEFAULT_SCOPE)
            at, lifetime = issue_access(gid, exp)
            body = {"access_token": at, "refresh_token": issue_refresh(gid), "expires_in": lifetime,
                    "token_type": "Bearer", "scope": STATE["grants"][gid]["scope"]}
            save()
        log(f"/control/issue: tokens for {user}, expires_in {lifetime}")
        self.send(200, body)

    def c_approve(self):
        j = self.json_in()
        ok, text = approve(j.get("user_code", ""), j.get("username"), bool(j.get("deny")))
        if not ok:
            raise OAuthError("invalid_request", text, 404 if "unknown" in text else 400)
        self.send(200, {"ok": True, "description": text})

    def c_revoke(self):
        tok = self.json_in().get("token", "")
        with LOCK:
            if tok in STATE["access_tokens"]:
                STATE["access_tokens"][tok]["revoked"] = True
                kind = "access"
            elif tok in STATE["refresh_tokens"]:
                # The whole grant: this refresh token and every access token made from it.
                STATE["grants"][STATE["refresh_tokens"][tok]["grant"]]["revoked"] = True
                kind = "refresh"
            else:
                raise OAuthError("invalid_request", "unknown token", 404)
            save()
        log(f"/control/revoke: {kind} token revoked")
        self.send(200, {"ok": True, "kind": kind})

    def c_expire(self):
        tok = self.json_in().get("token", "")
        with LOCK:
            if tok in STATE["access_tokens"]:
                STATE["access_tokens"][tok]["exp"] = int(time.time()) - 1
                kind = "access"
            elif tok in STATE["refresh_tokens"]:
                STATE["refresh_tokens"][tok]["state"] = "expired"
                kind = "refresh"
            else:
                raise OAuthError("invalid_request", "unknown token", 404)
            save()
        log(f"/control/expire: {kind} token expired")
        self.send(200, {"ok": True, "kind": kind})

    def c_settings(self):
        if self.command == "POST":
            j = self.json_in()
            unknown = set(j) - set(DEFAULT_SETTINGS)
            if unknown:
                raise OAuthError("invalid_request", f"unknown setting(s): {', '.join(sorted(unknown))}; "
                                                    f"known: {', '.join(DEFAULT_SETTINGS)}")
            for k, v in j.items():
                d = DEFAULT_SETTINGS[k]
                if k == "token_error":
                    if v is not None and not (isinstance(v, dict) and set(v) <= {"status", "error",
                                                                                 "error_description"}):
                        raise OAuthError("invalid_request", "token_error must be null or "
                                                            '{"status": N, "error": "...", "error_description": "..."}')
                elif isinstance(d, bool):
                    if not isinstance(v, bool):
                        raise OAuthError("invalid_request", f"{k} must be true or false")
                elif not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                    raise OAuthError("invalid_request", f"{k} must be a non-negative number")
            with LOCK:
                STATE["settings"].update(j)
                save()
            log(f"/control/settings: {json.dumps(j)}")
        with LOCK:
            self.send(200, STATE["settings"])

    def c_stats(self):
        with LOCK:
            self.send(200, STATE["stats"])

    def c_state(self):
        with LOCK:
            self.send(200, STATE)

    def c_reset(self):
        global STATE
        with LOCK:
            STATE = fresh_state()
            save()
        log("/control/reset: all tokens, codes, stats and settings cleared")
        self.send(200, {"ok": True})


def approve(user_code, username, deny):
    """Approve or deny a pending device authorization; (ok, text)."""
    want = norm_user_code(user_code)
    with LOCK:
        for d in STATE["devices"].values():
            if norm_user_code(d["user_code"]) == want and want:
                if d["status"] != "pending":
                    return False, f"user_code {d['user_code']} is already {d['status']}"
                if time.time() >= d["expires"]:
                    return False, f"user_code {d['user_code']} has expired"
                if deny:
                    d["status"] = "denied"
                else:
                    if not username:
                        return False, "username is required to approve"
                    d["status"], d["username"] = "approved", username
                save()
                text = f"device {d['user_code']} {'denied' if deny else 'approved as ' + username}"
                log(text)
                return True, text
    return False, f"unknown user_code {user_code!r}"


def main():
    global STATE_FILE
    # A daemon: descriptors inherited from whoever ran start.sh (say the write
    # end of a pipe a test harness reads to EOF) must not stay open for ever.
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=int(os.environ.get("MAILSTACK_OAUTH_PORT", 10080)))
    ap.add_argument("--state", help="JSON file that keeps the state across restarts")
    ap.add_argument("--reset-settings", action="store_true",
                    help="keep the tokens of the state file but not the /control/settings made before")
    a = ap.parse_args()
    STATE_FILE = a.state
    load(a.state)
    if a.reset_settings:
        STATE["settings"] = copy.deepcopy(DEFAULT_SETTINGS)
        save()
    # Exit at once on SIGTERM, without waiting for idle keep-alive connections
    # (Dovecot keeps one open) to end.
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.block_on_close = False
    srv = ThreadingHTTPServer((a.host, a.port), Handler)

    def stop(signum, _frame):
        log(f"signal {signum}: exiting")
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log(f"fake OAuth2 server listening on http://{a.host}:{a.port} (pid {os.getpid()})")
    try:
        srv.serve_forever(poll_interval=0.5)
    finally:
        srv.server_close()


if __name__ == "__main__":
    main()
