"""Read-back benchmark: modeltap.read.load vs naive pandas vs the DuckDB / pyarrow floor.

One invocation measures every method side by side on generated collections
(bench/gen_collections.py: exact R4.2 lines, modeltap's partition layout, 48 hourly partitions,
many files, some merged lines):

  naive        glob + pd.read_json(lines=True) per file + concat + explode("data") + json_normalize
               (the anchor's `pandas_naive`, ../shared/bench-anchor/monitoring/bench_read.py)
  duckdb       DuckDB read_ndjson(glob) + unnest(data, recursive := true) -> Arrow -> pandas; the
               int columns, which DuckDB sniffs as HUGEINT (Arrow decimal128), are cast to int64
  duckdb_raw   the same without that cast, exactly as the anchor did (not run by default)
  pyarrow      pyarrow.json.read_json per file + list_flatten / list_parent_indices -> pandas
  load_pandas  modeltap.read.load(asset, workspace=W)                     (engine="pandas")
  load_arrow   modeltap.read.load(asset, workspace=W, engine="arrow") (+ .to_pandas() for "total")
  load_exact   modeltap.read.load(asset, workspace=W, exact=True): pyarrow's line reader, what
               load() does without duckdb installed
  load_folder  modeltap.read.load(<collection folder>)                    (not run by default)
  load_1h      modeltap.read.load(asset, start, end) for 1 hour of the 48; counts the files that
               Storage.list() yielded and that were read (Storage.get(), or handed to DuckDB)

Every method yields one row per data row with the data columns plus correlationid, time and the
line id (record_id), so the floor does the same work as load(). Each measurement is a fresh
subprocess; "native" is the time to the tool's own table, "total" includes the conversion to a
pandas DataFrame. Peak RSS is the child's own ru_maxrss taken right after the read (and the
conversion), so it includes the interpreter and the imports ("after imports" is reported too) but
not the result checks made afterwards (their peak, from os.wait4, is kept in the JSON as
process_peak_rss_mb). Repetition is the outer loop; inside it the
datasets, then the methods, whose order is reversed every other rep.

Before each measurement the bench waits (polling every 10 s, at most --wait-budget s over the
whole run) until `pgrep -f "bench_serving|bench_agent|bench_collect"` finds nothing, and records
whether another benchmark was running during the measurement.

usage:
  .venv/bin/python bench/bench_read.py                 # 3 reps, 200 MB and 1 GB, 1x10 and 10x20
  .venv/bin/python bench/bench_read.py --quick         # smoke: 1 rep, 200 MB only
  .venv/bin/python bench/bench_read.py --profile       # + py-spy and a phase breakdown of load()
Markdown goes to stdout, progress to stderr, one JSON object per measurement to --results.
Data is generated once under --data-dir and reused (warm page cache: the files are read once
before each rep).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import glob
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from common import (
    SRC,
    agg,
    copy_src,
    cpu_model,
    find_pyspy,
    finish_run,
    log,
    machine_line,
    med,
    mem_kib,
    modeltap_commit,
    new_run_id,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OTHERS = "bench_serving|bench_agent|bench_collect"
PATTERN = "*/*/*/*/*.jsonl"  # yyyy/MM/dd/HH/{instance}.jsonl under the collection folder
HOUR = "2026-11-24T13"  # the 1-hour read: hour 37 of 48
METHODS = ["naive", "duckdb", "pyarrow", "load_pandas", "load_arrow", "load_exact", "load_1h"]
ALL_METHODS = [*METHODS, "load_folder", "duckdb_raw"]
LABEL = {
    "naive": "naive pandas (read_json + explode + json_normalize)",
    "duckdb": "DuckDB read_ndjson + unnest (HUGEINT cast to int64)",
    "duckdb_raw": "DuckDB read_ndjson + unnest, no cast (ints arrive as Decimal objects)",
    "pyarrow": "pyarrow read_json per file",
    "load_pandas": "**modeltap load(asset)**, pandas",
    "load_arrow": "modeltap load(asset), engine=arrow",
    "load_exact": "modeltap load(asset, exact=True), pandas (pyarrow reader)",
    "load_folder": "modeltap load(folder), pandas",
    "load_1h": "modeltap load(asset, 1 h of 48), pandas",
}


# ====================================================================================
#                                   CHILD (one measurement)
# ====================================================================================
def m_naive(man):
    import pandas as pd

    keep = ["correlationid", "time", "id"]
    files = glob.glob(os.path.join(man["collection_dir"], "**/*.jsonl"), recursive=True)
    raw = pd.concat([pd.read_json(f, lines=True) for f in files], ignore_index=True)
    raw = raw[[*keep, "data"]].explode("data", ignore_index=True)
    rows = pd.json_normalize(raw["data"].tolist())
    return pd.concat([rows, raw[keep].rename(columns={"id": "record_id"})], axis=1)


def m_duckdb(man, cast=True):
    import duckdb
    import pyarrow as pa

    # correlationid and id are sniffed as UUID; as UUID, .df()/to_pandas makes uuid.UUID objects
    sql = f"""SELECT unnest(data, recursive := true), correlationid::VARCHAR AS correlationid,
                     time, id::VARCHAR AS record_id
              FROM read_ndjson('{os.path.join(man["collection_dir"], PATTERN)}')"""
    table = duckdb.connect().sql(sql).to_arrow_table()
    # DuckDB sniffs these int columns (values in +-1e6) as HUGEINT -> Arrow decimal128(38, 0),
    # which .to_pandas() turns into Python Decimal objects (7 s and 3.5 GB at 10x20 1 GB).
    # `duckdb` casts them to int64 in Arrow, as a user would; `duckdb_raw` does not.
    if cast:
        for i, f in enumerate(table.schema):
            if pa.types.is_decimal(f.type) and f.type.scale == 0:
                table = table.set_column(i, f.name, table.column(i).cast(pa.int64()))
    return table


def m_duckdb_raw(man):
    return m_duckdb(man, cast=False)


def m_pyarrow(man):
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    keep = ["correlationid", "time", "id"]
    parts = []
    for f in sorted(glob.glob(os.path.join(man["collection_dir"], PATTERN))):
        t = pj.read_json(f)
        data = t.column("data").combine_chunks()
        rows = pc.list_flatten(data)
        base = t.select(keep).take(pc.list_parent_indices(data))
        parts.append(
            pa.Table.from_arrays(
                rows.flatten() + base.columns,
                names=[fld.name for fld in rows.type] + ["correlationid", "time", "record_id"],
            )
        )
    return pa.concat_tables(parts)


def m_load_pandas(man):
    from modeltap import read

    return read.load(man["asset"], workspace=man["workspace"], progress=False)


def m_load_arrow(man):
    from modeltap import read

    return read.load(man["asset"], workspace=man["workspace"], engine="arrow", progress=False)


def m_load_exact(man):
    from modeltap import read

    return read.load(man["asset"], workspace=man["workspace"], exact=True, progress=False)


def m_load_folder(man):
    from modeltap import read

    return read.load(man["collection_dir"], progress=False)


def hour_range(hour: str):
    start = datetime.datetime.fromisoformat(hour + ":00:00+00:00")
    return start, start + datetime.timedelta(hours=1)


def m_load_1h(man, hour=HOUR):
    from modeltap import read

    start, end = hour_range(hour)
    return read.load(man["asset"], start, end, workspace=man["workspace"], progress=False)


CHILD = {
    "naive": m_naive,
    "duckdb": m_duckdb,
    "duckdb_raw": m_duckdb_raw,
    "pyarrow": m_pyarrow,
    "load_pandas": m_load_pandas,
    "load_arrow": m_load_arrow,
    "load_exact": m_load_exact,
    "load_folder": m_load_folder,
    "load_1h": m_load_1h,
}


def rss_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def install_counters():
    """Count what load() asks of the storage: list() prefixes and items, get() paths, and the
    files handed to DuckDB (which reads local files itself, without get())."""
    from modeltap.read import _duck
    from modeltap.storage.local import LocalStorage

    seen = {"list_calls": [], "listed": [], "got": [], "duckdb_files": []}
    orig_get, orig_list, orig_duck = LocalStorage.get, LocalStorage.list, _duck.read

    def get(self, path):
        seen["got"].append(path)
        return orig_get(self, path)

    def list_(self, prefix=""):
        seen["list_calls"].append(prefix)
        for info in orig_list(self, prefix):
            seen["listed"].append(info.path)
            yield info

    def duck_read(paths, infos, *args, **kwargs):
        seen["duckdb_files"].extend(info.path for info in infos)
        return orig_duck(paths, infos, *args, **kwargs)

    LocalStorage.get, LocalStorage.list, _duck.read = get, list_, duck_read
    return seen


def install_phase_timers():
    """Wall time of each step of load() (diagnostics for --profile; not used for the tables)."""
    import pyarrow as pa

    from modeltap.read import _duck, _load

    phases = defaultdict(float)

    def timed(name, fn):
        def wrapper(*args, **kw):
            t = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                phases[name] += time.perf_counter() - t
                # peak RSS so far (monotonic) and Arrow memory held right after this step
                phases[f"{name}:peak_rss_mb"] = rss_mb()
                phases[f"{name}:arrow_mb"] = round(pa.total_allocated_bytes() / 2**20, 1)

        return wrapper

    for name in (
        "resolve",
        "list_objects",
        "_read_duckdb",
        "parse_all",
        "report",
        "_duckdb_frame",
        "_select",
        "finish_table",
    ):
        setattr(_load, name, timed(name, getattr(_load, name)))
    for name in ("sample_files", "_read_all", "_finish"):  # inside _read_duckdb
        setattr(_duck, name, timed(f"duckdb.{name}", getattr(_duck, name)))
    return phases


def child_main(a) -> int:
    man = json.loads(Path(a.manifest).read_text())
    res = {"method": a.method, "pid": os.getpid()}
    # imports first, so that the timed call measures reading only
    import pandas as pd
    import pyarrow as pa

    res["versions"] = {"pandas": pd.__version__, "pyarrow": pa.__version__}
    if a.method.startswith(("duckdb", "load")):
        try:
            import duckdb
        except ImportError:
            if a.method.startswith("duckdb"):
                raise
        else:
            res["versions"]["duckdb"] = duckdb.__version__
    counters = phases = None
    if a.method.startswith("load"):
        import modeltap
        import modeltap.read

        res["versions"]["modeltap"] = modeltap.__version__
        res["modeltap_file"] = modeltap.__file__
        counters = install_counters()
        if a.phases:
            phases = install_phase_timers()
    res["rss_after_imports_mb"] = rss_mb()
    fn = CHILD[a.method]
    t0 = time.perf_counter()
    out = fn(man, a.hour) if a.method == "load_1h" else fn(man)
    t1 = time.perf_counter()
    df = out if isinstance(out, pd.DataFrame) else out.to_pandas()
    t2 = time.perf_counter()
    res["native_s"] = round(t1 - t0, 4)
    res["total_s"] = round(t2 - t0, 4)
    res["native_type"] = f"{type(out).__module__}.{type(out).__qualname__}"
    # peak RSS of the read itself: ru_maxrss right after it, before the checks below allocate
    res["peak_rss_mb"] = rss_mb()
    res["rows"], res["cols"] = df.shape
    res["columns"] = {str(c): str(t) for c, t in df.dtypes.items()}
    res["f0_sum"] = float(df["f0"].sum()) if len(df) else 0.0
    res["i4_sum"] = int(df["i4"].sum()) if len(df) else 0
    res["distinct_record_ids"] = int(df["record_id"].nunique())
    if len(df):
        times = pd.to_datetime(df["time"], utc=True)
        res["time_min"], res["time_max"] = str(times.min()), str(times.max())
    if counters is not None:
        coll = man["collection_dir"]
        ws_root = Path(man["workspace"], "datastores", "workspaceblobstore")
        prefix = Path(coll).relative_to(ws_root).as_posix()
        hour_dir = f"{prefix}/{a.hour.replace('-', '/').replace('T', '/')}/"
        read_paths = counters["got"] + counters["duckdb_files"]
        res["list_calls"] = counters["list_calls"]
        res["files_listed"] = len(counters["listed"])
        res["files_read"] = len(set(read_paths))
        res["files_read_get"] = len(counters["got"])
        res["files_read_duckdb"] = len(counters["duckdb_files"])
        res["files_read_outside_hour"] = sum(1 for p in read_paths if not p.startswith(hour_dir))
        res["files_listed_outside_hour"] = sum(
            1 for p in counters["listed"] if not p.startswith(hour_dir)
        )
    if phases is not None:
        res["phases_s"] = {k: round(v, 4) for k, v in phases.items() if ":" not in k}
        res["phases_mem"] = {k: v for k, v in phases.items() if ":" in k}
    Path(a.out).write_text(json.dumps(res))
    return 0


# ====================================================================================
#                                   PARENT (orchestration)
# ====================================================================================
_SRC_FOR_CHILDREN: Path | None = None


def child_env() -> dict:
    env = dict(os.environ)
    src = str(_SRC_FOR_CHILDREN or SRC)
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("MODELTAP_WORKSPACE", None)
    env.pop("MODELTAP_DEPLOYMENT_FILE", None)
    return env


def others_running() -> list[str]:
    try:
        p = subprocess.run(["pgrep", "-af", OTHERS], capture_output=True, text=True)
    except OSError:
        return []
    me = {str(os.getpid())}
    return [ln for ln in p.stdout.splitlines() if ln.split(" ", 1)[0] not in me]


class Quiet:
    """Wait (bounded by a budget for the whole run) until no other benchmark runs."""

    def __init__(self, budget: float, poll: float = 10.0):
        self.left = budget
        self.poll = poll
        self.waited = 0.0

    def wait(self) -> list[str]:
        busy = others_running()
        if busy and self.left > 0:
            log(
                f"   waiting for other benchmarks ({len(busy)} process(es)); "
                f"budget {self.left:.0f} s"
            )
        while busy and self.left > 0:
            step = min(self.poll, self.left)
            time.sleep(step)
            self.left -= step
            self.waited += step
            busy = others_running()
        if busy:
            log(f"   proceeding while another benchmark runs: {busy[0][:120]}")
        return busy


def loadavg() -> float | None:
    with contextlib.suppress(OSError):
        return float(Path("/proc/loadavg").read_text().split()[0])
    return None


def warm(man) -> float:
    """Read every file once so that all methods start from a warm page cache."""
    t = time.time()
    for f in glob.glob(os.path.join(man["collection_dir"], PATTERN)):
        with open(f, "rb") as fh:
            while fh.read(1 << 22):
                pass
    return time.time() - t


def run_child(py, method, man_file, hour, workdir, timeout, phases=False, wrap=()):
    out = workdir / "child.json"
    with contextlib.suppress(FileNotFoundError):
        out.unlink()
    cmd = [
        *wrap,
        py,
        str(Path(__file__).resolve()),
        "--child",
        "--method",
        method,
        "--manifest",
        str(man_file),
        "--hour",
        hour,
        "--out",
        str(out),
    ]
    if phases:
        cmd.append("--phases")
    clog = workdir / f"child-{method}.log"
    t = time.perf_counter()
    with open(clog, "w") as lf:
        p = subprocess.Popen(cmd, env=child_env(), stdout=lf, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        status = ru = None
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.time() > deadline:
                p.kill()
                pid, status, ru = os.wait4(p.pid, 0)
                status = None
                break
            time.sleep(0.05)
        p.returncode = 0  # reaped by wait4; keep Popen from waiting again
    wall = time.perf_counter() - t
    err = None
    if status is None:
        err = f"timed out after {timeout} s (killed)"
    elif os.waitstatus_to_exitcode(status) != 0:
        err = f"exit code {os.waitstatus_to_exitcode(status)}"
    elif not out.exists():
        err = "no result written"
    if err:
        return {"method": method, "error": err + "\n" + clog.read_text(errors="replace")[-3000:]}
    r = json.loads(out.read_text())
    r["process_wall_s"] = round(wall, 3)
    # this child's ru_maxrss at exit (os.wait4): includes the result checks made after the read
    r["process_peak_rss_mb"] = round(ru.ru_maxrss / 1024, 1)
    return r


def versions(py) -> dict:
    code = r"""
import importlib.metadata as m, json, platform
out = {"python": platform.python_version()}
for d in ["pandas", "numpy", "pyarrow", "duckdb", "orjson", "py-spy"]:
    try: out[d] = m.version(d)
    except Exception: out[d] = None
import modeltap; out["modeltap"] = modeltap.__version__; out["modeltap_file"] = modeltap.__file__
print(json.dumps(out))
"""
    p = subprocess.run([py, "-c", code], env=child_env(), capture_output=True, text=True)
    info = json.loads(p.stdout) if p.returncode == 0 else {"versions_error": p.stderr[-500:]}
    cpu = cpu_model()
    kb = mem_kib()
    mem = "?" if kb is None else f"{kb / 2**20:.1f} GiB"
    info.update(nproc=os.cpu_count(), cpu_model=cpu, mem_total=mem, kernel=platform.release())
    info["modeltap_commit"] = modeltap_commit()
    return info


# ----------------------------------------------------------------------------------- report
# Not common.ratio / common.table: this report's ratios carry no "x", and an empty table keeps
# its header (the other benches print "(no runs)").
def ratio(a, b, fmt="{:.2f}"):
    if a is None or b is None or b == 0:
        return "-"
    return fmt.format(a / b)


def table(head, lines):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in ln) + " |" for ln in lines]
    return "\n".join(out) + "\n"


def report(rows, datasets, meta) -> str:
    ok = [r for r in rows if "error" not in r]
    g = defaultdict(list)
    for r in ok:
        g[(r["dataset"], r["method"])].append(r)
    methods = [m for m in ALL_METHODS if any(k[1] == m for k in g)]

    def measured():
        """(dataset, manifest, method, rows of its reps) for every measured pair, in order."""
        for ds, man in datasets.items():
            for m in methods:
                v = g.get((ds, m), [])
                if v:
                    yield ds, man, m, v

    out = []

    out.append("### 1. Full read, one row per data row (seconds; peak RSS of the child, MB)\n")
    out.append(
        "Cells: median [min-max] over reps. `native` = the tool's own table (Arrow for "
        "DuckDB/pyarrow/engine=arrow); `total` includes `.to_pandas()`. rows/s and MB/s "
        "from the median total.\n"
    )
    lines = []
    for ds, man, m, v in measured():
        tot = med([r["total_s"] for r in v])
        rows_ = v[0]["rows"]
        lines.append(
            [
                ds,
                LABEL[m],
                agg([r["native_s"] for r in v], "{:.2f}"),
                agg([r["total_s"] for r in v], "{:.2f}"),
                f"{rows_ / tot / 1000:.0f}k" if tot else "-",
                f"{man['mb'] / tot:.0f}" if tot and m != "load_1h" else "-",
                agg([r["peak_rss_mb"] for r in v], "{:.0f}"),
                agg([r["rss_after_imports_mb"] for r in v], "{:.0f}"),
                f"{rows_:,}",
                agg([r["process_wall_s"] for r in v], "{:.1f}"),
            ]
        )
    out.append(
        table(
            [
                "data",
                "method",
                "native s",
                "**total s**",
                "rows/s",
                "MB/s",
                "peak RSS MB",
                "RSS after imports MB",
                "rows",
                "process wall s",
            ],
            lines,
        )
    )

    out.append("### 2. Same result? (row count, sum of f0, sum of i4, distinct record ids)\n")
    lines = []
    for ds, man, m, v in measured():
        r = v[0]
        if m == "load_1h":
            want = man["hours"][HOUR.replace("-", "/").replace("T", "/")]["rows"]
            same = "yes" if all(x["rows"] == want for x in v) else "NO"
        else:
            want = man["rows"]
            same = (
                "yes"
                if all(
                    x["rows"] == want
                    and abs(x["f0_sum"] - man["f0_sum"]) <= 1e-6 * max(1.0, abs(man["f0_sum"]))
                    for x in v
                )
                else "NO"
            )
        lines.append(
            [
                ds,
                LABEL[m],
                f"{r['rows']:,}",
                f"{want:,}",
                same,
                f"{r['f0_sum']:.4f}",
                r["i4_sum"],
                f"{r['distinct_record_ids']:,}",
                r["columns"].get("time", "-"),
            ]
        )
    out.append(
        table(
            [
                "data",
                "method",
                "rows",
                "expected (manifest)",
                "rows & f0 sum match",
                "sum f0",
                "sum i4",
                "distinct record_id",
                "`time` dtype",
            ],
            lines,
        )
    )

    out.append(
        f"### 3. Time-range read: load(asset, start, end) for 1 hour ({HOUR}:00Z, +1 h) out of 48\n"
    )
    lines = []
    for ds, man in datasets.items():
        v = g.get((ds, "load_1h"), [])
        if not v:
            continue
        hour = man["hours"][HOUR.replace("-", "/").replace("T", "/")]
        full = med([r["total_s"] for r in g.get((ds, "load_pandas"), [])])
        t = med([r["total_s"] for r in v])
        r = v[0]
        lines.append(
            [
                ds,
                agg([x["total_s"] for x in v], "{:.3f}"),
                ratio(t, full, "{:.3f}") if full else "-",
                hour["files"],
                agg([x["files_listed"] for x in v], "{:.0f}"),
                f"{agg([x['files_read'] for x in v], '{:.0f}')} "
                f"({r.get('files_read_get', '-')} / {r.get('files_read_duckdb', '-')})",
                max(x["files_read_outside_hour"] for x in v),
                max(x["files_listed_outside_hour"] for x in v),
                len(r["list_calls"]),
                f"{r['rows']:,} / {hour['rows']:,}",
                agg([x["peak_rss_mb"] for x in v], "{:.0f}"),
            ]
        )
    out.append(
        table(
            [
                "data",
                "1 h read s",
                "vs full load",
                "files in that hour",
                "files listed",
                "files read (get / DuckDB)",
                "read outside the hour",
                "listed outside the hour",
                "list() calls",
                "rows / rows in hour",
                "peak RSS MB",
            ],
            lines,
        )
    )
    if lines:
        calls = next(iter(g.get((next(iter(datasets)), "load_1h"), [{}])), {}).get("list_calls")
        if calls:
            out.append(f"list() prefixes of the first dataset's 1-hour read: `{calls}`\n")

    out.append("### 4. Targets\n")
    lines = []
    for ds in datasets:

        def m_(method, key, ds=ds):
            return med([r[key] for r in g.get((ds, method), [])])

        naive_t, load_t = m_("naive", "total_s"), m_("load_pandas", "total_s")
        floors = {k: m_(k, "total_s") for k in ("duckdb", "pyarrow", "duckdb_raw")}
        floors = {k: v for k, v in floors.items() if v is not None}
        best_floor = min(floors.values()) if floors else None
        best_name = min(floors, key=floors.get) if floors else "-"
        arrow_t = m_("load_arrow", "native_s")
        floor_native = [m_(k, "native_s") for k in ("duckdb", "pyarrow", "duckdb_raw")]
        floor_native = min([x for x in floor_native if x is not None], default=None)
        naive_rss, load_rss = m_("naive", "peak_rss_mb"), m_("load_pandas", "peak_rss_mb")
        speed = naive_t / load_t if naive_t and load_t else None
        vs_floor = load_t / best_floor if load_t and best_floor else None
        mem = load_rss / naive_rss if load_rss and naive_rss else None
        naive_base, load_base = (
            m_("naive", "rss_after_imports_mb"),
            m_("load_pandas", "rss_after_imports_mb"),
        )
        growth = (
            (load_rss - load_base) / (naive_rss - naive_base)
            if load_rss and naive_rss and naive_base and load_base and naive_rss > naive_base
            else None
        )
        v1h = g.get((ds, "load_1h"), [])
        man = datasets[ds]
        hour = man["hours"][HOUR.replace("-", "/").replace("T", "/")]
        only_hour = (
            all(x["files_read_outside_hour"] == 0 and x["files_read"] == hour["files"] for x in v1h)
            if v1h
            else None
        )

        def yn(x):
            return "-" if x is None else ("**met**" if x else "**NOT met**")

        lines.append(
            [
                ds,
                f"{speed:.1f}x" if speed else "-",
                yn(speed >= 10 if speed else None),
                f"{vs_floor:.2f}x ({best_name})" if vs_floor else "-",
                yn(vs_floor <= 1.2 if vs_floor else None),
                ratio(arrow_t, floor_native),
                f"{mem:.2f}x" if mem else "-",
                yn(mem <= 0.2 if mem else None),
                f"{growth:.2f}x" if growth else "-",
                yn(only_hour),
            ]
        )
    out.append(
        table(
            [
                "data",
                "naive / load (pandas)",
                "≥ 10x",
                "load / fastest floor (total)",
                "≤ 1.2x",
                "load arrow / fastest floor (native)",
                "load peak RSS / naive",
                "≤ 0.2x",
                "(growth above imports: load / naive)",
                "1 h read touches only that hour's files",
            ],
            lines,
        )
    )

    conc = [r for r in rows if r.get("others_running")]
    out.append("### 5. Conditions\n")
    out.append(
        f"* Waited {meta.get('waited_s', 0):.0f} s in total for other benchmarks "
        f"(budget {meta.get('wait_budget_s')} s)."
    )
    if conc:
        out.append(
            f"* **{len(conc)} of {len(rows)} measurements ran while another benchmark was "
            "running** (pgrep matched before or after the child): "
            + ", ".join(sorted({f"{r['dataset']} {r['method']} rep {r['rep']}" for r in conc}))
            + "."
        )
        procs = Counter(p.split(" ", 2)[-1][:100] for r in conc for p in r["others_running"])
        for p, n in procs.most_common(5):
            out.append(f"  * `{p}` ({n}x)")
    else:
        out.append("* No other benchmark was running during any measurement.")
    la = [r.get("loadavg_before") for r in rows if r.get("loadavg_before") is not None]
    if la:
        out.append(
            f"* 1-min load average before the measurements: median {med(la):.2f}, "
            f"max {max(la):.2f} (2 CPUs)."
        )
    errs = [r for r in rows if "error" in r]
    for r in errs:
        out.append(
            f"* FAILED: {r['dataset']} {r['method']} rep {r['rep']}: ```{r['error'][:1500]}```"
        )
    out.append("")
    return "\n".join(out)


# ----------------------------------------------------------------------------------- profile
def summarize_pyspy(raw_file: Path, top: int = 25) -> dict:
    """Inclusive and self sample shares per function from py-spy's collapsed-stack output,
    over the samples taken inside load() (its own thread or its pool's threads)."""
    incl, self_, total = Counter(), Counter(), 0
    for ln in raw_file.read_text().splitlines():
        stack, _, n = ln.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        n = int(n)
        if "m_load_pandas (" not in stack and "concurrent/futures/thread.py" not in stack:
            continue  # imports and the bench's own checks: not load()
        total += n
        frames = [re.sub(r"\s+\(.*?/(site-packages|src)/", " (", f) for f in stack.split(";")]
        for f in set(frames):
            incl[f] += n
        self_[frames[-1]] += n
    pct = (
        (lambda c: [(f, round(100 * n / total, 1)) for f, n in c.most_common(top)])
        if total
        else (lambda c: [])
    )
    # inclusive: only modeltap's and pyarrow's frames (thread/pool plumbing is ~100 % anyway)
    incl = Counter({f: n for f, n in incl.items() if "modeltap/" in f or "pyarrow/" in f})
    return {"samples": total, "inclusive": pct(incl), "self": pct(self_)}


def profile(py, man_file, work, out_prefix: Path, rate: int) -> dict:
    res = {}
    spy = find_pyspy(py)
    r = run_child(py, "load_pandas", man_file, HOUR, work, 1800, phases=True)
    res["phases"] = r.get("phases_s"), r.get("total_s"), r.get("error")
    res["phases_mem"] = r.get("phases_mem")
    res["phases_peak_rss_mb"] = r.get("peak_rss_mb")  # right after the read
    if not spy:
        res["pyspy"] = "py-spy not found"
        return res
    for mode, extra in (("all", []), ("gil", ["--gil"])):
        raw = Path(f"{out_prefix}-pyspy-{mode}.txt")
        wrap = [spy, "record", "--format", "raw", "--rate", str(rate), *extra, "-o", str(raw), "--"]
        r = run_child(py, "load_pandas", man_file, HOUR, work, 1800, wrap=wrap)
        res[f"pyspy_{mode}"] = (
            summarize_pyspy(raw) if raw.exists() else {"error": r.get("error", "no output")}
        )
        res[f"pyspy_{mode}_file"] = str(raw)
        res[f"pyspy_{mode}_total_s"] = r.get("total_s")
    return res


# ----------------------------------------------------------------------------------- main
def orchestrate(a) -> int:
    global _SRC_FOR_CHILDREN
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup below
    py = sys.executable
    reps = a.reps if a.reps is not None else (1 if a.quick else 3)
    sizes = [float(s) for s in (a.sizes or ("200" if a.quick else "200,1024")).split(",")]
    shapes = a.shapes.split(",")
    methods = a.methods.split(",")
    for m in methods:
        if m not in CHILD:
            sys.exit(f"unknown method {m!r}; choose from {ALL_METHODS}")

    work = Path(tempfile.mkdtemp(prefix="modeltap-read-bench-", dir=a.workdir))
    # One version of src/ for the whole run: others may edit src/ meanwhile.
    _SRC_FOR_CHILDREN = copy_src(work)
    results = Path(a.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    run_id = new_run_id()
    meta = versions(py)
    meta.update(
        run_id=run_id,
        reps=reps,
        sizes_mb=sizes,
        shapes=shapes,
        methods=methods,
        hour=HOUR,
        wait_budget_s=a.wait_budget,
        command=" ".join([Path(py).name, *sys.argv]),
    )
    log(f"run {run_id}: work dir {work}, results -> {results}")
    log(json.dumps(meta))
    t_start = time.time()

    # data first (generated once, reused by later runs)
    datasets = {}
    man_files = {}
    for mb in sizes:
        for sh in shapes:
            name = f"{sh} {mb:g} MB" if mb < 1024 else f"{sh} {mb / 1024:g} GB"
            out = Path(a.data_dir) / f"{sh}-{mb:g}mb"
            gen = [py, str(HERE / "gen_collections.py"), "--out", str(out), "--shape", sh]
            p = subprocess.run(
                [*gen, "--mb", str(mb)], env=child_env(), capture_output=True, text=True
            )
            if p.returncode != 0:
                sys.exit(f"generation failed for {name}:\n{p.stderr[-3000:]}")
            if p.stderr.strip():
                log(p.stderr.strip())
            man_files[name] = out / "manifest.json"
            datasets[name] = json.loads(man_files[name].read_text())
            d = datasets[name]
            log(
                f"data {name}: {d['files']} files, {d['lines']:,} lines ({d['merged_lines']:,} "
                f"merged), {d['rows']:,} rows, {d['mb']} MB"
            )
    meta["data"] = {
        k: {
            x: v[x]
            for x in ("files", "lines", "merged_lines", "rows", "mb", "gen_s", "collection_dir")
        }
        for k, v in datasets.items()
    }

    quiet = Quiet(a.wait_budget)
    rows = []
    try:
        for rep in range(1, reps + 1):
            order = methods if rep % 2 == 1 else methods[::-1]
            log(f"== rep {rep}/{reps}  {time.strftime('%H:%M:%S')}  order {order}")
            for ds in datasets:
                log(f"  {ds}: warm page cache {warm(datasets[ds]):.1f} s")
                for m in order:
                    busy = quiet.wait()
                    la = loadavg()
                    r = run_child(py, m, man_files[ds], HOUR, work, a.timeout)
                    after = others_running()
                    r.update(
                        bench="read",
                        run_id=run_id,
                        rep=rep,
                        dataset=ds,
                        loadavg_before=la,
                        others_running=sorted(set(busy) | set(after)),
                    )
                    if "error" in r:
                        log(f"   {ds:12s} {m:12s} FAILED: {r['error']}")
                    else:
                        extra = (
                            f"  listed {r['files_listed']} read {r['files_read']}"
                            if "files_read" in r
                            else ""
                        )
                        log(
                            f"   {ds:12s} {m:12s} native {r['native_s']:7.3f}  total "
                            f"{r['total_s']:7.3f}  rss {r['peak_rss_mb']:7.0f} MB  rows "
                            f"{r['rows']:,}{extra}"
                            + ("  (others running)" if r["others_running"] else "")
                        )
                    rows.append(r)
                    with open(results, "a") as f:
                        f.write(json.dumps(r) + "\n")
        meta["waited_s"] = quiet.waited
        if a.profile:
            meta["profile"] = {}
            for sh in shapes:  # the largest collection of each frame shape
                big = max(
                    (k for k in datasets if k.startswith(sh + " ")), key=lambda k: datasets[k]["mb"]
                )
                log(f"== profile: load_pandas on {big}")
                busy = quiet.wait()
                p = profile(py, man_files[big], work, results.parent / f"{run_id}-{sh}", a.spy_rate)
                p["others_running"] = sorted(set(busy) | set(others_running()))
                meta["profile"][big] = p
            meta["waited_s"] = quiet.waited
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    finish_run(results, "read-meta", meta, t_start)

    print(f"## modeltap.read.load vs naive pandas vs DuckDB / pyarrow ({run_id})\n")
    print(
        machine_line(
            meta,
            (
                "nproc",
                "cpu_model",
                "mem_total",
                "python",
                "pandas",
                "numpy",
                "pyarrow",
                "duckdb",
                "orjson",
                "modeltap",
                "modeltap_commit",
            ),
        )
    )
    print(
        f"Command: `{meta['command']}` (wall {meta['wall_s']} s), {reps} rep(s), "
        "each measurement a fresh subprocess.\n"
    )
    print(
        table(
            ["data", "files", "lines (merged)", "rows", "MB"],
            [
                [
                    k,
                    v["files"],
                    f"{v['lines']:,} ({v['merged_lines']:,})",
                    f"{v['rows']:,}",
                    v["mb"],
                ]
                for k, v in datasets.items()
            ],
        )
    )
    print(report(rows, datasets, meta))
    for big, p in (meta.get("profile") or {}).items():
        print(f"### 6. Profile of load(asset), engine=pandas, on {big}\n")
        if p["others_running"]:
            print(f"(another benchmark was running: {p['others_running'][0][:100]})\n")
        ph, tot, _err = p["phases"]
        if ph:
            print(
                f"Phase wall times (one run, total {tot:.2f} s): "
                + ", ".join(f"{k} {v:.3f} s" for k, v in ph.items())
                + "\n"
            )
        if p.get("phases_mem"):
            print(
                "Peak RSS (MB) so far / Arrow-allocated MB right after each step: "
                + ", ".join(
                    f"{k.split(':')[0]} {p['phases_mem'][k]:.0f} / "
                    f"{p['phases_mem'][k.split(':')[0] + ':arrow_mb']:.0f}"
                    for k in p["phases_mem"]
                    if k.endswith(":peak_rss_mb")
                )
                + f"; peak after the read {p.get('phases_peak_rss_mb')}\n"
            )
        WHAT = {"all": "all active threads", "gil": "--gil: the thread holding the GIL"}
        for mode in ("all", "gil"):
            s = p.get(f"pyspy_{mode}")
            if not s or "error" in s:
                print(f"py-spy ({mode}): {s}\n")
                continue
            print(
                f"py-spy record ({WHAT[mode]}), "
                f"{s['samples']} samples, run total {p.get(f'pyspy_{mode}_total_s')} s; "
                f"raw stacks: `{p.get(f'pyspy_{mode}_file')}`\n"
            )
            print(table(["function (inclusive)", "% samples"], s["inclusive"][:15]))
            print(table(["function (self)", "% samples"], s["self"][:12]))
    return 0 if not any("error" in r for r in rows) else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 rep, 200 MB only")
    ap.add_argument("--reps", type=int, default=None, help="default 3 (1 with --quick)")
    ap.add_argument(
        "--sizes", default=None, help="MB, comma separated (default 200,1024; 200 with --quick)"
    )
    ap.add_argument("--shapes", default="1x10,10x20")
    ap.add_argument(
        "--methods",
        default=",".join(METHODS),
        help=f"comma separated, from {','.join(ALL_METHODS)}",
    )
    ap.add_argument("--data-dir", default="/tmp/modeltap-read-bench/data")
    ap.add_argument("--results", default="/tmp/modeltap-bench/results-read.jsonl")
    ap.add_argument(
        "--wait-budget",
        type=float,
        default=600,
        help="seconds, whole run: wait this long at most for other benchmarks",
    )
    ap.add_argument("--timeout", type=float, default=1200, help="seconds per measurement")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="after the measurements: phase times + py-spy of load() on the largest data",
    )
    ap.add_argument("--spy-rate", type=int, default=100)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--keep", action="store_true")
    # internal: one measurement in this (fresh) process
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--method", help=argparse.SUPPRESS)
    ap.add_argument("--manifest", help=argparse.SUPPRESS)
    ap.add_argument("--hour", default=HOUR, help=argparse.SUPPRESS)
    ap.add_argument("--phases", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        return child_main(a)
    return orchestrate(a)


if __name__ == "__main__":
    sys.exit(main())
