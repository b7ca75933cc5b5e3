"""Page render times of `modeltap ui` on the read-bench collections (target: < 300 ms a page).

The collections are bench/gen_collections.py's (the same files bench_read.py reads: exact
R4.2 lines, 48 hourly partitions, 24 files each, 1 GB by default). A real `modeltap ui`
process serves them on 127.0.0.1; every page is fetched whole over HTTP with httpx, so a
time is the server's work plus one local round trip. Side by side, in the same run, the
work a page avoids: summarizing the collection exactly (what `modeltap assets list` does:
every file read) and loading it whole (`modeltap.read.load`), each in a fresh process.

usage:
  .venv/bin/python bench/bench_ui.py                     # 1x10 and 10x20 at 1 GB, 3 reps x 5
  .venv/bin/python bench/bench_ui.py --quick             # 200 MB, 1 rep x 3
  .venv/bin/python bench/bench_ui.py --shapes 1x10 --reps 5
Markdown goes to stdout, progress to stderr, one JSON object per measurement to --results.
The data's files are in the page cache (generated or read just before): warm-cache figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from common import (
    agg,
    copy_src,
    cpu_model,
    finish_run,
    log,
    machine_line,
    modeltap_commit,
    new_run_id,
    port_open,
    table,
)

HERE = Path(__file__).resolve().parent
TARGET_MS = 300.0
COLLECTION = "/c/bench/blue/model_inputs"
HOUR = ("2026-11-24T13:00:00", "2026-11-24T14:00:00")  # hour 37 of 48, as bench_read


def pages(newest: tuple[str, str], in_hour: tuple[str, str]) -> list[tuple[str, str]]:
    """(name, path) of the pages measured; newest/in_hour: (correlation id, time)."""
    start, end = HOUR
    return [
        ("overview", "/"),
        ("assets", "/assets"),
        ("collection: newest 50", COLLECTION),
        ("collection: page 20 (records 951-1000)", f"{COLLECTION}?page=20"),
        ("collection: 1 hour of 48", f"{COLLECTION}?start={start}&end={end}"),
        ("collection: search an id (newest hour)", f"{COLLECTION}?id={newest[0]}"),
        (
            "collection: search an id in 1 hour",
            f"{COLLECTION}?id={in_hour[0]}&start={start}&end={end}",
        ),
        ("request view (from a table's link)", f"/r/bench/blue?id={in_hour[0]}&t={in_hour[1]}"),
        ("monitoring (no runs)", "/monitoring"),
    ]


def ids(workspace: Path, env: dict[str, str]) -> tuple[tuple[str, str], tuple[str, str]]:
    """The newest line's (correlation id, time), and a line's of HOUR, through modeltap.tail."""
    code = (
        "import json, sys; from modeltap import tail; from datetime import datetime, UTC\n"
        f"t = tail.open_tail('bench/blue/model_inputs', {str(workspace)!r})\n"
        "new = t.newest(1)[-1]\n"
        f"hour = t.newest(1, datetime.fromisoformat({HOUR[0]!r}).replace(tzinfo=UTC), "
        f"datetime.fromisoformat({HOUR[1]!r}).replace(tzinfo=UTC))[-1]\n"
        "print(json.dumps([[new.correlationid, new.record['time']], "
        "[hour.correlationid, hour.record['time']]]))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(out.stderr)
    newest, in_hour = json.loads(out.stdout)
    return tuple(newest), tuple(in_hour)  # type: ignore[return-value]


def reference(workspace: Path, env: dict[str, str], what: str) -> float:
    """Seconds for the work a page avoids, in a fresh process."""
    code = {
        "exact summary": "from modeltap import summary; summary.list_assets(W, progress=False)",
        "read.load whole collection": (
            "from modeltap import read; read.load('bench-blue-model_inputs', workspace=W)"
        ),
    }[what]
    timed = f"import time; W = {str(workspace)!r}; t = time.perf_counter(); {code}; "
    timed += "print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", timed], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(out.stderr)
    return float(out.stdout.strip().splitlines()[-1])


def serve(
    workspace: Path, env: dict[str, str], logfile: Path
) -> tuple[subprocess.Popen[bytes], int]:
    """A `modeltap ui` on a free port, once its own page answers (another process may take
    a port between our look and its bind: then another port)."""
    for _ in range(5):
        port = _free_port()
        cmd = [sys.executable, "-m", "modeltap.cli", "ui", "--workspace", str(workspace)]
        proc = subprocess.Popen(
            [*cmd, "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
            stderr=logfile.open("wb"),
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if port_open(port) and _ours(port):
                return proc, port
            time.sleep(0.1)
        proc.kill()
        proc.wait()
    sys.exit(f"modeltap ui did not start:\n{logfile.read_text()}")


def _ours(port: int) -> bool:
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/static/app.css", timeout=5)
    except httpx.HTTPError:
        return False
    return answer.status_code == 200 and "modeltap ui" in answer.text[:200]


def verdict(ms: float) -> str:
    return "met" if ms < TARGET_MS else "**missed**"


class running:
    """A `modeltap ui` process and an httpx client of it, for one `with` block."""

    def __init__(self, workspace: Path, env: dict[str, str], logfile: Path):
        self.proc, self.port = serve(workspace, env, logfile)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=120)
        self.client.peak_rss_mb = None  # type: ignore[attr-defined]

    def __enter__(self) -> httpx.Client:
        return self.client

    def __exit__(self, *exc: object) -> None:
        self.client.peak_rss_mb = peak_rss_mb(self.proc.pid)  # type: ignore[attr-defined]
        self.client.close()
        self.proc.terminate()
        self.proc.wait(30)


def fetch(
    client: httpx.Client,
    path: str,
    results: Path,
    run_id: str,
    data: str,
    label: str,
    rep: int,
    kind: str,
) -> float:
    """One page fetched whole: its time in ms (recorded in the results file)."""
    t = time.perf_counter()
    answer = client.get(path)
    ms = (time.perf_counter() - t) * 1000
    if answer.status_code != 200:
        sys.exit(f"{path}: {answer.status_code}\n{answer.text[:2000]}")
    record = {"bench": "ui", "run_id": run_id, "data": data, "page": label, "path": path,
              "kind": kind, "ms": ms, "bytes": len(answer.content), "rep": rep}  # fmt: skip
    with results.open("a") as f:
        f.write(json.dumps(record) + "\n")
    return ms


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default="/tmp/modeltap-read-bench/data")
    ap.add_argument("--shapes", default="1x10,10x20")
    ap.add_argument("--mb", type=float, default=1024)
    ap.add_argument("--reps", type=int, default=3, help="rounds over every page")
    ap.add_argument("--requests", type=int, default=5, help="requests of a page per round")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--results", default="/tmp/modeltap-bench/results-ui.jsonl")
    a = ap.parse_args()
    if a.quick:
        a.mb, a.reps, a.requests = 200, 1, 3
    run_id, t_start = new_run_id(), time.time()
    results = Path(a.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="modeltap-bench-ui-"))
    env = {**os.environ, "PYTHONPATH": str(copy_src(work)), "MODELTAP_UI_TOKEN": ""}
    meta = {
        "run_id": run_id,
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": sys.version.split()[0],
        "modeltap_commit": modeltap_commit(),
        "command": " ".join(["python", *sys.argv]),
    }
    log(f"run {run_id}: work dir {work}, results -> {results}")
    report = [
        f"### Run ({run_id})\n",
        machine_line(meta, ["nproc", "cpu_model", "python", "modeltap_commit"]),
    ]
    report.append(f"Command: `{meta['command']}`\n")
    rows, refs = [], []
    for shape in a.shapes.split(","):
        out = Path(a.data_dir) / f"{shape}-{a.mb:g}mb"
        gen = [
            sys.executable,
            str(HERE / "gen_collections.py"),
            "--out",
            str(out),
            "--shape",
            shape,
            "--mb",
            str(a.mb),
        ]
        made = subprocess.run(gen, env=env, capture_output=True, text=True)
        if made.returncode != 0:
            sys.exit(f"generation failed:\n{made.stderr[-3000:]}")
        manifest = json.loads((out / "manifest.json").read_text())
        workspace = out / "ws"
        name = f"{shape} {manifest['mb']:g} MB"
        log(f"{name}: {manifest['files']} files, {manifest['lines']:,} lines")
        newest, in_hour = ids(workspace, env)
        measured = pages(newest, in_hour)
        cold: dict[str, list[float]] = {}
        warm: dict[str, list[float]] = {}
        rss: list[float] = []
        for rep in range(a.reps):
            order = measured if rep % 2 == 0 else measured[::-1]
            # cold: a fresh server for each page (nothing it kept from other requests)
            for label, path in order:
                with running(workspace, env, work / f"ui-{shape}.log") as client:
                    cold.setdefault(label, []).append(
                        fetch(client, path, results, run_id, name, label, rep, "cold")
                    )
            # warm: one server, each page again after its first request
            with running(workspace, env, work / f"ui-{shape}.log") as client:
                for label, path in order:
                    fetch(client, path, results, run_id, name, label, rep, "first")
                    for _ in range(a.requests):
                        warm.setdefault(label, []).append(
                            fetch(client, path, results, run_id, name, label, rep, "warm")
                        )
            rss.append(client.peak_rss_mb or 0)  # type: ignore[attr-defined]  # after the block
        for label, _ in measured:
            cold_ms, warm_ms = statistics.median(cold[label]), statistics.median(warm[label])
            rows.append(
                [
                    name,
                    label,
                    agg(cold[label]),
                    verdict(cold_ms),
                    agg(warm[label]),
                    verdict(warm_ms),
                ]
            )
        rows.append([name, "(server peak RSS, MB)", "", "", agg(rss), ""])
        for what in ("exact summary", "read.load whole collection"):
            secs = [reference(workspace, env, what) for _ in range(a.reps)]
            refs.append([name, what, agg([s * 1000 for s in secs], "{:.0f}")])
            with results.open("a") as f:
                f.write(
                    json.dumps(
                        {
                            "bench": "ui-reference",
                            "run_id": run_id,
                            "data": name,
                            "what": what,
                            "seconds": secs,
                        }
                    )
                    + "\n"
                )
        log(f"{name}: done")
    report.append(
        f"Pages: median [min-max] ms. Cold: the first request of a fresh server, "
        f"{a.reps} per page. Warm: one server, {a.reps} rounds x {a.requests} requests of "
        "each page after its first (what it kept from earlier requests helps).\n"
    )
    report.append(table(["data", "page", "cold ms", "< 300", "warm ms", "< 300"], rows))
    report.append("\nWhat the pages avoid, in a fresh process each (median [min-max] ms):\n")
    report.append(table(["data", "work", "ms"], refs))
    print("\n".join(report))
    finish_run(results, "ui-meta", meta, t_start)
    return 0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())
