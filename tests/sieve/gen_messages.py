#!/usr/bin/env python3
"""Writes the message corpus of the Sieve differential test (tests/sieve/messages/*.eml).

Deterministic: running it again rewrites the same bytes. The file name's prefix is the
message's kind, which tests/sieve/known-differences.txt matches on:

  plain-   ordinary personal mail          mime-     multipart structures, attachments
  enc-     RFC 2047 / charsets             list-     mailing-list mail (List-Id, Precedence)
  auto-    Auto-Submitted and friends      bounce-   null return path (Return-Path: <>)
  sub-     subaddressed recipients         spam-     X-Spam-* / X-Virus-* headers
  hdr-     header oddities                 date-     Date/Received variants
  size-    sizes around :over/:under       noenv-    no Return-Path / Delivered-To
  role-    robot senders (noreply@...)     hostile-  malformed on purpose

Most messages start with `Return-Path: <...>` and `Delivered-To: ...`: the harness passes
them to sieve-test as the envelope (-f, -a/-r); without them it uses sender@example.org and
me@example.com. About half are written with CRLF line endings, the rest with LF.

Run: python3 tests/sieve/gen_messages.py
"""

import base64
import os

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "messages")

_count = 0


def write(name, headers, body=b"Hello.\n", eol=None, raw=False):
    """Write messages/<name>.eml. `headers` is a list of header lines (str or bytes; a "\\n"
    inside one is a fold), `body` str or bytes with "\\n" line ends. `eol` is "\\r\\n" or
    "\\n"; by default messages alternate. `raw=True` writes `body` as the whole file."""
    global _count
    _count += 1
    if eol is None:
        eol = "\r\n" if _count % 2 == 1 else "\n"
    e = eol.encode()
    if raw:
        data = body if isinstance(body, bytes) else body.encode()
    else:
        parts = []
        for h in headers:
            hb = h if isinstance(h, bytes) else h.encode("utf-8")
            parts.append(hb.replace(b"\n", e))
        b = body if isinstance(body, bytes) else body.encode("utf-8")
        b = b.replace(b"\n", e)
        data = e.join(parts) + e + e + b
    path = os.path.join(OUT, name + ".eml")
    with open(path, "wb") as f:
        f.write(data)


def env(rp="alice@example.org", dt="me@example.com"):
    out = []
    if rp is not None:
        out.append("Return-Path: <%s>" % rp)
    if dt is not None:
        out.append("Delivered-To: %s" % dt)
    return out


def std(frm, to, subject, n, date="Mon, 15 Jan 2024 10:30:00 +0100", extra=(), rp=None,
        dt="me@example.com", cc=None, mid=None):
    """An ordinary header block: envelope, Received, From/To/Cc/Subject/Date/Message-ID."""
    if rp is None:
        rp = frm.split("<")[-1].rstrip(">").strip() if frm else "alice@example.org"
    h = env(rp, dt)
    h.append("Received: from mx.example.org (mx.example.org [192.0.2.10])\n"
             "\tby mail.example.com (Postfix) with ESMTPS id 4T%04dQ\n"
             "\tfor <%s>; %s" % (n, dt or "me@example.com", date))
    if frm is not None:
        h.append("From: " + frm)
    if to is not None:
        h.append("To: " + to)
    if cc:
        h.append("Cc: " + cc)
    if subject is not None:
        h.append("Subject: " + subject)
    if date is not None:
        h.append("Date: " + date)
    h.append("Message-ID: <%s>" % (mid or "msg%04d@example.org" % n))
    h.extend(extra)
    return h


ALICE = "Alice Example <alice@example.org>"
BOB = "\"Bob Builder\" <bob@example.net>"
ME = "Me Myself <me@example.com>"
TEXT = "Content-Type: text/plain; charset=us-ascii"
MIME = "MIME-Version: 1.0"


def lorem(n, width=72):
    words = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
             "incididunt ut labore et dolore magna aliqua").split()
    out, line, i = [], [], 0
    while len(out) < n:
        w = words[i % len(words)]
        i += 1
        if sum(len(x) + 1 for x in line) + len(w) > width:
            out.append(" ".join(line))
            line = []
        line.append(w)
    return "\n".join(out) + "\n"


def b64(data):
    s = base64.b64encode(data).decode()
    return "\n".join(s[i:i + 76] for i in range(0, len(s), 76))


def plain():
    write("plain-01-hello", std(ALICE, ME, "Hello there", 1), "Hi,\n\njust saying hello.\n\nAlice\n")
    write("plain-02-invoice", std("billing@shop.example", "me@example.com", "Invoice 2024-001 for your order", 2,
                                  extra=[MIME, TEXT]),
          "Dear customer,\n\nplease find your invoice 2024-001 below.\nTotal: 42.00 EUR\n")
    write("plain-03-urgent", std(BOB, "me@example.com, other@example.com", "URGENT: server down", 3,
                                 extra=["X-Priority: 1 (Highest)", "Importance: high"]),
          "The server is down. Call me.\n")
    write("plain-04-re-meeting", std(ALICE, ME, "Re: meeting tomorrow", 4, cc="bob@example.net, carol@example.org",
                                     extra=["In-Reply-To: <msg0001@example.org>", "References: <msg0001@example.org>"]),
          "> Shall we meet at 10?\n\nYes, 10 is fine.\n")
    write("plain-05-fwd", std("Carol <carol@example.org>", ME, "Fwd: quarterly report", 5),
          "---------- Forwarded message ---------\nFrom: boss@corp.example\nSubject: quarterly report\n\nNumbers are up.\n")
    write("plain-06-boss", std("The Boss <boss@corp.example>", "Team <team@corp.example>", "Reorganisation", 6,
                               cc="me@example.com", rp="boss@corp.example"),
          "Please read the attached plan.\n")
    write("plain-07-reply-to", std(ALICE, ME, "Party on Saturday", 7, extra=["Reply-To: party@example.org"]),
          "Bring snacks.\n")
    write("plain-08-bcc", std(BOB, "undisclosed-recipients:;", "Secret plans", 8),
          "You are in Bcc.\n")
    write("plain-09-star-question", std(ALICE, ME, "test *star* and ?question? marks", 9),
          "Wildcards in the subject.\n")
    write("plain-10-backslash", std(ALICE, ME, "path C:\\temp\\new and \"quotes\"", 10),
          "Backslashes in the subject.\n")
    write("plain-11-uppercase-addr", std("ALICE@EXAMPLE.ORG", "ME@EXAMPLE.COM", "SHOUTING", 11,
                                         rp="ALICE@EXAMPLE.ORG", dt="ME@EXAMPLE.COM"),
          "CAPS LOCK IS CRUISE CONTROL\n")
    write("plain-12-many-to", std(BOB, "a@example.com, b@example.com, \"C, D\" <cd@example.com>,\n e@example.com, me@example.com",
                                  "Team update", 12, cc="f@example.com, g@example.org"),
          "Many recipients.\n")
    write("plain-13-group", std(ALICE, "friends: bob@example.net, me@example.com;", "Group address", 13),
          "Group syntax in To.\n")
    write("plain-14-comment-addr", std("alice@example.org (Alice in comments)", "me@example.com (me)", "Comments in addresses", 14),
          "Old style.\n")
    write("plain-15-numbers", std(ALICE, ME, "Order 12345 shipped, 3 items, 007 bond", 15,
                                  extra=["X-Order-Count: 3", "X-Priority: 5", "X-Number: 0042"]),
          "Your order 12345 has shipped.\n")
    write("plain-16-phishing", std("\"PayPal Security\" <security@paypa1.example>", ME, "Your account is suspended - verify your password", 16,
                                   extra=[MIME, "Content-Type: text/html; charset=utf-8"]),
          "<html><body><p>Click <a href=\"http://paypa1.example/login\">here</a> to verify your password.</p></body></html>\n")
    write("plain-17-lottery", std("winner@lottery.example", ME, "You have WON the lottery!!!", 17,
                                  extra=["X-Mailer: MassMailer 3.0"]),
          "Send us your bank details to claim 1,000,000 USD.\n")
    write("plain-18-empty-body", std(ALICE, ME, "No body", 18), "")
    write("plain-19-cyrillic-plain", std(BOB, ME, "Report", 19, extra=[MIME, "Content-Type: text/plain; charset=utf-8",
                                                                       "Content-Transfer-Encoding: 8bit"]),
          "Привет, это тест. Grüße aus Köln.\n")
    write("plain-20-dev-keyword", std("Dev Team <dev@example.com>", ME, "[dev] nightly build failed", 20,
                                      extra=["X-Project: mailpipe", "Keywords: build, ci"]),
          "Build #4711 failed.\n")
    write("plain-21-me-in-cc", std(BOB, "bob@example.net", "FYI", 21, cc="Me <me@example.com>"), "For your information.\n")
    write("plain-22-not-addressed", std(BOB, "someone-else@example.org", "Not for you", 22), "Delivered to me but not addressed to me.\n")


def mime():
    alt = ("--ALT\nContent-Type: text/plain; charset=utf-8\n\nPlain part: meeting at 10.\n\n"
           "--ALT\nContent-Type: text/html; charset=utf-8\n\n<html><body><b>HTML part</b>: meeting at 10.</body></html>\n\n--ALT--\n")
    write("mime-01-alternative", std(ALICE, ME, "Alternative parts", 101,
                                     extra=[MIME, "Content-Type: multipart/alternative; boundary=\"ALT\""]),
          "This is a multi-part message in MIME format.\n\n" + alt)
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    write("mime-02-mixed-pdf", std(ALICE, ME, "Invoice attached", 102,
                                   extra=[MIME, "Content-Type: multipart/mixed; boundary=\"MIX\""]),
          "--MIX\nContent-Type: text/plain; charset=us-ascii\n\nPlease find the invoice attached.\n\n"
          "--MIX\nContent-Type: application/pdf; name=\"invoice.pdf\"\nContent-Disposition: attachment; filename=\"invoice.pdf\"\n"
          "Content-Transfer-Encoding: base64\n\n" + b64(pdf) + "\n--MIX--\n")
    write("mime-03-nested", std(BOB, ME, "Nested multipart", 103,
                                extra=[MIME, "Content-Type: multipart/mixed; boundary=\"OUTER\""]),
          "--OUTER\nContent-Type: multipart/alternative; boundary=\"INNER\"\n\n"
          "--INNER\nContent-Type: text/plain; charset=utf-8\n\nInner plain text with keyword banana.\n\n"
          "--INNER\nContent-Type: text/html; charset=utf-8\n\n<p>Inner <i>html</i> with keyword banana.</p>\n\n--INNER--\n\n"
          "--OUTER\nContent-Type: image/png; name=\"dot.png\"\nContent-Disposition: inline; filename=\"dot.png\"\n"
          "Content-Transfer-Encoding: base64\n\n" + b64(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(64))) + "\n--OUTER--\n")
    write("mime-04-zip", std("Carol <carol@example.org>", ME, "files", 104,
                             extra=[MIME, "Content-Type: multipart/mixed; boundary=\"b1\""]),
          "--b1\nContent-Type: text/plain\n\nsee zip\n--b1\nContent-Type: application/zip; name=\"files.zip\"\n"
          "Content-Disposition: attachment; filename=files.zip\nContent-Transfer-Encoding: base64\n\n"
          + b64(b"PK\x03\x04" + bytes(60)) + "\n--b1--\n")
    write("mime-05-exe", std("unknown@malware.example", ME, "Document", 105,
                             extra=[MIME, "Content-Type: multipart/mixed; boundary=\"=_x\""]),
          "--=_x\nContent-Type: text/plain\n\nOpen the document.\n--=_x\nContent-Type: application/octet-stream; name=\"document.pdf.exe\"\n"
          "Content-Disposition: attachment; filename=\"document.pdf.exe\"\nContent-Transfer-Encoding: base64\n\n"
          + b64(b"MZ\x90\x00" + bytes(40)) + "\n--=_x--\n")
    write("mime-06-rfc822", std(ALICE, ME, "Fwd: original message", 106,
                                extra=[MIME, "Content-Type: multipart/mixed; boundary=\"FWD\""]),
          "--FWD\nContent-Type: text/plain\n\nForwarding as attachment.\n\n--FWD\nContent-Type: message/rfc822\n\n"
          "From: Bob <bob@example.net>\nTo: alice@example.org\nSubject: the original subject\nDate: Sun, 14 Jan 2024 09:00:00 +0000\n\n"
          "Original body mentions pineapple.\n\n--FWD--\n")
    write("mime-07-calendar", std("calendar@corp.example", ME, "Invitation: Planning @ Tue 16 Jan", 107,
                                  extra=[MIME, "Content-Type: multipart/alternative; boundary=\"CAL\""]),
          "--CAL\nContent-Type: text/plain; charset=utf-8\n\nYou are invited.\n--CAL\nContent-Type: text/calendar; charset=utf-8; method=REQUEST\n\n"
          "BEGIN:VCALENDAR\nMETHOD:REQUEST\nBEGIN:VEVENT\nSUMMARY:Planning\nEND:VEVENT\nEND:VCALENDAR\n--CAL--\n")
    write("mime-08-qp", std(ALICE, ME, "Quoted printable", 108,
                            extra=[MIME, "Content-Type: text/plain; charset=iso-8859-1", "Content-Transfer-Encoding: quoted-printable"]),
          "Caf=E9 au lait, cr=E8me br=FBl=E9e and a soft=\n line break. Secret word: =\nkumquat.\n")
    write("mime-09-base64-text", std(BOB, ME, "Base64 text body", 109,
                                     extra=[MIME, "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: base64"]),
          b64("Hidden in base64: the password is swordfish. Äpfel.\n".encode()) + "\n")
    write("mime-10-latin1-body", std(BOB, ME, "Latin-1 body", 110,
                                     extra=[MIME, "Content-Type: text/plain; charset=iso-8859-1", "Content-Transfer-Encoding: 8bit"]),
          "Gr\xfc\xdfe aus M\xfcnchen, na\xefve fa\xe7ade.\n".encode("latin-1"))
    write("mime-11-related", std(ALICE, ME, "Newsletter with image", 111,
                                 extra=[MIME, "Content-Type: multipart/related; boundary=\"REL\"; type=\"text/html\""]),
          "--REL\nContent-Type: text/html; charset=utf-8\n\n<html><img src=\"cid:logo\"> Special offer!</html>\n"
          "--REL\nContent-Type: image/gif\nContent-ID: <logo>\nContent-Transfer-Encoding: base64\n\n"
          + b64(b"GIF89a" + bytes(20)) + "\n--REL--\n")
    write("mime-12-params", std(ALICE, ME, "Parameters", 112,
                                extra=[MIME, "Content-Type: multipart/mixed;\n boundary=\"PRM\";\n charset=\"utf-8\""]),
          "--PRM\nContent-Type: text/plain; charset=\"UTF-8\"; format=flowed; delsp=yes\n\nflowed text\n"
          "--PRM\nContent-Type: application/vnd.ms-excel; name*=UTF-8''Abrechnung%20M%C3%A4rz.xls\n"
          "Content-Disposition: attachment; filename*=UTF-8''Abrechnung%20M%C3%A4rz.xls\nContent-Transfer-Encoding: base64\n\n"
          + b64(bytes(30)) + "\n--PRM--\n")
    write("mime-13-signed", std(BOB, ME, "Signed message", 113,
                                extra=[MIME, "Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; micalg=pgp-sha256; boundary=\"SIG\""]),
          "--SIG\nContent-Type: text/plain; charset=us-ascii\n\nThis is signed.\n\n--SIG\nContent-Type: application/pgp-signature; name=\"signature.asc\"\n\n"
          "-----BEGIN PGP SIGNATURE-----\niQEzBAEBCAAdFiEE\n-----END PGP SIGNATURE-----\n\n--SIG--\n")
    write("mime-14-no-boundary-end", std(ALICE, ME, "Unterminated multipart", 114,
                                         extra=[MIME, "Content-Type: multipart/mixed; boundary=\"NOEND\""]),
          "--NOEND\nContent-Type: text/plain\n\nfirst part with keyword apricot\n--NOEND\nContent-Type: text/plain\n\nsecond part never closed\n")
    write("mime-15-html-only", std("news@shop.example", ME, "Sale!", 115,
                                   extra=[MIME, "Content-Type: text/html; charset=utf-8"]),
          "<html><head><title>Sale</title></head><body><h1>50% off</h1><p>Unsubscribe <a href=\"x\">here</a></p></body></html>\n")


def enc():
    write("enc-01-utf8-b", std(ALICE, ME, "=?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=", 201), "Grüße.\n")
    write("enc-02-utf8-q", std(ALICE, ME, "=?utf-8?q?Caf=C3=A9_=C3=A0_Paris?=", 202), "Café.\n")
    write("enc-03-latin1-q", std(BOB, ME, "=?ISO-8859-1?Q?Gr=FC=DFe_und_Caf=E9?=", 203), "Latin-1 Q.\n")
    write("enc-04-latin1-b", std(BOB, ME, "=?iso-8859-1?b?UuRrc2Vs?=", 204), "Latin-1 B.\n")
    write("enc-05-from-name", std("=?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <joerg@example.de>", ME, "Hallo", 205), "Name encoded.\n")
    write("enc-06-adjacent", std(ALICE, ME, "=?UTF-8?Q?first?= =?UTF-8?Q?_second?=  plain =?UTF-8?B?dGhpcmQ=?=", 206),
          "Adjacent encoded words.\n")
    write("enc-07-bad-base64", std(ALICE, ME, "=?UTF-8?B?!!!notbase64***?=", 207), "Bad base64 encoded word.\n")
    write("enc-08-unknown-charset", std(ALICE, ME, "=?x-unknown?Q?strange_charset?=", 208), "Unknown charset.\n")
    write("enc-09-cp1252", std("=?windows-1252?Q?=93Quoted=94_Sender?= <q@example.org>", ME,
                               "=?windows-1252?Q?Price_=80_100_=96_discount?=", 209), "Windows-1252.\n")
    write("enc-10-emoji", std(ALICE, ME, "=?UTF-8?B?8J+OiSBQYXJ0eSB0aW1lIPCfjok=?=", 210), "Emoji.\n")
    write("enc-11-split-multibyte", std(ALICE, ME, "=?UTF-8?Q?Gr=C3?= =?UTF-8?Q?=BC=C3=9Fe?=", 211),
          "A multibyte character split over two encoded words.\n")
    write("enc-12-long-folded", std(ALICE, ME,
                                    "=?UTF-8?Q?Dies_ist_ein_sehr_langer_Betreff_mit_Umlauten_=C3=A4=C3=B6?=\n =?UTF-8?Q?=C3=BC_der_gefaltet_wurde?=", 212),
          "Long folded encoded subject.\n")
    write("enc-13-cyrillic", std("=?koi8-r?B?6dfBziDwxdTSz9c=?= <ivan@example.ru>", ME, "=?utf-8?B?0J/RgNC40LLQtdGC?=", 213),
          "KOI8-R name, UTF-8 subject.\n")
    write("enc-14-in-the-middle", std(ALICE, ME, "Re: =?UTF-8?Q?=C3=84nderung?= des Termins", 214), "Encoded word in the middle.\n")


def lists():
    def lst(name, n, subject, extra, frm="Carol <carol@lists.example.com>", rp="dev-bounces@lists.example.com",
            dt="me@example.com", to="dev@lists.example.com"):
        write(name, std(frm, to, subject, n, rp=rp, dt=dt, extra=extra), "A list message.\n\n-- \nUnsubscribe: mailto:dev-leave@lists.example.com\n")
    lst("list-01-listid", 301, "[dev] Release 1.2 planned",
        ["List-Id: Developers <dev.lists.example.com>", "List-Unsubscribe: <mailto:dev-leave@lists.example.com>",
         "List-Post: <mailto:dev@lists.example.com>", "Precedence: list"])
    lst("list-02-bulk", 302, "Weekly digest", ["Precedence: bulk", "List-Unsubscribe: <https://news.example/u?id=1>"],
        frm="Newsletter <newsletter@news.example>", rp="bounce-123@news.example", to="me@example.com")
    lst("list-03-mailman", 303, "[users] question about sieve",
        ["List-Id: \"Users list\" <users.lists.example.com>", "X-Mailman-Version: 2.1.29", "Sender: users-bounces@lists.example.com",
         "Errors-To: users-bounces@lists.example.com", "X-BeenThere: users@lists.example.com"],
        to="users@lists.example.com")
    lst("list-04-google-groups", 304, "[announce] new version",
        ["Mailing-list: list announce@googlegroups.example; contact announce+owners@googlegroups.example",
         "List-ID: <announce.googlegroups.example>", "Precedence: list"], to="announce@googlegroups.example")
    lst("list-05-subaddressed", 305, "[dev] patch review",
        ["List-Id: <dev.lists.example.com>"], dt="me+lists@example.com")
    lst("list-06-junk", 306, "cheap stuff", ["Precedence: junk"], frm="deals@shop.example", rp="deals@shop.example", to="me@example.com")
    lst("list-07-listid-no-brackets", 307, "odd list id", ["List-Id: plain.list.example.com"])
    lst("list-08-two-listid", 308, "two list ids", ["List-Id: <first.example.com>", "List-Id: <second.example.com>"])
    lst("list-09-github", 309, "Re: [owner/repo] Fix the parser (#42)",
        ["List-ID: owner/repo <repo.owner.github.example>", "List-Archive: https://github.example/owner/repo",
         "X-GitHub-Reason: mention", "Precedence: list"],
        frm="Someone <notifications@github.example>", rp="noreply@github.example", to="owner/repo <repo@noreply.github.example>")
    lst("list-10-sender-owner", 310, "owner message", ["Sender: owner-dev@lists.example.com"], rp="owner-dev@lists.example.com")


def auto():
    write("auto-01-auto-replied", std("bob@example.net", ME, "Out of Office: Hello there", 401,
                                      extra=["Auto-Submitted: auto-replied", "X-Autoreply: yes"]),
          "I am out of the office until Monday.\n")
    write("auto-02-auto-generated", std("Monitoring <monitor@corp.example>", ME, "ALERT: disk full on db1", 402,
                                        extra=["Auto-Submitted: auto-generated"]), "Disk / is 98% full.\n")
    write("auto-03-auto-submitted-no", std(ALICE, ME, "Personal, Auto-Submitted: no", 403,
                                           extra=["Auto-Submitted: no"]), "Explicitly not automatic.\n")
    write("auto-04-x-auto-response-suppress", std(BOB, ME, "Meeting notes", 404,
                                                  extra=["X-Auto-Response-Suppress: OOF, AutoReply"]), "Please do not auto-reply.\n")
    write("auto-05-auto-replied-params", std(BOB, ME, "Automatic reply: status", 405,
                                             extra=["Auto-Submitted: Auto-Replied (vacation); owner=\"bob\""]), "Vacation reply.\n")
    write("auto-06-x-loop", std(ALICE, ME, "Looping", 406, extra=["X-Loop: me@example.com"]), "Has an X-Loop header.\n")


def bounces():
    dsn = ("--DSN\nContent-Type: text/plain\n\nThis is the mail system at host mx.example.org.\n\nI'm sorry to have to inform you that your message could not\n"
           "be delivered to one or more recipients.\n\n<nobody@nowhere.example>: host not found\n\n"
           "--DSN\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.org\n\nFinal-Recipient: rfc822; nobody@nowhere.example\n"
           "Action: failed\nStatus: 5.1.2\n\n--DSN\nContent-Type: text/rfc822-headers\n\nFrom: me@example.com\nTo: nobody@nowhere.example\n"
           "Subject: my original\n\n--DSN--\n")
    write("bounce-01-dsn", std("MAILER-DAEMON@mx.example.org (Mail Delivery System)", ME, "Undelivered Mail Returned to Sender", 501,
                               rp="", extra=[MIME, "Content-Type: multipart/report; report-type=delivery-status; boundary=\"DSN\"",
                                             "Auto-Submitted: auto-replied"]), dsn)
    write("bounce-02-null-plain", std("postmaster@example.net", ME, "Delivery failure", 502, rp=""), "Your message was not delivered.\n")
    write("bounce-03-null-no-auto", std("Mail Delivery Subsystem <mailer-daemon@example.net>", ME, "Returned mail: see transcript", 503, rp=""),
          "----- Transcript of session follows -----\n550 5.1.1 User unknown\n")
    write("bounce-04-null-personal-from", std(ALICE, ME, "Read receipt", 504, rp="",
                                              extra=[MIME, "Content-Type: multipart/report; report-type=disposition-notification; boundary=\"MDN\""]),
          "--MDN\nContent-Type: text/plain\n\nYour message was displayed.\n--MDN\nContent-Type: message/disposition-notification\n\n"
          "Final-Recipient: rfc822; alice@example.org\nDisposition: manual-action/MDN-sent-manually; displayed\n--MDN--\n")
    write("bounce-05-null-sub", std("MAILER-DAEMON@mx.example.org", "me+shop@example.com", "Warning: could not send message for past 4 hours", 505,
                                    rp="", dt="me+shop@example.com"), "Still trying.\n")


def sub():
    write("sub-01-tag", std("Shop <orders@shop.example>", "me+shop@example.com", "Your order #12345 has shipped", 601,
                            dt="me+shop@example.com"), "Tracking: 1Z999.\n")
    write("sub-02-empty-detail", std(ALICE, "me+@example.com", "Empty detail", 602, dt="me+@example.com"), "Empty detail.\n")
    write("sub-03-double-plus", std(ALICE, "me+a+b@example.com", "Double plus", 603, dt="me+a+b@example.com"), "a+b detail.\n")
    write("sub-04-upper-tag", std(ALICE, "Me+Lists@Example.COM", "Upper case tag", 604, dt="Me+Lists@Example.COM"), "Mixed case.\n")
    write("sub-05-from-detail", std("alice+work@example.org", ME, "From a subaddress", 605, rp="alice+work@example.org"),
          "The sender uses a detail.\n")
    write("sub-06-dash-not-detail", std(ALICE, "me-tag@example.com", "Dash separator", 606, dt="me-tag@example.com"),
          "A dash is not the separator.\n")
    write("sub-07-to-tag-env-plain", std(ALICE, "me+newsletter@example.com", "Header tag, envelope plain", 607, dt="me@example.com"),
          "The To has a detail, the envelope has none.\n")
    write("sub-08-other-domain", std(ALICE, "me+spam@other.example", "Other domain", 608, dt="me+spam@other.example"),
          "Detail at another domain.\n")


def spam():
    def sp(name, n, score, status, extra=(), subject="Make money fast", frm="promo@spam.example"):
        h = ["X-Spam-Score: %s" % score] if score is not None else []
        if status:
            h.append("X-Spam-Status: %s" % status)
        write(name, std(frm, ME, subject, n, extra=h + list(extra)), "Buy now!\n")
    sp("spam-01-score-low", 701, "0.5", "No, score=0.5 required=5.0 tests=BAYES_00 autolearn=ham", subject="Lunch?", frm=ALICE)
    sp("spam-02-score-mid", 702, "4.9", "No, score=4.9 required=5.0 tests=HTML_MESSAGE,BAYES_50")
    sp("spam-03-score-threshold", 703, "5.0", "Yes, score=5.0 required=5.0 tests=BAYES_99")
    sp("spam-04-score-high", 704, "7.2", "Yes, score=7.2 required=5.0 tests=BAYES_99,URIBL_BLACK",
       extra=["X-Spam-Flag: YES", "X-Spam-Level: *******"])
    sp("spam-05-score-huge", 705, "15.3", "Yes, score=15.3\n\trequired=5.0 tests=BAYES_99,URIBL_BLACK,RCVD_IN_XBL\n\tautolearn=spam",
       extra=["X-Spam-Flag: YES", "X-Spam-Level: ***************"])
    sp("spam-06-score-negative", 706, "-1.2", "No, score=-1.2 required=5.0 tests=DKIM_VALID", subject="Newsletter", frm=BOB)
    sp("spam-07-no-score", 707, None, None, extra=["X-Spam-Flag: NO"], subject="Unscored", frm=ALICE)
    sp("spam-08-virus", 708, "2.0", "No, score=2.0", extra=["X-Virus-Status: Infected", "X-Virus-Scanned: ClamAV"], subject="Invoice.zip")
    sp("spam-09-integer-score", 709, "12", "Yes, score=12 required=5")
    sp("spam-10-subject-tag", 710, "9.9", "Yes, score=9.9", subject="***SPAM*** Cheap pills")


def headers():
    write("hdr-01-dup-subject", std(ALICE, ME, "First subject", 801, extra=["Subject: Second subject"]), "Two Subject fields.\n")
    write("hdr-02-dup-from", std(ALICE, ME, "Two From", 802, extra=["From: Bob <bob@example.net>"]), "Two From fields.\n")
    write("hdr-03-folded-subject", std(ALICE, ME, "This subject is\n folded over\n\tthree lines", 803), "Folded subject.\n")
    write("hdr-04-folded-to", std(BOB, "first@example.com,\n second@example.com,\n  me@example.com", "Folded To", 804), "Folded To.\n")
    h = std(None, ME, "Missing From", 805)
    write("hdr-05-no-from", h, "No From field.\n")
    write("hdr-06-no-subject", std(ALICE, ME, None, 806), "No Subject field.\n")
    write("hdr-07-no-date", std(ALICE, ME, "No date", 807, date=None), "No Date field.\n")
    write("hdr-08-empty-subject", std(ALICE, ME, "", 808), "Empty Subject.\n")
    write("hdr-09-case-names", env() + ["FROM: alice@example.org", "to: me@example.com", "SUBJECT: upper case names",
                                        "DaTe: Mon, 15 Jan 2024 10:30:00 +0100", "message-id: <msg0809@example.org>"],
          "Header names in odd case.\n")
    write("hdr-10-space-before-colon", env() + ["From: alice@example.org", "To: me@example.com", "Subject : space before colon",
                                                "Date: Mon, 15 Jan 2024 10:30:00 +0100"], "Obsolete syntax.\n")
    write("hdr-11-long-header", std(ALICE, ME, "Long header", 811, extra=["X-Long: " + " ".join("word%d" % i for i in range(400))]),
          "A 3 KB unfolded header line.\n")
    write("hdr-12-many-received", env() + ["Received: from hop%d.example.net by hop%d.example.net; Mon, 15 Jan 2024 10:%02d:00 +0000" % (i, i + 1, i)
                                           for i in range(12)] + ["From: alice@example.org", "To: me@example.com", "Subject: many hops",
                                                                  "Date: Mon, 15 Jan 2024 10:30:00 +0100"],
          "Twelve Received fields.\n")
    write("hdr-13-trailing-space", std(ALICE, ME, "trailing spaces   ", 813, extra=["X-Tab:\tvalue with tab", "X-Empty:"]),
          "Trailing whitespace and empty field.\n")
    write("hdr-14-x-headers", std(ALICE, ME, "Custom fields", 814,
                                  extra=["X-Category: work", "X-Category: urgent", "X-Label: blue", "X-Count: 17",
                                         "X-Tracking-ID: ABC-123-xyz"]), "Custom fields.\n")
    write("hdr-15-sender-resent", std(ALICE, ME, "Resent", 815,
                                      extra=["Sender: secretary@example.org", "Resent-From: bob@example.net",
                                             "Resent-To: me@example.com", "Resent-Date: Tue, 16 Jan 2024 08:00:00 +0000"]),
          "Sender and Resent fields.\n")
    write("hdr-16-to-display-only", std(ALICE, "\"Undisclosed\" <>", "Display name with empty address", 816), "Odd To.\n")
    write("hdr-17-quoted-local", std("\"john..doe\"@example.org", "\"me\"@example.com", "Quoted local part", 817,
                                     rp="john.doe@example.org"), "Quoted local part.\n")


def dates():
    write("date-01-plus0200", std(ALICE, ME, "Date +0200", 901, date="Wed, 31 Jul 2024 23:59:58 +0200"), "Summer time.\n")
    write("date-02-minus0700", std(ALICE, ME, "Date -0700", 902, date="Tue, 31 Dec 2024 20:15:30 -0700"), "New year in UTC.\n")
    write("date-03-gmt", std(ALICE, ME, "Date GMT", 903, date="Thu, 29 Feb 2024 12:00:00 GMT"), "Leap day.\n")
    write("date-04-obsolete-zone", std(ALICE, ME, "Date EST", 904, date="Fri, 1 Mar 2024 08:05:09 EST"), "Obsolete zone name.\n")
    write("date-05-no-weekday", std(ALICE, ME, "No weekday", 905, date="3 Jun 2024 07:00 +0000"), "No weekday, no seconds.\n")
    write("date-06-invalid", std(ALICE, ME, "Invalid date", 906, date="yesterday at noon"), "Unparseable date.\n")
    write("date-07-two-digit-year", std(ALICE, ME, "Two digit year", 907, date="Sun, 5 May 24 14:30:00 +0530"), "Obsolete year.\n")
    write("date-08-sunday-midnight", std(ALICE, ME, "Midnight", 908, date="Sun, 14 Jan 2024 00:00:00 +0000"), "Sunday midnight.\n")


def sizes():
    write("size-01-tiny", env() + ["From: a@example.org", "Subject: t"], "x\n")
    write("size-02-10k", std(ALICE, ME, "About 10 KB", 1002), lorem(140))
    write("size-03-100k", std(ALICE, ME, "About 100 KB", 1003), lorem(1400))
    write("size-04-300k", std(ALICE, ME, "About 300 KB", 1004, extra=[MIME, "Content-Type: multipart/mixed; boundary=\"BIG\""]),
          "--BIG\nContent-Type: text/plain\n\nBig attachment follows.\n--BIG\nContent-Type: application/octet-stream; name=big.bin\n"
          "Content-Transfer-Encoding: base64\n\n" + b64(bytes((i * 7) % 251 for i in range(220000))) + "\n--BIG--\n")
    write("size-05-1k-boundary", std(ALICE, ME, "Near 1K", 1005), lorem(9))


def noenv():
    def ne(name, n, frm, to, subject, extra=(), body="No envelope fields.\n"):
        h = std(frm, to, subject, n, extra=list(extra), rp=None)
        h = [x for x in h if not x.startswith(("Return-Path:", "Delivered-To:"))]
        write(name, h, body)
    ne("noenv-01-plain", 1101, ALICE, ME, "No envelope")
    ne("noenv-02-list", 1102, "carol@lists.example.com", "dev@lists.example.com", "[dev] no envelope list",
       extra=["List-Id: <dev.lists.example.com>"])
    ne("noenv-03-to-other", 1103, BOB, "someone@example.net", "Addressed elsewhere")
    ne("noenv-04-sub", 1104, ALICE, "me+shop@example.com", "Subaddress without envelope")
    ne("noenv-05-spam", 1105, "promo@spam.example", ME, "Offer", extra=["X-Spam-Score: 8.1", "X-Spam-Flag: YES"])
    ne("noenv-06-default-rcpt", 1106, "sender@example.org", "me@example.com", "From the default sender")


def roles():
    write("role-01-noreply", std("Shop <noreply@shop.example>", ME, "Your receipt", 1201), "Thank you for your purchase.\n")
    write("role-02-no-reply-dash", std("no-reply@service.example", ME, "Password reset", 1202), "Reset link inside.\n")
    write("role-03-postmaster", std("postmaster@example.org", ME, "Postmaster notice", 1203), "Mailbox quota.\n")
    write("role-04-request", std("dev-request@lists.example.com", ME, "Subscription confirmation", 1204), "Confirm.\n")
    write("role-05-donotreply", std("DoNotReply@bank.example", ME, "Statement available", 1205), "Your statement.\n")


def hostile():
    base = env() + ["From: alice@example.org", "To: me@example.com", "Date: Mon, 15 Jan 2024 10:30:00 +0100"]
    write("hostile-01-nul-body", base + ["Subject: NUL in body", "Message-ID: <h1@example.org>"],
          b"before\x00after\nsecret word: durian\n")
    write("hostile-02-nul-header", base + [b"Subject: NUL\x00 in header", "Message-ID: <h2@example.org>"], "Body.\n")
    write("hostile-03-latin1-header", base + ["Subject: Gr\xfc\xdfe raw latin1".encode("latin-1"),
                                              "X-Name: M\xfcller".encode("latin-1")], "8-bit header.\n")
    write("hostile-04-utf8-header", base + ["Subject: Grüße raw utf-8 ✓", "X-Name: Müller"], "Raw UTF-8 header.\n")
    write("hostile-05-long-line", base + ["Subject: very long line"], "A" * 100000 + "\nend\n")
    write("hostile-06-no-colon", env() + ["From: alice@example.org", "To: me@example.com", "This line has no colon",
                                          "Subject: after a line without colon"], "Body.\n")
    write("hostile-07-headers-only", None, (b"Return-Path: <alice@example.org>\r\nDelivered-To: me@example.com\r\n"
                                            b"From: alice@example.org\r\nTo: me@example.com\r\nSubject: no body, no blank line\r\n"), raw=True)
    write("hostile-08-bare-cr", None, (b"Return-Path: <alice@example.org>\r\nDelivered-To: me@example.com\r\nFrom: alice@example.org\r\n"
                                       b"Subject: bare\rCR inside\r\nTo: me@example.com\r\n\r\nbody\rwith bare CR\r\n"), raw=True)
    write("hostile-09-mixed-eol", None, (b"Return-Path: <alice@example.org>\r\nDelivered-To: me@example.com\nFrom: alice@example.org\r\n"
                                         b"Subject: mixed line endings\nTo: me@example.com\r\n\nbody\r\nline\n"), raw=True)
    write("hostile-10-bad-qp-subject", base + ["Subject: =?UTF-8?Q?broken=ZZ_qp=?="], "Broken Q encoding.\n")
    write("hostile-11-header-injection", base + ["Subject: hello\n\tworld\n X-Injected: no"], "A fold that looks like a field.\n")
    write("hostile-12-mbox-from", None, (b"From alice@example.org Mon Jan 15 10:30:00 2024\nReturn-Path: <alice@example.org>\n"
                                         b"Delivered-To: me@example.com\nFrom: alice@example.org\nSubject: mbox From_ line\n\nbody\n"), raw=True)
    write("hostile-13-no-headers", None, b"\nJust a body without any header.\n", raw=True)
    write("hostile-14-control-chars", base + ["Subject: bell\x07 and escape\x1b[31m red"], "Control characters.\n")
    write("hostile-15-huge-header-count", base + ["Subject: 300 fields"] + ["X-Field-%03d: v%d" % (i, i) for i in range(300)],
          "Many fields.\n")
    write("hostile-16-overlong-encoded", base + ["Subject: =?UTF-8?B?" + base64.b64encode(("x" * 600).encode()).decode() + "?="],
          "An encoded word longer than 75 characters.\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.endswith(".eml"):
            os.remove(os.path.join(OUT, f))
    plain()
    mime()
    enc()
    lists()
    auto()
    bounces()
    sub()
    spam()
    headers()
    dates()
    sizes()
    noenv()
    roles()
    hostile()
    print("%d messages in %s" % (_count, OUT))


if __name__ == "__main__":
    main()
