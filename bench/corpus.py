#!/usr/bin/env python3
"""Deterministic mail corpus for the peer benchmarks (issue 5).

    python3 bench/corpus.py N OUTDIR [--seed 5]

Writes OUTDIR/000001.eml ... (LF line endings, as Dovecot stores Maildir files) and
OUTDIR/manifest.json: per message its file, Date (unix time, used as the Maildir mtime =
INTERNALDATE) and the ground truth of the filing rules, plus the expected totals. Same N and
seed -> byte-identical files (stdlib only, one random.Random).

The mix (see the constants below): sizes log-normal around a ~10 KB median, clipped to
1 KB..2 MB (mostly small, a long tail carried by base64 attachments); plain, multipart/
alternative and multipart/mixed with attachments; RFC 2047 encoded-word Subject/From/List-Id
descriptions and RFC 2231 file names; UTF-8 bodies in several languages; ~20 % list mail on
three lists (plus a newsletter without List-Id), ~5 % Auto-Submitted, ~10 % from the boss
(some of them on a list: filed AND flagged). Decoys that no rule may catch: list ids in the
Subject or body, the boss in To/Cc, the boss's address in the body.

Filing rules this corpus is made for (bench/run.sh implements them in every tool):
  List-Id contains LIST_A -> Lists/A, LIST_B -> Lists/B, LIST_C -> Lists/C
  From contains BOSS      -> \\Flagged (wherever the message ends up)
"""

import base64
import json
import math
import os
import random
import sys
import time

LIST_A = "rust-users.lists.example.org"
LIST_B = "dev.mailpipe.example.net"
LIST_C = "ankuendigungen.gruppe.example.de"
BOSS = "dana.boss@corp.example"
ME = "alice@example.test"

LISTS = [
    # (folder, list id, description variants (raw header text before <id>), post address)
    ("Lists/A", LIST_A, ["Rust users", '"Rust users discussion"', ""], "rust-users@lists.example.org"),
    ("Lists/B", LIST_B, ["mailpipe development", "=?utf-8?q?mailpipe_Entwicklung_=E2=80=93_dev?=", ""],
     "dev@mailpipe.example.net"),
    ("Lists/C", LIST_C, ["=?utf-8?q?Ank=C3=BCndigungen_der_Gruppe?=", "=?iso-8859-1?q?Ank=FCndigungen?=",
                         "Announcements"], "ankuendigungen@gruppe.example.de"),
]
P_LIST = (0.09, 0.065, 0.045)  # of all messages: 20 % list mail
P_AUTO = 0.05
P_BOSS = 0.10

PEOPLE = [
    ("Bob Builder", "bob@example.test"),
    ("Carol Meier", "carol@example.test"),
    ("Jürgen Groß", "juergen.gross@beispiel.example.de"),
    ("Zoë Lefèvre", "zoe.lefevre@exemple.example.fr"),
    ("山田 太郎", "taro.yamada@example.jp"),
    ("Ольга Иванова", "olga@primer.example.ru"),
    ("Erik Nilsson", "erik@exempel.example.se"),
    ("Priya Raman", "priya@example.in"),
    ("Mateo García", "mateo@ejemplo.example.es"),
    ("Fatma Yılmaz", "fatma@ornek.example.tr"),
    ("Sam O'Neil", "sam.oneil@example.ie"),
    ("Dana's assistant", "assistant@corp.example"),
]
BOSS_NAMES = ["Dana Boss", "Dana Böss", "Dana B. (CEO)"]

WORDS = (
    "the of and to in is that for it as was with be by on not this are at from or have an "
    "they which one you were her all she there would their we him been has when who will "
    "more no if out so said what up its about into than them can only other new some could "
    "time these two may then do first any my now such like our over man me even most made "
    "after also did many before must through back years where much your way well down "
    "should because each just those people how too little state good very make world still "
    "own see men work long get here between both life being under never day same another "
    "know while last might us great old year off come since against go came right used take "
    "release build plugin mailbox folder server message header filter rule deploy crate "
    "review patch branch merge commit benchmark latency throughput invoice meeting budget "
    "quarterly roadmap customer contract schedule agenda minutes deadline proposal"
).split()
WORDS_INTL = (
    "Grüße Straße Übersicht Änderung Öffnungszeiten schön größer "
    "déjà café élève garçon où fenêtre crème "
    "año señor niño mañana corazón "
    "Привет спасибо письмо сервер почта "
    "こんにちは ありがとう メール サーバー 会議 "
    "Ελληνικά καλημέρα "
    "çalışma gönderildi"
).split()

SUBJECTS = [
    "Re: {w} {w} for next week", "{W} {w} update", "Question about the {w} {w}",
    "Fwd: {W} {w}", "Minutes: {w} {w} meeting", "[ticket #{n}] {W} {w} fails",
    "Invoice {n} for {W}", "Re: Re: {w} {w}?", "{W}: {w} und {wi}", "Résumé: {w} {wi}",
    "Lunch {wi}?", "Ang.: {W} {wi} {wi}", "Your {w} order #{n} has shipped",
]

TLDS_RECV = ["mx1.example.net", "relay.example.com", "mail-ot1.example.org", "smtp.example.de"]


def enc_word(text, rng):
    """RFC 2047 encoded-word of text (UTF-8, B or Q), split so no word exceeds 75 chars."""
    if all(ord(c) < 128 for c in text):
        return text
    out = []
    chunk = ""
    for ch in text:  # never split a UTF-8 sequence
        if len((chunk + ch).encode()) > 30:
            out.append(chunk)
            chunk = ""
        chunk += ch
    if chunk:
        out.append(chunk)
    words = []
    use_b = rng.random() < 0.5
    for part in out:
        raw = part.encode()
        if use_b:
            words.append("=?UTF-8?B?" + base64.b64encode(raw).decode() + "?=")
        else:
            q = "".join(
                chr(b) if (48 <= b <= 57 or 65 <= b <= 90 or 97 <= b <= 122) else ("_" if b == 32 else "=%02X" % b)
                for b in raw)
            words.append("=?utf-8?q?" + q + "?=")
    return "\n ".join(words) if len(words) > 2 else " ".join(words)


def mailbox(name, addr, rng):
    if rng.random() < 0.1:
        return addr
    if all(ord(c) < 128 for c in name):
        if "'" in name or "." in name or "(" in name:
            return '"%s" <%s>' % (name, addr)
        return "%s <%s>" % (name, addr)
    return "%s <%s>" % (enc_word(name, rng), addr)


def words(rng, n, intl=0.08):
    return " ".join(rng.choice(WORDS_INTL) if rng.random() < intl else rng.choice(WORDS) for _ in range(n))


def paragraph_text(rng, nbytes):
    """UTF-8 prose of about nbytes, wrapped at ~72 columns."""
    lines, line, size = [], [], 0
    while size < nbytes:
        w = rng.choice(WORDS_INTL) if rng.random() < 0.05 else rng.choice(WORDS)
        line.append(w)
        if sum(len(x) + 1 for x in line) > 68:
            s = " ".join(line)
            lines.append(s)
            size += len(s.encode()) + 1
            line = []
            if rng.random() < 0.12:
                lines.append("")
    if line:
        lines.append(" ".join(line))
    return "\n".join(lines)


def qp_encode(text):
    """Quoted-printable of UTF-8 text with LF line ends (soft breaks at 76)."""
    out_lines = []
    for line in text.split("\n"):
        enc = []
        for b in line.encode():
            if b == 61 or b > 126 or (b < 32 and b != 9):
                enc.append("=%02X" % b)
            else:
                enc.append(chr(b))
        if enc and enc[-1] in (" ", "\t"):
            enc[-1] = "=%02X" % ord(enc[-1])
        cur, cur_len = [], 0
        for tok in enc:
            if cur_len + len(tok) > 75:
                out_lines.append("".join(cur) + "=")
                cur, cur_len = [], 0
            cur.append(tok)
            cur_len += len(tok)
        out_lines.append("".join(cur))
    return "\n".join(out_lines)


def b64_lines(data):
    s = base64.b64encode(data).decode()
    return "\n".join(s[i:i + 76] for i in range(0, len(s), 76))


def text_part(rng, body):
    if rng.random() < 0.6:
        return "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n" + qp_encode(body)
    return "Content-Type: text/plain; charset=utf-8; format=flowed\nContent-Transfer-Encoding: 8bit\n\n" + body


def html_part(rng, body):
    paras = "".join("<p>%s</p>\n" % p.replace("&", "&amp;").replace("<", "&lt;") for p in body.split("\n\n"))
    html = ('<!DOCTYPE html>\n<html><head><meta charset="utf-8"><style>body{font-family:sans-serif}'
            "</style></head>\n<body>\n" + paras + "</body></html>")
    return "Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n" + qp_encode(html)


ATTACH_KINDS = [
    ("application/pdf", "pdf", ["report", "Rechnung", "contract", "Übersicht_Q3", "slides"]),
    ("image/png", "png", ["screenshot", "diagram", "photo", "logo"]),
    ("image/jpeg", "jpg", ["IMG_2041", "holiday", "Grüße_aus_Köln", "scan"]),
    ("application/zip", "zip", ["logs", "archive", "build-artifacts"]),
    ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx", ["budget", "Übersicht", "forecast"]),
]


def attachment(rng, nraw):
    ctype, ext, names = rng.choice(ATTACH_KINDS)
    fname = "%s.%s" % (rng.choice(names), ext)
    data = rng.randbytes(nraw)
    if all(ord(c) < 128 for c in fname):
        disp = 'attachment; filename="%s"' % fname
        ctn = '%s; name="%s"' % (ctype, fname)
    elif rng.random() < 0.5:  # RFC 2231
        from urllib.parse import quote
        disp = "attachment;\n filename*=UTF-8''%s" % quote(fname)
        ctn = "%s;\n name*=UTF-8''%s" % (ctype, quote(fname))
    else:  # RFC 2047 in a parameter: wrong but common (Outlook, Gmail)
        e = enc_word(fname, rng).replace("\n ", " ")
        disp = 'attachment; filename="%s"' % e
        ctn = '%s; name="%s"' % (ctype, e)
    return ("Content-Type: %s\nContent-Transfer-Encoding: base64\nContent-Disposition: %s\n\n%s"
            % (ctn, disp, b64_lines(data)))


def multipart(rng, subtype, parts):
    boundary = "=_mpb_%016x" % rng.getrandbits(64)
    body = "".join("--%s\n%s\n" % (boundary, p) for p in parts) + "--%s--\n" % boundary
    return 'Content-Type: multipart/%s;\n boundary="%s"\n\n' % (subtype, boundary), \
        "This is a multi-part message in MIME format.\n\n" + body


def fmt_date(t, rng):
    tz = rng.choice([0, 60, 120, -300, -420, 330, 540])
    lt = time.gmtime(t + tz * 60)
    return time.strftime("%a, %d %b %Y %H:%M:%S ", lt) + "%+03d%02d" % (tz // 60 if tz >= 0 else -((-tz) // 60), abs(tz) % 60)


def target_size(rng):
    # log-normal: median 10 KB, sigma 1.1 -> p90 ~ 41 KB, p99 ~ 130 KB, a few at 2 MB
    s = int(math.exp(rng.gauss(math.log(10_000), 1.1)))
    if rng.random() < 0.004:  # the really big ones (scans, decks)
        s = rng.randint(500_000, 2_000_000)
    return max(1_000, min(2_000_000, s))


def make_message(i, rng, t):
    r = rng.random()
    lst = None
    acc = 0.0
    for k, p in enumerate(P_LIST):
        acc += p
        if r < acc:
            lst = k
            break
    auto = lst is None and rng.random() < P_AUTO / (1 - sum(P_LIST))
    boss = (not auto) and rng.random() < P_BOSS / (1 - P_AUTO)
    size = target_size(rng)
    if auto:
        size = min(size, 6_000 + rng.randint(0, 4000))

    h = []
    recv_t = t
    for hop in range(rng.randint(1, 4)):
        h.append("Received: from %s (%s [192.0.2.%d])\n\tby %s (Postfix) with ESMTPS id %X\n\tfor <%s>; %s"
                 % (rng.choice(TLDS_RECV), rng.choice(TLDS_RECV), rng.randint(1, 254), rng.choice(TLDS_RECV),
                    rng.getrandbits(40), ME, fmt_date(recv_t, rng)))
        recv_t -= rng.randint(0, 5)
    if rng.random() < 0.6:
        h.append("Authentication-Results: mx1.example.net;\n\tdkim=pass header.d=example.org header.s=s1 "
                 "header.b=%s;\n\tspf=pass smtp.mailfrom=example.org;\n\tdmarc=pass (p=REJECT) header.from=example.org"
                 % base64.b64encode(rng.randbytes(6)).decode())
        sig = base64.b64encode(rng.randbytes(128)).decode()
        h.append("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=s1;\n\tt=%d; "
                 "h=from:to:subject:date:message-id:mime-version:content-type;\n\tbh=%s;\n\tb=%s\n\t %s"
                 % (t, base64.b64encode(rng.randbytes(32)).decode(), sig[:70], sig[70:]))

    decoy = None
    if boss:
        from_hdr = mailbox(rng.choice(BOSS_NAMES), BOSS, rng)
    elif auto:
        from_hdr = mailbox(rng.choice(["Build Bot", "Monitoring", "Kalender", "Jürgen Groß"]),
                           rng.choice(["noreply@ci.example.com", "alerts@monitor.example.net",
                                       "calendar-noreply@example.com", "juergen.gross@beispiel.example.de"]), rng)
    else:
        from_hdr = mailbox(*rng.choice(PEOPLE), rng)
    h.append("Date: " + fmt_date(t, rng))
    h.append("From: " + from_hdr)
    to = [mailbox("Alice Example", ME, rng)]
    cc = []
    if lst is not None:
        to = [LISTS[lst][3]]
    if rng.random() < 0.3:
        cc.append(mailbox(*rng.choice(PEOPLE), rng))
    if not boss and rng.random() < 0.06:  # decoy: the boss in To/Cc, not From
        cc.append(mailbox("Dana Boss", BOSS, rng))
        decoy = "boss-in-cc"
    h.append("To: " + ",\n ".join(to))
    if cc:
        h.append("Cc: " + ",\n ".join(cc))

    subj = rng.choice(SUBJECTS).format(w=rng.choice(WORDS), W=rng.choice(WORDS).capitalize(),
                                       wi=rng.choice(WORDS_INTL), n=rng.randint(1000, 99999))
    if lst is not None:
        subj = "[%s] %s" % (["rust-users", "mailpipe-dev", "Ankündigungen"][lst], subj)
    elif rng.random() < 0.03:  # decoy: a list id in the subject of a personal message
        subj = "about %s" % rng.choice([LIST_A, LIST_B, LIST_C])
        decoy = "list-in-subject"
    if auto:
        subj = rng.choice(["Automatic reply: ", "Abwesenheitsnotiz: ", "[CI] build #%d " % rng.randint(1, 9999),
                           "Erinnerung: "]) + subj
        h.append("Auto-Submitted: " + rng.choice(["auto-replied", "auto-generated"]))
        if rng.random() < 0.5:
            h.append("X-Autoreply: yes")
    h.append("Subject: " + enc_word(subj, rng))
    h.append("Message-ID: <%d.%x@%s>" % (t, rng.getrandbits(48), rng.choice(["mail.example.org", "example.test",
                                                                           "mx.example.de"])))
    if subj.startswith("Re:") or rng.random() < 0.2:
        ref = "<%x@example.org>" % rng.getrandbits(48)
        h.append("In-Reply-To: " + ref)
        h.append("References: <%x@example.org>\n %s" % (rng.getrandbits(48), ref))
    if lst is not None:
        folder, lid, descs, post = LISTS[lst]
        desc = rng.choice(descs)
        shown = lid.upper() if rng.random() < 0.03 else lid  # case must not matter
        if desc and rng.random() < 0.3:
            h.append("List-Id: %s\n <%s>" % (desc, shown))  # folded
        elif desc:
            h.append("List-Id: %s <%s>" % (desc, shown))
        else:
            h.append("List-Id: <%s>" % shown)
        h.append("List-Unsubscribe: <mailto:%s?subject=unsubscribe>,\n <https://%s/unsubscribe>"
                 % (post.replace("@", "-request@"), post.split("@")[1]))
        h.append("List-Post: <mailto:%s>" % post)
        h.append("List-Archive: <https://%s/archive/>" % post.split("@")[1])
        h.append("Precedence: list")
        h.append("X-BeenThere: " + post)
    elif rng.random() < 0.03:  # a newsletter: List-Unsubscribe but no List-Id
        h.append("List-Unsubscribe: <https://news.example.com/u/%x>" % rng.getrandbits(32))
        h.append("Precedence: bulk")
    h.append("X-Mailer: " + rng.choice(["Thunderbird 115.3", "Apple Mail (2.3731)", "Microsoft Outlook 16.0",
                                          "mutt/2.2.9", "Roundcube Webmail/1.6.2"]))
    h.append("MIME-Version: 1.0")
    head_len = sum(len(x.encode()) + 1 for x in h)

    remaining = max(300, 1_100 - head_len, size - head_len - 300)  # no message under 1 KB
    if remaining < 6_000 or auto:
        text = paragraph_text(rng, remaining)
        if decoy is None and rng.random() < 0.04:
            text += "\n\nPlease write to %s or see List-Id: <%s>\n" % (BOSS, LIST_A)
            decoy = "in-body"
        ctype, body = text_part(rng, text).split("\n\n", 1)
        h.append(ctype)
        msg_body = body
    else:
        n_att = 0
        text_bytes = remaining
        if remaining > 15_000 or rng.random() < 0.25:
            n_att = 1 + (rng.random() < 0.3) + (rng.random() < 0.1)
            text_bytes = min(remaining // 4, rng.randint(800, 8_000))
        alt = rng.random() < 0.55
        text = paragraph_text(rng, text_bytes // (2 if alt else 1))
        if alt:
            ct, b = multipart(rng, "alternative", [text_part(rng, text), html_part(rng, text)])
            first = ct + b
        else:
            first = text_part(rng, text)
        if n_att:
            att_raw = max(200, (remaining - len(first.encode())) * 3 // 4 // n_att)
            ct, b = multipart(rng, "mixed", [first] + [attachment(rng, att_raw) for _ in range(n_att)])
        else:
            ct, b = first.split("\n\n", 1)
            ct += "\n\n"
        h.append(ct.rstrip("\n"))
        msg_body = b
    raw = ("\n".join(h) + "\n\n" + msg_body).rstrip("\n") + "\n"
    return raw.encode(), {
        "list": LISTS[lst][0] if lst is not None else None,
        "boss": boss,
        "auto": auto,
        "decoy": decoy,
    }


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("n", type=int)
    ap.add_argument("outdir")
    ap.add_argument("--seed", type=int, default=5)
    a = ap.parse_args(argv)
    rng = random.Random(a.seed)
    os.makedirs(a.outdir, exist_ok=True)
    t = 1_767_225_600 - a.n * 600  # ends 2026-01-01, ~10 minutes apart
    manifest = {"n": a.n, "seed": a.seed, "lists": {f: lid for f, lid, _, _ in LISTS}, "boss": BOSS,
                "messages": []}
    counts = {"Lists/A": 0, "Lists/B": 0, "Lists/C": 0, "INBOX": 0}
    flagged = {"Lists/A": 0, "Lists/B": 0, "Lists/C": 0, "INBOX": 0}
    sizes, total = [], 0
    for i in range(1, a.n + 1):
        t += rng.randint(1, 1200)
        raw, truth = make_message(i, rng, t)
        name = "%06d.eml" % i
        with open(os.path.join(a.outdir, name), "wb") as f:
            f.write(raw)
        folder = truth["list"] or "INBOX"
        counts[folder] += 1
        flagged[folder] += truth["boss"]
        sizes.append(len(raw))
        total += len(raw)
        manifest["messages"].append({"file": name, "time": t, "size": len(raw), **truth})
    sizes.sort()
    manifest["expected"] = {"count": counts, "flagged": flagged}
    manifest["stats"] = {
        "bytes": total, "min": sizes[0], "median": sizes[len(sizes) // 2], "p90": sizes[int(len(sizes) * 0.9)],
        "p99": sizes[int(len(sizes) * 0.99)], "max": sizes[-1],
        "auto_submitted": sum(m["auto"] for m in manifest["messages"]),
        "boss": sum(m["boss"] for m in manifest["messages"]),
        "decoys": sum(m["decoy"] is not None for m in manifest["messages"]),
    }
    with open(os.path.join(a.outdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=0)
    print(json.dumps({"expected": manifest["expected"], "stats": manifest["stats"]}))


if __name__ == "__main__":
    main(sys.argv[1:])
