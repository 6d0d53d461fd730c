#!/usr/bin/env python3
"""A second ManageSieve client (RFC 5804), beside sieve-connect, for tests/managesieve.rs:
Python's own TLS (implicit TLS from the first byte, checked against a CA), literals sent as
{N+}, literals read back, and the commands sieve-connect never sends (RENAMESCRIPT,
HAVESPACE, NOOP with a tag, UNAUTHENTICATE). Prints one line per step; exits 1 at the first
answer that is not what the RFC says it must be.

usage: client.py HOST PORT CAFILE USER PASSWORD"""

import base64
import socket
import ssl
import sys


class Conn:
    def __init__(self, sock):
        self.f = sock.makefile("rwb")

    def send(self, data: bytes):
        self.f.write(data)
        self.f.flush()

    def answer(self):
        """Lines up to the final OK/NO/BYE; literals read whole. (lines, final line)."""
        lines = []
        while True:
            line = self.f.readline()
            if not line:
                return lines, "<closed>"
            text = line.rstrip(b"\r\n")
            if text.endswith(b"}") and b"{" in text:
                n = int(text[text.rindex(b"{") + 1:-1].rstrip(b"+"))
                lines.append(self.f.read(n).decode())
                continue
            text = text.decode()
            if text.split(" ")[0] in ("OK", "NO", "BYE"):
                return lines, text
            if text:  # the line end after a literal
                lines.append(text)

    def cmd(self, line: str, literal: str = None):
        data = line.encode()
        if literal is not None:
            raw = literal.encode()
            data += b" {%d+}\r\n" % len(raw) + raw
        self.send(data + b"\r\n")
        return self.answer()


def expect(what, got, ok):
    print(f"{what}: {got}")
    if not ok:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def main():
    host, port, cafile, user, password = sys.argv[1:6]
    ctx = ssl.create_default_context(cafile=cafile)
    sock = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=30),
                           server_hostname=host)
    c = Conn(sock)
    caps, final = c.answer()
    expect("greeting", final, final.startswith("OK"))
    expect("no STARTTLS on a TLS port", caps, not any(l.startswith('"STARTTLS"') for l in caps))
    expect("PLAIN offered over TLS", caps, any(l.startswith('"SASL"') and "PLAIN" in l for l in caps))
    plain = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    _, final = c.cmd(f'AUTHENTICATE "PLAIN" "{plain}"')
    expect("login", final, final.startswith("OK"))
    script = 'require "fileinto";\r\n# a "quoted" word, a {brace}, ünïcode\r\nkeep;\r\n'
    _, final = c.cmd('PUTSCRIPT "py"', script)
    expect("PUTSCRIPT as a {N+} literal", final, final.startswith("OK"))
    lines, final = c.cmd('GETSCRIPT "py"')
    expect("GETSCRIPT gives the same bytes", final, final.startswith("OK") and lines == [script])
    _, final = c.cmd('HAVESPACE "py" 10')
    expect("HAVESPACE", final, final.startswith("OK"))
    _, final = c.cmd('HAVESPACE "py" 999999999')
    expect("HAVESPACE too big", final, final.startswith("NO (QUOTA/MAXSIZE)"))
    _, final = c.cmd('RENAMESCRIPT "py" "renamed"')
    expect("RENAMESCRIPT", final, final.startswith("OK"))
    lines, final = c.cmd("LISTSCRIPTS")
    expect("LISTSCRIPTS", lines, final.startswith("OK") and '"renamed"' in lines)
    _, final = c.cmd('NOOP "t-42"')
    expect("NOOP echoes its tag", final, final.startswith('OK (TAG "t-42")'))
    _, final = c.cmd('DELETESCRIPT "renamed"')
    expect("DELETESCRIPT", final, final.startswith("OK"))
    _, final = c.cmd("UNAUTHENTICATE")
    expect("UNAUTHENTICATE", final, final.startswith("OK"))
    _, final = c.cmd("LISTSCRIPTS")
    expect("nothing after UNAUTHENTICATE", final, final.startswith("NO"))
    _, final = c.cmd("LOGOUT")
    expect("LOGOUT", final, final.startswith("OK"))


if __name__ == "__main__":
    main()
