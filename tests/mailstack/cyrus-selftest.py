#!/usr/bin/env python3
"""Smoke test of the RUNNING Cyrus test servers (tests/mailstack/cyrus.sh start first).

Why this exists: when an end-to-end test against Cyrus fails, this tells in
seconds whether the Cyrus instances themselves work, and it prints what they
announce (NAMESPACE, CAPABILITY, LIST) so that tests can be written against
the real answers. For each layout ("dot": Debian's default, "." and INBOX.
prefix; "slash": altnamespace + unixhierarchysep) it logs in as alice, creates
a folder and a nested UTF-8 folder in modified UTF-7, APPENDs, UID MOVEs,
STOREs a keyword, checks IDLE, a wrong password and IMAPS with the test CA.
It only touches alice's (and, for one ACL, bob's) mailboxes and removes what it
added (folders, messages, the ACL) at its end, so it can run again.

Usage:  python3 tests/mailstack/cyrus-selftest.py [-q]
Reads MAILSTACK_CYRUS_* ports from the environment or $MAILSTACK_DIR/cyrus/env.sh.
Prints "N passed, N failed"; exits non-zero on any failure.
"""
import imaplib
import os
import re
import socket
import ssl
import sys
import time

QUIET = "-q" in sys.argv[1:]
DIR = os.environ.get("MAILSTACK_DIR", "/tmp/mailpipe-mailstack").rstrip("/")
HOST = "127.0.0.1"
DOMAIN = "example.test"
CA = os.environ.get("MAILSTACK_CA", f"{DIR}/tls/ca.pem")


def load_env():
    env = {}
    try:
        with open(f"{DIR}/cyrus/env.sh") as f:
            for line in f:
                m = re.match(r"export (MAILSTACK_CYRUS_\w+)=(\S+)", line)
                if m:
                    env[m.group(1)] = m.group(2)
    except FileNotFoundError:
        pass
    env.update({k: v for k, v in os.environ.items() if k.startswith("MAILSTACK_CYRUS_")})
    return env


ENV = load_env()
if "MAILSTACK_CYRUS_DOT_IMAP_PORT" not in ENV:
    sys.exit(f"no MAILSTACK_CYRUS_* ports and no {DIR}/cyrus/env.sh: run tests/mailstack/cyrus.sh start first")

passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    passed, failed = passed + bool(ok), failed + (not ok)
    print(("ok   " if ok else "FAIL ") + name + (f"  ({detail})" if detail else ""))


def info(text):
    if not QUIET:
        print("     " + text)


def dec(items):
    return [x.decode(errors="replace") if isinstance(x, bytes) else repr(x) for x in items]


def login(port, user="alice", pw=None):
    m = imaplib.IMAP4(HOST, port, timeout=10)
    m.login(f"{user}@{DOMAIN}", pw or f"secret-{user}")
    return m


# Per layout: the folder names in the server's own form.
LAYOUTS = {
    "dot": {"sep": ".", "lists": "INBOX.Lists", "parent": "INBOX.Finance",
            "utf7": "INBOX.Finance.Rechnungen-&ANw-", "foreign": "Lists"},
    "slash": {"sep": "/", "lists": "Lists", "parent": "Finance",
              "utf7": "Finance/Rechnungen-&ANw-", "foreign": "INBOX.Lists"},
}
WANT_CAPS = ["IMAP4rev1", "MOVE", "UIDPLUS", "IDLE", "CONDSTORE", "QRESYNC", "NAMESPACE",
             "SPECIAL-USE", "LITERAL+", "ENABLE", "UTF8=ACCEPT", "LIST-EXTENDED", "ESEARCH"]


def idle_sees_append(port):
    """IDLE in INBOX on one connection, APPEND on another: EXISTS must arrive."""
    m = login(port)
    m.select("INBOX")
    tag = m._new_tag()
    m.send(tag + b" IDLE\r\n")
    cont = m.readline()
    if not cont.startswith(b"+"):
        return False, f"no continuation: {cont!r}"
    other = login(port)
    t0 = time.time()
    other.append("INBOX", None, None, b"Subject: idle probe\r\n\r\nidle\r\n")
    other.logout()
    m.sock.settimeout(5)
    got = b""
    try:
        while b"EXISTS" not in got:
            got = m.readline()
    except socket.timeout:
        return False, "no EXISTS within 5 s"
    dt = time.time() - t0
    m.send(b"DONE\r\n")
    m.sock.settimeout(10)
    while not m.readline().startswith(tag):
        pass
    m.logout()
    return True, f"{got.strip().decode()} {dt:.2f}s after the APPEND"


def run(layout, cfg):
    port = int(ENV[f"MAILSTACK_CYRUS_{layout.upper()}_IMAP_PORT"])
    tls_port = int(ENV[f"MAILSTACK_CYRUS_{layout.upper()}_IMAPS_PORT"])
    print(f"=== Cyrus layout {layout!r}: imap {port}, imaps {tls_port}")
    m = login(port)
    check(f"{layout}: alice@{DOMAIN} logs in", True)
    caps = m.capability()[1][0].decode().split()
    info("CAPABILITY: " + " ".join(caps))
    have = [c for c in WANT_CAPS if c in caps]
    lack = [c for c in WANT_CAPS if c not in caps]
    info(f"has {' '.join(have)}; lacks {' '.join(lack) or 'nothing'}")
    check(f"{layout}: CAPABILITY has MOVE UIDPLUS IDLE CONDSTORE NAMESPACE SPECIAL-USE",
          {"MOVE", "UIDPLUS", "IDLE", "CONDSTORE", "NAMESPACE", "SPECIAL-USE"} <= set(caps))
    ns = m.namespace()[1][0].decode()
    info("NAMESPACE: " + ns)
    check(f"{layout}: NAMESPACE personal separator is {cfg['sep']!r}",
          f'"{cfg["sep"]}"' in ns.split(")")[0])

    # Clean slate for the folders of this test (earlier runs).
    for f in (cfg["utf7"], cfg["parent"], cfg["lists"]):
        m.delete(f)

    typ, data = m.create(cfg["lists"])
    check(f"{layout}: CREATE {cfg['lists']}", typ == "OK", " ".join(dec(data)))
    typ, data = m.create(cfg["utf7"])
    check(f"{layout}: CREATE {cfg['utf7']} (nested, parent not created first)", typ == "OK", " ".join(dec(data)))
    typ, data = m.create(cfg["lists"])
    check(f"{layout}: CREATE of an existing folder is refused", typ == "NO", f"{typ} {' '.join(dec(data))}")
    typ, data = m.create(cfg["foreign"])
    info(f"CREATE {cfg['foreign']} (the other layout's form) -> {typ} {' '.join(dec(data))}")
    if typ == "OK":
        m.delete(cfg["foreign"])
    typ, data = m._simple_command("CREATE", b'"Finance' + cfg["sep"].encode() + b'Rechnungen-\xc3\x9c"')
    info(f"CREATE with raw UTF-8 (not mUTF-7) -> {typ} {' '.join(dec(m._untagged_response(typ, data, 'CREATE')[1]))}")

    typ, lst = m.list('""', "*")
    info('LIST "" "*":')
    for line in dec(lst):
        info("  " + line)
    delims = {re.search(r'\) "(.)"', x).group(1) for x in dec(lst) if re.search(r'\) "(.)"', x)}
    check(f"{layout}: LIST delimiter is {cfg['sep']!r}", delims == {cfg["sep"]}, str(delims))
    check(f"{layout}: LIST shows {cfg['utf7']}", any(x.endswith(cfg["utf7"]) or x.endswith(f'"{cfg["utf7"]}"')
                                                   for x in dec(lst)))

    # APPEND 3, UID MOVE one, STORE a keyword.
    tag = f"cyrus-selftest-{os.getpid()}-{layout}"
    uids = []
    for i in range(3):
        typ, data = m.append("INBOX", None, None,
                             f"From: x@{DOMAIN}\r\nSubject: {tag} #{i}\r\n\r\nbody {i}\r\n".encode())
        r = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
        uids.append(r.group(1).decode() if r else None)
    check(f"{layout}: APPEND x3 to INBOX with APPENDUID", typ == "OK" and all(uids), str(uids))
    typ, data = m.select("INBOX")
    perm = m.untagged_responses.get("PERMANENTFLAGS", [b""])
    info(f"SELECT INBOX: EXISTS {data[0].decode()}, PERMANENTFLAGS {dec(perm)}")
    check(f"{layout}: PERMANENTFLAGS allow new keywords (\\*)", any(b"\\*" in p for p in perm), str(dec(perm)))
    typ, data = m.uid("MOVE", uids[0], cfg["lists"])
    check(f"{layout}: UID MOVE {uids[0]} INBOX -> {cfg['lists']}", typ == "OK", " ".join(dec(data)))
    typ, data = m.uid("STORE", uids[1], "+FLAGS", "($Invoice)")
    check(f"{layout}: UID STORE +FLAGS ($Invoice)", typ == "OK" and b"$Invoice" in (data[0] or b""), dec(data)[0])
    typ, data = m.uid("SEARCH", "KEYWORD", "$Invoice", "SUBJECT", tag)
    check(f"{layout}: SEARCH KEYWORD $Invoice finds it", data[0].split() == [uids[1].encode()], dec(data)[0])
    typ, data = m.select(cfg["lists"])
    typ2, found = m.search(None, "SUBJECT", tag)
    check(f"{layout}: moved message is in {cfg['lists']}", len(found[0].split()) == 1, dec(found)[0])
    typ, data = m.select(cfg["utf7"])
    check(f"{layout}: SELECT {cfg['utf7']}", typ == "OK", " ".join(dec(data)))
    m.close()

    # How another user's folders look: bob lets alice see his INBOX.
    b = login(port, "bob")
    typ, data = b.setacl("INBOX", f"alice@{DOMAIN}", "lr")
    info(f"bob: SETACL INBOX alice@{DOMAIN} lr -> {typ}")
    typ, lst = m.list('""', "*")
    others = [x for x in dec(lst) if "bob" in x]
    info(f"alice sees bob's INBOX as: {others}")
    b.deleteacl("INBOX", f"alice@{DOMAIN}")
    b.logout()
    m.logout()

    ok, detail = idle_sees_append(port)
    check(f"{layout}: IDLE reports an APPEND from another connection", ok, detail)

    # Leave alice's mailbox as it was: the test messages and folders go.
    m = login(port)
    m.select("INBOX")
    typ, found = m.search(None, "OR", "SUBJECT", "cyrus-selftest-", "SUBJECT", "\"idle probe\"")
    if found[0]:
        m.store(b",".join(found[0].split()).decode(), "+FLAGS.SILENT", "(\\Deleted)")
        m.expunge()
    m.close()
    for f in (cfg["utf7"], cfg["parent"], cfg["lists"]):
        m.delete(f)
    typ, lst = m.list('""', "*")
    check(f"{layout}: cleanup removed the test folders", not any(
        x.endswith((cfg["lists"], cfg["utf7"])) for x in dec(lst)), str(dec(lst)))
    m.logout()


    t0 = time.time()
    try:
        login(port, "alice", "wrong-password")
        check(f"{layout}: wrong password is refused", False)
    except imaplib.IMAP4.error as e:
        check(f"{layout}: wrong password is refused", True, f"{e} after {time.time() - t0:.2f}s")

    ctx = ssl.create_default_context(cafile=CA)
    s = imaplib.IMAP4_SSL("localhost", tls_port, ssl_context=ctx, timeout=10)
    s.login(f"alice@{DOMAIN}", "secret-alice")
    typ, data = s.select("INBOX")
    check(f"{layout}: IMAPS on {tls_port} verified with ca.pem (hostname localhost)", typ == "OK",
          s.sock.version())
    s.logout()
    m = imaplib.IMAP4(HOST, port, timeout=10)
    try:
        m.starttls(ssl_context=ctx)
        m.login(f"alice@{DOMAIN}", "secret-alice")
        check(f"{layout}: STARTTLS on {port}", True)
        m.logout()
    except Exception as e:  # informational: Cyrus may or may not offer it
        info(f"STARTTLS on {port}: {e!r}")


for name, cfg in LAYOUTS.items():
    try:
        run(name, cfg)
    except Exception as e:
        check(f"{name}: unexpected error", False, repr(e))

print(f"{passed} passed, {failed} failed")
raise SystemExit(1 if failed else 0)
