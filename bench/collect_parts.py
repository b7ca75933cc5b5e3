"""What collect() spends per part when called at a steady rate (cold caches between calls),
beside the same parts in a tight loop: the correlation context, the runtime lookups, the
frame's encoding, the Record, the submit to the pipeline, and the JSON line (which the
writer makes, not collect(); timed here to show what it would cost the caller).

usage (pinned like bench_collect's caller):
  taskset -c 0 .venv/bin/python bench/collect_parts.py [--shape 1x10] [--rate 500] [--calls 2500]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_collect import SHAPES, make_frame

import modeltap
from modeltap import runtime, sampling, tabular
from modeltap.collector import _size
from modeltap.context import BasicCorrelationContext, current_request_id
from modeltap.record import FRAME, Record, json_line

PARTS = ("context", "runtime", "encode", "record", "submit", "line")


def one_call(collector_name: str, frame, times: dict[str, list[int]]) -> None:
    """collect()'s steps, as Collector.collect takes them, each timed."""
    clock = time.perf_counter_ns
    t0 = clock()
    ctx = BasicCorrelationContext(id=current_request_id.get())
    t1 = clock()
    rt = runtime.current()
    rt.redactors.get(collector_name)
    rt.collection_enabled(collector_name)
    cid = ctx.get_id()
    sampling.keep(cid, rt.deployment.sampling_rate)
    t2 = clock()
    data = tabular.encode_small(frame)
    if data is None:
        data = tabular.snapshot(frame)[0]
    t3 = clock()
    record = Record(
        collector_name,
        data,
        kind=FRAME,
        correlation_id=cid,
        collect_data_type=tabular.PANDAS_TYPE,
        model_version=rt.deployment.model_version,
    )
    t4 = clock()
    rt.pipeline.submit(record, _size(data))
    t5 = clock()
    if type(data) is bytes:
        json_line(record, rt.pipeline.routes[collector_name].source)
    t6 = clock()
    stamps = (t0, t1, t2, t3, t4, t5, t6)
    for part, start, end in zip(PARTS, stamps, stamps[1:], strict=True):
        times[part].append(end - start)


def run(frame, rate: float | None, calls: int) -> dict[str, list[int]]:
    times: dict[str, list[int]] = {part: [] for part in PARTS}
    start = time.perf_counter()
    for i in range(calls):
        if rate:
            wait = start + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        one_call("model_inputs", frame, times)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", choices=list(SHAPES), default="1x10")
    ap.add_argument("--rate", type=float, default=500.0)
    ap.add_argument("--calls", type=int, default=2500)
    a = ap.parse_args()
    workspace = tempfile.mkdtemp(prefix="modeltap-parts-")
    modeltap.configure(
        workspace=workspace,
        endpoint="bench",
        deployment="blue",
        collections=["model_inputs"],
        flush_interval=1.0,
    )
    frame = make_frame(a.shape)
    run(frame, None, 50)  # warm-up
    paced = run(frame, a.rate, a.calls)
    tight = run(frame, None, a.calls)
    modeltap.shutdown()
    shutil.rmtree(workspace, ignore_errors=True)
    print(f"{a.shape}, {a.calls} calls: paced at {a.rate:.0f}/s vs a tight loop (us)\n")
    print("| part | paced p50 | paced p99 | tight p50 |\n|---|---|---|---|")
    for part in PARTS:
        p, t = sorted(paced[part]), sorted(tight[part])
        print(
            f"| {part} | {p[len(p) // 2] / 1000:.1f} | {p[int(len(p) * 0.99)] / 1000:.1f} "
            f"| {t[len(t) // 2] / 1000:.1f} |"
        )


if __name__ == "__main__":
    main()
