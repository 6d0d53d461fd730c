#!/usr/bin/env python3
"""Driver of the peer benchmark (issue 5): called by bench/run.sh, which starts the stack.

    python3 bench/bench.py --n 1000,10000 --rounds 5,3 --work /tmp/mpbench

For each N: corpus (bench/corpus.py, cached), golden Maildir (bench/seed.py), then ROUNDS
rounds; in each round every tool runs once, each on a freshly reseeded INBOX, in the order
of --tools (the order rotates from round to round so that no tool always runs first). After
every run the folders are counted through doveadm and compared with the corpus' ground
truth; a run that filed or flagged differently is reported as WRONG and kept out of the
medians. Results: WORK/results.jsonl (every run) and a Markdown table on stdout and in
WORK/results.md.

Tools (all on plaintext IMAP on 127.0.0.1, except sieve-filter, which opens the Maildir
itself through Dovecot's storage library):
  floor         UID FETCH 1:* (UID FLAGS BODY.PEEK[]) of the whole INBOX, fetch only
  floor-header  the same with BODY.PEEK[HEADER] (what mailpipe fetches for these rules)
  mailpipe      mailpipe run --once, rules-filer; fresh state dir, compiled plugin copied in
  imapfilter    Lua config: server-side SEARCH + COPY/STORE/EXPUNGE (its move_messages)
  sieve-filter  Pigeonhole sieve-filter -e -W on INBOX
  mailpipe-sieve   mailpipe run --once with the 50-rule Sieve script (sieve_50 below) through its
                   built-in interpreter (issue 22); same state handling as mailpipe
  sieve-filter-50  sieve-filter -e -W on INBOX with that same 50-rule script
"""

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
USER = "alice@example.test"
PASSWORD = "secret-alice"

LIST_A = "rust-users.lists.example.org"
LIST_B = "dev.mailpipe.example.net"
LIST_C = "ankuendigungen.gruppe.example.de"
BOSS = "dana.boss@corp.example"

MAILPIPE_TOML = """\
# bench/bench.py: the filing rules of the peer benchmark, for mailpipe's rules-filer.
[state]
dir = "{state}"

[[account]]
name = "bench"
address = "alice@example.test"
mailboxes = ["INBOX"]
mode = "poll"
[account.imap]
host = "127.0.0.1"
port = {port}
tls = "none"
username = "alice@example.test"
password_env = "MPBENCH_PASSWORD"

[[plugin]]
name = "filer"
path = "{wasm}"
[plugin.config]
rules = [
  {{ name = "list A", folder = "Lists/A", conditions = [
      {{ header = "List-Id", op = "contains", value = "{a}" }} ] }},
  {{ name = "list B", folder = "Lists/B", conditions = [
      {{ header = "List-Id", op = "contains", value = "{b}" }} ] }},
  {{ name = "list C", folder = "Lists/C", conditions = [
      {{ header = "List-Id", op = "contains", value = "{c}" }} ] }},
  {{ name = "boss", flags = ["\\\\Flagged"], conditions = [
      {{ address = "from", op = "contains", value = "{boss}" }} ] }},
]
"""

IMAPFILTER_LUA = """\
-- bench/bench.py: the filing rules of the peer benchmark, for imapfilter.
options.timeout = 600
options.subscribe = false
options.create = true
options.starttls = false
options.info = false

local account = IMAP {{
  server = '127.0.0.1',
  port = {port},
  username = 'alice@example.test',
  password = 'secret-alice',
}}
local inbox = account.INBOX
-- flag first, so that the moved messages carry the flag (as with the other tools)
inbox:contain_from('{boss}'):add_flags({{ '\\\\Flagged' }})
inbox:contain_field('List-Id', '{a}'):move_messages(account['Lists/A'])
inbox:contain_field('List-Id', '{b}'):move_messages(account['Lists/B'])
inbox:contain_field('List-Id', '{c}'):move_messages(account['Lists/C'])
"""

SIEVE = """\
# bench/bench.py: the filing rules of the peer benchmark, for Pigeonhole sieve-filter.
require ["fileinto", "imap4flags", "mailbox"];
# flag first: the flag goes with the message wherever it is filed (imap4flags)
if address :contains "from" "{boss}" {{
  addflag "\\\\Flagged";
}}
if header :contains "List-Id" "{a}" {{
  fileinto :create "Lists/A";
}} elsif header :contains "List-Id" "{b}" {{
  fileinto :create "Lists/B";
}} elsif header :contains "List-Id" "{c}" {{
  fileinto :create "Lists/C";
}}
"""



def sieve_50(a, b, c, boss, **_):
    """The 50-rule script of issue 22, in the shape Roundcube's managesieve plugin writes (one
    `# rule:[...]` comment and one `if` each), the same 47 rules as host/benches/pipeline.rs's
    sieve_50 (none matches this corpus) followed by the benchmark's own filing rules, so that
    its ground truth holds. Run by mailpipe's built-in interpreter and by sieve-filter."""
    s = ['# bench/bench.py: the 50-rule script of the peer benchmark (mailpipe-sieve, sieve-filter-50).\n'
         'require ["fileinto","imap4flags","mailbox","relational","comparator-i;ascii-numeric"];\n']
    for i in range(47):
        rule = [
            'if header :contains "subject" "project-%d"\n{\n\tfileinto :create "Projects/P%d";\n\tstop;\n}\n' % (i, i),
            'if address :is "from" ["person%d@partner%d.example", "other%d@partner%d.example"]\n{\n'
            '\taddflag "\\\\Flagged";\n\tfileinto :create "Partners/%d";\n}\n' % (i, i, i, i, i),
            'if allof (header :contains "list-id" "list%d.example.org", not header :contains "subject" "urgent")\n'
            '{\n\tfileinto :create "Lists/L%d";\n\tstop;\n}\n' % (i, i),
            'if anyof (header :matches "subject" "*[ticket-%d]*", address :domain :is "from" "vendor%d.example")\n'
            '{\n\tfileinto :create "Tickets/%d";\n}\n' % (i, i, i),
        ][i % 4]
        s.append("# rule:[rule %d]\n%s" % (i, rule))
    s.append('# rule:[boss]\nif address :contains "from" "%s"\n{\n\taddflag "\\\\Flagged";\n}\n' % boss)
    for folder, lid in (("Lists/A", a), ("Lists/B", b), ("Lists/C", c)):
        s.append('# rule:[%s]\nif header :contains "List-Id" "%s"\n{\n\tfileinto :create "%s";\n\tstop;\n}\n'
                 % (folder, lid, folder))
    return "".join(s)


ALL_TOOLS = ["floor", "floor-header", "mailpipe", "imapfilter", "sieve-filter", "mailpipe-sieve", "sieve-filter-50"]
# mailpipe runs: the tool name -> its config file's name
MAILPIPE_TOOLS = {"mailpipe": "mailpipe.toml", "mailpipe-sieve": "mailpipe-sieve.toml"}


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def cpu_ticks():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]  # idle + iowait
    return sum(v) - idle, sum(v)


def proc_cpu(pid):
    """utime+stime+cutime+cstime of pid in seconds (its reaped children included)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            v = f.read().rsplit(")", 1)[1].split()
        return sum(int(x) for x in v[11:15]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return 0.0


def wait_quiet(max_wait, threshold=0.25):
    """Wait until the machine is mostly idle (others use < threshold of all cores over 1 s).
    Returns the busy fraction seen last."""
    deadline = time.time() + max_wait
    while True:
        b0, t0 = cpu_ticks()
        time.sleep(1.0)
        b1, t1 = cpu_ticks()
        busy = (b1 - b0) / max(1, t1 - t0)
        if busy < threshold or time.time() > deadline:
            return busy


def timed(cmd, stdout, stderr, env=None, cwd=None):
    """Run cmd; return (wall seconds, user+sys CPU seconds of it and its reaped children, rc,
    peak RSS in KiB). The rusage is that of this one child (os.wait4), so ru_maxrss is the
    child's own peak resident set (Linux: the largest of it and its reaped descendants)."""
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return wall, ru.ru_utime + ru.ru_stime, p.returncode, ru.ru_maxrss


class Bench:
    def __init__(self, a):
        self.a = a
        self.work = a.work
        self.port = int(os.environ.get("MAILSTACK_IMAP_PORT", "11143"))
        self.stack = os.environ["MAILSTACK_DIR"]
        self.dovecot_conf = os.path.join(self.stack, "dovecot", "dovecot.conf")
        self.cfg = os.path.join(self.work, "config")
        self.runs = os.path.join(self.work, "runs")
        os.makedirs(self.cfg, exist_ok=True)
        os.makedirs(self.runs, exist_ok=True)
        os.chmod(self.cfg, 0o755)  # sieve-filter runs as the mail uid and reads the script
        rules = dict(a=LIST_A, b=LIST_B, c=LIST_C, boss=BOSS, port=self.port)
        self.mp_state = os.path.join(self.work, "mailpipe-state")
        self.sieve50 = os.path.join(self.cfg, "filter-50.sieve")
        with open(self.sieve50, "w") as f:
            f.write(sieve_50(**rules))
        os.chmod(self.sieve50, 0o644)
        self.mp_toml = {t: os.path.join(self.cfg, name) for t, name in MAILPIPE_TOOLS.items()}
        with open(self.mp_toml["mailpipe"], "w") as f:
            f.write(MAILPIPE_TOML.format(state=self.mp_state, wasm=a.plugin, **rules))
        # the same account, the 50-rule script through the built-in Sieve interpreter
        toml = MAILPIPE_TOML.format(state=self.mp_state, wasm=a.plugin, **rules)
        toml = toml[:toml.index("[[plugin]]")] + '[[plugin]]\nname = "rules"\nsieve = "%s"\n' % self.sieve50
        with open(self.mp_toml["mailpipe-sieve"], "w") as f:
            f.write(toml)
        self.lua = os.path.join(self.cfg, "imapfilter.lua")
        with open(self.lua, "w") as f:
            f.write(IMAPFILTER_LUA.format(**rules))
        os.chmod(self.lua, 0o600)
        self.sieve = os.path.join(self.cfg, "filter.sieve")
        with open(self.sieve, "w") as f:
            f.write(SIEVE.format(**rules))
        os.chmod(self.sieve, 0o644)
        # compile once (as root, the script dir is not writable for the mail uid)
        for script in (self.sieve, self.sieve50):
            sh(["sievec", "-c", self.dovecot_conf, script])
            os.chmod(script.replace(".sieve", ".svbin"), 0o644)
        self.results_path = os.path.join(self.work, "results.jsonl")
        self.env = dict(os.environ, MPBENCH_PASSWORD=PASSWORD, HOME=os.path.join(self.work, "home"))
        os.makedirs(self.env["HOME"], exist_ok=True)
        self.compiled = {t: os.path.join(self.work, t + "-compiled") for t in MAILPIPE_TOOLS}
        self.cold_rss = {}
        with open(os.path.join(self.stack, "dovecot", "run", "master.pid")) as f:
            self.dovecot_pid = int(f.read().strip())
        for d in self.compiled.values():
            shutil.rmtree(d, ignore_errors=True)  # the binary or plugin may have changed

    # ---- corpus + seeding ----
    def corpus(self, n):
        # keyed by corpus.py's own hash too: a changed generator never reuses a stale corpus
        with open(os.path.join(HERE, "corpus.py"), "rb") as f:
            gen = hashlib.sha256(f.read()).hexdigest()[:8]
        d = os.path.join(self.work, "corpus-%d-seed%d-%s" % (n, self.a.seed, gen))
        if not os.path.exists(os.path.join(d, "manifest.json")):
            print("generating corpus %s" % d, file=sys.stderr)
            sh([sys.executable, os.path.join(HERE, "corpus.py"), str(n), d, "--seed", str(self.a.seed)])
        with open(os.path.join(d, "manifest.json")) as f:
            return d, json.load(f)

    def golden(self, n, corpus):
        g = os.path.join(self.work, "golden-" + os.path.basename(corpus)[len("corpus-"):])
        print("building golden Maildir %s" % g, file=sys.stderr)
        print(sh([sys.executable, os.path.join(HERE, "seed.py"), "golden", corpus, g]), file=sys.stderr)
        return g

    def reseed(self, golden):
        sh([sys.executable, os.path.join(HERE, "seed.py"), "reseed", golden])

    def count(self):
        return json.loads(sh([sys.executable, os.path.join(HERE, "seed.py"), "count"]))

    # ---- the tools ----
    def warm_mailpipe(self, tool, golden):
        """One untimed run to get the compiled plugin; its cold time is recorded too."""
        if os.path.isdir(self.compiled[tool]):
            return None
        self.reseed(golden)
        shutil.rmtree(self.mp_state, ignore_errors=True)
        base = os.path.join(self.runs, "%s-cold" % tool)
        wall, cpu, rc, rss = timed([self.a.mailpipe, "run", "-c", self.mp_toml[tool], "--once"], base + ".out",
                                   base + ".err", env=self.env)
        if rc != 0:
            sys.exit("%s failed (rc %d), see %s.err" % (tool, rc, base))
        shutil.copytree(os.path.join(self.mp_state, "compiled"), self.compiled[tool])
        self.cold_rss[tool] = rss
        return wall

    def run_tool(self, tool, n, rnd):
        base = os.path.join(self.runs, "%s-%d-r%d" % (tool, n, rnd))
        info = {}
        if tool in ("floor", "floor-header"):
            cmd = [sys.executable, os.path.join(HERE, "floor.py"), "--port", str(self.port)]
            if tool == "floor-header":
                cmd.append("--header")
            wall, cpu, rc, rss = timed(cmd, base + ".out", base + ".err", env=self.env)
            if rc == 0:
                with open(base + ".out") as f:
                    info = json.loads(f.read())
                wall = info["seconds"]  # the FETCH alone
        elif tool in MAILPIPE_TOOLS:
            shutil.rmtree(self.mp_state, ignore_errors=True)
            os.makedirs(self.mp_state)
            shutil.copytree(self.compiled[tool], os.path.join(self.mp_state, "compiled"))
            wall, cpu, rc, rss = timed([self.a.mailpipe, "run", "-c", self.mp_toml[tool], "--once"],
                                       base + ".out", base + ".err", env=self.env)
            with open(base + ".err", errors="replace") as f:
                lines = [l.strip() for l in f]
            info["summary"] = [l for l in lines if "processed" in l][-1:]
            info["plugin"] = [l for l in lines if "rules-filer" in l or "sieve" in l][-1:]
            info["state_bytes"] = os.path.getsize(os.path.join(self.mp_state, "state.redb"))
        elif tool == "imapfilter":
            wall, cpu, rc, rss = timed(["imapfilter", "-c", self.lua], base + ".out", base + ".err", env=self.env)
        elif tool == "sieve-filter":
            wall, cpu, rc, rss = timed(["sieve-filter", "-c", self.dovecot_conf, "-e", "-W", "-u", USER,
                                   self.sieve, "INBOX"], base + ".out", base + ".err", env=self.env)
        elif tool == "sieve-filter-50":
            wall, cpu, rc, rss = timed(["sieve-filter", "-c", self.dovecot_conf, "-e", "-W", "-u", USER,
                                   self.sieve50, "INBOX"], base + ".out", base + ".err", env=self.env)
        else:
            raise ValueError(tool)
        return wall, cpu, rc, rss, info

    def verify(self, tool, manifest, info):
        n = manifest["n"]
        if tool.startswith("floor"):
            return "ok" if info.get("messages") == n else "fetched %s of %d" % (info.get("messages"), n)
        got = self.count()
        exp = manifest["expected"]
        want = {f: {"count": exp["count"][f], "flagged": exp["flagged"][f]} for f in exp["count"]}
        problems = []
        for f in sorted(set(want) | set(got)):
            w = want.get(f, {"count": 0, "flagged": 0})
            g = got.get(f, {"count": 0, "flagged": 0})
            if w != g:
                problems.append("%s: %d msgs/%d flagged, expected %d/%d" % (f, g["count"], g["flagged"],
                                                                           w["count"], w["flagged"]))
        return "ok" if not problems else "; ".join(problems)

    def run(self):
        sizes = [int(x) for x in self.a.n.split(",")]
        rounds = [int(x) for x in self.a.rounds.split(",")]
        rounds += [rounds[-1]] * (len(sizes) - len(rounds))
        tools = self.a.tools.split(",")
        all_rows = []
        for n, r in zip(sizes, rounds):
            corpus, manifest = self.corpus(n)
            golden = self.golden(n, corpus)
            cold = {}
            for t in tools:
                if t in MAILPIPE_TOOLS:
                    wall = self.warm_mailpipe(t, golden)
                    if wall is not None:
                        cold[t] = wall
                        print("%s cold run (plugin compiled): %.2f s" % (t, wall), file=sys.stderr)
            rows = []
            for rnd in range(1, r + 1):
                order = tools[rnd - 1:] + tools[:rnd - 1]  # rotate
                for tool in order:
                    self.reseed(golden)
                    before = wait_quiet(self.a.quiet_wait)
                    b0, t0 = cpu_ticks()
                    d0 = proc_cpu(self.dovecot_pid)
                    wall, cpu, rc, rss, info = self.run_tool(tool, n, rnd)
                    b1, t1 = cpu_ticks()
                    time.sleep(0.2)  # let the imap process exit and be reaped into the master's cutime
                    dovecot = proc_cpu(self.dovecot_pid) - d0
                    hz = os.sysconf("SC_CLK_TCK")
                    others = max(0.0, (b1 - b0) / hz - cpu - dovecot)  # CPU-seconds of everything else
                    info.update(driver_rss_kb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                                busy_before=round(before, 3), dovecot_cpu=round(dovecot, 3),
                                others_cpu=round(others, 3), span=round((t1 - t0) / hz / os.cpu_count(), 3))
                    check = self.verify(tool, manifest, info) if rc == 0 else "exit code %d" % rc
                    row = {"n": n, "round": rnd, "tool": tool, "wall": round(wall, 4), "cpu": round(cpu, 3),
                           "rss_kb": rss, "rc": rc, "check": check, "info": info, "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
                    rows.append(row)
                    with open(self.results_path, "a") as f:
                        f.write(json.dumps(row) + "\n")
                    print("N=%d round %d %-12s %8.3f s  cpu %6.2f s  rss %6.1f MB  dovecot %6.2f s  others %5.2f s  %s"
                          % (n, rnd, tool, wall, cpu, rss / 1024, dovecot, others, check), file=sys.stderr)
            all_rows.append((n, manifest, rows, cold))
        md = self.table(all_rows, tools)
        with open(os.path.join(self.work, "results.md"), "w") as f:
            f.write(md)
        print(md)

    def table(self, all_rows, tools):
        out = []
        peak = {}  # n -> median peak RSS (KiB) of the good mailpipe runs
        for n, manifest, rows, cold in all_rows:
            st = manifest["stats"]
            exp = manifest["expected"]
            out.append("### N = %d messages (%.1f MB; median %.1f KB, p90 %.0f KB, max %.2f MB)\n"
                       % (n, st["bytes"] / 1e6, st["median"] / 1e3, st["p90"] / 1e3, st["max"] / 1e6))
            out.append("Expected: " + ", ".join("%s %d (%d flagged)" % (f, exp["count"][f], exp["flagged"][f])
                                                for f in ["Lists/A", "Lists/B", "Lists/C", "INBOX"]) + "\n")
            med = {}
            for t in tools:
                good = [r["wall"] for r in rows if r["tool"] == t and r["check"] == "ok"]
                med[t] = statistics.median(good) if good else None
            head = ["tool", "runs ok", "median wall", "min – max", "msgs/s", "CPU (tool)", "CPU (Dovecot)",
                    "peak RSS"] + ["× " + t for t in tools]
            out.append("| " + " | ".join(head) + " |")
            out.append("|" + "---|" * len(head))
            for t in tools:
                rs = [r for r in rows if r["tool"] == t]
                good = [r for r in rs if r["check"] == "ok"]
                if not good:
                    out.append("| %s | 0/%d |" % (t, len(rs)) + " – |" * (len(head) - 2))
                    continue
                walls = [r["wall"] for r in good]
                m = med[t]
                cpu = statistics.median(r["cpu"] for r in good)
                dcpu = statistics.median(r["info"].get("dovecot_cpu", 0) for r in good)
                rss = statistics.median(r.get("rss_kb", 0) for r in good)
                if t == "mailpipe":
                    peak[n] = (rss, max(r.get("rss_kb", 0) for r in good))
                ratios = ["%.2f×" % (m / med[ref]) if med.get(ref) else "–" for ref in tools]
                floor = max(r["info"].get("driver_rss_kb", 0) for r in good)
                rss_s = ("≤ %.1f MB" if rss <= floor * 1.02 else "%.1f MB") % (rss / 1024)
                out.append("| %s | %d/%d | %.3f s | %.3f – %.3f | %.0f | %.2f s | %.2f s | %s | %s |"
                           % (t, len(good), len(rs), m, min(walls), max(walls), n / m, cpu, dcpu, rss_s,
                              " | ".join(ratios)))
            bad = [r for r in rows if r["check"] != "ok"]
            for r in bad:
                out.append("\n**%s round %d filed differently: %s**" % (r["tool"], r["round"], r["check"]))
            for t, wall in cold.items():
                out.append("\n%s's first (cold) run, compiling the plugin: %.3f s, peak RSS %.1f MB "
                           "(not in the table)." % (t, wall, self.cold_rss.get(t, 0) / 1024))
            out.append("")
        if len(peak) >= 2:
            ns = sorted(peak)
            lo, hi = peak[ns[0]][0], peak[ns[-1]][0]
            growth = (hi / lo - 1) * 100 if lo else float("nan")
            out.append("mailpipe peak RSS (median of the runs): " + ", ".join(
                "N=%d %.1f MB (max %.1f)" % (k, peak[k][0] / 1024, peak[k][1] / 1024) for k in ns)
                + "; N=%d vs N=%d: %+.1f %% -> %s (limit: within 20 %%)\n"
                % (ns[-1], ns[0], growth, "OK" if abs(growth) <= 20 else "OVER"))
        out.append("floor / floor-header: the FETCH command alone (no process start, connect or login); the "
                   "others: the whole process, wall clock. × X: this row's median wall / X's median wall (same "
                   "invocation). CPU (tool): user+sys of the tool's process (os.wait4); CPU (Dovecot): what the "
                   "Dovecot master's reaped children (imap, auth...) used meanwhile, approximate. Peak RSS: "
                   "ru_maxrss of the tool's process from os.wait4; Linux carries the parent's RSS high-water mark "
                   "across fork+exec into it, so a value at or below this Python driver's own RSS is shown as "
                   "'≤' (the tool used at most that much; for floor* it is the Python client itself).")
        return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", default="1000,10000")
    ap.add_argument("--rounds", default="5,3")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--work", default="/tmp/mpbench")
    ap.add_argument("--mailpipe", required=True)
    ap.add_argument("--plugin", required=True)
    ap.add_argument("--tools", default=",".join(ALL_TOOLS))
    ap.add_argument("--quiet-wait", type=float, default=120,
                    help="before each run, wait up to this many seconds for the machine to be idle")
    a = ap.parse_args()
    if "MAILSTACK_DIR" not in os.environ:
        sys.exit("bench.py: source the stack's env.sh first (bench/run.sh does)")
    Bench(a).run()


if __name__ == "__main__":
    main()
