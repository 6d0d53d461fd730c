#!/usr/bin/env python3
"""Cold start of mailpipe with 5 plugins on an offline Maildir of one message (issue 5 (c)).

    python3 bench/coldstart.py --mailpipe BIN --plugins DIR [--runs 5] [--work /tmp/mpbench]

No mail server needed. The config (WORK/coldstart/mailpipe.toml) has five plugins: rules-filer,
subject-tagger, auto-responder, forwarder (all Rust) and rules-filer-js (QuickJS); the source
is a Maildir with one message that every plugin acts on. Timed, each as a fresh process:

  check  cold   `mailpipe check -c CONFIG`, empty state dir (every plugin compiled)
  check  warm   the same with <state>/compiled/ already filled (loaded from the cache)
  run    cold   `mailpipe run -c CONFIG --once --json`, empty state dir
  run    warm   the same with only <state>/compiled/ copied in (the message is new again)

For `run`, "first message" is when its decision (the first --json line) reaches our pipe,
"exit" is when the process has ended. Every run gets a fresh state/mailstore/outbox; the kinds
are interleaved (cold, warm, cold, warm...) so drift in machine load hits both alike. Output:
Markdown on stdout and in WORK/coldstart/coldstart.md, every run in WORK/coldstart/runs.jsonl.
Compiling uses every core (Cranelift in parallel): cold numbers depend a lot on other load.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

PLUGINS = ["rules-filer", "subject-tagger", "auto-responder", "forwarder", "rules-filer-js"]

CONFIG = """\
# bench/coldstart.py: five plugins, offline, one message
[state]
dir = "{d}/state"

[offline]
source = "{d}/maildir"
mailstore = "{d}/mail"
outbox = "{d}/outbox"

[identity]
address = "alice@example.com"
name = "Alice Example"

[[plugin]]
name = "filer"
path = "{p}/rules-filer.wasm"
[plugin.config]
rules = [
  {{ name = "invoices", folder = "Finance/Invoices", flags = ["$Invoice"], conditions = [
      {{ subject = true, op = "contains", value = "invoice" }} ] }},
  {{ name = "boss", flags = ["\\\\Flagged"], conditions = [
      {{ address = "from", op = "equals", value = "dana@corp.example" }} ] }},
]

[[plugin]]
name = "tagger"
path = "{p}/subject-tagger.wasm"
[plugin.config]
tag = "[EXT]"
when_from_not = ["*@example.com"]
header = "X-External"

[[plugin]]
name = "vacation"
path = "{p}/auto-responder.wasm"
[plugin.config]
addresses = ["alice@example.com"]
body = "I am away."

[[plugin]]
name = "forward-boss"
path = "{p}/forwarder.wasm"
allow_send_to = ["alice@home.example.org"]
[plugin.config]
rules = [ {{ from = "dana@corp.example", to = ["alice@home.example.org"], mode = "redirect" }} ]

[[plugin]]
name = "js-filer"
path = "{p}/rules-filer-js.wasm"
[plugin.config]
rules = [ {{ name = "dana", from = "*@corp.example", folder = "People/dana" }} ]
"""

MESSAGE = (b"From: Dana Boss <dana@corp.example>\nTo: Alice Example <alice@example.com>\n"
           b"Subject: invoice 2026-11\nDate: Fri, 27 Nov 2026 09:00:00 +0000\n"
           b"Message-ID: <coldstart-1@corp.example>\nMIME-Version: 1.0\n"
           b"Content-Type: text/plain; charset=utf-8\n\nPlease pay the attached invoice.\n")


def fresh(d, compiled=None):
    for sub in ("state", "mail", "outbox"):
        shutil.rmtree(os.path.join(d, sub), ignore_errors=True)
    os.makedirs(os.path.join(d, "state"))
    if compiled:
        shutil.copytree(compiled, os.path.join(d, "state", "compiled"))


def timed(cmd, log):
    """Run cmd; return (seconds to the first stdout line or None, seconds to exit, rc, maxrss KiB)."""
    with open(log, "wb") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        first = p.stdout.readline()
        t1 = time.perf_counter()
        rest = p.stdout.read()
        _, status, ru = os.wait4(p.pid, 0)
        t2 = time.perf_counter()
    with open(log, "ab") as err:
        err.write(b"--- stdout ---\n" + first + rest)
    return (t1 - t0) if first else None, t2 - t0, os.waitstatus_to_exitcode(status), ru.ru_maxrss, first


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mailpipe", required=True)
    ap.add_argument("--plugins", required=True, help="dir with the five .wasm files")
    ap.add_argument("--runs", type=int, default=5, help="runs of each of the four kinds")
    ap.add_argument("--work", default="/tmp/mpbench")
    a = ap.parse_args()
    d = os.path.join(a.work, "coldstart")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "maildir", "cur"))
    os.makedirs(os.path.join(d, "maildir", "new"))
    os.makedirs(os.path.join(d, "maildir", "tmp"))
    os.makedirs(os.path.join(d, "logs"))
    with open(os.path.join(d, "maildir", "cur", "1764234000.M1P1.coldstart:2,"), "wb") as f:
        f.write(MESSAGE)
    plugins = os.path.abspath(a.plugins)
    sizes = {}
    for name in PLUGINS:
        path = os.path.join(plugins, name + ".wasm")
        if not os.path.exists(path):
            sys.exit("coldstart: %s is missing" % path)
        sizes[name] = os.path.getsize(path)
    cfg = os.path.join(d, "mailpipe.toml")
    with open(cfg, "w") as f:
        f.write(CONFIG.format(d=d, p=plugins))
    template = os.path.join(d, "compiled-template")

    # One untimed cold `check` fills the template cache (and proves the config is valid).
    fresh(d)
    r = subprocess.run([a.mailpipe, "check", "-c", cfg], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("coldstart: mailpipe check failed:\n%s%s" % (r.stdout, r.stderr))
    shutil.copytree(os.path.join(d, "state", "compiled"), template)

    kinds = [("check", "cold"), ("check", "warm"), ("run", "cold"), ("run", "warm")]
    rows = []
    for i in range(1, a.runs + 1):
        for cmd, cache in kinds:
            fresh(d, template if cache == "warm" else None)
            argv = [a.mailpipe, "check", "-c", cfg] if cmd == "check" else \
                [a.mailpipe, "run", "-c", cfg, "--once", "--json"]
            log = os.path.join(d, "logs", "%s-%s-%d.log" % (cmd, cache, i))
            first, total, rc, rss, line = timed(argv, log)
            ok = rc == 0
            if cmd == "run":
                try:
                    dec = json.loads(line)
                    ok = ok and bool(dec)
                except ValueError:
                    ok = False
            row = {"cmd": cmd, "cache": cache, "i": i, "first": None if cmd == "check" else first,
                   "exit": round(total, 4), "rc": rc, "rss_kb": rss, "ok": ok}
            rows.append(row)
            print("%-5s %-4s #%d: %s exit %.3f s  rss %.1f MB%s" % (
                cmd, cache, i, "" if row["first"] is None else "first message %.3f s " % first, total,
                rss / 1024, "" if ok else "  FAILED (see %s)" % log), file=sys.stderr)
    with open(os.path.join(d, "runs.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")

    med = lambda xs: statistics.median(xs) if xs else float("nan")
    out = ["### Cold start: 5 plugins (%s), offline Maildir with 1 message, %d runs each" % (
        ", ".join("%s %d KiB" % (n, sizes[n] // 1024) for n in PLUGINS), a.runs), "",
        "| command | compiled-code cache | runs ok | median | min – max | peak RSS |", "|---|---|---|---|---|---|"]
    for cmd, cache in kinds:
        rs = [r for r in rows if r["cmd"] == cmd and r["cache"] == cache]
        good = [r for r in rs if r["ok"]]
        key = "first" if cmd == "run" else "exit"
        label = "`mailpipe check -c`" if cmd == "check" else "`mailpipe run --once` to the first message"
        xs = [r[key] for r in good if r[key] is not None]
        if not xs:
            out.append("| %s | %s | 0/%d | – | – | – |" % (label, cache, len(rs)))
            continue
        out.append("| %s | %s (%s) | %d/%d | %.3f s | %.3f – %.3f | %.1f MB |" % (
            label, cache, "empty state dir" if cache == "cold" else "filled", len(good), len(rs), med(xs),
            min(xs), max(xs), med([r["rss_kb"] for r in good]) / 1024))
        if cmd == "run":
            ex = [r["exit"] for r in good]
            out.append("| `mailpipe run --once` to exit | %s | %d/%d | %.3f s | %.3f – %.3f | |" % (
                cache, len(good), len(rs), med(ex), min(ex), max(ex)))
    out += ["", "Each run is a fresh process with fresh state/mailstore/outbox; \"warm\" has only "
            "<state>/compiled/ copied in. First message = the first `--json` decision line on our pipe. "
            "Machine load while measuring: %s." % open("/proc/loadavg").read().strip()]
    md = "\n".join(out) + "\n"
    with open(os.path.join(d, "coldstart.md"), "w") as f:
        f.write(md)
    print(md)
    sys.exit(0 if all(r["ok"] for r in rows) else 1)


if __name__ == "__main__":
    main()
