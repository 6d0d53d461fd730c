# bench/lmtp.py N: delivery-time throughput (issue 25). Postfix hands a burst of N queued
# messages to (a) mailpipe's LMTP server (the daemon, one account, three plugins: filer,
# tagger, vacation; Maildir, fsync and a durable commit per message) and (b) Dovecot's own
# LMTP (plain delivery into an emptied INBOX, no Sieve), and (c) Dovecot's LMTP with Pigeonhole
# doing the same filing and vacation (a ~/.dovecot.sieve written for the run). Mail is held with Postfix's
# defer_transports while it is sent, then released at once; the time is from the release to
# the last message file on disk. Needs the test bed running (bash tests/mailstack/start.sh:
# Postfix routes lmtp.example.test to 127.0.0.1:10026) and a built binary
# (MAILPIPE_BIN, default target/release/mailpipe); run as root.
import os, subprocess, sys, time, threading, smtplib, glob, shutil
N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
MS = "/tmp/mailpipe-mailstack"
CONF = f"{MS}/postfix/conf"
BIN = os.environ.get("MAILPIPE_BIN", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../target/release/mailpipe"))
PLUG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../target/plugins")
W = os.environ.get("BENCH_WORK", "/var/tmp/mplmtp")

def sh(*a): subprocess.run(a, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

def send(rcpt, tag, n, threads=4):
    def one(k):
        s = smtplib.SMTP("127.0.0.1", 10025)
        for i in range(k, n, threads):
            frm = f"bob+s{i % 50}-{tag}@example.test"
            subj = f"Invoice {i}" if i % 5 == 0 else f"Hello {i}"
            msg = (f"From: <{frm}>\r\nTo: <{rcpt}>\r\nSubject: {subj}\r\nMessage-ID: <{tag}.{i}@b>\r\n"
                   f"Date: Mon, 7 Dec 2026 10:00:00 +0000\r\n\r\nbody {i}\r\n")
            s.sendmail(frm, [rcpt], msg)
        s.quit()
    ts = [threading.Thread(target=one, args=(k,)) for k in range(threads)]
    [t.start() for t in ts]; [t.join() for t in ts]

def count(root):
    n = 0
    for r, dirs, files in os.walk(root):
        if os.path.basename(r) in ("new", "cur"):
            n += len(files)
    return n

def defer(on):
    sh("postconf", "-c", CONF, "-e", "defer_transports = " + ("lmtp" if on else ""))
    sh("postfix", "-c", CONF, "reload")
    time.sleep(2.5)

def burst(root, want, limit=900):
    """Release the deferred mail; seconds until `root` holds `want` messages."""
    early = count(root)
    if early:
        raise SystemExit(f"{early} message(s) were delivered before the release: the burst is not measured")
    defer(False)
    t0 = time.monotonic(); last = t0
    sh("postqueue", "-c", CONF, "-f")
    while count(root) < want:
        if time.monotonic() - t0 > limit: raise SystemExit(f"only {count(root)} of {want}")
        time.sleep(0.005)
        if time.monotonic() - last > 1: sh("postqueue", "-c", CONF, "-f"); last = time.monotonic()
    return time.monotonic() - t0


def latency(rcpt, tag, dirs, m=300, gap=0.02):
    """Send m messages one by one (one every `gap` s); for each, the time from Postfix's 250 to
    its file in one of `dirs` (the new/ and cur/ of the folders it may go to): sorted, in ms."""
    seen = {}
    for d in dirs:
        for e in (os.scandir(d) if os.path.isdir(d) else []):
            seen[e.path] = None
    found = {}
    stop = threading.Event()
    def watch():
        while not stop.is_set():
            now = time.monotonic()
            for d in dirs:
                if not os.path.isdir(d):
                    continue
                for e in os.scandir(d):
                    if e.path not in seen:
                        seen[e.path] = now
                        found[e.path] = now
            time.sleep(0.002)
    w = threading.Thread(target=watch); w.start()
    accepted = {}
    s = smtplib.SMTP("127.0.0.1", 10025)
    for i in range(m):
        mid = f"{tag}.lat.{i}@b"
        frm = f"bob+s{i % 50}-{tag}@example.test"
        subj = f"Invoice {i}" if i % 5 == 0 else f"Hello {i}"
        s.sendmail(frm, [rcpt], f"From: <{frm}>\r\nTo: <{rcpt}>\r\nSubject: {subj}\r\n"
                   f"Message-ID: <{mid}>\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\n\r\nbody\r\n")
        accepted[mid] = time.monotonic()
        time.sleep(gap)
    s.quit()
    t0 = time.monotonic()
    while len(found) < m and time.monotonic() - t0 < 60:
        time.sleep(0.01)
    stop.set(); w.join()
    out = []
    for path, t in found.items():
        try:
            head = open(path, "rb").read(4096).decode("latin-1")
        except OSError:
            continue  # moved from new/ to cur/ meanwhile: seen under its first name
        for line in head.split("\n"):
            if line.lower().startswith("message-id:"):
                mid = line.split("<", 1)[-1].split(">", 1)[0]
                if mid in accepted:
                    out.append((t - accepted[mid]) * 1000)
    if len(out) < m:
        raise SystemExit(f"latency: only {len(out)} of {m} messages found")
    return sorted(out)

def show(name, ms):
    q = lambda p: ms[min(len(ms) - 1, int(p * len(ms)))]
    print(f"{name}: 250 -> file, {len(ms)} messages at 50/s: median {q(0.5):.1f} ms, "
          f"p99 {q(0.99):.1f} ms, max {ms[-1]:.1f} ms", flush=True)

CONFIG = """
[state]
dir = "state"
[[account]]
name = "alice"
address = "alice@lmtp.example.test"
[account.deliver]
maildir = "Maildir"
[account.smtp]
host = "127.0.0.1"
port = 10025
tls = "none"
[[plugin]]
name = "filer"
path = "{PLUG}/rules-filer.wasm"
[plugin.config]
rules = [ {{ name = "invoices", folder = "Finance/Invoices", conditions = [ {{ subject = true, op = "contains", value = "invoice" }} ] }} ]
[[plugin]]
name = "tagger"
path = "{PLUG}/subject-tagger.wasm"
[plugin.config]
tag = "[EXT]"
when_from_not = ["*@lmtp.example.test"]
[[plugin]]
name = "vacation"
path = "{PLUG}/auto-responder.wasm"
[plugin.config]
addresses = ["alice@lmtp.example.test"]
body = "away"
[lmtp]
listen = "127.0.0.1:10026"
"""
tag = f"b{int(time.time())}"
shutil.rmtree(W, ignore_errors=True); os.makedirs(W)
open(f"{W}/c.toml", "w").write(CONFIG.format(PLUG=PLUG))
d = subprocess.Popen([BIN, "run", "-c", f"{W}/c.toml", "-q"], stderr=open(f"{W}/log", "w"))
import socket
while True:
    try: socket.create_connection(("127.0.0.1", 10026)).close(); break
    except OSError: time.sleep(0.05)
# (a) mailpipe: N messages deferred, then released at once.
defer(True)
send("alice@lmtp.example.test", tag + "m", N)
mp = burst(f"{W}/Maildir", N)
print(f"mailpipe LMTP, 3 plugins: {N} in {mp:.2f} s = {N/mp:.0f} msg/s", flush=True)
md = f"{W}/Maildir"
mp_lat = latency("alice@lmtp.example.test", tag + "l", [f"{md}/new", f"{md}/cur",
                 f"{md}/.Finance.Invoices/new", f"{md}/.Finance.Invoices/cur"])
d.terminate(); d.wait()
# (b) Dovecot LMTP into an empty INBOX (carol).
box = f"{MS}/mail/example.test/carol/Maildir"; shutil.rmtree(box, ignore_errors=True)
before = count(box)
defer(True)
send("carol@example.test", tag + "d", N)
dv = burst(box, before + N)
print(f"Dovecot LMTP, no Sieve: {N} in {dv:.2f} s = {N/dv:.0f} msg/s", flush=True)
# (c) Dovecot LMTP + Pigeonhole doing mailpipe's filing and vacation (the stack enables Sieve
# at delivery for users with ~/.dovecot.sieve), into an empty INBOX again.
home = f"{MS}/mail/example.test/carol"
shutil.rmtree(box, ignore_errors=True)
script = f"{home}/.dovecot.sieve"
open(script, "w").write(
    'require ["fileinto", "vacation", "mailbox"];\n'
    'if header :contains "subject" "invoice" { fileinto :create "Finance/Invoices"; }\n'
    'vacation :days 7 :addresses ["carol@example.test"] "away";\n')
os.chown(script, 5000, 5000)
try:
    defer(True)
    send("carol@example.test", tag + "s", N)
    sv = burst(box, N)
    sv_lat = latency("carol@example.test", tag + "k", [f"{box}/new", f"{box}/cur",
                     f"{box}/Finance/Invoices/new", f"{box}/Finance/Invoices/cur"])
finally:
    os.remove(script)
    for f in glob.glob(f"{home}/.dovecot.svbin") + glob.glob(f"{home}/.dovecot.lda-dupes*"):
        shutil.rmtree(f, ignore_errors=True) if os.path.isdir(f) else os.remove(f) if os.path.exists(f) else None
print(f"Dovecot LMTP + Pigeonhole (fileinto, vacation): {N} in {sv:.2f} s = {N/sv:.0f} msg/s", flush=True)
print(f"ratio mailpipe/Dovecot throughput: no Sieve {dv/mp:.2f}, with Sieve {sv/mp:.2f}")
show("mailpipe LMTP, 3 plugins", mp_lat)
show("Dovecot LMTP + Pigeonhole", sv_lat)
