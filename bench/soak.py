#!/usr/bin/env python3
"""Soak (issue 24, item 9): a long run of the whole command, watched from outside.

    python3 bench/soak.py offline N WORK BIN PLUGIN_DIR
        N messages (default 1,000,000) in a Maildir, `mailpipe run --once --json` with the demo's
        four plugins (examples/demo.toml: rules-filer, subject-tagger, auto-responder,
        forwarder), embedded state, Maildir++ store, outbox folder.
    python3 bench/soak.py imap N ACCOUNTS WORK BIN PLUGIN_DIR
        N messages spread over ACCOUNTS mailboxes of a private Dovecot (bench/soak.sh starts it),
        one `mailpipe run` daemon for all accounts (rules-filer + auto-responder), until every
        message is decided.

Every second the process is sampled from /proc: resident memory, open files, and the size
of the state directory. Decisions are counted from the `--json` lines on stdout as they come,
so the rate of each tenth of the run is known. At the end the mail store (offline) or the
server (IMAP, through doveadm) is checked: every message is in exactly one place.
Results: Markdown on stdout and WORK/soak-<mode>-N.json.

Run it through bench/soak.sh (it builds nothing, starts and stops the stack).
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

SENDERS = 500
WAVES = int(os.environ.get("SOAK_WAVES", "5"))
VMAIL = int(os.environ.get("MAILSTACK_VMAIL_UID", "5000"))


def message(i):
    """Message i of the soak corpus: 500 senders, list mail, newsletters, invoices, the boss."""
    s = i % SENDERS
    headers = [
        "Return-Path: <sender%d@example.org>" % s,
        "From: Sender %d <sender%d@example.org>" % (s, s),
        "To: Alice Example <alice@example.com>",
        "Message-ID: <soak.%d@example.org>" % i,
        "Date: Mon, 07 Dec 2026 %02d:%02d:%02d +0000" % (i // 3600 % 24, i // 60 % 60, i % 60),
    ]
    if i % 5 == 0:
        headers += ["List-Id: Rust users <rust-users.lists.example.org>", "Subject: [rust] thread %d" % (i // 50)]
    elif i % 11 == 0:
        headers += ["Precedence: bulk", "Subject: Weekly news %d" % i]
    elif i % 7 == 0:
        headers += ["Subject: Your invoice %d" % i]
    elif i % 97 == 0:
        headers[1] = "From: Dana Boss <dana@example.com>"
        headers[0] = "Return-Path: <dana@example.com>"
        headers += ["Subject: Please review %d" % i]
    else:
        headers += ["Subject: Note number %d" % i]
    headers += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8"]
    body = ("Line %d of a message that is about a kilobyte long, like most mail.\n" % i) * (8 + i % 24)
    return ("\r\n".join(headers) + "\r\n\r\n" + body.replace("\n", "\r\n")).encode()


def write_maildir(cur_or_new, start, count, mtime, chown=False):
    os.makedirs(cur_or_new, exist_ok=True)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(os.path.dirname(cur_or_new), sub), exist_ok=True)
    for i in range(start, start + count):
        raw = message(i)
        name = "%d.M%07dP1.soak,S=%d,W=%d" % (1765000000 + i, i, len(raw), len(raw))
        if cur_or_new.endswith("cur"):
            name += ":2,"
        p = os.path.join(cur_or_new, name)
        with open(p, "wb") as f:
            f.write(raw)
        os.utime(p, (mtime, mtime))
        if chown:
            os.chown(p, VMAIL, VMAIL)


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


class Watch:
    """Samples a process every second and counts its --json decisions."""

    def __init__(self, proc, state_dir, n):
        self.proc, self.state_dir, self.n = proc, state_dir, n
        self.samples = []  # (t, decided, rss_kb, fds, state_bytes)
        self.tenths = []  # time at which each tenth of n was decided
        self.decided = 0
        self.first = 0.0
        self.start = time.time()
        self.done = threading.Event()
        threading.Thread(target=self.read, daemon=True).start()
        threading.Thread(target=self.sample, daemon=True).start()

    def read(self):
        step = max(1, self.n // 10)
        for line in self.proc.stdout:
            if line.startswith(b"{"):
                if self.decided == 0:
                    # Tenths are timed from the first decision: start-up is not a tenth.
                    self.first = time.time() - self.start
                self.decided += 1
                if self.decided % step == 0:
                    self.tenths.append(time.time() - self.start)
                if self.decided >= self.n:
                    self.done.set()
        self.done.set()

    def sample(self):
        pid = self.proc.pid
        while self.proc.poll() is None:
            try:
                with open("/proc/%d/status" % pid) as f:
                    rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
                fds = len(os.listdir("/proc/%d/fd" % pid))
            except (FileNotFoundError, StopIteration, ProcessLookupError):
                break
            self.samples.append((time.time() - self.start, self.decided, rss, fds, du(self.state_dir)))
            time.sleep(1)

    def report(self, title):
        t = self.tenths
        rates = []
        prev = self.first
        step = max(1, self.n // 10)
        for x in t:
            rates.append(step / (x - prev) if x > prev else 0)
            prev = x

        def at(frac):
            want = self.n * frac
            s = [x for x in self.samples if x[1] >= want]
            return s[0] if s else self.samples[-1]

        lines = ["### %s" % title, "", "first decision %.2f s after the start" % self.first, "",
                 "| tenth | decided by | msg/s in this tenth | RSS MB | open files | state MB |",
                 "|---|---|---|---|---|---|"]
        for k, x in enumerate(t):
            s = at((k + 1) / 10)
            lines.append("| %d | %.1f s | %.0f | %.1f | %d | %.1f |" % (
                k + 1, x, rates[k], s[2] / 1024, s[3], s[4] / 1e6))
        rss = [s[2] for s in self.samples if s[1] >= self.n * 0.1]
        fds = [s[3] for s in self.samples if s[1] >= self.n * 0.1]
        result = {
            "decided": self.decided,
            "seconds": t[-1] if t else None,
            "first_decision_s": self.first,
            "rate_first_tenth": rates[0] if rates else None,
            "rate_last_tenth": rates[-1] if rates else None,
            "last_vs_first": rates[-1] / rates[0] if len(rates) == 10 and rates[0] else None,
            "rss_mb_after_warmup": [min(rss) / 1024, max(rss) / 1024] if rss else None,
            "fds_after_warmup": [min(fds), max(fds)] if fds else None,
            "state_mb_end": self.samples[-1][4] / 1e6 if self.samples else None,
            "samples": self.samples,
        }
        if result["last_vs_first"] is not None:
            lines += ["", "last tenth / first tenth: **%.2f**; RSS after the first tenth %.1f–%.1f MB; "
                      "open files %d–%d; state %.1f MB at the end (%.0f bytes per message)" % (
                          result["last_vs_first"], *result["rss_mb_after_warmup"],
                          *result["fds_after_warmup"], result["state_mb_end"],
                          result["state_mb_end"] * 1e6 / self.n)]
        return "\n".join(lines), result


def offline(n, work, binary, plugins):
    src = os.path.join(work, "offline-%d" % n, "src")
    out = os.path.join(work, "offline-%d" % n, "run")
    marker = os.path.join(src, "complete")
    if not os.path.exists(marker):
        subprocess.run(["rm", "-rf", src], check=True)
        t = time.time()
        # As mail arrives: what was read is in cur/, the rest in new/; every file is newer
        # than the run's start would be for old mail, so the plugins may answer it.
        write_maildir(os.path.join(src, "new"), 0, n, time.time())
        open(marker, "w").close()
        print("generated %d messages in %.0f s" % (n, time.time() - t), file=sys.stderr)
    # The last run's files are moved aside and removed after this one: a million files
    # removed just before make ext4 slow to create new ones (it avoids reusing their inodes).
    if os.path.exists(out):
        os.rename(out, "%s.previous-%d" % (out, time.time()))
    os.makedirs(out)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "examples", "demo.toml")) as f:
        cfg = f.read()
    cfg = (cfg.replace('"../target/demo/state"', json.dumps(os.path.join(out, "state")))
           .replace('"maildir"', json.dumps(src))
           .replace('"../target/demo/mail"', json.dumps(os.path.join(out, "mail")))
           .replace('"../target/demo/outbox"', json.dumps(os.path.join(out, "outbox")))
           .replace('"../target/plugins/', '"%s/' % plugins)
           # The soak's mail arrived "now": answer it as mail that arrives while running.
           .replace('auto-responder.wasm"\n', 'auto-responder.wasm"\nsend_about_mail_since = "all"\n')
           .replace('forwarder.wasm"\n', 'forwarder.wasm"\nsend_about_mail_since = "all"\n'))
    path = os.path.join(out, "soak.toml")
    with open(path, "w") as f:
        f.write(cfg)
    # Compile the plugins once (not part of the soak).
    subprocess.run([binary, "check", "-c", path], check=True, stdout=subprocess.DEVNULL)
    err = open(os.path.join(out, "mailpipe.log"), "w")
    proc = subprocess.Popen([binary, "run", "--once", "--json", "-c", path],
                            stdout=subprocess.PIPE, stderr=err)
    w = Watch(proc, os.path.join(out, "state"), n)
    rc = proc.wait()
    w.done.wait(5)
    text, result = w.report("offline, %d messages, demo's four plugins (`run --once`)" % n)
    stored = 0
    for root_dir, dirs, files in os.walk(os.path.join(out, "mail")):
        if os.path.basename(root_dir) in ("cur", "new"):
            stored += len(files)
    replies = len([f for f in os.listdir(os.path.join(out, "outbox")) if f.endswith(".json")]) \
        if os.path.isdir(os.path.join(out, "outbox")) else 0
    # One vacation reply per sender of personal mail (not list mail, not bulk), one redirect
    # per message of the boss.
    answered, forwards = set(), 0
    for i in range(n):
        if i % 5 == 0 or i % 11 == 0:
            continue
        boss = i % 7 != 0 and i % 97 == 0
        answered.add("dana" if boss else i % SENDERS)
        forwards += boss
    expected = len(answered) + forwards
    text += "\n\nexit %d; stored %d of %d; outbox: %d (expected %d: %d vacation replies, one per sender, + %d redirects of the boss's mail)" % (
        rc, stored, n, replies, expected, len(answered), forwards)
    result.update(rc=rc, stored=stored, outbox=replies, expected_outbox=expected)
    ok = rc == 0 and stored == n and replies == expected
    parent = os.path.dirname(out)
    for old in os.listdir(parent):
        if old.startswith("run.previous-"):
            subprocess.run(["rm", "-rf", os.path.join(parent, old)], check=True)
    return text, result, ok


def imap(n, accounts, work, binary, plugins):
    stack = os.environ["MAILSTACK_DIR"]
    port = int(os.environ["MAILSTACK_IMAP_PORT"])
    per = n // accounts
    out = os.path.join(work, "imap-%d" % n)
    subprocess.run(["rm", "-rf", out], check=True)
    os.makedirs(os.path.join(out, "accounts.d"))
    t = time.time()
    # Waves: the first is in the mailboxes when the daemon starts (a backfill), the others
    # arrive while it runs (IDLE), each when the one before is decided. Warm-up is the first
    # wave; memory, open files and speed must hold through the others.
    waves = WAVES
    size = per // waves

    def maildir_of(a):
        return os.path.join(stack, "mail", "example.test", "s%03d" % a, "Maildir")

    def wave_dir(a, k):
        return os.path.join(maildir_of(a), "tmp", "wave%d" % k)

    for a in range(accounts):
        u = "s%03d" % a
        maildir = maildir_of(a)
        home = os.path.dirname(maildir)
        subprocess.run(["rm", "-rf", home], check=True)
        write_maildir(os.path.join(maildir, "cur"), a * per, size, time.time() - 3600, chown=True)
        for d in (home, maildir, *(os.path.join(maildir, s) for s in ("cur", "new", "tmp"))):
            os.chown(d, VMAIL, VMAIL)
        # The later waves are written now, beside (Dovecot does not look into tmp/), and moved
        # in later: the run waits for no file to be written. Their times are as old as the
        # first's: mail from before the plugins were enabled, so nothing is answered (no SMTP
        # server in this benchmark).
        for k in range(1, waves):
            count = size if k < waves - 1 else per - size * (waves - 1)
            write_maildir(os.path.join(wave_dir(a, k), "cur"), a * per + k * size, count,
                          time.time() - 3600, chown=True)
        with open(os.path.join(out, "accounts.d", u + ".pass"), "w") as f:
            f.write("secret-%s\n" % u)
        with open(os.path.join(out, "accounts.d", u + ".toml"), "w") as f:
            f.write('[account]\nname = "%s"\naddress = "%s@example.test"\n[account.imap]\n'
                    'host = "127.0.0.1"\nport = %d\ntls = "none"\nusername = "%s@example.test"\n'
                    'password_file = "%s.pass"\n' % (u, u, port, u, u))
    print("seeded %d messages in %d mailboxes in %.0f s" % (n, accounts, time.time() - t), file=sys.stderr)
    path = os.path.join(out, "soak.toml")
    with open(path, "w") as f:
        f.write('[state]\ndir = "%s"\n[accounts]\ndir = "accounts.d"\nconnects_per_second = 100\n'
                '[[plugin]]\nname = "filer"\npath = "%s/rules-filer.wasm"\n[plugin.config]\n'
                'rules = [ { name = "rust list", folder = "Lists/rust", conditions = [ { header = "List-Id", op = "contains", value = "rust-users" } ] },\n'
                '  { name = "invoices", folder = "Invoices", flags = ["$Invoice"], conditions = [ { subject = true, op = "contains", value = "invoice" } ] } ]\n'
                '[[plugin]]\nname = "vacation"\npath = "%s/auto-responder.wasm"\n[plugin.config]\n'
                'addresses = ["alice@example.com"]\ndays = 7\nsubject = "away"\nbody = "away"\n'
                % (os.path.join(out, "state"), plugins, plugins))
    subprocess.run([binary, "check", "-c", path], check=True, stdout=subprocess.DEVNULL)
    err = open(os.path.join(out, "mailpipe.log"), "w")
    proc = subprocess.Popen([binary, "run", "--json", "-c", path], stdout=subprocess.PIPE, stderr=err)
    w = Watch(proc, os.path.join(out, "state"), n)
    ends = []  # (seconds, RSS kB) at the end of each wave
    for k in range(1, waves + 1):
        while w.decided < accounts * size * k and w.decided < n and proc.poll() is None:
            time.sleep(0.2)
        ends.append((time.time() - w.start, w.samples[-1][2] if w.samples else 0))
        if k == waves:
            break
        # The next wave, delivered as a delivery agent does (written to tmp/, renamed into new/).
        for a in range(accounts):
            src = os.path.join(wave_dir(a, k), "cur")
            for f in sorted(os.listdir(src)):
                os.rename(os.path.join(src, f), os.path.join(maildir_of(a), "new", f.replace(":2,", "")))
            os.rmdir(src)
    w.done.wait(3600)
    time.sleep(10)  # a few samples after the work, IDLE
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(60)
    text, result = w.report("IMAP, %d messages over %d accounts, one daemon (rules-filer + auto-responder)" % (n, accounts))
    text += "\n\n%d waves of %d messages (the first in the mailboxes at the start, the others arriving while IDLE); RSS at the end of each: %s MB" % (
        waves, accounts * size, ", ".join("%.1f" % (e[1] / 1024) for e in ends))
    result.update(waves=[{"seconds": e[0], "rss_mb": e[1] / 1024} for e in ends])
    # Every message in exactly one folder of its account, as the rules say.
    placed = {"INBOX": 0, "Lists/rust": 0, "Invoices": 0}
    for a in range(accounts):
        for folder in placed:
            st = subprocess.run(["doveadm", "-c", os.path.join(stack, "dovecot", "dovecot.conf"), "mailbox", "status",
                                 "-u", "s%03d@example.test" % a, "messages", folder],
                                capture_output=True, text=True).stdout
            if "messages=" in st:
                placed[folder] += int(st.split("messages=")[1].split()[0])
    lists = sum(1 for i in range(n) if i % 5 == 0)
    invoices = sum(1 for i in range(n) if i % 5 != 0 and i % 11 != 0 and i % 7 == 0)
    expected = {"INBOX": n - lists - invoices, "Lists/rust": lists, "Invoices": invoices}
    text += "\n\nstopped by SIGTERM: exit %d; folders %s (expected %s); nothing sent: all of it was there before the first run" % (rc, placed, expected)
    result.update(rc=rc, placed=placed, expected=expected)
    return text, result, placed == expected and w.decided == n


def main(argv):
    mode = argv[1]
    if mode == "offline":
        n, work, binary, plugins = int(argv[2]), argv[3], argv[4], argv[5]
        text, result, ok = offline(n, work, binary, plugins)
    else:
        n, accounts, work, binary, plugins = int(argv[2]), int(argv[3]), argv[4], argv[5], argv[6]
        text, result, ok = imap(n, accounts, work, binary, plugins)
    with open(os.path.join(work, "soak-%s-%d.json" % (mode, n)), "w") as f:
        json.dump(result, f)
    print(text)
    if not ok:
        sys.exit("soak %s: the result is wrong (see above)" % mode)


if __name__ == "__main__":
    main(sys.argv)
