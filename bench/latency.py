#!/usr/bin/env python3
"""IDLE latency of the mailpipe daemon against the private test stack (issue 5 (b)).

    python3 bench/latency.py --mailpipe BIN --plugins DIR [--samples 20] [--work /tmp/mpbench]

Called by `bash bench/run.sh latency` (which starts the stack and sources its env.sh).

Set-up: alice's and bob's mailboxes are emptied, the folder Bench/Filed is created, and the
daemon (`mailpipe run -c CONFIG`, no --once) watches alice's INBOX with `mode = "idle"` and
two plugins: rules-filer (Subject contains "mpbench-lat" -> Bench/Filed) and auto-responder
(answers the sender; every sample comes from its own bob+latN@example.test, so `days` does
not suppress any reply). Its [account.smtp] points at a small logging proxy in front of
Postfix submission (AUTH, plaintext on loopback), which timestamps Postfix's 250 after the
reply's DATA. mailpipe itself prints nothing when the outbox sends a message (only refusals),
so the proxy is the only precise clock for that.

Per sample (one at a time) all times are taken in this one process (time.perf_counter),
relative to t0 = smtplib getting Postfix's 250 after DATA on the SMTP port:
  delivered   a new file in alice's INBOX Maildir (inotify): Postfix -> LMTP -> Dovecot,
              no mailpipe involved (the part of the latency that is not ours)
  filed       a new file in alice's Bench/Filed Maildir (inotify): (1) of the issue
  filed-idle  "* n EXISTS" to a second IMAP client IDLE on Bench/Filed (what a client sees)
  reply-250   the proxy sees Postfix submission's 250 after the reply's DATA: (2)
  reply-inbox a new file in bob's INBOX Maildir (the reply delivered)
Dovecot holds back every IDLE notification for 500 ms (NOTIFY_DELAY_MSECS, hard-coded in
lib-storage/mailbox-watch.c): that delays mailpipe's own wake-up as well as filed-idle, and
is why the filesystem (inotify) is the clock for "in the folder", not an IDLE observer.
One warm-up sample (the daemon's first message) is reported separately. Output: a Markdown
table on stdout, WORK/latency/latency.md, every sample in WORK/latency/samples.jsonl.
"""

import argparse
import json
import os
import shutil
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import threading
import time
from email.utils import formatdate

HERE = os.path.dirname(os.path.abspath(__file__))
FOLDER = "Bench/Filed"
TAG = "mpbench-lat"

CONFIG = """\
# bench/latency.py: the daemon under test (IDLE), filer + auto-responder
[state]
dir = "{state}"

[outbox]
first_retry_seconds = 1
max_retry_seconds = 5

[[account]]
name = "lat"
address = "alice@example.test"
mailboxes = ["INBOX"]
mode = "idle"
[account.imap]
host = "127.0.0.1"
port = {imap}
tls = "none"
username = "alice@example.test"
password_env = "MPBENCH_PASSWORD"
[account.smtp]
host = "127.0.0.1"
port = {proxy}
tls = "none"
username = "alice@example.test"
password_env = "MPBENCH_PASSWORD"

[[plugin]]
name = "filer"
path = "{plugins}/rules-filer.wasm"
[plugin.config]
rules = [ {{ name = "bench", folder = "{folder}", conditions = [
    {{ subject = true, op = "contains", value = "{tag}" }} ] }} ]

[[plugin]]
name = "vacation"
path = "{plugins}/auto-responder.wasm"
[plugin.config]
addresses = ["alice@example.test"]
days = 1
body = "I am away (mailpipe latency benchmark)."
"""


def now():
    return time.perf_counter()


class Events:
    """Timestamps of one kind of event, appended by a reader thread."""

    def __init__(self, name):
        self.name = name
        self.items = []  # (t, detail)
        self.cv = threading.Condition()
        self.error = None

    def add(self, detail=None):
        t = now()
        with self.cv:
            self.items.append((t, detail))
            self.cv.notify_all()

    def first_after(self, t0, deadline, match=None):
        with self.cv:
            while True:
                for t, d in self.items:
                    if t >= t0 and (match is None or match(d)):
                        return t, d
                left = deadline - now()
                if left <= 0 or self.error:
                    return None, None
                self.cv.wait(left)


class Inotify(threading.Thread):
    """Server-side clock: a new file (IN_CREATE / IN_MOVED_TO) in a Maildir's new/ or cur/ is
    the moment Dovecot (LMTP delivery, MOVE/COPY) put the message into that folder."""
    IN_CREATE, IN_MOVED_TO = 0x100, 0x80

    def __init__(self):
        super().__init__(daemon=True)
        import ctypes
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(0)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.watches = {}  # wd -> Events

    def watch(self, path, events):
        if not os.path.isdir(path):
            raise FileNotFoundError(path)
        wd = self.libc.inotify_add_watch(self.fd, path.encode(), self.IN_CREATE | self.IN_MOVED_TO)
        if wd < 0:
            raise OSError("inotify_add_watch %s" % path)
        self.watches[wd] = events

    def run(self):
        import struct
        while True:
            buf = os.read(self.fd, 65536)
            i = 0
            while i + 16 <= len(buf):
                wd, mask, _, n = struct.unpack_from("iIII", buf, i)
                name = buf[i + 16:i + 16 + n].rstrip(b"\0")
                i += 16 + n
                if wd in self.watches and not name.startswith(b"dovecot"):
                    self.watches[wd].add(name.decode(errors="replace"))


class IdleObserver(threading.Thread):
    """Plain IMAP on a raw socket: LOGIN, SELECT folder, IDLE; every '* n EXISTS' is an event."""

    def __init__(self, port, user, password, folder, events):
        super().__init__(daemon=True)
        self.events = events
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.s.makefile("rb")
        self.f.readline()
        self.cmd('LOGIN "%s" "%s"' % (user, password))
        self.cmd('SELECT "%s"' % folder)
        self.s.sendall(b"i IDLE\r\n")
        line = self.f.readline()
        if not line.startswith(b"+"):
            raise RuntimeError("IDLE refused: %r" % line)
        self.ready = True

    def cmd(self, text):
        self.s.sendall(b"c " + text.encode() + b"\r\n")
        while True:
            line = self.f.readline()
            if not line:
                raise EOFError(text)
            if line.startswith(b"c "):
                if not line.startswith(b"c OK"):
                    raise RuntimeError("%s: %r" % (text, line))
                return

    def run(self):
        try:
            while True:
                line = self.f.readline()
                if not line:
                    return
                p = line.split()
                if len(p) >= 3 and p[0] == b"*" and p[2].upper() == b"EXISTS":
                    self.events.add(int(p[1]))
        except OSError as e:
            self.events.error = str(e)

    def close(self):
        try:
            self.s.sendall(b"DONE\r\nz LOGOUT\r\n")
            self.s.close()
        except OSError:
            pass


class SmtpProxy(threading.Thread):
    """Forwards 127.0.0.1:listen -> 127.0.0.1:to; timestamps each 250 after end of DATA."""

    def __init__(self, listen, to, events, connects):
        super().__init__(daemon=True)
        self.to = to
        self.events = events
        self.connects = connects
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", listen))
        self.srv.listen(8)
        self.sessions = 0
        self.notes = []
        self.trace = []  # (t, session, direction, first bytes) of every chunk, for --trace-smtp

    def run(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            self.connects.add()
            self.sessions += 1
            s = socket.create_connection(("127.0.0.1", self.to))
            state = {"data": False, "buf": b"", "msg": b"", "wait250": None}
            state["sid"] = self.sessions
            threading.Thread(target=self.c2s, args=(c, s, state), daemon=True).start()
            threading.Thread(target=self.s2c, args=(s, c, state), daemon=True).start()

    def c2s(self, c, s, st):
        try:
            while True:
                data = c.recv(65536)
                if not data:
                    s.shutdown(socket.SHUT_WR)
                    return
                self.trace.append((now(), st["sid"], "C>", data[:60]))
                st["buf"] += data
                while True:
                    if st["data"]:
                        i = st["buf"].find(b"\r\n.\r\n")
                        if i < 0:
                            st["msg"] += st["buf"][:-4]
                            st["buf"] = st["buf"][-4:]
                            break
                        st["msg"] += st["buf"][:i + 2]
                        st["buf"] = st["buf"][i + 5:]
                        st["data"] = False
                        st["wait250"] = header(st["msg"], b"In-Reply-To")  # set before forwarding
                        st["msg"] = b""
                        continue
                    i = st["buf"].find(b"\r\n")
                    if i < 0:
                        break
                    line = st["buf"][:i]
                    st["buf"] = st["buf"][i + 2:]
                    if line.upper() == b"DATA":
                        st["data"] = True  # Postfix will answer 354 first
                    elif line.upper().startswith(b"BDAT"):
                        self.notes.append("client used BDAT: not timed")
                s.sendall(data)
        except OSError:
            pass

    def s2c(self, s, c, st):
        try:
            buf = b""
            while True:
                data = s.recv(65536)
                if not data:
                    c.close()
                    return
                self.trace.append((now(), st["sid"], "<S", data[:60]))
                buf += data
                while b"\r\n" in buf:
                    line, buf = buf.split(b"\r\n", 1)
                    if st["wait250"] is not None and line[:4] == b"250 ":
                        self.events.add(st["wait250"])
                        st["wait250"] = None
                c.sendall(data)
        except OSError:
            pass


def header(raw, name):
    head = raw.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        if line.lower().startswith(name.lower() + b":"):
            return line.split(b":", 1)[1].strip().decode(errors="replace")
    return ""


def sessions_of(conf, user):
    out = subprocess.run(["doveadm", "-c", conf, "who", "-1"], capture_output=True, text=True).stdout
    return [l for l in out.splitlines() if l.startswith(user)]


def empty_mailboxes(stack, conf, users):
    """rm -rf the users' Maildirs (Dovecot re-creates them) once they have no IMAP session."""
    for u in users:
        deadline = time.time() + 10
        while sessions_of(conf, u):
            if time.time() > deadline:
                sys.exit("latency: %s still has IMAP sessions" % u)
            time.sleep(0.1)
        local = u.split("@")[0]
        shutil.rmtree(os.path.join(stack, "mail", "example.test", local, "Maildir"), ignore_errors=True)


def imap_cmds(port, user, password, cmds):
    s = socket.create_connection(("127.0.0.1", port))
    f = s.makefile("rb")
    f.readline()
    for i, c in enumerate(['LOGIN "%s" "%s"' % (user, password)] + cmds + ["LOGOUT"]):
        s.sendall(b"t%d %s\r\n" % (i, c.encode()))
        while True:
            line = f.readline()
            if line.startswith(b"t%d " % i) or not line:
                break
    s.close()


def stats(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {"n": len(xs), "median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mailpipe", required=True)
    ap.add_argument("--plugins", required=True, help="dir with rules-filer.wasm, auto-responder.wasm")
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--interval", type=float, default=1.0, help="pause between samples (s)")
    ap.add_argument("--timeout", type=float, default=30.0, help="per sample")
    ap.add_argument("--proxy-port", type=int, default=11588)
    ap.add_argument("--work", default="/tmp/mpbench")
    ap.add_argument("--direct-smtp", action="store_true",
                    help="diagnostics: mailpipe talks to Postfix submission directly (no proxy, no reply-250)")
    ap.add_argument("--trace-smtp", action="store_true",
                    help="write every chunk mailpipe's SMTP client sends/receives, timed, to WORK/latency/smtp-trace.txt")
    a = ap.parse_args()
    stack = os.environ.get("MAILSTACK_DIR") or sys.exit("latency.py: source the stack's env.sh first")
    imap = int(os.environ["MAILSTACK_IMAP_PORT"])
    smtp_port = int(os.environ["MAILSTACK_SMTP_PORT"])
    submission = int(os.environ["MAILSTACK_SUBMISSION_PORT"])
    conf = os.path.join(stack, "dovecot", "dovecot.conf")
    work = os.path.join(a.work, "latency")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    state = os.path.join(work, "state")
    cfg = os.path.join(work, "mailpipe.toml")
    with open(cfg, "w") as f:
        f.write(CONFIG.format(state=state, imap=imap, proxy=submission if a.direct_smtp else a.proxy_port, plugins=os.path.abspath(a.plugins),
                              folder=FOLDER, tag=TAG))
    # The compiled plugins, if bench.py or an earlier run left them: startup is not measured here.
    empty_mailboxes(stack, conf, ["alice@example.test", "bob@example.test"])
    imap_cmds(imap, "alice@example.test", "secret-alice", ['CREATE "%s"' % FOLDER, "SELECT INBOX"])
    imap_cmds(imap, "bob@example.test", "secret-bob", ["SELECT INBOX"])

    ev = {k: Events(k) for k in ("delivered", "filed", "filed-idle", "reply-connect", "reply-250",
                                  "reply-inbox")}
    maildir = lambda user, *sub: os.path.join(stack, "mail", "example.test", user, "Maildir", *sub)
    ino = Inotify()
    ino.watch(maildir("alice", "new"), ev["delivered"])
    ino.watch(maildir("alice", "Bench", "Filed", "new"), ev["filed"])
    ino.watch(maildir("alice", "Bench", "Filed", "cur"), ev["filed"])
    ino.watch(maildir("bob", "new"), ev["reply-inbox"])
    ino.watch(maildir("bob", "cur"), ev["reply-inbox"])
    ino.start()
    observers = [IdleObserver(imap, "alice@example.test", "secret-alice", FOLDER, ev["filed-idle"])]
    for o in observers:
        o.start()
    proxy = SmtpProxy(a.proxy_port, submission, ev["reply-250"], ev["reply-connect"])
    proxy.start()

    log_path = os.path.join(work, "daemon.log")
    env = dict(os.environ, MPBENCH_PASSWORD="secret-alice")
    log = open(log_path, "wb")
    t_start = now()
    daemon = subprocess.Popen([a.mailpipe, "run", "-c", cfg], stdout=log, stderr=subprocess.STDOUT, env=env)
    t_idle = None
    while now() - t_start < 120:
        with open(log_path, "rb") as f:
            if b"connected (IDLE)" in f.read():
                t_idle = now()
                break
        if daemon.poll() is not None:
            sys.exit("latency: the daemon exited (rc %s):\n%s" % (daemon.returncode, open(log_path).read()))
        time.sleep(0.01)
    if t_idle is None:
        sys.exit("latency: no 'connected (IDLE)' within 120 s, see %s" % log_path)
    print("daemon: start to 'connected (IDLE)' %.3f s (plugins compiled on the fly: cold cache)"
          % (t_idle - t_start), file=sys.stderr)
    time.sleep(1.0)

    run_id = "%d" % (time.time() * 1000)
    rows = []
    for i in range(a.samples + 1):
        sender = "bob+lat%d@example.test" % i
        mid = "<%s-%d-%s@example.test>" % (TAG, i, run_id)
        msg = ("From: Bob <%s>\r\nTo: Alice <alice@example.test>\r\nSubject: %s %d\r\nDate: %s\r\n"
               "Message-ID: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
               "Sample %d of the mailpipe IDLE latency benchmark.\r\n"
               % (sender, TAG, i, formatdate(localtime=True), mid, i))
        c = smtplib.SMTP("127.0.0.1", smtp_port)
        c.ehlo("bench.example.test")
        c.mail(sender)
        c.rcpt("alice@example.test")
        t_before = now()
        code, resp = c.data(msg.encode())
        t0 = now()
        c.quit()
        if code != 250:
            sys.exit("SMTP DATA answered %d %s" % (code, resp))
        deadline = t0 + a.timeout
        row = {"sample": i, "warmup": i == 0, "smtp_data_s": round(t0 - t_before, 4)}
        for k in ("delivered", "filed", "filed-idle", "reply-connect", "reply-inbox"):
            t, _ = ev[k].first_after(t_before, deadline)
            row[k] = None if t is None else round(t - t0, 4)
        t, _ = ev["reply-250"].first_after(t_before, deadline, match=lambda d, mid=mid: d == mid)
        row["reply-250"] = None if t is None else round(t - t0, 4)
        rows.append(row)
        print("sample %2d%s: delivered %s  filed %s  filed(IDLE) %s  reply-250 %s  reply-inbox %s" % (
            i, " (warm-up)" if i == 0 else "",
            *("%.3f s" % row[k] if row[k] is not None else "TIMEOUT"
              for k in ("delivered", "filed", "filed-idle", "reply-250", "reply-inbox"))), file=sys.stderr)
        time.sleep(a.interval)

    daemon.send_signal(signal.SIGTERM)
    _, status, ru = os.wait4(daemon.pid, 0)
    log.close()
    for o in observers:
        o.close()
    if a.trace_smtp:
        with open(os.path.join(work, "smtp-trace.txt"), "w") as f:
            last = {}
            for t, sid, d, data in proxy.trace:
                f.write("session %d %+9.2f ms %s %r\n" % (sid, (t - last.get(sid, t)) * 1e3, d, data))
                last[sid] = t
    with open(os.path.join(work, "samples.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")

    measured = [r for r in rows if not r["warmup"]]
    keys = [("delivered", "SMTP 250 → file in alice's INBOX (Postfix + LMTP; no mailpipe)"),
            ("filed", "SMTP 250 → file in Bench/Filed **(1)**"),
            ("filed-minus-delivered", "in INBOX → in Bench/Filed (Dovecot's IDLE notify delay + mailpipe)"),
            ("filed-idle", "SMTP 250 → EXISTS to an IMAP client IDLE on Bench/Filed"),
            ("reply-250", "SMTP 250 → auto-reply accepted by Postfix submission (250 after DATA) **(2)**"),
            ("reply-inbox", "SMTP 250 → auto-reply file in bob's INBOX"),
            ("filed-to-connect", "mailpipe opens the SMTP connection, relative to the file in Bench/Filed (< 0: before filing)"),
            ("smtp-session", "mailpipe's SMTP session: connect → 250 after DATA (EHLO, AUTH, MAIL, RCPT, DATA)")]
    for r in rows:
        r["smtp-session"] = (round(r["reply-250"] - r["reply-connect"], 4)
                             if r["reply-250"] is not None and r["reply-connect"] is not None else None)
        r["filed-to-connect"] = (round(r["reply-connect"] - r["filed"], 4)
                                 if r["filed"] is not None and r["reply-connect"] is not None else None)
        r["filed-minus-delivered"] = (round(r["filed"] - r["delivered"], 4)
                                      if r["filed"] is not None and r["delivered"] is not None else None)
    out = ["### IDLE latency: %d samples (+1 warm-up), %.1f s apart" % (len(measured), a.interval), "",
           "| interval | median | min | max | warm-up sample |", "|---|---|---|---|---|"]
    summary = {}
    for k, label in keys:
        s = stats([r[k] for r in measured])
        summary[k] = s
        w = rows[0][k]
        missing = sum(1 for r in measured if r[k] is None)
        if s is None:
            out.append("| %s | – | – | – | – |" % label)
            continue
        out.append("| %s | %.0f ms | %.0f ms | %.0f ms | %s |%s" % (
            label, s["median"] * 1e3, s["min"] * 1e3, s["max"] * 1e3,
            "–" if w is None else "%.0f ms" % (w * 1e3), "" if not missing else " (%d timed out)" % missing))
    daemon_log = open(log_path, errors="replace").read()
    errors = [l for l in daemon_log.splitlines() if "error" in l.lower() or "refused" in l.lower()
              or "reconnect" in l.lower()]
    out += ["", "Daemon: start to `connected (IDLE)` %.2f s (cold plugin cache); peak RSS %.1f MB after %d "
            "messages (ru_maxrss); exit %s on SIGTERM; SMTP sessions through the proxy: %d%s." % (
                t_idle - t_start, ru.ru_maxrss / 1024, len(rows), os.waitstatus_to_exitcode(status),
                proxy.sessions, "; " + "; ".join(sorted(set(proxy.notes))) if proxy.notes else ""),
            "", "Clock: one Python process, time.perf_counter(); t0 = smtplib receives Postfix's 250 after DATA "
            "(port %d); \"file in\": inotify (IN_CREATE/IN_MOVED_TO) on the folder's Maildir new/ and cur/, i.e. "
            "when Dovecot put it there; EXISTS: a second IMAP connection in IDLE (no polling; Dovecot "
            "delays every IDLE notification by 500 ms, NOTIFY_DELAY_MSECS in mailbox-watch.c, which also "
            "delays mailpipe's own wake-up); the reply's 250: a logging proxy between mailpipe and Postfix "
            "submission (port %d -> %d)." % (smtp_port, a.proxy_port, submission)]
    if errors:
        out += ["", "**daemon log lines with errors:** " + " / ".join(errors[:5])]
    md = "\n".join(out) + "\n"
    with open(os.path.join(work, "latency.md"), "w") as f:
        f.write(md)
    with open(os.path.join(work, "summary.json"), "w") as f:
        json.dump({"summary": summary, "startup_to_idle": t_idle - t_start, "rss_kb": ru.ru_maxrss}, f)
    print(md)
    bad = [r for r in measured if r["filed"] is None or (r["reply-250"] is None and not a.direct_smtp)]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
