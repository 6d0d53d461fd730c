#!/usr/bin/env python3
"""Seed alice's INBOX of a tests/mailstack instance with a bench/corpus.py corpus.

    python3 bench/seed.py golden CORPUS_DIR GOLDEN_DIR   # once per corpus: build + index
    python3 bench/seed.py reseed GOLDEN_DIR              # before every timed run (~0.1-1 s)
    python3 bench/seed.py count                          # messages / \\Flagged per folder (JSON)

Needs MAILSTACK_DIR (and the stack's env.sh) and root. How it works:

* `golden` writes the corpus as Maildir files straight into GOLDEN_DIR/cur (names like
  Dovecot's own, with ,S=<size>,W=<CRLF size> so Dovecot need not stat or read them to know
  sizes; mtime = the Date = INTERNALDATE; owner uid/gid 5000 like delivered mail), then lets
  Dovecot itself index that directory (`doveadm mailbox status` with mail_location pointed at
  it): dovecot-uidlist, dovecot.index* exist, UIDs 1..N in corpus order, no cache yet.
* `reseed` makes alice's Maildir an exact copy of GOLDEN_DIR (rm -rf + cp -a, then sync):
  every other folder, the subscriptions, flags, indexes and UIDVALIDITY are back to the same
  state before every run of every tool. It refuses to run while alice has an IMAP session
  (Dovecot would see its index vanish underneath it) and waits up to 10 s for one to end.
* `count` asks Dovecot (doveadm, no IMAP) for the number of messages and of \\Flagged
  messages in each folder, for the equivalence check after each run.
"""

import json
import os
import shutil
import subprocess
import sys
import time

USER = "alice@example.test"
VMAIL = int(os.environ.get("MAILSTACK_VMAIL_UID", "5000"))


def stack():
    d = os.environ.get("MAILSTACK_DIR")
    if not d:
        sys.exit("seed.py: MAILSTACK_DIR is not set (source $MAILSTACK_DIR/env.sh)")
    return d


def conf():
    return os.path.join(stack(), "dovecot", "dovecot.conf")


def live_maildir():
    return os.path.join(stack(), "mail", "example.test", "alice", "Maildir")


def doveadm(*args, mail_location=None):
    cmd = ["doveadm", "-c", conf()]
    if mail_location:
        cmd += ["-o", "mail_location=" + mail_location]
    cmd += list(args)
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def chown_tree(path):
    for root, dirs, files in os.walk(path):
        os.chown(root, VMAIL, VMAIL)
        for f in files:
            os.chown(os.path.join(root, f), VMAIL, VMAIL)


def golden(corpus, out):
    with open(os.path.join(corpus, "manifest.json")) as f:
        manifest = json.load(f)
    if os.path.exists(out):
        shutil.rmtree(out)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(out, sub))
    for i, m in enumerate(manifest["messages"], 1):
        with open(os.path.join(corpus, m["file"]), "rb") as f:
            raw = f.read()
        vsize = len(raw) + raw.count(b"\n")  # size with CRLF line ends (what IMAP shows)
        # zero-padded time + sequence: Dovecot gives new files UIDs in name order
        name = "%d.M%06dP1.mpbench,S=%d,W=%d:2," % (m["time"], i, len(raw), vsize)
        p = os.path.join(out, "cur", name)
        with open(p, "wb") as f:
            f.write(raw)
        os.utime(p, (m["time"], m["time"]))
    chown_tree(out)
    os.chmod(out, 0o700)
    # Let Dovecot index it: uidlist (UIDs 1..N), dovecot.index, no cache.
    st = doveadm("mailbox", "status", "-u", USER, "messages uidnext uidvalidity", "INBOX",
                 mail_location="maildir:%s:LAYOUT=fs" % out)
    print("golden %s: %s" % (out, st.strip()))
    expected = manifest["n"]
    got = int(st.split("messages=")[1].split()[0])
    if got != expected:
        sys.exit("golden: Dovecot sees %d messages, expected %d" % (got, expected))
    uids = subprocess.run(["head", "-3", os.path.join(out, "dovecot-uidlist")], capture_output=True, text=True).stdout
    print(uids.strip())


def alice_sessions():
    out = subprocess.run(["doveadm", "-c", conf(), "who", "-1"], capture_output=True, text=True).stdout
    return [l for l in out.splitlines() if l.startswith(USER)]


def reseed(gold):
    deadline = time.time() + 10
    while alice_sessions():
        if time.time() > deadline:
            sys.exit("reseed: alice still has IMAP sessions: %s" % alice_sessions())
        time.sleep(0.1)
    live = live_maildir()
    home = os.path.dirname(live)
    if not os.path.isdir(home):
        os.makedirs(home)
        os.chown(home, VMAIL, VMAIL)
    if os.path.exists(live):
        shutil.rmtree(live)
    subprocess.run(["cp", "-a", gold, live], check=True)
    os.sync()  # no write-back of the copy during the timed run


def count():
    res = {}
    # `mailbox status` with a wildcard prints "<name> messages=<n>" in flow format
    out = doveadm("mailbox", "status", "-u", USER, "messages", "*")
    for line in out.splitlines():
        name, _, rest = line.rpartition(" messages=")
        if name:
            res[name] = {"count": int(rest), "flagged": 0}
    for name in res:
        if res[name]["count"]:
            flagged = doveadm("search", "-u", USER, "mailbox", name, "FLAGGED")
            res[name]["flagged"] = len([l for l in flagged.splitlines() if l.strip()])
    return res


def main(argv):
    if not argv:
        sys.exit(__doc__)
    cmd = argv[0]
    if cmd == "golden" and len(argv) == 3:
        golden(argv[1], argv[2])
    elif cmd == "reseed" and len(argv) == 2:
        reseed(argv[1])
    elif cmd == "count" and len(argv) == 1:
        print(json.dumps(count(), sort_keys=True))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
