#!/usr/bin/env python3
"""Many accounts in one instance (issue 14): N IMAP accounts from an accounts directory, all
IDLE on a private Dovecot, one daemon. Measures the time until every account is connected,
the daemon's memory and open files, its CPU while idle, and how long a new message for one
account takes to be filed (from Postfix's 250 to the file in the target folder).

Run as root through bench/accounts.sh (it starts the stack with N users and Dovecot settings
for many connections). Results: Markdown on stdout and $WORK/accounts-N.json.
"""
import json
import os
import smtplib
import subprocess
import sys
import time

N = int(sys.argv[1])
WORK = sys.argv[2]
BIN = sys.argv[3]
PLUGIN = sys.argv[4]
STACK = os.environ["MAILSTACK_DIR"]
IMAP_PORT = int(os.environ["MAILSTACK_IMAP_PORT"])
SMTP_PORT = int(os.environ["MAILSTACK_SMTP_PORT"])
DOMAIN = "example.test"
PER_SECOND = int(os.environ.get("ACCOUNTS_CONNECTS_PER_SECOND", "500"))
IDLE_SECONDS = int(os.environ.get("ACCOUNTS_IDLE_SECONDS", "30"))
SAMPLES = int(os.environ.get("ACCOUNTS_SAMPLES", "5"))


def user(i):
    return "u%05d" % i


def setup():
    acc = os.path.join(WORK, "accounts.d")
    os.makedirs(acc, exist_ok=True)
    for f in os.listdir(acc):
        os.unlink(os.path.join(acc, f))
    for i in range(1, N + 1):
        u = user(i)
        with open(os.path.join(acc, u + ".pass"), "w") as f:
            f.write("secret-%s\n" % u)
        with open(os.path.join(acc, u + ".toml"), "w") as f:
            f.write(
                '[account]\nname = "%s"\naddress = "%s@%s"\n[account.imap]\nhost = "127.0.0.1"\n'
                'port = %d\ntls = "none"\nusername = "%s@%s"\npassword_file = "%s.pass"\n'
                % (u, u, DOMAIN, IMAP_PORT, u, DOMAIN, u)
            )
    state = os.path.join(WORK, "state")
    subprocess.run(["rm", "-rf", state], check=True)
    cfg = os.path.join(WORK, "mailpipe.toml")
    with open(cfg, "w") as f:
        f.write(
            '[state]\ndir = "%s"\n[accounts]\ndir = "accounts.d"\nconnects_per_second = %d\n'
            '[[plugin]]\nname = "filer"\npath = "%s"\n[plugin.config]\n'
            'rules = [ { name = "bench", folder = "Filed", conditions = [ { subject = true, op = "contains", value = "accounts-bench" } ] } ]\n'
            % (state, PER_SECOND, PLUGIN)
        )
    return cfg


def proc_stat(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def proc_status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])  # kB
    return 0


def main():
    cfg = setup()
    log_path = os.path.join(WORK, "daemon-%d.log" % N)
    log = open(log_path, "w")
    env = dict(os.environ, MAILPIPE_LOG="info")
    t0 = time.monotonic()
    daemon = subprocess.Popen([BIN, "run", "-c", cfg], stdout=log, stderr=log, env=env)
    connected = 0
    deadline = t0 + 600
    while connected < N:
        if daemon.poll() is not None or time.monotonic() > deadline:
            print(open(log_path).read()[-3000:], file=sys.stderr)
            raise SystemExit("the daemon did not connect every account (%d of %d)" % (connected, N))
        time.sleep(0.05)
        with open(log_path) as f:
            connected = f.read().count("connected (IDLE)")
    all_connected = time.monotonic() - t0
    time.sleep(2)
    rss_kb = proc_status(daemon.pid, "VmRSS")
    hwm_kb = proc_status(daemon.pid, "VmHWM")
    fds = len(os.listdir("/proc/%d/fd" % daemon.pid))
    cpu0, w0 = proc_stat(daemon.pid), time.monotonic()
    time.sleep(IDLE_SECONDS)
    idle_cpu = (proc_stat(daemon.pid) - cpu0) / (time.monotonic() - w0)
    rss_idle_kb = proc_status(daemon.pid, "VmRSS")

    # Latency: one account in the middle, a message at a time.
    target = user(N // 2 + 1)
    maildir = os.path.join(STACK, "mail", DOMAIN, target, "Maildir")
    filed_dirs = [os.path.join(maildir, "Filed", d) for d in ("new", "cur")]

    def filed():
        n = 0
        for d in filed_dirs:
            if os.path.isdir(d):
                n += len(os.listdir(d))
        return n

    latencies = []
    for k in range(SAMPLES):
        before = filed()
        msg = (
            "From: sender@example.net\r\nTo: %s@%s\r\nSubject: accounts-bench %d\r\n"
            "Message-ID: <%d.%d.accounts-bench@example.net>\r\n\r\nhello\r\n"
            % (target, DOMAIN, k, k, int(time.time() * 1000))
        )
        with smtplib.SMTP("127.0.0.1", SMTP_PORT) as s:
            s.sendmail("sender@example.net", ["%s@%s" % (target, DOMAIN)], msg)
            sent = time.monotonic()
        while filed() <= before:
            if time.monotonic() - sent > 30:
                raise SystemExit("message %d not filed within 30 s" % k)
            time.sleep(0.005)
        latencies.append(time.monotonic() - sent)
        time.sleep(1)
    daemon.terminate()
    daemon.wait(timeout=60)
    latencies.sort()
    result = {
        "accounts": N,
        "all_connected_s": round(all_connected, 2),
        "connects_per_second": PER_SECOND,
        "rss_mb": round(rss_kb / 1024, 1),
        "rss_after_idle_mb": round(rss_idle_kb / 1024, 1),
        "peak_rss_mb": round(hwm_kb / 1024, 1),
        "fds": fds,
        "idle_cpu_percent": round(100 * idle_cpu, 2),
        "latency_median_s": round(latencies[len(latencies) // 2], 3),
        "latency_max_s": round(latencies[-1], 3),
        "samples": SAMPLES,
    }
    with open(os.path.join(WORK, "accounts-%d.json" % N), "w") as f:
        json.dump(result, f)
    print(json.dumps(result))


main()
