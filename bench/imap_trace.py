#!/usr/bin/env python3
"""A logging IMAP proxy, to see where an IMAP client's wall time goes (diagnostics only).

    python3 bench/imap_trace.py --listen 11144 --to 11143 --out trace.json &
    <point the client at port 11144, run it>, then kill the proxy (SIGTERM) -> trace.json

For every command: verb, when it was sent, when its tagged reply arrived (client-visible
latency) and Dovecot's own "(a + b + c secs)" from the tagged reply. The summary splits the
session into time with a command outstanding at the server ("waiting for IMAP") and time
with none ("the client is busy": parsing, plugins, state store, fsync...). The proxy adds a
little latency per round trip and some CPU; compare runs through it with each other only.
"""

import argparse
import asyncio
import json
import re
import signal
import time

TIMING = re.compile(rb"\(([\d.]+) \+ ([\d.]+)(?: \+ ([\d.]+))? secs\)")


class Session:
    def __init__(self, sid):
        self.sid = sid
        self.t_open = time.perf_counter()
        self.t_close = None
        self.pending = {}  # tag -> (verb, t_sent)
        self.done = []  # (verb, t_sent, t_done, server_secs, bytes_in)
        self.bytes_in = 0


class Proxy:
    def __init__(self, a):
        self.a = a
        self.sessions = []

    async def handle(self, creader, cwriter):
        s = Session(len(self.sessions) + 1)
        self.sessions.append(s)
        sreader, swriter = await asyncio.open_connection(self.a.host, self.a.to)
        await asyncio.gather(self.c2s(s, creader, swriter), self.s2c(s, sreader, cwriter))
        s.t_close = time.perf_counter()
        cwriter.close()

    async def c2s(self, s, r, w):
        buf = b""
        literal = 0
        while True:
            data = await r.read(1 << 16)
            if not data:
                w.close()
                return
            now = time.perf_counter()
            w.write(data)
            buf += data
            while True:
                if literal:
                    take = min(literal, len(buf))
                    buf, literal = buf[take:], literal - take
                    if literal:
                        break
                i = buf.find(b"\r\n")
                if i < 0:
                    break
                line, buf = buf[:i], buf[i + 2:]
                m = re.match(rb"([A-Za-z0-9.]+) ((?:UID )?[A-Za-z]+)", line)
                if m and m.group(1) not in s.pending and not line.upper().startswith(b"DONE"):
                    s.pending[m.group(1)] = (m.group(2).decode().upper(), now)
                lm = re.search(rb"\{(\d+)\+?\}$", line)
                if lm:
                    literal = int(lm.group(1))
            await w.drain()

    async def s2c(self, s, r, w):
        buf = bytearray()
        pos = 0
        literal = 0
        while True:
            data = await r.read(1 << 20)
            if not data:
                w.close()
                return
            now = time.perf_counter()
            w.write(data)
            s.bytes_in += len(data)
            buf += data
            while True:
                if literal:
                    take = min(literal, len(buf) - pos)
                    pos += take
                    literal -= take
                    if literal:
                        break
                i = buf.find(b"\r\n", pos)
                if i < 0:
                    break
                line = bytes(buf[pos:i])
                pos = i + 2
                tag = line.split(b" ", 1)[0]
                if tag in s.pending:
                    verb, t0 = s.pending.pop(tag)
                    m = TIMING.search(line)
                    server = sum(float(x) for x in m.groups() if x) if m else None
                    s.done.append((verb, t0, now, server))
                lm = re.search(rb"\{(\d+)\}$", line)
                if lm:
                    literal = int(lm.group(1))
            if pos > 1 << 20:
                del buf[:pos]
                pos = 0
            await w.drain()

    def summary(self):
        out = []
        for s in self.sessions:
            end = s.t_close or time.perf_counter()
            verbs = {}
            for verb, t0, t1, server in s.done:
                v = verbs.setdefault(verb, {"count": 0, "latency": 0.0, "server": 0.0})
                v["count"] += 1
                v["latency"] += t1 - t0
                v["server"] += server or 0.0
            # time with at least one command outstanding
            spans = sorted((t0, t1) for _, t0, t1, _ in s.done)
            busy, cur0, cur1 = 0.0, None, None
            for t0, t1 in spans:
                if cur1 is None or t0 > cur1:
                    if cur1 is not None:
                        busy += cur1 - cur0
                    cur0, cur1 = t0, t1
                else:
                    cur1 = max(cur1, t1)
            if cur1 is not None:
                busy += cur1 - cur0
            for v in verbs.values():
                v["latency"] = round(v["latency"], 4)
                v["server"] = round(v["server"], 4)
            out.append({"session": s.sid, "wall": round(end - s.t_open, 4),
                        "waiting_for_imap": round(busy, 4), "client_side": round(end - s.t_open - busy, 4),
                        "bytes_from_server": s.bytes_in, "commands": verbs})
        return out


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", type=int, default=11144)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--to", type=int, default=11143)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    p = Proxy(a)
    server = await asyncio.start_server(p.handle, "127.0.0.1", a.listen)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    with open(a.out, "w") as f:
        json.dump(p.summary(), f, indent=1)


if __name__ == "__main__":
    asyncio.run(main())
