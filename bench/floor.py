#!/usr/bin/env python3
"""The floor: one `UID FETCH 1:* (UID FLAGS BODY.PEEK[])` of the whole INBOX over plaintext IMAP.

    python3 bench/floor.py [--header] [--port 11143] [--user alice@example.test]

Times only the FETCH command (from sending it to its tagged OK), not connect/LOGIN/SELECT.
A minimal client on a raw socket: it reads lines and literals ({n}) and counts them, nothing
is parsed beyond that, so it measures Dovecot + loopback, not a client library. Prints one
JSON line: seconds, messages (FETCH responses), bytes (literal bytes received), wire bytes.
--header fetches BODY.PEEK[HEADER] instead (what mailpipe fetches for headers-only plugins).
"""

import argparse
import json
import socket
import time


class Conn:
    def __init__(self, host, port):
        self.s = socket.create_connection((host, port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pos = 0
        self.wire = 0
        self.n = 0

    def _fill(self):
        if self.pos > 1 << 20:
            del self.buf[:self.pos]
            self.pos = 0
        chunk = self.s.recv(1 << 20)
        if not chunk:
            raise EOFError("server closed the connection")
        self.wire += len(chunk)
        self.buf += chunk

    def line(self):
        while True:
            i = self.buf.find(b"\r\n", self.pos)
            if i >= 0:
                out = bytes(self.buf[self.pos:i])
                self.pos = i + 2
                return out
            self._fill()

    def skip(self, n):
        while len(self.buf) - self.pos < n:
            n -= len(self.buf) - self.pos
            self.pos = len(self.buf)
            self._fill()
        self.pos += n

    def cmd(self, text):
        """Send a command; return (untagged response count, literal bytes, tagged line)."""
        self.n += 1
        tag = b"b%d" % self.n
        self.s.sendall(tag + b" " + text.encode() + b"\r\n")
        responses = literal = 0
        while True:
            line = self.line()
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(line.decode(errors="replace"))
                return responses, literal, line
            if line.startswith(b"* "):
                responses += 1
            # one response may carry several literals: "... {123}\r\n<123 bytes> ... {45}"
            while line.endswith(b"}") and b"{" in line:
                n = int(line[line.rindex(b"{") + 1:-1].rstrip(b"+"))
                self.skip(n)
                literal += n
                line = self.line()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=11143)
    ap.add_argument("--user", default="alice@example.test")
    ap.add_argument("--password", default="secret-alice")
    ap.add_argument("--mailbox", default="INBOX")
    ap.add_argument("--header", action="store_true")
    a = ap.parse_args()
    c = Conn(a.host, a.port)
    c.line()  # greeting
    c.cmd('LOGIN "%s" "%s"' % (a.user, a.password))
    c.cmd("SELECT %s" % a.mailbox)
    part = "BODY.PEEK[HEADER]" if a.header else "BODY.PEEK[]"
    wire0 = c.wire
    t0 = time.perf_counter()
    responses, literal, _ = c.cmd("UID FETCH 1:* (UID FLAGS %s)" % part)
    dt = time.perf_counter() - t0
    wire = c.wire - wire0
    c.cmd("LOGOUT")
    print(json.dumps({"seconds": round(dt, 4), "messages": responses, "bytes": literal, "wire_bytes": wire,
                      "part": part}))


if __name__ == "__main__":
    main()
