"""Raw per-request latency at one connection, without wrk's coordinated-omission correction.

wrk 4.1 "corrects" its latency histogram before it reports (stats_correct in wrk.c: every sample
longer than twice the mean interval gets synthetic samples added below it), so one 40 ms stall
at 3,000 req/s adds ~120 samples and can move p99 by itself.  That is what a client sending at a
constant rate would see, and it is what post.lua reports (as the anchor did).  This probe sends
body.json with POST /score one request at a time on one connection (reconnecting when the server
answers Connection: close, as azmlinfsrv does; connect time is then included) and reports the
raw distribution, so a high wrk p99 can be told apart from many slow requests.

usage: python serving_probe.py --port P --body body.json --duration 5   -> one JSON line
"""

from __future__ import annotations

import argparse
import json
import socket
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--body", required=True)
    ap.add_argument("--duration", type=float, default=5)
    a = ap.parse_args()
    with open(a.body, "rb") as f:
        body = f.read()
    req = (
        b"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    ) + body
    lat = []
    statuses = {}
    reconnects = 0
    s = None
    buf = b""
    t_end = time.perf_counter() + a.duration
    t_start = time.perf_counter()
    while time.perf_counter() < t_end:
        t0 = time.perf_counter_ns()
        if s is None:
            s = socket.create_connection(("127.0.0.1", a.port))
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buf = b""
            reconnects += 1
        s.sendall(req)
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError("server closed the connection mid-response")
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        length, close = 0, False
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            k = k.strip().lower()
            if k == b"content-length":
                length = int(v)
            elif k == b"connection" and v.strip().lower() == b"close":
                close = True
        while len(rest) < length:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        buf = rest[length:]
        lat.append(time.perf_counter_ns() - t0)
        st = int(head[9:12])
        statuses[st] = statuses.get(st, 0) + 1
        if close:
            s.close()
            s = None
    elapsed = time.perf_counter() - t_start
    if s is not None:
        s.close()
    lat.sort()
    n = len(lat)

    def pct(p):
        return round(lat[min(n - 1, int(p / 100 * n))] / 1e6, 3)

    over = {f"over_{ms}ms": sum(1 for x in lat if x > ms * 1e6) for ms in (5, 10, 20)}
    print(
        json.dumps(
            {
                "requests": n,
                "rps": round(n / elapsed, 1),
                "p50_ms": pct(50),
                "p90_ms": pct(90),
                "p99_ms": pct(99),
                "p999_ms": pct(99.9),
                "max_ms": round(lat[-1] / 1e6, 3),
                "mean_ms": round(sum(lat) / n / 1e6, 3),
                "time_in_over_10ms_pct": round(
                    sum(x for x in lat if x > 10e6) / 1e9 / elapsed * 100, 1
                ),
                **over,
                "statuses": statuses,
                "connections": reconnects,
            }
        )
    )


if __name__ == "__main__":
    main()
