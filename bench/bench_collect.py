"""Side-by-side collection benchmark: modeltap vs azureml-ai-monitoring==1.0.0 (the official SDK).

One invocation runs everything, interleaved: the repetition is the outer loop, and inside it every
(frame, mode) pair is run for both sides back to back, alternating which side goes first.
Every scenario runs in a fresh subprocess, because both libraries keep process-global state.

Scenarios (per frame 1x10, 10x20, 1000x20 and per side):
  paced     collect() at --rate calls/s (absolute schedule, time.sleep) for --duration s with the
            background worker live.  Reports caller latency p50/p99 (us), landed and dropped.
            modeltap: library default overflow policy (override with --paced-overflow).
  flood     collect() in a tight loop for --duration s.  modeltap: overflow="block" (nothing may
            drop); SDK: its defaults (queue of 1500, 1 worker, drops when full).  Reports landed
            records/s inside the window, landed incl. the drain after the window, and drops.
  snapshot  (first repetition only) --snapshot-calls collect() calls, each on a fresh copy of the
            frame that is mutated in place right after collect() returns; counts landed records
            that do not match the original frame ("violations"; must be 0 for modeltap).

Where data is counted ("landed"):
  SDK       the receiver (../shared/bench-anchor/receiver.py, run with this venv's python) appends
            one line {"ts", "headers", "body"} per POST before it answers 200; lines with
            w0 <= ts <= w1 are "in window".
  modeltap  the *.jsonl files under {workspace}/datastores/workspaceblobstore/modelDataCollector/
            bench/blue/model_inputs/; one line per record, rows = len(line["data"]).  The file
            sizes are snapshotted at the end of the window, and only complete lines inside those
            sizes count as "in window".

Pinning (like the anchor): when taskset exists and --pin on (default), the receiver runs on CPU 1
and each benchmark subprocess (caller thread + the library's worker) runs on CPU 0; modeltap's
encoder process, which encodes large frames beside its writer thread, runs on CPU 1 too (the
core the SDK side gives its sidecar, the receiver). `--mt-encoder thread` keeps it all on CPU 0.

usage:
  .venv/bin/python bench/bench_collect.py                     # full: 3 reps x 10 s (~10 min)
  .venv/bin/python bench/bench_collect.py --quick             # smoke: 1 rep x 3 s
  .venv/bin/python bench/bench_collect.py --pin off --results /tmp/unpinned.jsonl
Markdown tables go to stdout, progress to stderr, one JSON object per scenario run to --results.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from common import (
    FRAME_WORDS,
    SRC,
    agg,
    copy_src,
    cpu_model,
    die,
    finish_run,
    log,
    machine_line,
    med,
    modeltap_commit,
    new_run_id,
    port_open,
    ratio,
    table,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_RECEIVER = REPO.parent / "shared" / "bench-anchor" / "receiver.py"
SHAPES = {"1x10": (1, 10), "10x20": (10, 20), "1000x20": (1000, 20)}
MT_COLLECTION_DIR = (
    "datastores",
    "workspaceblobstore",
    "modelDataCollector",
    "bench",
    "blue",
    "model_inputs",
)


# ----------------------------------------------------------------------------------- frames
def make_frame(shape: str):
    """Copy of shared/bench-anchor/frames.py: ~40% float64, ~30% int64, ~30% short str columns."""
    import numpy as np
    import pandas as pd

    rows, cols = SHAPES[shape]
    rng = np.random.default_rng(42)
    words = np.array(FRAME_WORDS)
    data = {}
    for c in range(cols):
        kind = c % 10
        if kind < 4:
            data[f"f{c}"] = rng.normal(size=rows) * 1000
        elif kind < 7:
            data[f"i{c}"] = rng.integers(-(10**6), 10**6, size=rows)
        else:
            data[f"s{c}"] = rng.choice(words, size=rows).astype(object)
    return pd.DataFrame(data)


# ====================================================================================
#                                   CHILD (one scenario)
# ====================================================================================
def pct_us(sorted_ns, p):
    if not sorted_ns:
        return None
    return sorted_ns[min(len(sorted_ns) - 1, int(p / 100 * len(sorted_ns)))] / 1000


def proc_cpu_seconds(pid):
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def expected_rows(df):
    cols = {c: df[c].tolist() for c in df.columns}
    return [{c: cols[c][i] for c in df.columns} for i in range(len(df))]


def _same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
            return False
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
        except (TypeError, ValueError):
            return False
    return a == b


def rows_match(got, want):
    if not isinstance(got, list) or len(got) != len(want):
        return False
    for g, w in zip(got, want, strict=True):
        if not isinstance(g, dict) or g.keys() != w.keys():
            return False
        for k, v in w.items():
            if not _same(g[k], v):
                return False
    return True


MUT_FLOAT, MUT_INT, MUT_STR = -1.0, -7, "MUTATED"


def mutate_in_place(df):
    """What a scoring function might do to its input after handing it to the collector."""
    df.iloc[:, 0] = MUT_FLOAT  # f0 (float64)
    df.iloc[:, 4] = MUT_INT  # i4 (int64)
    df.iloc[:, 7] = MUT_STR  # s7 (str)


def shows_mutation(rows):
    if not isinstance(rows, list):
        return False
    for r in rows:
        if isinstance(r, dict) and (
            r.get("f0") == MUT_FLOAT or r.get("i4") == MUT_INT or r.get("s7") == MUT_STR
        ):
            return True
    return False


class Landed:
    """Counts the records that landed, the same way for both sides: one `add` per record with
    its rows (`data` for modeltap, `body` for the SDK) and whether it landed inside the window."""

    def __init__(self, df, a):
        self.nrows = len(df)
        self.want = expected_rows(df) if a.mode == "snapshot" else None
        self.landed = self.in_window = self.rows = self.rows_in_window = self.bad_rows = 0
        self.violations = self.mutated = 0

    def add(self, data, in_window: bool):
        n = len(data) if isinstance(data, list) else 0
        if n != self.nrows:
            self.bad_rows += 1
        self.landed += 1
        self.rows += n
        if in_window:
            self.in_window += 1
            self.rows_in_window += n
        if self.want is not None:
            if not rows_match(data, self.want):
                self.violations += 1
            if shows_mutation(data):
                self.mutated += 1

    def counts(self) -> dict:
        snap = self.want is not None
        return dict(
            landed_total=self.landed,
            landed_in_window=self.in_window,
            landed_rows_total=self.rows,
            landed_rows_in_window=self.rows_in_window,
            records_with_wrong_row_count=self.bad_rows,
            snapshot_violations=self.violations if snap else None,
            snapshot_mutated=self.mutated if snap else None,
        )


def run_loop(collect, df, a, on_call=None):
    """The measured loop, identical for both sides. Returns (latencies_ns, calls, errors, t0, w0,
    elapsed). Exceptions escaping collect() are counted (and the first one kept), not raised."""
    lat = []
    errors = []
    pc, pcn = time.perf_counter, time.perf_counter_ns
    paced = a.mode in ("paced", "snapshot")
    rate = a.rate
    dur = a.duration
    i = 0
    w0 = time.time()
    t0 = pc()
    while True:
        if a.mode == "snapshot":
            if i >= a.snapshot_calls:
                break
            d = df.copy(deep=True)  # untimed: a fresh frame per call
        else:
            d = df
            now = pc()
            if now - t0 >= dur:
                break
        if paced:
            wait = t0 + i / rate - pc()
            if wait > 0:
                time.sleep(wait)
        s = pcn()
        try:
            collect(d)
        except Exception:  # counted and reported, never raised into the loop
            if len(errors) < 1:
                import traceback

                errors.append(traceback.format_exc())
            else:
                errors.append(None)
        lat.append(pcn() - s)
        if a.mode == "snapshot":
            mutate_in_place(d)
        i += 1
    elapsed = pc() - t0
    return lat, i, errors, t0, w0, elapsed


def child_sdk(a, df, res):
    os.environ["AZUREML_MDC_ENABLED"] = "true"  # SDK defaults otherwise, like the anchor
    os.environ["AZUREML_MDC_HOST"] = "127.0.0.1"
    os.environ["AZUREML_MDC_PORT"] = str(a.port)
    import logging

    import orjson
    from azureml.ai.monitoring import Collector
    from azureml.ai.monitoring.init import teardown
    from azureml.ai.monitoring.queue import get_queue

    drops = [0]

    def on_error(exc):  # the default re-raises into the caller; count queue-full drops instead
        drops[0] += 1

    coll = Collector(name="model_inputs", on_error=on_error)
    logging.getLogger("mdc").setLevel(logging.WARNING)
    queue = get_queue()
    for _ in range(20):  # warm-up: imports, first connection
        coll.collect(df)
    end = time.time() + 5
    while queue.length() and time.time() < end:
        time.sleep(0.05)
    time.sleep(0.3)
    drops[0] = 0

    rc0 = proc_cpu_seconds(a.recv_pid) if a.recv_pid else None
    own0 = sum(os.times()[:2])
    lat, calls, errors, t0, w0, elapsed = run_loop(coll.collect, df, a)
    w1 = time.time()
    own_cpu = (sum(os.times()[:2]) - own0) / elapsed * 100
    rc1 = proc_cpu_seconds(a.recv_pid) if a.recv_pid else None
    queued_at_end = queue.length()
    teardown(wait_for_flush=True)  # joins the worker after the queue is empty
    t_drained = time.perf_counter()
    dropped = drops[0]
    accepted = calls - dropped - len(errors)

    tally = Landed(df, a)
    with open(a.recv_file, "rb") as f:
        for line in f:
            rec = orjson.loads(line)
            if rec["ts"] < w0:
                continue
            tally.add(rec.get("body"), rec["ts"] <= w1)
    res.update(
        accepted=accepted,
        dropped=dropped,
        queued_at_end=queued_at_end,
        recv_cpu_pct=None if rc0 is None or rc1 is None else round((rc1 - rc0) / elapsed * 100),
    )
    return lat, calls, errors, t0, elapsed, own_cpu, t_drained, tally.counts()


def mt_files(ws):
    base = Path(ws).joinpath(*MT_COLLECTION_DIR)
    out = {}
    if base.exists():
        for p in base.rglob("*.jsonl"):
            with contextlib.suppress(OSError):
                out[str(p)] = p.stat().st_size
    return out


def child_modeltap(a, df, res):
    import orjson

    import modeltap

    kw = dict(
        workspace=a.workspace,
        endpoint="bench",
        deployment="blue",
        collections=["model_inputs"],
        rolling_rate="Hour",
        sampling_rate=1.0,
    )
    overflow = "block" if a.mode in ("flood", "snapshot") else a.paced_overflow
    if overflow != "default":
        kw["overflow"] = overflow
    if a.mt_flush_interval != "default":
        kw["flush_interval"] = float(a.mt_flush_interval)
    kw["encoder"] = a.mt_encoder
    res["encoder"] = a.mt_encoder
    res["overflow"] = overflow
    res["flush_interval"] = a.mt_flush_interval
    modeltap.configure(**kw)
    coll = modeltap.Collector(name="model_inputs", on_error=None)
    for _ in range(20):  # warm-up
        coll.collect(df)
    modeltap.flush()
    time.sleep(0.3)
    st0 = modeltap.stats()
    base = mt_files(a.workspace)

    own0 = sum(os.times()[:2])
    lat, calls, errors, t0, _w0, elapsed = run_loop(coll.collect, df, a)
    st_w1 = modeltap.stats()
    at_w1 = mt_files(a.workspace)
    own_cpu = (sum(os.times()[:2]) - own0) / elapsed * 100
    tf = time.perf_counter()
    flushed = modeltap.flush(timeout=300)
    t_drained = time.perf_counter()
    st1 = modeltap.stats()
    shut_ok = modeltap.shutdown()
    t_shut = time.perf_counter()
    st2 = modeltap.stats() or st1  # stats() is empty once shut down

    def delta(st, k):
        return st.get(k, 0) - st0.get(k, 0)

    res.update(
        accepted=delta(st1, "accepted"),
        dropped=delta(st2, "dropped"),
        sampled_out=delta(st2, "sampled_out"),
        flush_ok=flushed,
        shutdown_ok=shut_ok,
        written_stats_at_w1=delta(st_w1, "written"),
        written_stats=delta(st2, "written"),
        queued_at_end=delta(st_w1, "accepted") - delta(st_w1, "written"),
        flush_s=round(t_drained - tf, 3),
        shutdown_s=round(t_shut - t_drained, 3),
        stats_raw={"after_warmup": st0, "at_w1": st_w1, "after_shutdown": st2},
    )

    tally = Landed(df, a)
    for path in sorted(mt_files(a.workspace)):
        start = base.get(path, 0)
        w1_end = at_w1.get(path, 0)
        with open(path, "rb") as f:
            f.seek(start)
            pos = start
            for line in f:
                pos += len(line)
                if not line.endswith(b"\n"):
                    res["partial_last_line"] = True
                    continue
                tally.add(orjson.loads(line).get("data"), pos <= w1_end)
    return lat, calls, errors, t0, elapsed, own_cpu, t_drained, tally.counts()


def child_main(a):
    df = make_frame(a.shape)
    res = {
        "side": a.side,
        "mode": a.mode,
        "shape": a.shape,
        "rows": len(df),
        "duration_s": a.duration,
        "pid": os.getpid(),
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }
    if a.mode in ("paced", "snapshot"):
        res["target_rate"] = a.rate
    fn = child_sdk if a.side == "sdk" else child_modeltap
    lat, calls, errors, t0, elapsed, own_cpu, t_drained, counts = fn(a, df, res)
    lat.sort()
    res.update(
        calls=calls,
        elapsed_s=round(elapsed, 3),
        call_rate=round(calls / elapsed, 1),
        collect_errors=len(errors),
        first_error=errors[0] if errors else None,
        client_cpu_pct=round(own_cpu),
        lat_p50_us=pct_us(lat, 50),
        lat_p99_us=pct_us(lat, 99),
        lat_p999_us=pct_us(lat, 99.9),
        lat_max_us=lat[-1] / 1000 if lat else None,
        lat_mean_us=sum(lat) / len(lat) / 1000 if lat else None,
        drain_s=round(t_drained - t0 - elapsed, 3),
    )
    res.update(counts)
    res["landed_calls_per_s"] = round(counts["landed_in_window"] / elapsed, 1)
    res["landed_rows_per_s"] = round(counts["landed_rows_in_window"] / elapsed)
    res["landed_incl_drain_per_s"] = round(counts["landed_total"] / (t_drained - t0), 1)
    res["lost_after_accept"] = res["accepted"] - counts["landed_total"]
    with open(a.out, "w") as f:
        json.dump(res, f)


# ====================================================================================
#                                   ORCHESTRATOR
# ====================================================================================
# The children import modeltap from a copy of src/ taken when the run starts, so that edits
# made to the working tree during a run cannot mix library versions within one run.
_SRC_FOR_CHILDREN = SRC


def child_env():
    env = dict(os.environ)
    # the bench always measures the working tree's src/ (as copied at start), installed or not
    env["PYTHONPATH"] = str(_SRC_FOR_CHILDREN) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def check_import(py, code, hint):
    p = subprocess.run([py, "-c", code], env=child_env(), capture_output=True, text=True)
    if p.returncode != 0:
        die(f"{hint}\n--- {code!r} failed:\n{p.stderr.strip()[-1500:]}")
    return p.stdout.strip()


def versions(py):
    code = r"""
import importlib.metadata as m, json, platform
out = {"python": platform.python_version()}
for d in ["pandas", "numpy", "pyarrow", "orjson", "azureml-ai-monitoring", "requests", "urllib3",
          "uvicorn", "httptools", "uvloop", "modeltap"]:
    try: out[d] = m.version(d)
    except Exception: out[d] = None
try:
    import modeltap; out["modeltap_file"] = modeltap.__file__
except Exception as e: out["modeltap_file"] = repr(e)
print(json.dumps(out))
"""
    p = subprocess.run([py, "-c", code], env=child_env(), capture_output=True, text=True)
    info = json.loads(p.stdout) if p.returncode == 0 else {}
    cpu = cpu_model()
    info.update(nproc=os.cpu_count(), cpu_model=cpu, kernel=platform.release())
    info["modeltap_commit"] = modeltap_commit()
    return info


def report(rows, meta):
    ok = [r for r in rows if "error" not in r]
    g = defaultdict(list)
    for r in ok:
        g[(r["shape"], r["mode"], r["side"])].append(r)
    shapes = [s for s in SHAPES if any(k[0] == s for k in g)]
    sides = [s for s in ("sdk", "modeltap") if any(k[2] == s for k in g)]
    label = {"sdk": "SDK 1.0.0", "modeltap": "modeltap"}
    nrep = len({r["rep"] for r in ok}) if ok else 0
    out = [
        f"Pinning: {meta['pinning']}. Duration {meta['duration']} s per run, {nrep} rep(s), "
        f"interleaved. Cells: median [min-max] over reps.\n"
    ]

    rate = meta["rate"]
    out.append(
        f"### 1. collect() latency on the calling thread, paced {rate:.0f} calls/s, "
        "worker live (us)\n"
    )
    lines = []
    for sh in shapes:
        for sd in sides:
            v = g.get((sh, "paced", sd), [])
            if v:
                lines.append(
                    [
                        sh,
                        label[sd],
                        agg([r["calls"] for r in v]),
                        agg([r["lat_p50_us"] for r in v], "{:.1f}"),
                        agg([r["lat_p99_us"] for r in v], "{:.1f}"),
                        agg([r["lat_p999_us"] for r in v], "{:.0f}"),
                        agg([r["lat_max_us"] for r in v], "{:.0f}"),
                        agg([r["client_cpu_pct"] for r in v]),
                    ]
                )
    out.append(
        table(["frame", "side", "calls", "p50", "p99", "p99.9", "max", "client CPU %"], lines)
    )

    out.append(f"### 2. Delivery at {rate:.0f} calls/s (paced)\n")
    lines = []
    for sh in shapes:
        for sd in sides:
            v = g.get((sh, "paced", sd), [])
            if v:
                lines.append(
                    [
                        sh,
                        label[sd],
                        v[0].get("overflow", "-"),
                        agg([r["call_rate"] for r in v]),
                        agg([r["landed_calls_per_s"] for r in v]),
                        agg([r["landed_rows_per_s"] for r in v]),
                        agg([r["landed_incl_drain_per_s"] for r in v]),
                        agg([r["dropped"] for r in v]),
                        agg([r["collect_errors"] for r in v]),
                        agg([r["lost_after_accept"] for r in v]),
                        agg([r["drain_s"] for r in v], "{:.2f}"),
                    ]
                )
    out.append(
        table(
            [
                "frame",
                "side",
                "overflow",
                "collect calls/s",
                "landed records/s (in window)",
                "landed rows/s",
                "landed records/s incl. drain",
                "dropped",
                "collect() raised",
                "lost after accept",
                "drain after window (s)",
            ],
            lines,
        )
    )

    out.append(
        f'### 3. Flood: tight loop for {meta["duration"]} s (modeltap overflow="block", '
        "SDK defaults)\n"
    )
    lines = []
    for sh in shapes:
        for sd in sides:
            v = g.get((sh, "flood", sd), [])
            if v:
                lines.append(
                    [
                        sh,
                        label[sd],
                        agg([r["call_rate"] for r in v]),
                        agg([r["landed_calls_per_s"] for r in v]),
                        agg([r["landed_rows_per_s"] for r in v]),
                        agg([r["landed_incl_drain_per_s"] for r in v]),
                        agg([r["dropped"] for r in v]),
                        agg(
                            [100 * r["dropped"] / r["calls"] if r["calls"] else None for r in v],
                            "{:.1f}",
                        ),
                        agg([r["lost_after_accept"] for r in v]),
                        agg([r["drain_s"] for r in v], "{:.2f}"),
                        agg([r["lat_p50_us"] for r in v], "{:.1f}")
                        + " / "
                        + agg([r["lat_p99_us"] for r in v], "{:.0f}"),
                        agg([r["client_cpu_pct"] for r in v]),
                    ]
                )
    out.append(
        table(
            [
                "frame",
                "side",
                "collect calls/s",
                "landed records/s (in window)",
                "landed rows/s",
                "landed records/s incl. drain",
                "dropped",
                "dropped %",
                "lost after accept",
                "drain after window (s)",
                "collect p50 / p99 (us)",
                "client CPU %",
            ],
            lines,
        )
    )

    if "sdk" in sides and "modeltap" in sides:
        out.append("### 4. Ratios modeltap / SDK (of the medians)\n")
        lines = []
        for sh in shapes:

            def m(mode, side, key, sh=sh):
                return med([r[key] for r in g.get((sh, mode, side), [])])

            lines.append(
                [
                    sh,
                    ratio(
                        m("flood", "modeltap", "landed_calls_per_s"),
                        m("flood", "sdk", "landed_calls_per_s"),
                    ),
                    ratio(
                        m("flood", "modeltap", "landed_incl_drain_per_s"),
                        m("flood", "sdk", "landed_incl_drain_per_s"),
                    ),
                    ratio(
                        m("paced", "modeltap", "landed_calls_per_s"),
                        m("paced", "sdk", "landed_calls_per_s"),
                    ),
                    ratio(m("paced", "modeltap", "lat_p50_us"), m("paced", "sdk", "lat_p50_us")),
                    ratio(m("paced", "modeltap", "lat_p99_us"), m("paced", "sdk", "lat_p99_us")),
                ]
            )
        out.append(
            table(
                [
                    "frame",
                    "flood landed rate (in window)",
                    "flood landed rate incl. drain",
                    f"paced {rate:.0f}/s landed rate",
                    "paced p50 latency",
                    "paced p99 latency",
                ],
                lines,
            )
        )
        out.append("Landed-rate ratios > 1 favour modeltap; latency ratios < 1 favour modeltap.\n")

    snap = [(k, v) for k, v in g.items() if k[1] == "snapshot"]
    if snap:
        out.append("### 5. Snapshot check: frame mutated in place right after collect()\n")
        lines = []
        for sh in shapes:
            for sd in sides:
                v = g.get((sh, "snapshot", sd), [])
                if v:
                    lines.append(
                        [
                            sh,
                            label[sd],
                            agg([r["calls"] for r in v]),
                            agg([r["landed_total"] for r in v]),
                            agg([r["snapshot_violations"] for r in v]),
                            agg([r["snapshot_mutated"] for r in v]),
                        ]
                    )
        out.append(
            table(
                [
                    "frame",
                    "side",
                    "calls",
                    "landed",
                    "violations (landed != original)",
                    "of which carry the mutation",
                ],
                lines,
            )
        )

    errs = [r for r in rows if "error" in r]
    exc = [r for r in ok if r.get("collect_errors")]
    lost = [r for r in ok if r.get("lost_after_accept")]
    wrong = [r for r in ok if r.get("records_with_wrong_row_count")]
    mt_drop = [r for r in ok if r["side"] == "modeltap" and r.get("dropped")]
    slow = [
        r
        for r in ok
        if r["side"] == "modeltap"
        and r["mode"] == "paced"
        and r["call_rate"] < 0.95 * r.get("target_rate", 0)
    ]
    unflushed = [r for r in ok if r.get("flush_ok") is False or r.get("shutdown_ok") is False]
    if errs or exc or lost or wrong or mt_drop or slow or unflushed:
        out.append("### Problems seen\n")
        for r in errs:
            out.append(
                f"* {r['side']} {r['mode']} {r['shape']} rep {r['rep']}: run FAILED: {r['error']}"
            )
        for r in exc:
            out.append(
                f"* {r['side']} {r['mode']} {r['shape']} rep {r['rep']}: collect() raised "
                f"{r['collect_errors']} times; first:\n```\n{r['first_error']}```"
            )
        for r in lost:
            out.append(
                f"* {r['side']} {r['mode']} {r['shape']} rep {r['rep']}: "
                f"{r['lost_after_accept']} records accepted but not landed"
            )
        for r in wrong:
            out.append(
                f"* {r['side']} {r['mode']} {r['shape']} rep {r['rep']}: "
                f"{r['records_with_wrong_row_count']} landed records with a wrong row count"
            )
        for r in mt_drop:
            out.append(
                f"* modeltap {r['mode']} {r['shape']} rep {r['rep']}: dropped "
                f"{r['dropped']} (overflow={r.get('overflow')})"
            )
        for r in slow:
            out.append(
                f"* modeltap paced {r['shape']} rep {r['rep']}: the caller managed only "
                f"{r['call_rate']:.0f} of {r['target_rate']:.0f} calls/s (collect() blocked: "
                f"max {r['lat_max_us'] / 1000:.0f} ms, p99.9 {r['lat_p999_us'] / 1000:.1f} ms; "
                f"overflow={r.get('overflow')})"
            )
        for r in unflushed:
            out.append(
                f"* modeltap {r['mode']} {r['shape']} rep {r['rep']}: flush() returned "
                f"{r.get('flush_ok')}, shutdown() returned {r.get('shutdown_ok')}"
            )
        out.append("")
    return "\n".join(out)


def orchestrate(a):
    py = sys.executable
    if a.quick:
        a.reps = 1 if a.reps is None else a.reps
        a.duration = 3.0 if a.duration is None else a.duration
    a.reps = 3 if a.reps is None else a.reps
    a.duration = 10.0 if a.duration is None else a.duration
    shapes = a.shapes.split(",")
    for s in shapes:
        if s not in SHAPES:
            die(f"unknown shape {s!r}; choose from {list(SHAPES)}")
    sides = a.sides.split(",")
    modes = a.modes.split(",")

    global _SRC_FOR_CHILDREN
    work = Path(tempfile.mkdtemp(prefix="modeltap-bench-", dir=a.workdir))
    if not a.keep:
        atexit.register(shutil.rmtree, work, True)
    if "modeltap" in sides:
        _SRC_FOR_CHILDREN = copy_src(work)
    receiver = Path(a.receiver)
    if "sdk" in sides:
        if not receiver.is_file():
            die(
                f"SDK receiver not found at {receiver}.\nThe SDK side needs the anchor's plain "
                "receiver (shared/bench-anchor/receiver.py next to this repo); pass "
                "--receiver PATH, or run only modeltap with --sides modeltap."
            )
        check_import(
            py,
            "import azureml.ai.monitoring, requests",
            f"azureml-ai-monitoring is not importable with {py}.  Install it with:\n"
            f"  {py} -m pip install azureml-ai-monitoring==1.0.0 requests",
        )
        check_import(
            py,
            "import uvicorn, httptools, uvloop, orjson",
            f"the receiver needs uvicorn, httptools, uvloop and orjson in {py}",
        )
    if "modeltap" in sides:
        check_import(
            py,
            "import modeltap; modeltap.configure; modeltap.Collector; modeltap.flush; "
            "modeltap.stats; modeltap.shutdown",
            f"modeltap (from {SRC}) is not importable or lacks the API the bench uses",
        )

    pin = a.pin == "on"
    taskset = shutil.which("taskset")
    if pin and (not taskset or (os.cpu_count() or 1) < 2):
        log("WARNING: taskset missing or fewer than 2 CPUs: running unpinned")
        pin = False
    c0 = [taskset, "-c", "0"] if pin else []
    c1 = [taskset, "-c", "1"] if pin else []
    pinning = (
        "receiver on CPU 1, benchmark process (caller + library worker) on CPU 0 (taskset); "
        "modeltap's encoder process (encoder: process) on CPU 1 (MODELTAP_ENCODER_CPUS=1), "
        "where the SDK side's receiver runs"
        if pin
        else "none (all processes may use all CPUs)"
    )

    recv_file = work / "received.jsonl"
    recv_file.touch()
    results = Path(a.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    run_id = new_run_id()
    meta = versions(py)
    meta.update(
        run_id=run_id,
        pinning=pinning,
        duration=a.duration,
        reps=a.reps,
        rate=a.rate,
        command=" ".join([Path(py).name, *sys.argv]),
    )
    log(f"run {run_id}: work dir {work}, results -> {results}")
    log(json.dumps(meta))

    rproc = None
    if "sdk" in sides:
        if port_open(a.port):
            die(f"port {a.port} is already in use; stop whatever listens there or pass --port")
        rlog = open(work / "receiver.log", "w")  # noqa: SIM115 - lives as long as the receiver
        rproc = subprocess.Popen(
            [
                *c1,
                py,
                str(receiver),
                "--host",
                "127.0.0.1",
                "--port",
                str(a.port),
                "--out",
                str(recv_file),
            ],
            stdout=rlog,
            stderr=subprocess.STDOUT,
        )
        for _ in range(100):
            if port_open(a.port) or rproc.poll() is not None:
                break
            time.sleep(0.1)
        if rproc.poll() is not None or not port_open(a.port):
            die(
                f"receiver did not start; see {work / 'receiver.log'}:\n"
                + (work / "receiver.log").read_text()[-2000:]
            )
        log(f"receiver pid {rproc.pid} on 127.0.0.1:{a.port}")

    rows = []
    t_start = time.time()
    try:
        for rep in range(1, a.reps + 1):
            order = sides if rep % 2 == 1 else sides[::-1]
            log(f"== rep {rep}/{a.reps}  {time.strftime('%H:%M:%S')}  side order {order}")
            plan = []
            for sh in shapes:
                for mode in modes:
                    if mode == "snapshot" and rep != 1:
                        continue
                    for sd in order:
                        plan.append((sh, mode, sd))
            for sh, mode, sd in plan:
                ws = work / f"ws-{sd}-{mode}-{sh}-{rep}"
                out = work / "child.json"
                with contextlib.suppress(FileNotFoundError):
                    out.unlink()
                if sd == "sdk":
                    recv_file.write_bytes(b"")  # the receiver appends with O_APPEND
                cmd = [
                    *c0,
                    py,
                    str(Path(__file__).resolve()),
                    "--child",
                    "--side",
                    sd,
                    "--mode",
                    mode,
                    "--shape",
                    sh,
                    "--duration",
                    str(a.duration),
                    "--rate",
                    str(a.rate),
                    "--snapshot-calls",
                    str(a.snapshot_calls),
                    "--port",
                    str(a.port),
                    "--recv-file",
                    str(recv_file),
                    "--recv-pid",
                    str(rproc.pid if rproc else 0),
                    "--workspace",
                    str(ws),
                    "--paced-overflow",
                    a.paced_overflow,
                    "--mt-flush-interval",
                    a.mt_flush_interval,
                    "--mt-encoder",
                    a.mt_encoder,
                    "--out",
                    str(out),
                ]
                clog = work / f"child-{sd}-{mode}-{sh}-{rep}.log"
                t = time.time()
                err = None
                with open(clog, "w") as lf:
                    try:
                        p = subprocess.run(
                            cmd,
                            # modeltap's encoder process takes the receiver's CPU: the
                            # SDK's sidecar has it, as in the anchor's pinning
                            env={**child_env(), **({"MODELTAP_ENCODER_CPUS": "1"} if pin else {})},
                            stdout=lf,
                            stderr=subprocess.STDOUT,
                            timeout=a.duration * 4 + 180,
                        )
                        if p.returncode != 0:
                            err = f"exit code {p.returncode}"
                    except subprocess.TimeoutExpired:
                        err = "timed out (child killed)"
                if err is None and not out.exists():
                    err = "no result written"
                if err:
                    tail = clog.read_text(errors="replace")[-3000:]
                    r = {"side": sd, "mode": mode, "shape": sh, "error": f"{err}\n{tail}"}
                    log(f"   {sd:8s} {mode:8s} {sh:7s} FAILED: {err}\n{tail}")
                else:
                    r = json.loads(out.read_text())
                    log(
                        f"   {sd:8s} {mode:8s} {sh:7s} {time.time() - t:5.1f}s  "
                        f"calls/s {r['call_rate']:>8}  p50 {r['lat_p50_us']:7.1f}  "
                        f"p99 {r['lat_p99_us']:8.1f}  landed/s {r['landed_calls_per_s']:>8}  "
                        f"dropped {r['dropped']}  lost {r['lost_after_accept']}"
                        + (f"  raised {r['collect_errors']}" if r["collect_errors"] else "")
                        + (
                            f"  violations {r['snapshot_violations']}"
                            if r.get("snapshot_violations") is not None
                            else ""
                        )
                    )
                r.update(bench="collect", run_id=run_id, rep=rep, pinned=pin)
                rows.append(r)
                with open(results, "a") as f:
                    f.write(json.dumps(r) + "\n")
                if not a.keep:
                    shutil.rmtree(ws, ignore_errors=True)
    finally:
        if rproc is not None:
            rproc.terminate()
            try:
                rproc.wait(10)
            except subprocess.TimeoutExpired:
                rproc.kill()
            rlog.close()
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    finish_run(results, "collect-meta", meta, t_start)
    print(f"## modeltap vs azureml-ai-monitoring 1.0.0: collection benchmark ({run_id})\n")
    print(
        machine_line(
            meta,
            (
                "nproc",
                "cpu_model",
                "python",
                "pandas",
                "numpy",
                "pyarrow",
                "orjson",
                "azureml-ai-monitoring",
                "requests",
                "modeltap",
                "modeltap_commit",
            ),
        )
    )
    print(f"Command: `{meta['command']}` (wall {meta['wall_s']} s)\n")
    print(report(rows, meta))
    return 0 if not any("error" in r for r in rows) else 1


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds per paced/flood run (default 10; 3 with --quick)",
    )
    ap.add_argument(
        "--reps", type=int, default=None, help="repetitions (default 3; 1 with --quick)"
    )
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 rep x 3 s")
    ap.add_argument("--rate", type=float, default=500, help="paced calls/s (default 500)")
    ap.add_argument(
        "--results",
        default="/tmp/modeltap-bench/results-collect.jsonl",
        help="append one JSON object per scenario run here",
    )
    ap.add_argument(
        "--pin",
        choices=["on", "off"],
        default="on",
        help="on: receiver on CPU 1, benchmark on CPU 0 (needs taskset)",
    )
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--sides", default="sdk,modeltap")
    ap.add_argument("--modes", default="paced,flood,snapshot")
    ap.add_argument("--snapshot-calls", type=int, default=200)
    ap.add_argument(
        "--paced-overflow",
        default="default",
        help='modeltap overflow for paced runs ("default" = library default)',
    )
    ap.add_argument(
        "--mt-flush-interval",
        default="1.0",
        help='modeltap flush_interval in seconds for all runs ("default" = library default); '
        "1.0 so that 10 s windows see regular commits",
    )
    ap.add_argument(
        "--mt-encoder",
        choices=["process", "thread"],
        default="process",
        help="modeltap's encoder setting (default process: large frames partly in a helper)",
    )
    ap.add_argument("--port", type=int, default=50011, help="SDK receiver port")
    ap.add_argument("--receiver", default=str(DEFAULT_RECEIVER))
    ap.add_argument("--workdir", default=None, help="parent of the scratch dir (default $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep scratch files (workspaces, logs)")
    # internal: one scenario in this (fresh) process
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--side", choices=["sdk", "modeltap"], help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=["paced", "flood", "snapshot"], help=argparse.SUPPRESS)
    ap.add_argument("--shape", choices=list(SHAPES), help=argparse.SUPPRESS)
    ap.add_argument("--recv-file", help=argparse.SUPPRESS)
    ap.add_argument("--recv-pid", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--workspace", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        return child_main(a)
    return orchestrate(a)


if __name__ == "__main__":
    sys.exit(main())
