"""Load generator for bench_agent.py: the anchor's loadgen.py, reading whole responses.

The anchor's loadgen.py (shared/bench-anchor/loadgen.py) reads each response only up to the end
of its headers, which is right for the anchor receiver (empty body) but not for a server that
answers with a body (the modeltap agent answers {"status":"accepted"}): the body would be left in
the stream and the next response would be misread.  This file imports the anchor's request
builder (`build_request`: SDK headers content-type application/json, ce-type
azureml.inference.model_inputs, ce-time, ce-x-request-id, ce-agent, ce-collect-data-type,
ce-model-version, trace-id, and the frame's to_json(orient="records") as the body) and its
`cpu_seconds`, and replaces the worker with one that reads Content-Length bytes of body and
counts every status code.  Each connection finishes the request it has in flight when time is up,
so the counts are exact: every request sent was answered and counted.

usage: python serving_loadgen.py --port P --shape 1x10 --conns 16 --duration 5 [--pid SERVER_PID]
prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

ANCHOR = Path(__file__).resolve().parent.parent.parent / "shared" / "bench-anchor"
sys.path.insert(0, str(ANCHOR))
import uvloop  # noqa: E402
from loadgen import build_request, cpu_seconds  # noqa: E402  (the anchor's)


async def worker(host, port, req, deadline, counts):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            close = False
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                k = k.strip().lower()
                if k == b"content-length":
                    length = int(v.strip())
                elif k == b"connection" and v.strip().lower() == b"close":
                    close = True
            if length:
                await reader.readexactly(length)
            counts[status] = counts.get(status, 0) + 1
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
    finally:
        writer.close()


async def main(a):
    req = build_request(a.shape, False)
    counts: dict[int, int] = {}
    c0 = cpu_seconds(a.pid) if a.pid else 0.0
    own0 = sum(os.times()[:2])
    t0 = time.perf_counter()
    deadline = t0 + a.duration
    results = await asyncio.gather(
        *(worker(a.host, a.port, req, deadline, counts) for _ in range(a.conns)),
        return_exceptions=True,
    )
    dt = time.perf_counter() - t0
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    ok = counts.get(200, 0)
    res = {
        "shape": a.shape,
        "conns": a.conns,
        "duration_s": round(dt, 3),
        "status_counts": {str(k): v for k, v in sorted(counts.items())},
        "ok200": ok,
        "answered": sum(counts.values()),
        "req_per_s": round(ok / dt, 1),
        "request_bytes": len(req),
        "MB_per_s": round(ok * len(req) / dt / 1e6, 1),
        "server_cpu_pct": round((cpu_seconds(a.pid) - c0) / dt * 100) if a.pid else None,
        "loadgen_cpu_pct": round((sum(os.times()[:2]) - own0) / dt * 100),
        "connection_errors": errors[:3],
        "connection_error_count": len(errors),
    }
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--shape", default="1x10")
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--pid", type=int, help="server PID, to report its CPU use")
    uvloop.run(main(ap.parse_args()))
