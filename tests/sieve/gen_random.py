#!/usr/bin/env python3
"""Random Sieve scripts generated from the grammar, for the differential test against
Pigeonhole (tests/sieve_differential.rs, `random_scripts_match_pigeonhole`).

    python3 tests/sieve/gen_random.py SEED COUNT OUTDIR

Writes OUTDIR/random-SEED-NNN.sieve. Same SEED, same scripts. The scripts are valid Sieve
built from the constructs whose meaning does not depend on the host (no redirect or vacation:
the host's loop guard decides those; no envelope: the test bed's messages may lack one; no
regex: POSIX and Rust syntax differ; no body: the host's text views differ), plus
foreverypart loops and :mime tests (RFC 5703), never one loop inside another: Pigeonhole 0.5
aborts any command that follows a nested loop ("program crossed loop boundary"; with a trace
on it even panics after writing gigabytes), see KNOWN-DIFFERENCES.md. Tests nest
allof/anyof/not up to three levels, commands nest if/elsif/else up to three levels, and the
keys are drawn from words that occur in tests/sieve/messages, so that tests do match.
"""
import os
import random
import sys

REQUIRE = ["fileinto", "imap4flags", "variables", "copy", "relational",
           "comparator-i;ascii-numeric", "subaddress", "date", "index", "mailbox",
           "foreverypart", "mime"]
HEADERS = ["subject", "from", "to", "cc", "list-id", "x-spam-score", "message-id",
           "reply-to", "precedence", "content-type", "x-mailer", "date"]
ADDRESS_HEADERS = ["from", "to", "cc", "reply-to", "sender"]
WORDS = ["example", "Example", "list", "meeting", "Meeting", "invoice", "alice", "bob",
         "org", "com", "re:", "Re:", "[", "]", "-", ".", "@", "", "a", "e", "x", "7", "1",
         "spam", "bulk", "noreply", "me", "hello", "lists", "UTF", "text/plain", "multipart"]
FLAGS = ["\\Seen", "\\Flagged", "\\Answered", "$Work", "$Later", "Junk"]
FOLDERS = ["A", "B", "Lists/x", "Work", "Archive/2024", "Junk", "INBOX"]
PARTS = ["year", "month", "day", "weekday", "hour", "date"]
MIME_HEADERS = ["content-type", "content-disposition", "content-transfer-encoding", "from",
                "subject"]
MIME_KEYS = ["text", "plain", "html", "multipart", "mixed", "alternative", "application",
             "text/plain", "text/html", "attachment", "inline", "utf-8", "UTF-8", "us-ascii",
             "iso-8859-1", "*.pdf", "*", "", "base64", "example"]


def q(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def key(r):
    w = r.choice(WORDS)
    kind = r.random()
    if kind < 0.25:
        return "*" + w + "*"
    if kind < 0.35:
        return w + "?"
    if kind < 0.45:
        return "*" + w
    return w


def keys(r):
    if r.random() < 0.7:
        return q(key(r))
    return "[" + ", ".join(q(key(r)) for _ in range(r.randint(1, 3))) + "]"


def names(r, pool):
    picked = r.sample(pool, r.randint(1, 2))
    if len(picked) == 1 and r.random() < 0.6:
        return q(picked[0])
    return "[" + ", ".join(q(p) for p in picked) + "]"


def match(r, numeric_ok=False):
    m = r.random()
    if numeric_ok and m < 0.15:
        rel = r.choice(["gt", "ge", "lt", "le", "eq", "ne"])
        return (':value "%s" :comparator "i;ascii-numeric" ' % rel), True
    if m < 0.4:
        mt = ":is "
    elif m < 0.75:
        mt = ":contains "
    else:
        mt = ":matches "
    if r.random() < 0.2:
        mt += ':comparator "i;octet" '
    return mt, False


def test(r, depth=0):
    t = r.random()
    if depth < 3 and t < 0.15:
        n = r.randint(1, 3)
        return r.choice(["allof", "anyof"]) + " (" + ", ".join(test(r, depth + 1) for _ in range(n)) + ")"
    if depth < 3 and t < 0.22:
        return "not " + test(r, depth + 1)
    if t < 0.45:
        mt, numeric = match(r, numeric_ok=True)
        k = q(str(r.randint(0, 12))) if numeric else keys(r)
        idx = ":index %d " % r.randint(1, 2) if r.random() < 0.1 else ""
        return "header " + idx + mt + names(r, HEADERS) + " " + k
    if t < 0.62:
        part = r.choice([":all ", ":localpart ", ":domain ", ":user ", ":detail ", ""])
        mt, _ = match(r)
        return "address " + part + mt + names(r, ADDRESS_HEADERS) + " " + keys(r)
    if t < 0.70:
        return "exists " + names(r, HEADERS)
    if t < 0.77:
        return "size " + r.choice([":over ", ":under "]) + r.choice(["100", "1K", "2K", "10K", "1M"])
    if t < 0.82:
        rel = r.choice(["gt", "ge", "lt", "le", "eq", "ne"])
        return 'header :count "%s" :comparator "i;ascii-numeric" %s %s' % (
            rel, names(r, HEADERS), q(str(r.randint(0, 3))))
    if t < 0.88:
        return 'date :is "date" %s %s' % (q(r.choice(PARTS)), q(r.choice(["2024", "01", "1", "15", "09", "2024-01-15", "0", "6"])))
    if t < 0.93:
        return "hasflag " + keys(r)
    if t < 0.97:
        return 'string :matches "${1}" ' + keys(r)
    if t < 0.99:
        return mime_test(r)
    return r.choice(["true", "false"])


def mime_test(r):
    """header/exists/address with :mime (RFC 5703), on the current part or :anychild."""
    anychild = ":anychild " if r.random() < 0.4 else ""
    k = r.random()
    if k < 0.2:
        return "exists :mime " + anychild + names(r, MIME_HEADERS)
    if k < 0.3:
        return "address :mime " + anychild + r.choice([":all ", ":domain "]) + match(r)[0] + q("from") + " " + keys(r)
    option = r.choice(["", ":type ", ":subtype ", ":contenttype ", ':param "charset" ', ':param ["name", "filename"] '])
    mt, _ = match(r)
    header = q(r.choice(["content-type", "content-disposition"]) if option else r.choice(MIME_HEADERS))
    return "header :mime " + anychild + option + mt + header + " " + q(r.choice(MIME_KEYS))


def command(r, depth=0, in_loop=False):
    c = r.random()
    if depth < 3 and c < 0.3:
        out = "if " + test(r) + " {\n" + block(r, depth + 1, in_loop) + "}"
        for _ in range(r.randint(0, 2)):
            out += " elsif " + test(r) + " {\n" + block(r, depth + 1, in_loop) + "}"
        if r.random() < 0.4:
            out += " else {\n" + block(r, depth + 1, in_loop) + "}"
        return out + "\n"
    if c < 0.45:
        copy = ":copy " if r.random() < 0.3 else ""
        flags = ":flags " + names(r, FLAGS) + " " if r.random() < 0.2 else ""
        return "fileinto " + copy + flags + q(r.choice(FOLDERS)) + ";\n"
    if c < 0.55:
        return r.choice(["addflag", "removeflag", "setflag"]) + " " + names(r, FLAGS) + ";\n"
    if c < 0.62:
        return "keep;\n"
    if c < 0.66:
        return "discard;\n"
    if c < 0.70:
        return "stop;\n"
    if c < 0.80:
        mod = r.choice(["", ":lower ", ":upper ", ":length ", ":upperfirst "])
        return 'set %s"v" "${1}";\n' % mod
    if depth < 3 and c < 0.86 and not in_loop:
        body = block(r, depth + 1, True)
        if r.random() < 0.4:
            body += "if " + mime_test(r) + " { break; }\n"
        return "foreverypart {\n" + body + "}\n"
    return "keep;\n"


def block(r, depth, in_loop=False):
    return "".join(command(r, depth, in_loop) for _ in range(r.randint(1, 3)))


def main():
    seed, count, outdir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    os.makedirs(outdir, exist_ok=True)
    for n in range(count):
        r = random.Random(seed * 100003 + n)
        body = "".join(command(r) for _ in range(r.randint(2, 6)))
        script = "require [" + ", ".join(q(x) for x in REQUIRE) + "];\n" + body
        with open(os.path.join(outdir, "random-%d-%03d.sieve" % (seed, n)), "w") as f:
            f.write(script)


if __name__ == "__main__":
    main()
