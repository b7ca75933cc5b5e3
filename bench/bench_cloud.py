"""Landed records/s to Azure Blob (Azurite) and S3 (moto) vs a local folder, with
durability "memory" and "spool", for small and 1000x20 frames (issue: cloud datastores).

Each cell: N collect() calls as fast as the caller can make them (overflow "block", so
nothing is dropped), then flush(); landed/s = N / (time from the first collect() to the
end of the flush). Reps are the outer loop and the order rotates, so a noisy moment of
this shared machine hits every cell alike; cells report median [min-max].

    .venv/bin/python bench/bench_cloud.py [--reps 3] [--small 5000] [--large 300]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import common
from tests.emulators import Azurite, MotoS3, unique_name

import modeltap
from modeltap import collector

BACKENDS = ("local", "azure_blob", "s3")
DURABILITY = ("memory", "spool")
CONN_ENV = "MODELTAP_BENCH_AZURE"


def workspace_yaml(backend: str, azurite: Azurite, moto: MotoS3) -> str:
    if backend == "local":
        return "datastores:\n  lake: {type: local, path: lake}\n"
    if backend == "azure_blob":
        container = azurite.create_container(unique_name("bench"))
        return (
            "datastores:\n  lake:\n    type: azure_blob\n"
            f"    container: {container}\n    connection_string_env: {CONN_ENV}\n"
        )
    bucket = moto.create_bucket(unique_name("bench"))
    return (
        "datastores:\n  lake:\n    type: s3\n"
        f"    bucket: {bucket}\n    region: {moto.region}\n    endpoint_url: {moto.endpoint}\n"
    )


def one_cell(backend: str, durability: str, frame: pd.DataFrame, n: int, ws_yaml: str) -> dict:
    ws = Path(tempfile.mkdtemp(prefix="bench-cloud-"))
    (ws / "workspace.yml").write_text(ws_yaml)
    modeltap.configure(
        workspace=ws,
        endpoint="bench",
        deployment="blue",
        collections={
            "model_inputs": {
                "enabled": True,
                "data": {"path": "azureml://datastores/lake/paths/inputs"},
            }
        },
        durability=durability,
        overflow="block",
        block_timeout=120,
    )
    inputs = collector.Collector(name="model_inputs")
    latencies = []
    started = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        inputs.collect(frame)
        latencies.append(time.perf_counter() - t)
    done = modeltap.flush(600)
    took = time.perf_counter() - started
    stats = modeltap.stats()
    modeltap.shutdown()
    collector._reset_for_tests()
    latencies.sort()
    return {
        "backend": backend,
        "durability": durability,
        "rows": len(frame),
        "n": n,
        "landed_per_s": stats["written"] / took,
        "written": stats["written"],
        "dropped": stats["dropped"],
        "flushed": done,
        "collect_p50_us": latencies[len(latencies) // 2] * 1e6,
        "collect_p99_us": latencies[int(len(latencies) * 0.99)] * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--small", type=int, default=5000, help="1x10 frames per cell")
    parser.add_argument("--large", type=int, default=300, help="1000x20 frames per cell")
    parser.add_argument("--results", type=Path, help="append one JSON line per cell")
    args = parser.parse_args()

    shapes = {
        "1x10": (pd.DataFrame({f"c{i}": [float(i)] for i in range(10)}), args.small),
        "1000x20": (pd.DataFrame({f"c{i}": range(1000) for i in range(20)}), args.large),
    }
    tmp = Path(tempfile.mkdtemp(prefix="bench-emulators-"))
    azurite, moto = Azurite(tmp / "azurite"), MotoS3(tmp / "moto")
    azurite.start()
    moto.start()
    os.environ[CONN_ENV] = azurite.connection_string
    os.environ.update(moto.env)
    cells = [(b, d, s) for s in shapes for d in DURABILITY for b in BACKENDS]
    results: list[dict] = []
    try:
        for rep in range(args.reps):
            order = cells[rep % len(cells) :] + cells[: rep % len(cells)]
            for backend, durability, shape in order:
                frame, n = shapes[shape]
                row = one_cell(
                    backend, durability, frame, n, workspace_yaml(backend, azurite, moto)
                )
                row.update(rep=rep, shape=shape)
                results.append(row)
                print(
                    f"rep {rep} {shape:8} {backend:10} {durability:6} "
                    f"{row['landed_per_s']:9.0f}/s p50 {row['collect_p50_us']:.0f}us",
                    file=sys.stderr,
                )
                if args.results:
                    with args.results.open("a") as f:
                        f.write(json.dumps(row) + "\n")
    finally:
        azurite.stop()
        moto.stop()

    def cell(shape: str, backend: str, durability: str, key: str) -> list[float]:
        return [
            r[key]
            for r in results
            if (r["shape"], r["backend"], r["durability"]) == (shape, backend, durability)
        ]

    print("# Cloud datastores: landed records/s (bench/bench_cloud.py)\n")
    print(
        f"Machine: {common.cpu_model()}, {os.cpu_count()} cores; Python "
        f"{platform.python_version()}; modeltap {common.modeltap_commit()}; "
        f"{args.reps} reps; 1x10: {args.small} frames, 1000x20: {args.large} frames per cell.\n"
    )
    print(
        "| frame | datastore | durability | landed records/s | ratio to local (same "
        "durability) | collect() p50 µs | p99 µs | dropped |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for shape in shapes:
        for durability in DURABILITY:
            local = statistics.median(cell(shape, "local", durability, "landed_per_s"))
            for backend in BACKENDS:
                rates = cell(shape, backend, durability, "landed_per_s")
                print(
                    f"| {shape} | {backend} | {durability} | {common.agg(rates)} | "
                    f"{statistics.median(rates) / local:.2f}x | "
                    f"{common.agg(cell(shape, backend, durability, 'collect_p50_us'))} | "
                    f"{common.agg(cell(shape, backend, durability, 'collect_p99_us'))} | "
                    f"{sum(cell(shape, backend, durability, 'dropped')):.0f} |"
                )


if __name__ == "__main__":
    main()
