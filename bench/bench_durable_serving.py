"""What issue 16's hardening costs `modeltap serve` on the request path, before vs after.

`modeltap serve` with `durability: spool` and payload logging (request + response), one
worker, wrk on POST /score. Two versions of modeltap side by side in one run: BASE (a git
ref, default `main`, exported with `git archive`) and this tree's src/ (copied at start).
What changed on the request path: under spool the payload records are written before the
response's last chunk is released (item 1), JSON bodies are validated by simdjson and kept
as sent instead of orjson loads+dumps (item 3), the request id is read as UTF-8 (item 6),
a body-size limit middleware (smaller list), and "block" no longer waits per record after
a stall (item 5: a flag test on submit).

Cells: the trivial script with a small (112 B) and a large (248 kB: 37,000 numbers) JSON
body, and the collect script (two Collector.collect() per request, also spooled) with the
small body.
The repetition is the outer loop; inside it both versions run every cell, the order
alternating per rep. Each cell: a fresh server and workspace, 1 s of warm-up, then
`wrk -t1 -cC -dD`. Reported: requests/s and wrk's p50/p99 latency, median [min-max] over
the reps, and the after/before ratio of the medians. Every run then stops the server and
checks that each answered request has its request and response line (no loss).

A second table measures the same cells in process, without sockets or wrk (less exposed
to a noisy machine): the scoring app is called directly on one event loop, N requests,
and the process CPU time (user + system, all threads: the spool writes and the writer
thread included) is divided by N; a fresh process per version and cell.

usage:
  .venv/bin/python bench/bench_durable_serving.py                # 3 reps x 5 s per cell
  .venv/bin/python bench/bench_durable_serving.py --reps 1 --duration 2   # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
import serving_common as sc
from bench_serving import WrkRunner

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CELLS = (("trivial", "small"), ("trivial", "large"), ("collect", "small"))
COLLECT_SCRIPT = HERE / "score_trivial_collect.py"
TRIVIAL = 'def init():\n    pass\n\n\ndef run(data):\n    return {"ok": True}\n'
# The anchor's body.json (shared/bench-anchor/serving/) and a wrk script like its post.lua.
SMALL_BODY = (
    '{"data": {"col1": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], '
    '"col2": [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5]}}\n'
)
POST_LUA = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.body = f:read("*a")
f:close()
function done(summary, latency, requests)
  io.write(string.format(
    'RESULT {"requests": %d, "rps": %.1f, "p50_ms": %.3f, "p99_ms": %.3f, "errors": %d}\\n',
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.status + summary.errors.timeout))
end
"""


def deployment(script: str) -> str:
    custom = "    model_inputs: {enabled: 'True'}\n    model_outputs: {enabled: 'True'}\n"
    return (
        "name: blue\nendpoint_name: bench\n"
        f"code_configuration: {{code: code, scoring_script: {script}.py}}\n"
        "data_collector:\n  collections:\n"
        "    request: {enabled: 'True'}\n    response: {enabled: 'True'}\n"
        + (custom if script == "collect" else "")
        + "  modeltap: {durability: spool}\n"
    )


def make_app(work: Path) -> Path:
    """The app dir: scripts, deployments, bodies and wrk's script."""
    app = work / "app"
    (app / "code").mkdir(parents=True)
    (app / "code" / "trivial.py").write_text(TRIVIAL)
    shutil.copy(COLLECT_SCRIPT, app / "code" / "collect.py")
    (app / "post.lua").write_text(POST_LUA)
    (app / "small.json").write_text(SMALL_BODY)
    (app / "large.json").write_text(json.dumps({"data": list(range(37_000))}))  # 248 kB
    for script in ("trivial", "collect"):
        (app / f"{script}.yml").write_text(deployment(script))
    return app


def export_base(ref: str, work: Path) -> Path:
    """src/ of git ref `ref`, exported to work/base (its own modeltap version)."""
    dst = work / "base"
    dst.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, "src"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(dst)], input=archive.stdout, check=True)
    return dst / "src"


def run_cell(a, app: Path, src: Path, script: str, body: str, ws: Path) -> dict:
    port = sc.free_port()
    env = sc.child_env(src)
    os.environ["BODY_FILE"] = f"{body}.json"  # read by post.lua in wrk
    cmd = [sys.executable, "-m", "modeltap.cli", "serve", "-f", str(app / f"{script}.yml")]
    cmd += ["--port", str(port), "--workspace", str(ws), "--log-level", "warning"]
    log = (ws.parent / f"{ws.name}.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=app, env=env, stdout=log, stderr=log)
    try:
        if not sc.wait_port(proc, port):
            raise RuntimeError(f"serve did not start: {ws.parent / (ws.name + '.log')}")
        warm, _, text = WrkRunner.run(app, port, a.conns, 1)
        if warm is None:
            raise RuntimeError(f"warm-up failed: {text[-500:]}")
        res, _, text = WrkRunner.run(app, port, a.conns, a.duration)
        if res is None:
            raise RuntimeError(f"wrk failed: {text[-500:]}")
    finally:
        code, took, killed = sc.stop_tree(proc)
        log.close()
    answered = warm["requests"] + res["requests"]
    lines = {c: sc.count_lines(sc.jsonl_files(ws, c)) for c in ("request", "response")}
    # wrk does not count requests in flight when it stops: at most one per connection.
    lost = any(n < answered for n in lines.values()) or code != 0 or bool(killed)
    if res["errors"]:
        raise RuntimeError(f"wrk saw {res['errors']} errors: {text[-500:]}")
    return {**res, "answered": answered, "lines": lines, "lost": lost, "stop_s": took}


MICRO = """
import asyncio, sys, tempfile, time
from pathlib import Path
import modeltap
from modeltap.serving.app import create_app
from modeltap.serving.scoring import ScoreScript

app_dir, script, body_name, n = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
cols = ["request", "response"] + (["model_inputs", "model_outputs"] if script == "collect" else [])
modeltap.configure(workspace=tempfile.mkdtemp(), endpoint="bench", deployment="blue",
                   collections=cols, durability="spool")
body = (app_dir / f"{body_name}.json").read_bytes()
ss = ScoreScript(app_dir / "code" / f"{script}.py")
ss.load()
app = create_app(ss, configure=False)
scope = {"type": "http", "method": "POST", "path": "/score", "query_string": b"",
         "headers": [(b"content-type", b"application/json"),
                     (b"content-length", str(len(body)).encode())]}

async def drive(count):
    async def send(message):
        pass
    for _ in range(count):
        done = False
        async def receive():
            nonlocal done
            if done:
                return {"type": "http.disconnect"}
            done = True
            return {"type": "http.request", "body": body, "more_body": False}
        await app(dict(scope, headers=list(scope["headers"])), receive, send)

loop = asyncio.new_event_loop()
loop.run_until_complete(drive(min(n, 300)))
modeltap.flush()
t0 = time.process_time()
loop.run_until_complete(drive(n))
modeltap.flush()
print((time.process_time() - t0) / n * 1e6)
modeltap.shutdown()
"""


def micro_cell(app: Path, src: Path, script: str, body: str, n: int) -> float:
    """CPU microseconds per request, in process (see the module's docstring)."""
    out = subprocess.run(
        [sys.executable, "-c", MICRO, str(app), script, body, str(n)],
        env=sc.child_env(src),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default="main", help="git ref measured as 'before'")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="seconds of wrk per cell")
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--micro-n", type=int, default=5000, help="requests per in-process run")
    ap.add_argument(
        "--cells",
        default=",".join(f"{s}:{b}" for s, b in CELLS),
        help="which of trivial:small, trivial:large, collect:small",
    )
    ap.add_argument("--results", type=Path, default=Path("/tmp/modeltap-bench/durable.jsonl"))
    a = ap.parse_args()
    cells = [tuple(c.split(":")) for c in a.cells.split(",")]
    a.results.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    run_id = sc.new_run_id()
    work = Path(tempfile.mkdtemp(prefix="bench-durable-"))
    app = make_app(work)
    versions = {"before": export_base(a.base, work), "after": sc.copy_src(work)}
    runs: dict[tuple[str, str, str], list[dict]] = {}
    for rep in range(a.reps):
        order = list(versions) if rep % 2 == 0 else list(reversed(versions))
        for script, body in cells:
            for name in order:
                ws = work / f"ws-{rep}-{script}-{body}-{name}"
                r = run_cell(a, app, versions[name], script, body, ws)
                shutil.rmtree(ws, ignore_errors=True)
                runs.setdefault((script, body, name), []).append(r)
                sc.log(
                    f"rep {rep} {script}/{body} {name}: {r['rps']:.0f} req/s "
                    f"p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms"
                    + (" LOST RECORDS" if r["lost"] else "")
                )
                r["cpu_us"] = micro_cell(app, versions[name], script, body, a.micro_n)
                sc.log(f"rep {rep} {script}/{body} {name}: in process {r['cpu_us']:.0f} us CPU")
                with open(a.results, "a") as f:
                    row = {"run_id": run_id, "rep": rep, "script": script, "body": body}
                    f.write(json.dumps({**row, "version": name, **r}) + "\n")
    meta = {
        "run_id": run_id,
        "base": a.base,
        "command": " ".join(sys.argv),
        **sc.machine_info(),
        **sc.versions(sys.executable, None, ["uvicorn", "starlette", "orjson", "pysimdjson"]),
    }
    rows, micro = [], []
    for script, body in cells:
        b, n = runs[(script, body, "before")], runs[(script, body, "after")]
        cell = [f"{script}, {body} body"]
        for key, fmt in (("rps", "{:.0f}"), ("p50_ms", "{:.2f}"), ("p99_ms", "{:.2f}")):
            before, after = [r[key] for r in b], [r[key] for r in n]
            cell += [
                sc.agg(before, fmt),
                sc.agg(after, fmt),
                sc.ratio(sc.med(after), sc.med(before)),
            ]
        cell.append("yes" if any(r["lost"] for r in b + n) else "none")
        rows.append(cell)
        before, after = [r["cpu_us"] for r in b], [r["cpu_us"] for r in n]
        micro.append(
            [
                f"{script}, {body} body",
                sc.agg(before),
                sc.agg(after),
                sc.ratio(sc.med(after), sc.med(before)),
            ]
        )
    print(
        f"Run {run_id}: modeltap serve, 1 worker, durability spool, request+response logging; "
        f"wrk -t1 -c{a.conns} -d{a.duration}s; {a.reps} reps interleaved, median [min-max]. "
        f"before = {a.base}, after = this tree.\n"
    )
    print(common.machine_line(meta, ("cpu_model", "nproc", "kernel", "python", "modeltap_commit")))
    header = ["cell", "req/s before", "req/s after", "ratio", "p50 ms before", "p50 ms after"]
    header += ["ratio", "p99 ms before", "p99 ms after", "ratio", "records lost"]
    print(sc.table(header, rows))
    print(f"In process, CPU per request (all threads), {a.micro_n} requests per run:\n")
    print(sc.table(["cell", "µs before", "µs after", "ratio"], micro))
    sc.finish_run(a.results, "durable-serving", meta, started)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
