"""What redaction costs per record (SPEC R13.1, issue 14): collect() of the anchor's 1x10 and
10x20 frames with no rules, a hash rule, a patterns rule, and both; and the agent's cost
per JSON body (the same frames as the SDK posts them) through the same rules.

One process, interleaved: the repetition is the outer loop; inside it every (frame, rules)
pair runs back to back, the rules in a rotated order each rep. Per run:

  caller p50/p99   wall time of one collect() call on the caller, the writer live
  caller CPU p50   CPU time of the calling thread in one collect() (load-robust)
  CPU/record       process CPU (caller + writer) for N collects and the flush, per record
  agent body       Redactor.body() on the frame's to_json(orient="records"), process CPU,
                   best of 5

Rules: hash = `hash: [i4, s7]` (an int and a str column); patterns = `patterns: [email,
credit_card, phone]` over every text value (the anchor's words: nothing matches, so this
is the scanning cost). Pinned to CPU 0 by default, so caller and writer share one core.

usage:
  .venv/bin/python bench/bench_redact.py                 # 5 reps (~1 min)
  .venv/bin/python bench/bench_redact.py --reps 1 --calls 500   # smoke
Markdown goes to stdout, progress to stderr, one JSON object per run to --results.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path

from common import (
    SRC,
    agg,
    cpu_model,
    finish_run,
    log,
    machine_line,
    modeltap_commit,
    new_run_id,
    ratio,
    table,
)

sys.path.insert(0, str(SRC))

KEY_ENV = "MODELTAP_BENCH_HASH_KEY"
RULES = {
    "none": None,
    "hash": {"hash": ["i4", "s7"]},
    "patterns": {"patterns": ["email", "credit_card", "phone"]},
    "hash+patterns": {"hash": ["i4", "s7"], "patterns": ["email", "credit_card", "phone"]},
}
SHAPES = ("1x10", "10x20")


def frame(shape: str):
    from bench_collect import make_frame

    return make_frame(shape)


def configure(workspace: Path, rules: dict | None):
    import modeltap

    redact = {"hash_key_env": KEY_ENV, "collections": {"model_inputs": rules}} if rules else None
    return modeltap.configure(
        workspace=workspace,
        endpoint="bench",
        deployment="blue",
        collections=["model_inputs"],
        flush_interval=60.0,
        redact=redact,
    )


def run_one(workspace: Path, shape: str, name: str, calls: int) -> dict:
    import modeltap

    rt = configure(workspace, RULES[name])
    collector = modeltap.Collector(name="model_inputs")
    df = frame(shape)
    for _ in range(200):  # warm up: layouts cached, writer started
        collector.collect(df)
    rt.pipeline.flush()
    times, thread_cpu = [], []
    cpu0 = time.process_time()
    for _ in range(calls):
        c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
        collector.collect(df)
        times.append(time.perf_counter_ns() - t0)
        thread_cpu.append(time.thread_time_ns() - c0)
    assert rt.pipeline.flush(60)
    cpu = (time.process_time() - cpu0) / calls * 1e6
    times.sort()
    thread_cpu.sort()
    body_us = None
    redactor = rt.redactors.get("model_inputs")
    if redactor is not None:
        body = df.to_json(orient="records").encode()
        body_us = (
            min(
                timeit.repeat(
                    lambda: redactor.body(body, "application/json"),
                    number=300,
                    repeat=5,
                    timer=time.process_time,
                )
            )
            / 300
            * 1e6
        )
    stats = modeltap.stats()
    modeltap.shutdown()
    assert stats["dropped"] == 0, stats
    return {
        "shape": shape,
        "rules": name,
        "calls": calls,
        "p50_us": times[len(times) // 2] / 1000,
        "p99_us": times[int(len(times) * 0.99)] / 1000,
        "caller_cpu_us": thread_cpu[len(thread_cpu) // 2] / 1000,
        "cpu_per_record_us": cpu,
        "agent_body_us": body_us,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--calls", type=int, default=3000, help="collect() calls per run")
    ap.add_argument("--pin", choices=["on", "off"], default="on")
    ap.add_argument(
        "--results", type=Path, default=Path("/tmp/modeltap-bench/results-redact.jsonl")
    )
    args = ap.parse_args()
    args.results.parent.mkdir(parents=True, exist_ok=True)
    os.environ[KEY_ENV] = "bench-key-0123456789abcdef"
    if args.pin == "on" and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {0})
    import numpy
    import orjson
    import pandas

    run_id, t_start = new_run_id(), time.time()
    meta = {
        "run_id": run_id,
        "cpu_model": cpu_model(),
        "python": sys.version.split()[0],
        "pandas": pandas.__version__,
        "numpy": numpy.__version__,
        "orjson": orjson.__version__,
        "modeltap_commit": modeltap_commit(),
        "pinned": args.pin,
        "command": "python " + " ".join(sys.argv),
        "load_start": round(os.getloadavg()[0], 1),
    }
    runs: list[dict] = []
    names = list(RULES)
    with tempfile.TemporaryDirectory(prefix="modeltap-bench-redact-") as tmp:
        for rep in range(args.reps):
            order = names[rep % len(names) :] + names[: rep % len(names)]
            for shape in SHAPES:
                for name in order:
                    result = run_one(Path(tmp) / f"{rep}-{shape}-{name}", shape, name, args.calls)
                    result["rep"] = rep
                    runs.append(result)
                    with open(args.results, "a") as f:
                        f.write(json.dumps({"bench": "redact", "run_id": run_id, **result}) + "\n")
                    log(
                        f"rep {rep} {shape} {name}: p50 {result['p50_us']:.1f} us, "
                        f"cpu {result['cpu_per_record_us']:.1f} us/record"
                    )
    meta["load_end"] = round(os.getloadavg()[0], 1)
    print(f"### Run {run_id}\n")
    print(
        machine_line(
            meta,
            [
                "cpu_model",
                "python",
                "pandas",
                "numpy",
                "orjson",
                "modeltap_commit",
                "pinned",
                "load_start",
                "load_end",
            ],
        )
    )
    print(
        f"Command: `{meta['command']}`; {args.reps} reps x {args.calls} calls per cell; "
        "cells: median [min-max] over reps.\n"
    )
    lines = []
    for shape in SHAPES:
        base = [r for r in runs if r["shape"] == shape and r["rules"] == "none"]
        base_cpu = statistics.median(r["cpu_per_record_us"] for r in base)
        for name in names:
            cell = [r for r in runs if r["shape"] == shape and r["rules"] == name]
            cpu = [r["cpu_per_record_us"] for r in cell]
            lines.append(
                [
                    shape,
                    name,
                    agg([r["p50_us"] for r in cell], "{:.1f}"),
                    agg([r["p99_us"] for r in cell], "{:.1f}"),
                    agg([r["caller_cpu_us"] for r in cell], "{:.1f}"),
                    agg(cpu, "{:.1f}"),
                    ratio(statistics.median(cpu), base_cpu),
                    f"{statistics.median(cpu) - base_cpu:+.1f}" if name != "none" else "-",
                    agg([r["agent_body_us"] for r in cell], "{:.1f}"),
                ]
            )
    print(
        table(
            [
                "frame",
                "rules",
                "collect() p50 (us)",
                "collect() p99 (us)",
                "collect() caller CPU p50 (us)",
                "CPU/record, caller+writer (us)",
                "vs none",
                "CPU/record change (us)",
                "agent body (us)",
            ],
            lines,
        )
    )
    finish_run(args.results, "redact-meta", meta, t_start)


if __name__ == "__main__":
    main()
