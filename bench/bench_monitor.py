"""modeltap's data_drift signal vs Evidently's DataDriftPreset, side by side in one run, and
the whole `modeltap monitor run` from collected JSON lines.

    bash bench/setup_monitor_env.sh                      # Evidently's own venv (pandas<3)
    .venv/bin/python bench/bench_monitor.py --n 100000 1000000 --repeats 3

Data: the anchor's generator (../shared/bench-anchor/monitoring/gen_drift_data.py, copied
in `make` below): 20 features (14 float, 3 int with > 20 distinct values, 3 ten-level
string columns), N reference + N production rows, 5 features shifted.

Each side runs in its own process (so peak RSS, ru_maxrss, is its own): loading the
parquet files is not timed, then `--repeats` runs of
- Evidently: `Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)`,
- modeltap: `signals.evaluate()` of a data_drift signal with default metrics (numerical
  normalized_wasserstein_distance, categorical jensen_shannon_distance), LocalEngine.
Shared metrics are compared after the definitional conversions (Evidently's normed
Wasserstein divides by std with ddof=0, ours ddof=1; its JS uses the natural log).

Part 2 (`--e2e-rows`, default 1,000,000): a collection of that many production rows is
written with the real pipeline (Collector.collect, 1,000 rows per call), then
`modeltap monitor run` (a fresh process: imports, read, compute, results, report) is timed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EVIDENTLY_PY = "/tmp/modeltap-bench/venv-evidently/bin/python"
CATS = [f"cat_{k}" for k in range(10)]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make(n, rng, shifted):
    """The anchor's gen_drift_data.make (same seed, same frames)."""
    import numpy as np
    import pandas as pd

    s = 1.0 if shifted else 0.0
    cols = {}
    cols["f00"] = rng.normal(0.0 + 0.25 * s, 1.0, n)
    cols["f01"] = rng.normal(10.0, 2.0 * (1 + 0.5 * s), n)
    cols["f02"] = rng.lognormal(3.0 + 0.2 * s, 0.5, n)
    for k in range(3, 14):
        kind = k % 4
        if kind == 0:
            cols[f"f{k:02d}"] = rng.normal(k, 1.0 + k / 10, n)
        elif kind == 1:
            cols[f"f{k:02d}"] = rng.uniform(0, k, n)
        elif kind == 2:
            cols[f"f{k:02d}"] = rng.exponential(k, n)
        else:
            cols[f"f{k:02d}"] = rng.gamma(2.0, k, n)
    cols["i0"] = rng.integers(18, 90 + int(10 * s), n)
    cols["i1"] = rng.poisson(30, n)
    cols["i2"] = rng.integers(0, 1000, n)
    p_ref = np.linspace(1.0, 2.0, 10)
    p_ref /= p_ref.sum()
    p_cur = p_ref[::-1].copy()
    cols["c0"] = rng.choice(CATS, n, p=p_cur if shifted else p_ref)
    cols["c1"] = rng.choice(CATS, n, p=p_ref)
    cols["c2"] = rng.choice(CATS, n)
    df = pd.DataFrame(cols)
    for c in ["c0", "c1", "c2"]:
        df[c] = df[c].astype(object)
    return df


def generate(n: int, out: Path) -> None:
    import numpy as np

    if (out / "cur.parquet").exists():
        return
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(42)
    make(n, rng, False).to_parquet(out / "ref.parquet", compression="zstd")
    make(n, rng, True).to_parquet(out / "cur.parquet", compression="zstd")


# -- workers (each in its own process) -----------------------------------------------------


def worker_evidently(data: Path, repeats: int) -> dict:
    import evidently
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    ref, cur = pd.read_parquet(data / "ref.parquet"), pd.read_parquet(data / "cur.parquet")
    out = {"side": "evidently", "version": evidently.__version__, "pandas": pd.__version__,
           "peak_after_load_mb": peak_mb()}
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        snap = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)
        times.append(time.perf_counter() - t0)
    out.update(run_s=times, peak_mb=peak_mb(), columns={})
    for m in snap.dict()["metrics"]:
        cfg = m["config"]
        if cfg["type"].endswith("ValueDrift"):
            out["columns"][cfg["column"]] = {"method": cfg["method"], "score": float(m["value"])}
    return out


def worker_modeltap(data: Path, repeats: int) -> dict:
    import pandas as pd

    from modeltap.monitor.engine import LocalEngine
    from modeltap.monitor.signals import evaluate
    from modeltap.monitor.spec import load_monitor

    ref, cur = pd.read_parquet(data / "ref.parquet"), pd.read_parquet(data / "cur.parquet")
    out = {"side": "modeltap", "pandas": pd.__version__, "peak_after_load_mb": peak_mb()}
    with tempfile.TemporaryDirectory() as tmp:
        spec_file = Path(tmp) / "monitor.yml"
        spec_file.write_text(MONITOR.format(prod="unused", ref=data / "ref.parquet"))
        signal = load_monitor(spec_file).signals["drift"]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = evaluate(signal, LocalEngine(), ref, cur, set())
        times.append(time.perf_counter() - t0)
    out.update(run_s=times, peak_mb=peak_mb())
    out["columns"] = {o.feature: {"metric": o.metric, "score": o.value, "n_ref": len(ref)}
                      for o in result.outcomes}
    return out


MONITOR = """\
name: bench_monitor
create_monitor:
  monitoring_target: {{ml_task: classification}}
  monitoring_signals:
    drift:
      type: data_drift
      production_data:
        input_data: {{path: {prod}, type: uri_folder}}
        data_context: model_inputs
        data_window: {{lookback_window_size: P7D}}
      reference_data:
        input_data: {{path: {ref}, type: uri_file}}
"""


SRC = HERE.parent / "src"  # main() points it at a copy, so edits during a run cannot mix in


def run_worker(python: str, side: str, data: Path, repeats: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [python, __file__, "--worker", side, "--data", str(data), "--repeats", str(repeats)],
        capture_output=True, text=True, env=env, check=False,
    )
    if done.returncode != 0:
        sys.exit(f"{side} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(ev: dict, mt: dict) -> dict:
    """Largest relative difference of the shared metrics after the definitional conversions."""
    worst = {"wasserstein": 0.0, "js": 0.0}
    for col, e in ev["columns"].items():
        m = mt["columns"][col]
        n = m["n_ref"]
        if e["method"].startswith("Wasserstein"):
            ours = m["score"] * math.sqrt(n / (n - 1))  # ddof=1 -> ddof=0
            worst["wasserstein"] = max(worst["wasserstein"], abs(ours - e["score"]) / e["score"])
        else:
            ours = m["score"] * math.sqrt(math.log(2))  # base 2 -> natural log
            worst["js"] = max(worst["js"], abs(ours - e["score"]) / e["score"])
    return worst


# -- part 2: the whole command from collected JSON lines ------------------------------------


def e2e(rows: int, data: Path, repeats: int, work: Path) -> dict:
    import numpy as np

    import modeltap
    from modeltap import Collector

    ws = work / "ws"
    if not (ws / "catalog.sqlite").exists():
        cur = make(rows, np.random.default_rng(43), True)
        modeltap.configure(workspace=ws, endpoint="bench", deployment="blue",
                           collections=["model_inputs"])
        inputs = Collector(name="model_inputs")
        t0 = time.perf_counter()
        for start in range(0, rows, 1000):
            inputs.collect(cur.iloc[start : start + 1000])
        modeltap.flush(600)
        modeltap.shutdown()
        print(f"# wrote {rows:,} rows in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    spec = work / "monitor.yml"
    spec.write_text(MONITOR.format(prod="bench-blue-model_inputs", ref=data / "ref.parquet"))
    size = sum(f.stat().st_size for f in ws.rglob("*.jsonl"))
    times, peaks = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "modeltap.cli", "monitor", "run", str(spec),
             "--workspace", str(ws)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(SRC)},
        )
        _, status, usage = os.wait4(proc.pid, 0)
        times.append(time.perf_counter() - t0)
        peaks.append(usage.ru_maxrss / 1024)
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, 1):
            sys.exit(f"monitor run failed ({code}): {proc.stderr.read().decode()[-2000:]}")
    return {"rows": rows, "jsonl_mb": size / 2**20, "run_s": times, "peak_mb": peaks}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("/tmp/modeltap-bench/monitor"))
    ap.add_argument("--evidently-python", default=EVIDENTLY_PY)
    ap.add_argument("--e2e-rows", type=int, default=1_000_000, help="0 to skip part 2")
    ap.add_argument("--results", type=Path, default=Path("/tmp/modeltap-bench/monitor.jsonl"))
    ap.add_argument("--worker", choices=["evidently", "modeltap"], help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        fn = worker_evidently if a.worker == "evidently" else worker_modeltap
        print(json.dumps(fn(a.data, a.repeats)))
        return
    import numpy
    import scipy

    sys.path.insert(0, str(HERE))
    from common import copy_src, cpu_model, modeltap_commit

    global SRC
    snapshot = Path(tempfile.mkdtemp(prefix="modeltap-bench-src-"))
    SRC = copy_src(snapshot)

    meta = {"cpu": cpu_model(), "nproc": os.cpu_count(), "python": sys.version.split()[0],
            "numpy": numpy.__version__, "scipy": scipy.__version__,
            "commit": modeltap_commit(), "command": " ".join(sys.argv)}
    print(f"Machine: {meta}\n")
    print("| rows / side | side | median s | runs (s) | peak RSS MB | speed-up | memory ratio |"
          " max rel. diff W1 / JS |")
    print("|---|---|---|---|---|---|---|---|")
    a.results.parent.mkdir(parents=True, exist_ok=True)
    for n in a.n:
        data = a.work / f"drift_{n}"
        generate(n, data)
        ev = run_worker(a.evidently_python, "evidently", data, a.repeats)
        mt = run_worker(sys.executable, "modeltap", data, a.repeats)
        worst = compare(ev, mt)
        e_s, m_s = statistics.median(ev["run_s"]), statistics.median(mt["run_s"])
        for side, r in (("Evidently " + ev["version"], ev), ("modeltap", mt)):
            extra = ("", "", "") if r is ev else (
                f"**{e_s / m_s:.0f}x**", f"**{mt['peak_mb'] / ev['peak_mb']:.2f}x**",
                f"{worst['wasserstein']:.1e} / {worst['js']:.1e}")
            print(f"| {n:,} | {side} | {statistics.median(r['run_s']):.3f} | "
                  f"{' '.join(f'{t:.3f}' for t in r['run_s'])} | {r['peak_mb']:.0f} "
                  f"(after load {r['peak_after_load_mb']:.0f}) | {' | '.join(extra)} |")
        with a.results.open("a") as f:
            f.write(json.dumps({"n": n, "evidently": ev, "modeltap": mt, "diff": worst,
                                **meta}) + "\n")
    if a.e2e_rows:
        data = a.work / f"drift_{a.e2e_rows}"
        generate(a.e2e_rows, data)
        r = e2e(a.e2e_rows, data, a.repeats, a.work / f"e2e_{a.e2e_rows}")
        print(f"\n`modeltap monitor run` from collected JSON lines: {r['rows']:,} production rows "
              f"({r['jsonl_mb']:.0f} MB of lines) vs {a.e2e_rows:,} reference rows (parquet): "
              f"median {statistics.median(r['run_s']):.2f} s "
              f"(runs {' '.join(f'{t:.2f}' for t in r['run_s'])}), "
              f"peak RSS {statistics.median(r['peak_mb']):.0f} MB")
        with a.results.open("a") as f:
            f.write(json.dumps({"e2e": r, **meta}) + "\n")


if __name__ == "__main__":
    main()
