"""The workload bench/RESULTS-collect.md's round-2 profiles ran: a warm-up, then a 5 s flood of
collect() with one of bench_collect's frames, then flush and shutdown.

usage (pinned like bench_collect; the encoder process on CPU 1):
  taskset -c 0 env MODELTAP_ENCODER_CPUS=1 .venv/bin/py-spy record --subprocesses -r 200 \
      -f raw --threads -o /tmp/profile.txt -- .venv/bin/python bench/profile_collect.py 1000x20
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("shape", choices=list(SHAPES))
    ap.add_argument("--seconds", type=float, default=5.0)
    a = ap.parse_args()
    workspace = tempfile.mkdtemp(prefix="modeltap-profile-")
    modeltap.configure(
        workspace=workspace,
        endpoint="bench",
        deployment="blue",
        collections=["model_inputs"],
        flush_interval=1.0,
    )
    collector = modeltap.Collector(name="model_inputs")
    frame = make_frame(a.shape)
    for _ in range(20):
        collector.collect(frame)
    modeltap.flush()
    time.sleep(2)  # a large frame's encoder process is ready by now
    calls, start = 0, time.monotonic()
    while time.monotonic() - start < a.seconds:
        collector.collect(frame)
        calls += 1
    modeltap.flush(timeout=120)
    modeltap.shutdown()
    shutil.rmtree(workspace, ignore_errors=True)
    print(f"{a.shape}: {calls} calls in {a.seconds:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
