"""Compaction benchmark: modeltap compact vs DuckDB writing Parquet, and reading back.

On the read benchmark's 1 GB collections (bench/gen_collections.py: 48 hourly partitions,
2 writers x 12 flushes an hour), side by side in one run:

  compact        modeltap.compact.compact(asset): every partition into a fresh Delta table
                 (rows/s, table bytes)
  duckdb         DuckDB read_ndjson over the same files + unnest(data) -> one Parquet file
                 (ZSTD), the same rows and columns: the floor for "JSON lines -> Parquet"
  load_table     modeltap.read.load(asset, day) of one day (24 partitions), from the table
  load_json      the same day with delta=False: from the JSON lines
  spark_table    read.spark(asset, day) materialized (noop sink), from the table's Parquet
  spark_json     the same with delta=False: spark.read.json + posexplode

Each compact/duckdb/load measurement is a fresh subprocess (page cache warm: the files are
read once before each rep); the two Spark ones share one local[2] session (started first,
not timed) and alternate. Medians [min-max] over --reps.

usage:
  .venv/bin/python bench/bench_compact.py               # 3 reps, 1x10 and 10x20 at 1 GB
  .venv/bin/python bench/bench_compact.py --quick       # 1 rep, 200 MB 1x10
Markdown to stdout, progress to stderr, one JSON object per measurement to --results.
Data is generated under --data-dir (not the read benchmark's: a table is added to it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
import gen_collections as gen

DAY = ("2026-11-23T00:00:00+00:00", "2026-11-24T00:00:00+00:00")
METHODS = ("compact", "duckdb", "load_table", "load_json")


def folder_bytes(path: Path, suffix: str = "") -> int:
    return sum(f.stat().st_size for f in path.rglob(f"*{suffix}") if f.is_file())


def day_files(man: dict, suffix: str) -> list[Path]:
    root = Path(man["collection_dir"])
    if suffix == ".jsonl":
        return sorted((root / "2026/11/23").rglob("*.jsonl"))
    return sorted(Path(f"{root}-delta").glob("date=2026-11-23/*/*.parquet"))


# -- one measurement, in a child process -----------------------------------------------------


def child(method: str, man: dict, out: Path) -> dict:
    sys.path.insert(0, str(common.SRC))
    import duckdb
    import pandas  # noqa: F401 - imports are not timed

    from modeltap import compact, read

    ws, asset = man["workspace"], man["asset"]
    t = time.perf_counter()
    if method == "compact":
        report = compact.compact(asset, workspace=ws)
        took = time.perf_counter() - t
        table = Path(f"{man['collection_dir']}-delta")
        return {"s": took, "rows": report.rows, "bytes": folder_bytes(table, ".parquet")}
    if method == "duckdb":
        files = sorted(str(p) for p in Path(man["collection_dir"]).rglob("*.jsonl"))
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        target = out / "rows.parquet"
        con.execute(
            "COPY (SELECT unnest(data, recursive := true), correlationid, "
            'CAST("time" AS TIMESTAMPTZ) AS "time", id AS record_id '
            "FROM read_ndjson($files, format = 'newline_delimited')) "
            "TO '" + str(target) + "' (FORMAT parquet, COMPRESSION zstd)",
            {"files": files},
        )
        took = time.perf_counter() - t
        rows = con.execute(f"SELECT count(*) FROM '{target}'").fetchone()[0]
        return {"s": took, "rows": rows, "bytes": target.stat().st_size}
    df = read.load(asset, *DAY, workspace=ws, delta=method == "load_table")
    took = time.perf_counter() - t
    return {"s": took, "rows": len(df)}


def spark_child(man: dict, reps: int) -> list[dict]:
    sys.path.insert(0, str(common.SRC))
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    from modeltap import read

    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "4g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    spark.range(1000).write.format("noop").mode("overwrite").save()  # warm up
    out = []
    for rep in range(reps):
        order = [True, False] if rep % 2 == 0 else [False, True]
        for table in order:
            t = time.perf_counter()
            df = read.spark(
                man["asset"], *DAY, spark=spark, workspace=man["workspace"], delta=table
            )
            df.write.format("noop").mode("overwrite").save()
            took = time.perf_counter() - t
            rows = df.count()
            out.append(
                {"method": "spark_table" if table else "spark_json", "s": took, "rows": rows}
            )
    spark.stop()
    return out


# -- the run ---------------------------------------------------------------------------------


def run_child(args: list[str], timeout: float) -> dict | list[dict]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(common.SRC)},
    )
    if done.returncode != 0:
        common.die(f"child {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def warm(man: dict) -> None:
    for f in Path(man["collection_dir"]).rglob("*"):
        if f.is_file():
            f.read_bytes()


def orchestrate(a: argparse.Namespace) -> int:
    t_start = time.time()
    shapes = ["1x10"] if a.quick else a.shapes.split(",")
    mb = 200 if a.quick else a.mb
    reps = 1 if a.quick else a.reps
    rows_out: list[dict] = []
    mans = {}
    for shape in shapes:
        out = Path(a.data_dir) / f"{shape}-{int(mb)}mb"
        mans[shape] = gen.ensure(out, shape, mb, log=common.log)
    results = Path(a.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    for shape, man in mans.items():
        table = Path(f"{man['collection_dir']}-delta")
        for rep in range(reps):
            warm(man)
            methods = METHODS if rep % 2 == 0 else tuple(reversed(METHODS[:2])) + METHODS[2:]
            for method in methods:
                if method == "compact" and table.exists():
                    shutil.rmtree(table)
                with tempfile.TemporaryDirectory(prefix="modeltap-bench-") as work:
                    args = ["--method", method, "--manifest", json.dumps(man), "--out", work]
                    r = run_child(args, a.timeout)
                assert isinstance(r, dict)
                row = {"shape": shape, "rep": rep, "method": method, **r}
                common.log(f"{shape} rep {rep} {method}: {r['s']:.2f} s, {r['rows']} rows")
                rows_out.append(row)
        if a.spark:
            spark_rows = run_child(
                ["--spark", "--manifest", json.dumps(man), "--reps", str(reps)], a.timeout * 3
            )
            assert isinstance(spark_rows, list)
            for r in spark_rows:
                common.log(f"{shape} {r['method']}: {r['s']:.2f} s, {r['rows']} rows")
                rows_out.append({"shape": shape, **r})
        day_json = sum(f.stat().st_size for f in day_files(man, ".jsonl"))
        day_table = sum(f.stat().st_size for f in day_files(man, ".parquet"))
        rows_out.append(
            {
                "shape": shape,
                "method": "day_bytes",
                "json": day_json,
                "table": day_table,
                "mb": man["mb"],
                "files": man["files"],
            }
        )
    meta = {
        "machine": platform.node(),
        "cpu": common.cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "commit": common.modeltap_commit(),
        "load": os.getloadavg()[0],
        "versions": versions(),
    }
    with open(results, "a") as f:
        for row in rows_out:
            f.write(json.dumps({"bench": "compact", **meta, **row}) + "\n")
    print(report(rows_out, meta))
    common.finish_run(results, "compact-run", meta, t_start)
    return 0


def versions() -> dict:
    out = {}
    for name in ("deltalake", "duckdb", "pyarrow", "pyspark", "pandas"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = None
    return out


def report(rows: list[dict], meta: dict) -> str:
    lines = [
        f"Machine: {meta['cpu']}, {meta['cores']} cores, Python {meta['python']}, "
        f"commit {meta['commit']}, load average at the end {meta['load']:.1f}; "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
        + "\n"
    ]
    for shape in dict.fromkeys(r["shape"] for r in rows):
        mine = [r for r in rows if r["shape"] == shape]

        def vals(method: str, key: str = "s", mine: list[dict] = mine) -> list[float]:
            return [r[key] for r in mine if r["method"] == method]

        size = next(r for r in mine if r["method"] == "day_bytes")
        rows_n = vals("compact", "rows")[0]
        head = ["what", "seconds (median [min-max])", "rows/s", "bytes"]
        table = []
        for method in ("compact", "duckdb"):
            s = common.med(vals(method))
            table.append(
                [
                    method,
                    common.agg(vals(method), "{:.1f}"),
                    f"{rows_n / s:,.0f}" if s else "-",
                    f"{common.med(vals(method, 'bytes')) / 1e6:.0f} MB",
                ]
            )
        for method in ("load_table", "load_json", "spark_table", "spark_json"):
            if vals(method):
                day_rows = vals(method, "rows")[0]
                s = common.med(vals(method))
                table.append(
                    [
                        method,
                        common.agg(vals(method), "{:.2f}"),
                        f"{day_rows / s:,.0f}" if s else "-",
                        "",
                    ]
                )
        lines.append(f"\n### {shape}, {size['mb']} MB, {size['files']} files, {rows_n:,} rows\n")
        lines.append(common.table(head, table))
        ratios = [
            "compact / duckdb time: "
            + common.ratio(common.med(vals("compact")), common.med(vals("duckdb"))),
            f"load of a day, JSON / table time: "
            f"{common.ratio(common.med(vals('load_json')), common.med(vals('load_table')))}",
            f"a day's table bytes / JSON bytes: {size['table'] / size['json']:.3f} "
            f"({size['table'] / 1e6:.0f} MB / {size['json'] / 1e6:.0f} MB)",
        ]
        if vals("spark_table"):
            ratios.append(
                "Spark, JSON / table time: "
                + common.ratio(common.med(vals("spark_json")), common.med(vals("spark_table")))
            )
        lines.append("\n" + "\n".join(f"- {r}" for r in ratios) + "\n")
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--mb", type=float, default=1024)
    ap.add_argument("--shapes", default="1x10,10x20")
    ap.add_argument("--no-spark", dest="spark", action="store_false")
    ap.add_argument("--data-dir", default="/tmp/modeltap-compact-bench/data")
    ap.add_argument("--results", default="/tmp/modeltap-bench/results-compact.jsonl")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--spark", dest="spark_child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--method", help=argparse.SUPPRESS)
    ap.add_argument("--manifest", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        man = json.loads(a.manifest)
        if a.spark_child:
            print(json.dumps(spark_child(man, a.reps)))
        else:
            print(json.dumps(child(a.method, man, Path(a.out))))
        return 0
    return orchestrate(a)


if __name__ == "__main__":
    sys.exit(main())
