"""In-process micro benchmark: CPU per request of the agent app, of payload logging, and
of collect() (a small frame encoded at once vs snapshotted for the writer).

No sockets and no HTTP server: the ASGI apps are called directly on one event loop, so
the figures are only modeltap's own work (app code + middleware + the writer thread,
which shares the GIL). Process CPU time (all threads) per request, best of --reps.

    PYTHONPATH=src .venv/bin/python bench/serving_micro.py [--n 20000] [--reps 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ANCHOR = Path(__file__).resolve().parents[2] / "shared" / "bench-anchor"


def _frame_body(shape: str) -> bytes:
    sys.path.insert(0, str(ANCHOR))
    from frames import make_frame  # type: ignore[import-not-found]

    body: bytes = make_frame(shape).to_json(orient="records").encode()
    return body


async def _drive(app: Any, scope: dict[str, Any], body: bytes, n: int) -> None:
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    for _ in range(n):
        done = False

        async def receive() -> dict[str, Any]:
            nonlocal done
            if done:
                return {"type": "http.disconnect"}
            done = True
            return {"type": "http.request", "body": body, "more_body": False}

        await app(dict(scope, headers=list(scope["headers"])), receive, send)
        sent.clear()


def _measure(app: Any, scope: dict[str, Any], body: bytes, n: int, flush: Any) -> float:
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_drive(app, scope, body, min(n, 500)))  # warm-up
        flush()
        t0 = time.process_time()
        loop.run_until_complete(_drive(app, scope, body, n))
        flush()
        return (time.process_time() - t0) / n * 1e6
    finally:
        loop.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default="agent,serve,collect")
    a = ap.parse_args()
    import modeltap
    from modeltap import runtime

    tmp = Path(tempfile.mkdtemp(prefix="mt-micro-"))
    only = a.only.split(",")
    if "agent" in only:
        from modeltap.serving.agent import AgentApp

        rt = runtime.configure(
            workspace=tmp / "ws-agent",
            endpoint="ep",
            deployment="blue",
            collections=["model_inputs"],
            flush_interval=60,
        )
        app = AgentApp(rt)
        for shape, n in (("1x10", a.n), ("1000x20", max(50, a.n // 100))):
            body = _frame_body(shape)
            headers = [
                (b"host", b"127.0.0.1:50011"),
                (b"accept", b"*/*"),
                (b"content-type", b"application/json"),
                (b"trace-id", b"0b9c6e4e-6a4b-4c55-9d4b-2d0d2f6c1a11"),
                (b"ce-time", str(int(time.time())).encode()),
                (b"ce-type", b"azureml.inference.model_inputs"),
                (b"ce-collect-data-type", b"pandas.core.frame.DataFrame"),
                (b"ce-x-request-id", b"7d1f0a52-1f7e-4d0e-a1f2-3c0a7b6e9d21"),
                (b"ce-agent", b"azureml-ai-monitoring/1.0.0"),
                (b"ce-model-version", b"default"),
                (b"content-length", str(len(body)).encode()),
            ]
            scope = {
                "type": "http",
                "method": "POST",
                "path": "/modeldata/log",
                "headers": headers,
                "query_string": b"",
            }
            runs = [_measure(app, scope, body, n, rt.pipeline.flush) for _ in range(a.reps)]
            print(
                f"agent {shape}: {min(runs):8.1f} us CPU/request (runs {[round(r, 1) for r in runs]})"  # noqa: E501
            )
        modeltap.shutdown()
    if "serve" in only:
        from modeltap.serving.app import create_app
        from modeltap.serving.scoring import ScoreScript

        script = tmp / "score.py"
        script.write_text("def init():\n    pass\n\n\ndef run(data):\n    return {'ok': True}\n")
        body = (ANCHOR / "serving" / "body.json").read_bytes()
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/score",
            "query_string": b"",
            "headers": [
                (b"host", b"127.0.0.1:18001"),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
        results = {}
        drain = None
        for cfg, cols in (
            ("off", []),
            ("log", ["request", "response"]),
            ("log-relay", ["request", "response"]),
        ):
            if cfg == "log-relay":  # frames go to another process that only receives them
                from modeltap.serving.relay import ENV_RELAY_SOCKET

                relay = tmp / "relay.sock"
                drain = _drain(relay)
                os.environ[ENV_RELAY_SOCKET] = str(relay)
            if cols:
                rt = runtime.configure(
                    workspace=tmp / f"ws-{cfg}",
                    endpoint="ep",
                    deployment="blue",
                    collections=cols,
                    flush_interval=60,
                )
                flush = rt.pipeline.flush
            else:
                runtime._runtime = None
                os.environ.pop(runtime.ENV_DEPLOYMENT, None)
                flush = lambda: None  # noqa: E731
            ss = ScoreScript(str(script), None)
            ss.load()
            app = create_app(ss, configure=False)
            results[cfg] = [_measure(app, scope, body, a.n, flush) for _ in range(a.reps)]
            print(
                f"serve trivial logging {cfg}: {min(results[cfg]):8.1f} us CPU/request "
                f"(runs {[round(r, 1) for r in results[cfg]]})"
            )
            if cols:
                modeltap.shutdown()
        if drain is not None:
            drain.kill()
        for cfg in ("log", "log-relay"):
            cost = min(results[cfg]) - min(results["off"])
            print(f"serve logging cost ({cfg}): {cost:.1f} us/request")
    if "collect" in only:
        _collect(tmp / "ws-collect", a.n, a.reps)


def _drain(path: Path) -> Any:
    """A process that receives (and drops) relay datagrams on `path`."""
    import subprocess

    code = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)\n"
        "s.bind(sys.argv[1])\n"
        "while True:\n"
        "    s.recv(1 << 17)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)])
    while not path.exists():
        time.sleep(0.01)
    return proc


def _collect(workspace: Path, n: int, reps: int) -> None:
    """What collect() costs: per call on a frame, and per request of bench/score_trivial_collect.py
    (two collects) with the writer running, with and without tabular.encode_small."""
    import json
    import timeit

    import pandas as pd

    import modeltap
    from modeltap import Collector, runtime, tabular

    body = (ANCHOR / "serving" / "body.json").read_text()
    reused = pd.DataFrame(json.loads(body)["data"])

    def fresh() -> Any:  # a frame made per request, as the pandas score.py does
        return pd.DataFrame(json.loads(body)["data"])

    def best(stmt: Any, number: int) -> float:
        return min(timeit.repeat(stmt, number=number, repeat=reps)) / number * 1e6

    build = best(fresh, n // 4)
    for name, fn in (("encode_small", tabular.encode_small), ("snapshot", tabular.snapshot)):
        print(
            f"collect: {name:12s} reused 10x2 frame {best(lambda fn=fn: fn(reused), n):6.1f} us, "
            f"fresh frame {best(lambda fn=fn: fn(fresh()), n // 4) - build:6.1f} us"
        )
    rt = runtime.configure(
        workspace=workspace,
        endpoint="ep",
        deployment="blue",
        collections=["model_inputs", "model_outputs"],
        flush_interval=60,
    )
    inputs, outputs = Collector(name="model_inputs"), Collector(name="model_outputs")
    output_df = pd.DataFrame({"ok": [True]})
    encode_small = tabular.encode_small
    for mode in ("snapshot", "encode_small"):
        tabular.encode_small = encode_small if mode == "encode_small" else (lambda obj: None)
        runs = []
        for _ in range(reps):
            t0 = time.process_time()
            for _ in range(n // 2):
                outputs.collect(output_df, inputs.collect(reused))
            rt.pipeline.flush()
            runs.append((time.process_time() - t0) / (n // 2) * 1e6)
        print(
            f"collect: 2 collects per request, {mode:12s} {min(runs):6.1f} us CPU/request "
            f"(caller + writer; runs {[round(r, 1) for r in runs]})"
        )
    tabular.encode_small = encode_small
    modeltap.shutdown()


if __name__ == "__main__":
    main()
