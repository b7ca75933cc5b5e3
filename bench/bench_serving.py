"""Serving benchmark: `modeltap serve` vs azureml-inference-server-http 1.5.1 (azmlinfsrv), wrk.

One invocation runs everything, interleaved: the repetition is the outer loop; inside it, for
every (script, workers) group, each server configuration is started, checked, warmed up and
measured at every connection count, then stopped.  The configuration order rotates per rep.

Server configurations:
  azml        azmlinfsrv 1.5.1 (/tmp/srv-bench/venv) through the anchor's azmlinfsrv_local.py
              (bound to 127.0.0.1), WORKER_COUNT=<workers>, on the anchor's plain script.
              It collects nothing.
  mt-off      modeltap serve on the anchor's plain script, deployment with no collection.
  mt-log      modeltap serve on the anchor's plain script, deployment with request + response.
              (trivial script only, unless --log-all)
  mt-collect  modeltap serve on score_{trivial,pandas}_collect.py (the same answer, plus
              Collector("model_inputs"/"model_outputs").collect() of the input/output frames),
              deployment with model_inputs, model_outputs, request and response.
  modeltap serve always runs with --log-level warning (no access log) and otherwise its
  defaults: with request/response collections that includes its sidecar process, which
  writes the payload records the workers relay to it (counted in the server's CPU).

Scripts: the anchor's serving/score_trivial.py and score_pandas.py, body.json (112 B) and
post.lua (wrk script that prints one RESULT json line); and issue 10's cases, from bench/:
schema = score_schema.py (inference-schema, PandasParameterType) for both servers
(mt-collect: score_schema_collect.py), body-schema.json; mlflow = examples/mlflow-credit's
model, served by azmlinfsrv through score_mlflow.py and by modeltap with no score.py
(mt-collect: the deployment enables model_inputs/model_outputs/request/response), with
body-mlflow.json (the platform's input_data split payload, 10 rows).

Per measurement: wait until the machine is idle-ish (processes other than ours < --idle-limit
cores for --idle-window s, at most --idle-max s; then measure anyway and flag it), then
`wrk -t1 -cC -dDs -s post.lua`.  Server CPU = utime+stime of the server's process tree;
"foreign" = CPU used by other processes on the machine during the run (from /proc/stat).

Landed check (every modeltap run): after SIGTERM (the server flushes on shutdown) count the
lines of every collection's *.jsonl.  answered = 1 check request + every response wrk counted
(warm-up included).  wrk does not count the requests still in flight when its time is up, but
the server may have served (and logged) them: at most one per connection, so
answered <= request lines <= answered + sum(conns) is the no-loss condition, and
request = response (= model_inputs = model_outputs for mt-collect) lines must hold exactly.

usage:
  .venv/bin/python bench/bench_serving.py              # full: 3 reps x 4 s per cell (~12 min)
  .venv/bin/python bench/bench_serving.py --quick      # 1 rep x 3 s
  .venv/bin/python bench/bench_serving.py --profile-only   # py-spy profile of modeltap serve
Markdown to stdout, progress to stderr, one JSON object per measurement to --results.
"""

from __future__ import annotations

import argparse
import atexit
import collections
import contextlib
import http.client
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serving_common as sc

ANCHOR_SRV = sc.ANCHOR / "serving"
AZML_PY = Path("/tmp/srv-bench/venv/bin/python")
WRK = shutil.which("wrk") or "/usr/bin/wrk"
SCRIPTS = ("trivial", "pandas", "schema", "mlflow")
# Cases of issue 10, with files in bench/: an inference-schema decorated score.py (the same
# file for both servers), and an MLflow model (azmlinfsrv: score_mlflow.py in the platform's
# no-code style; modeltap: the model folder with no score.py).
OUR_SCRIPTS = ("schema", "mlflow")
TARGET = {"trivial": 2.0, "pandas": 2.0, "schema": 1.5, "mlflow": 1.5}  # req/s vs azml
CONFIGS = ("azml", "mt-off", "mt-log", "mt-collect")
LABEL = {
    "azml": "azmlinfsrv 1.5.1 (plain script)",
    "mt-off": "modeltap, plain script, collection off",
    "mt-log": "modeltap, plain script, request+response logging",
    "mt-collect": "modeltap, collect script + request/response logging",
}
COLLECTIONS = {
    "azml": [],
    "mt-off": [],
    "mt-log": ["request", "response"],
    "mt-collect": ["model_inputs", "model_outputs", "request", "response"],
}


# ------------------------------------------------------------------------------- setup
def body_file(script: str) -> str:
    return f"body-{script}.json" if script in OUR_SCRIPTS else "body.json"


def deployment_yaml(script_file: str | None, collections: list[str]) -> str:
    if script_file is None:  # the MLflow model, served with no score.py
        lines = ["name: blue", "endpoint_name: bench", "model:"]
        lines += ["  path: ./mlmodel/model", "  type: mlflow_model"]
    else:
        lines = [
            "name: blue",
            "endpoint_name: bench",
            "code_configuration:",
            "  code: code",
            f"  scoring_script: {script_file}",
        ]
    if collections:
        lines += ["data_collector:", "  rolling_rate: Hour", "  collections:"]
        for c in collections:
            lines += [f"    {c}:", "      enabled: 'True'"]
    return "\n".join(lines) + "\n"


def prepare_app(work: Path) -> Path:
    """The app dir: anchor scripts + body + wrk script, our collect scripts, deployments."""
    app = work / "app"
    code = app / "code"
    code.mkdir(parents=True)
    for f in (
        "score_trivial.py",
        "score_pandas.py",
        "azmlinfsrv_local.py",
        "post.lua",
        "body.json",
    ):
        shutil.copy(ANCHOR_SRV / f, app / f)
    for s in SCRIPTS:
        if s in OUR_SCRIPTS:  # azmlinfsrv's entry script, in its app root
            shutil.copy(sc.HERE / f"score_{s}.py", app / f"score_{s}.py")
            shutil.copy(sc.HERE / body_file(s), app / body_file(s))
        if s == "mlflow":
            train_mlflow(app / "mlmodel" / "model")
            for cfg in ("mt-off", "mt-log", "mt-collect"):
                (app / f"deploy-{cfg}-{s}.yml").write_text(deployment_yaml(None, COLLECTIONS[cfg]))
            continue
        src_dir = sc.HERE if s in OUR_SCRIPTS else ANCHOR_SRV
        shutil.copy(src_dir / f"score_{s}.py", code / f"score_{s}.py")
        shutil.copy(sc.HERE / f"score_{s}_collect.py", code / f"score_{s}_collect.py")
        for cfg in ("mt-off", "mt-log", "mt-collect"):
            script = f"score_{s}_collect.py" if cfg == "mt-collect" else f"score_{s}.py"
            (app / f"deploy-{cfg}-{s}.yml").write_text(deployment_yaml(script, COLLECTIONS[cfg]))
    (work / "run").mkdir(mode=0o700)
    return app


def train_mlflow(path: Path) -> None:
    """examples/mlflow-credit's model, trained and saved with MLflow into path."""
    example = sc.REPO / "examples" / "mlflow-credit"
    code = f"from train import train; from pathlib import Path; train(Path({str(path)!r}))"
    subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        cwd=example,
        check=True,
        capture_output=True,
        timeout=300,
    )


def expected_answers(app: Path) -> dict[str, object]:
    """What each script's own run() returns for its body (JSON round-tripped); for the
    MLflow model, what its pyfunc predict() returns for the body's table."""
    body = (ANCHOR_SRV / "body.json").read_text()
    out = {}
    for s in SCRIPTS:
        if s == "mlflow":
            import mlflow.pyfunc
            import pandas as pd

            split = json.loads((app / body_file(s)).read_text())["input_data"]
            model = mlflow.pyfunc.load_model(str(app / "mlmodel" / "model"))
            frame = pd.DataFrame(split["data"], columns=split["columns"], index=split["index"])
            out[s] = json.loads(json.dumps(model.predict(frame).tolist()))
            continue
        if s in OUR_SCRIPTS:
            spec = importlib.util.spec_from_file_location(f"bench_score_{s}", app / f"score_{s}.py")
            m = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(m)
            m.init()
            out[s] = json.loads(json.dumps(m.run(**json.loads((app / body_file(s)).read_text()))))
            continue
        spec = importlib.util.spec_from_file_location(
            f"anchor_score_{s}", ANCHOR_SRV / f"score_{s}.py"
        )
        m = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(m)
        m.init()
        out[s] = json.loads(json.dumps(m.run(body)))
    return out


class Server:
    def __init__(self, a, cfg, script, workers, app: Path, work: Path, src: Path):
        self.cfg, self.script, self.workers = cfg, script, workers
        self.port = a.port
        self.app = app
        self.ws = work / f"ws-{cfg}-{script}-w{workers}"
        self.logf = work / f"server-{cfg}-{script}-w{workers}.log"
        if cfg == "azml":
            self.cmd = [
                str(AZML_PY),
                "azmlinfsrv_local.py",
                "--entry_script",
                f"score_{script}.py",
                "--port",
                str(self.port),
            ]
            extra = {"XDG_RUNTIME_DIR": str(work / "run")}
            if script == "mlflow":  # the model folder holds model/, as on the platform
                extra["AZUREML_MODEL_DIR"] = str(app / "mlmodel")
            if workers > 1:
                extra["WORKER_COUNT"] = str(workers)
            self.env = sc.child_env(None, extra)
            if workers == 1:
                self.env.pop("WORKER_COUNT", None)  # azmlinfsrv's default: 1 worker
        else:
            self.cmd = [
                sys.executable,
                "-m",
                "modeltap.cli",
                "serve",
                "-f",
                str(app / f"deploy-{cfg}-{script}.yml"),
                "--workspace",
                str(self.ws),
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                "--log-level",
                "warning",
            ]
            self.env = sc.child_env(src)
        self.proc = None
        self.cpu = None

    def start(self, timeout=60.0) -> float:
        if sc.port_open(self.port):
            sc.die(f"port {self.port} is already in use; pass --port")
        t0 = time.monotonic()
        with open(self.logf, "ab") as lf:
            lf.write(f"=== {time.strftime('%T')} {' '.join(self.cmd)}\n".encode())
            lf.flush()
            self.proc = subprocess.Popen(
                self.cmd, cwd=self.app, env=self.env, stdout=lf, stderr=subprocess.STDOUT
            )
        self.cpu = sc.TreeCPU(self.proc.pid)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.cfg} exited with {self.proc.returncode}: {self.tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                st, _ = http_call(self.port, "GET", "/", None)
                if st == 200:
                    break
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"{self.cfg} not ready in {timeout} s: {self.tail()}")
            time.sleep(0.05)
        if sc.listening_not_loopback(self.port):
            raise RuntimeError(f"{self.cfg} listens on a non-loopback address")
        return round(time.monotonic() - t0, 2)

    def stop(self):
        if self.proc is None:
            return None, 0.0, []
        r = sc.stop_tree(self.proc, timeout=60)
        self.proc = None
        return r

    def tail(self, n=3000) -> str:
        with contextlib.suppress(OSError):
            b = self.logf.read_bytes()[-n:]
            return b.decode("utf-8", "replace")
        return ""


def http_call(port, method, path, body, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        hdrs = {"Content-Type": "application/json"} if body is not None else {}
        c.request(method, path, body=body, headers=hdrs)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


class WrkRunner:
    """Runs wrk and accounts its CPU with os.wait4 (rusage of exactly that child)."""

    @staticmethod
    def run(app: Path, port: int, conns: int, seconds: int, body: str = "body.json"):
        cmd = [
            WRK,
            "-t1",
            f"-c{conns}",
            f"-d{seconds}s",
            "-s",
            "post.lua",
            f"http://127.0.0.1:{port}/score",
        ]
        with tempfile.TemporaryFile() as out:
            return WrkRunner._run(cmd, app, seconds, out, body)

    @staticmethod
    def _run(cmd, app, seconds, out, body):
        env = {**os.environ, "BODY_FILE": body}  # post.lua posts this file
        p = subprocess.Popen(cmd, cwd=app, stdout=out, stderr=subprocess.STDOUT, env=env)
        t0 = time.monotonic()
        ru = None
        while True:
            pid, status, ru_ = os.wait4(p.pid, os.WNOHANG)
            if pid:
                ru = ru_
                p.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() - t0 > seconds + 20:
                p.kill()
                _, status, ru = os.wait4(p.pid, 0)
                p.returncode = -9
                break
            time.sleep(0.02)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
        m = re.search(r"^RESULT (\{.*\})$", text, re.M)
        cpu = (ru.ru_utime + ru.ru_stime) if ru else None
        return (json.loads(m.group(1)) if m else None), cpu, text


# --------------------------------------------------------------------------- one group
def measure_group(a, cfg, script, workers, rep, app, work, src, expected, results, rows, flags):
    srv = Server(a, cfg, script, workers, app, work, src)
    shutil.rmtree(srv.ws, ignore_errors=True)
    group = {
        "bench": "serving-group",
        "rep": rep,
        "config": cfg,
        "script": script,
        "workers": workers,
    }
    answered = 0
    conns_sum = 0
    try:
        group["startup_s"] = srv.start()
        st, body = http_call(a.port, "POST", "/score", (app / body_file(script)).read_bytes())
        answered += 1
        got = json.loads(body) if st == 200 else None
        if got != expected[script]:
            raise RuntimeError(f"bad answer from {cfg}/{script}: {st} {body[:300]!r}")
        if a.warmup > 0:
            w, _, text = WrkRunner.run(app, a.port, 16, a.warmup, body_file(script))
            if w is None:
                raise RuntimeError(f"warm-up wrk failed: {text[-1000:]}")
            answered += w["requests"]
            conns_sum += 16
        for conns in a.conns:
            waited, foreign_before, quiet = sc.wait_idle(
                [srv.cpu], a.idle_limit, a.idle_window, a.idle_max
            )
            s0, c0 = sc.cpu_stat(), srv.cpu.seconds()
            res, wcpu, text = WrkRunner.run(app, a.port, conns, a.duration, body_file(script))
            s1, c1 = sc.cpu_stat(), srv.cpu.seconds()
            if res is None:
                raise RuntimeError(f"wrk failed: {text[-1000:]}")
            dur = res["duration_s"]
            answered += res["requests"]
            conns_sum += conns
            srv_cpu = c1 - c0
            foreign = max(0.0, sc.busy_cores(s0, s1) - (srv_cpu + (wcpu or 0)) / dur)
            errs = sum(res["errors"].values())
            r = {
                "bench": "serving",
                "run_id": a.run_id,
                "rep": rep,
                "config": cfg,
                "script": script,
                "workers": workers,
                "conns": conns,
                "rps": res["rps"],
                "p50_ms": res["p50_ms"],
                "p99_ms": res["p99_ms"],
                "max_ms": res["max_ms"],
                "requests": res["requests"],
                "errors": res["errors"],
                "error_total": errs,
                "server_cpu_cores": round(srv_cpu / dur, 3),
                "server_cpu_us_per_req": round(srv_cpu / max(res["requests"], 1) * 1e6),
                "wrk_cpu_cores": round((wcpu or 0) / dur, 3),
                "foreign_cores": round(foreign, 3),
                "irq_cores": round(sc.irq_cores(s0, s1), 3),
                "idle_wait_s": waited,
                "idle_foreign_before": foreign_before,
                "idle_ok": quiet,
            }
            rows.append(r)
            with open(results, "a") as f:
                f.write(json.dumps(r) + "\n")
            sc.log(
                f"   rep {rep} {cfg:10s} {script:7s} w{workers} c{conns:<2d} "
                f"{res['rps']:8.0f} req/s p50 {res['p50_ms']:6.2f} p99 {res['p99_ms']:6.2f} ms "
                f"srv {r['server_cpu_cores']:.2f} wrk {r['wrk_cpu_cores']:.2f} "
                f"foreign {foreign:.2f}"
                + ("" if quiet else f"  NOT IDLE (waited {waited}s, {foreign_before} cores)")
                + (f"  ERRORS {res['errors']}" if errs else "")
            )
            if not quiet:
                flags.append(
                    f"rep {rep} {cfg} {script} w{workers} c{conns}: machine not idle after "
                    f"{waited} s (other processes {foreign_before} cores); measured anyway"
                )
            if foreign > 0.3:
                flags.append(
                    f"rep {rep} {cfg} {script} w{workers} c{conns}: other processes used "
                    f"{foreign:.2f} cores during the run"
                )
            if errs:
                flags.append(
                    f"rep {rep} {cfg} {script} w{workers} c{conns}: wrk errors {res['errors']}"
                )
    except Exception as exc:
        group["error"] = f"{type(exc).__name__}: {exc}"
        sc.log(f"   rep {rep} {cfg} {script} w{workers} FAILED: {exc}\n{srv.tail(1500)}")
        flags.append(f"rep {rep} {cfg} {script} w{workers}: FAILED: {exc}")
    finally:
        rc, stop_s, killed = srv.stop()
        group.update(exit_code=rc, stop_s=stop_s, killed=killed)
    if killed:
        flags.append(f"rep {rep} {cfg} {script} w{workers}: had to SIGKILL {killed}")
    if cfg != "azml":
        counts = {c: sc.count_lines(sc.jsonl_files(srv.ws, c)) for c in COLLECTIONS["mt-collect"]}
        group.update(counts=counts, answered=answered, in_flight_bound=conns_sum)
        # files are named <host>-<pid>-<seq>.jsonl: lines per worker process show how the
        # connections were spread over the workers
        per_pid = collections.Counter()
        for path in sc.jsonl_files(srv.ws, "request"):
            per_pid[path.name.rsplit("-", 2)[-2]] += sc.count_lines([path])
        group["request_lines_per_worker"] = sorted(per_pid.values(), reverse=True)
        logged = COLLECTIONS[cfg]
        problems = []
        for c in COLLECTIONS["mt-collect"]:
            if c not in logged and counts[c]:
                problems.append(f"{c}: {counts[c]} lines but not enabled")
        if logged:
            n_req = counts[logged[0]]
            for c in logged[1:]:
                if counts[c] != n_req:
                    problems.append(f"{c} lines {counts[c]} != {logged[0]} lines {n_req}")
            lost = answered - n_req
            extra = n_req - answered
            group.update(lost=max(0, lost), extra=extra)
            if lost > 0:
                problems.append(f"LOSS: {lost} answered requests have no line")
            if extra > conns_sum:
                problems.append(f"{extra} more lines than answered (> {conns_sum} in flight)")
        group["problems"] = problems
        for p in problems:
            flags.append(f"rep {rep} {cfg} {script} w{workers}: {p}")
        sc.log(
            f"   rep {rep} {cfg:10s} {script:7s} w{workers} landed {counts} answered {answered} "
            f"(+<= {conns_sum} in flight) exit {rc} stop {stop_s}s"
            + (f"  PROBLEMS {problems}" if problems else "")
        )
    if rc not in (0, None) and cfg != "azml":
        flags.append(f"rep {rep} {cfg} {script} w{workers}: exit code {rc}")
    group["run_id"] = a.run_id
    with open(results, "a") as f:
        f.write(json.dumps(group) + "\n")
    if not a.keep:
        shutil.rmtree(srv.ws, ignore_errors=True)
        with contextlib.suppress(OSError):
            srv.logf.unlink()
    return group


# ------------------------------------------------------------------------------- report
def report(rows, groups, a, flags) -> str:
    g = collections.defaultdict(list)
    for r in rows:
        g[(r["config"], r["script"], r["workers"], r["conns"])].append(r)
    nrep = len({r["rep"] for r in rows}) or 0
    out = [
        f"wrk -t1, {a.duration} s per cell, {nrep} rep(s) interleaved; cells are median [min-max] "
        "over reps. server CPU = utime+stime of the server's process tree.\n"
    ]
    out.append("### Throughput and latency\n")
    lines = []
    for s in a.scripts:
        for w in a.workers:
            for c in a.conns:
                for cfg in CONFIGS:
                    v = g.get((cfg, s, w, c))
                    if not v:
                        continue
                    lines.append(
                        [
                            s,
                            w,
                            c,
                            LABEL[cfg],
                            sc.agg([r["rps"] for r in v]),
                            sc.agg([r["p50_ms"] for r in v], "{:.2f}"),
                            sc.agg([r["p99_ms"] for r in v], "{:.2f}"),
                            sc.agg([r["server_cpu_cores"] for r in v], "{:.2f}"),
                            sc.agg([r["server_cpu_us_per_req"] for r in v]),
                            sc.agg([r["wrk_cpu_cores"] for r in v], "{:.2f}"),
                            sc.agg([r["foreign_cores"] for r in v], "{:.2f}"),
                            sum(r["error_total"] for r in v),
                        ]
                    )
    out.append(
        sc.table(
            [
                "script",
                "workers",
                "conns",
                "server",
                "req/s",
                "p50 ms",
                "p99 ms",
                "server CPU cores",
                "server CPU us/req",
                "wrk CPU cores",
                "other procs cores",
                "errors",
            ],
            lines,
        )
    )

    def m(cfg, s, w, c, k):
        return sc.med([r[k] for r in g.get((cfg, s, w, c), [])])

    out.append(
        "### Ratios (of the medians)\n\n"
        "Target: modeltap with collection+logging >= 2x azmlinfsrv req/s at equal workers "
        "(1.5x for the schema and mlflow cases, issue 10), p99 no worse (p99 ratio <= 1).\n"
    )
    lines = []
    for s in a.scripts:
        for w in a.workers:
            for c in a.conns:
                rc = m("mt-collect", s, w, c, "rps")
                ra = m("azml", s, w, c, "rps")
                pc = m("mt-collect", s, w, c, "p99_ms")
                pa = m("azml", s, w, c, "p99_ms")
                ok = (
                    "-"
                    if None in (rc, ra, pc, pa)
                    else ("met" if rc >= TARGET[s] * ra and pc <= pa else "MISSED")
                )
                lines.append(
                    [
                        s,
                        w,
                        c,
                        sc.ratio(rc, ra),
                        sc.ratio(pc, pa),
                        ok,
                        sc.ratio(m("mt-off", s, w, c, "rps"), ra),
                        sc.ratio(rc, m("mt-off", s, w, c, "rps")),
                    ]
                )
    out.append(
        sc.table(
            [
                "script",
                "workers",
                "conns",
                "mt-collect / azml req/s",
                "mt-collect / azml p99",
                "target",
                "mt-off / azml req/s",
                "mt-collect / mt-off req/s",
            ],
            lines,
        )
    )
    out.append(
        "Target 2a: request+response logging on >= 0.9x off (same plain script, modeltap).\n"
    )
    lines = []
    for s in a.scripts:
        for w in a.workers:
            for c in a.conns:
                on, off = m("mt-log", s, w, c, "rps"), m("mt-off", s, w, c, "rps")
                if on is None or off is None:
                    continue
                lines.append(
                    [
                        s,
                        w,
                        c,
                        sc.agg([r["rps"] for r in g[("mt-log", s, w, c)]]),
                        sc.agg([r["rps"] for r in g[("mt-off", s, w, c)]]),
                        sc.ratio(on, off),
                        sc.ratio(m("mt-log", s, w, c, "p99_ms"), m("mt-off", s, w, c, "p99_ms")),
                        "met" if on >= 0.9 * off else "MISSED",
                    ]
                )
    out.append(
        sc.table(
            [
                "script",
                "workers",
                "conns",
                "on req/s",
                "off req/s",
                "on / off req/s",
                "on / off p99",
                "target 2a",
            ],
            lines,
        )
    )
    out.append("### Landed check (modeltap runs; lines counted after SIGTERM)\n")
    lines = []
    for gr in groups:
        if gr["config"] == "azml" or "counts" not in gr:
            continue
        lines.append(
            [
                gr["rep"],
                gr["config"],
                gr["script"],
                gr["workers"],
                gr["answered"],
                gr["counts"]["request"],
                gr["counts"]["response"],
                gr["counts"]["model_inputs"],
                gr["counts"]["model_outputs"],
                gr.get("extra", "-"),
                gr.get("lost", "-"),
                "/".join(map(str, gr.get("request_lines_per_worker") or [])) or "-",
                gr.get("stop_s"),
                gr.get("exit_code"),
                "; ".join(gr.get("problems", [])) or "ok",
            ]
        )
    out.append(
        sc.table(
            [
                "rep",
                "config",
                "script",
                "workers",
                "answered",
                "request lines",
                "response lines",
                "model_inputs lines",
                "model_outputs lines",
                f"lines - answered (in flight at wrk stop, <= {16 + sum(a.conns)})",
                "lost",
                "request lines per worker",
                "stop s",
                "exit",
                "check",
            ],
            lines,
        )
    )
    out += sc.flags_md(flags)
    return "\n".join(out)


# --------------------------------------------------------------------------------- probe
def probe(a, app, work, src, expected, results) -> str:
    """Raw one-connection latency (serving_probe.py), per (config, script), 1 worker, interleaved
    like the main run.  Explains wrk's p99, which is corrected for coordinated omission."""
    rows = []
    cfgs = [c for c in a.probe_configs.split(",") if c]
    for rep in range(1, a.reps + 1):
        for s in a.scripts:
            shift = (rep - 1) % len(cfgs)
            for cfg in cfgs[shift:] + cfgs[:shift]:
                if cfg == "mt-log" and s != "trivial" and not a.log_all:
                    continue
                srv = Server(a, cfg, s, 1, app, work, src)
                shutil.rmtree(srv.ws, ignore_errors=True)
                try:
                    srv.start()
                    WrkRunner.run(app, a.port, 16, max(a.warmup, 1), body_file(s))
                    _, _, quiet = sc.wait_idle([srv.cpu], a.idle_limit, a.idle_window, a.idle_max)
                    p = subprocess.run(
                        [
                            sys.executable,
                            str(sc.HERE / "serving_probe.py"),
                            "--port",
                            str(a.port),
                            "--body",
                            str(app / body_file(s)),
                            "--duration",
                            str(a.duration),
                        ],
                        capture_output=True,
                        text=True,
                        timeout=a.duration + 60,
                    )
                    r = json.loads(p.stdout.strip().splitlines()[-1])
                    r.update(
                        bench="serving-probe",
                        run_id=a.run_id,
                        rep=rep,
                        config=cfg,
                        script=s,
                        workers=1,
                        idle_ok=quiet,
                    )
                    rows.append(r)
                    with open(results, "a") as f:
                        f.write(json.dumps(r) + "\n")
                    sc.log(
                        f"   probe rep {rep} {cfg:10s} {s:7s} {r['rps']:7.0f} req/s p50 "
                        f"{r['p50_ms']} p99 {r['p99_ms']} p99.9 {r['p999_ms']} max {r['max_ms']}"
                        f" >10ms {r['over_10ms']}"
                    )
                except Exception as exc:
                    sc.log(f"   probe {cfg} {s} FAILED: {exc}")
                finally:
                    srv.stop()
                    if not a.keep:
                        shutil.rmtree(srv.ws, ignore_errors=True)
                        with contextlib.suppress(OSError):
                            srv.logf.unlink()
    g = collections.defaultdict(list)
    for r in rows:
        g[(r["config"], r["script"])].append(r)
    lines = []
    for s in a.scripts:
        for cfg in CONFIGS:
            v = g.get((cfg, s))
            if not v:
                continue
            lines.append(
                [
                    s,
                    LABEL[cfg],
                    sc.agg([r["rps"] for r in v]),
                    sc.agg([r["p50_ms"] for r in v], "{:.2f}"),
                    sc.agg([r["p90_ms"] for r in v], "{:.2f}"),
                    sc.agg([r["p99_ms"] for r in v], "{:.2f}"),
                    sc.agg([r["p999_ms"] for r in v], "{:.2f}"),
                    sc.agg([r["max_ms"] for r in v], "{:.1f}"),
                    sc.agg([r["over_5ms"] for r in v]),
                    sc.agg([r["over_10ms"] for r in v]),
                    sc.agg([r["over_20ms"] for r in v]),
                    sc.agg([r["time_in_over_10ms_pct"] for r in v], "{:.1f}"),
                ]
            )
    return (
        f"1 worker, 1 connection, {a.duration} s per run, {a.reps} rep(s); raw per-request latency "
        "measured by a Python client (serving_probe.py; includes ~30-50 us of client overhead, and "
        "the connect for azmlinfsrv, which closes every connection)\n\n"
        + sc.table(
            [
                "script",
                "server",
                "req/s",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "p99.9 ms",
                "max ms",
                "requests > 5 ms",
                "> 10 ms",
                "> 20 ms",
                "% of wall time in requests > 10 ms",
            ],
            lines,
        )
    )


# ------------------------------------------------------------------------------- profile
def profile(a, app, work, src, expected):
    """py-spy a single modeltap worker under 16-connection wrk load; top frames by self time
    and by inclusive time.  Returns markdown."""
    pyspy = sc.find_pyspy()
    if not pyspy:
        return "py-spy not found (pip install py-spy into the venv)\n"
    out = []
    for spec in a.profile_targets.split(","):
        cfg, script = spec.split(":")
        srv = Server(a, cfg, script, 1, app, work, src)
        shutil.rmtree(srv.ws, ignore_errors=True)
        try:
            srv.start()
            http_call(a.port, "POST", "/score", (app / body_file(script)).read_bytes())
            WrkRunner.run(app, a.port, 16, 2, body_file(script))
            sc.wait_idle([srv.cpu], a.idle_limit, a.idle_window, a.idle_max)
            raw = work / f"prof-{cfg}-{script}.txt"
            wrk_s = a.profile_seconds + 3
            wp = subprocess.Popen(
                [
                    WRK,
                    "-t1",
                    "-c16",
                    f"-d{wrk_s}s",
                    "-s",
                    "post.lua",
                    f"http://127.0.0.1:{a.port}/score",
                ],
                cwd=app,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env={**os.environ, "BODY_FILE": body_file(script)},
            )
            time.sleep(1)
            c0 = srv.cpu.seconds()
            sp = sc.pyspy_record(pyspy, srv.proc.pid, a.profile_seconds, raw, gil=a.profile_gil)
            c1 = srv.cpu.seconds()
            wout, _ = wp.communicate(timeout=wrk_s + 20)
            m = re.search(rb"^RESULT (\{.*\})$", wout, re.M)
            res = json.loads(m.group(1)) if m else {}
            if sp.returncode != 0 or not raw.exists():
                out.append(f"py-spy failed for {cfg}/{script}: {sp.stderr[-800:]}\n")
                continue
            rps = res.get("rps") or 0
            out.append(
                f"#### {LABEL[cfg]}, {script} script, 1 worker, wrk 16 connections "
                f"({rps:.0f} req/s during the profile, server CPU "
                f"{(c1 - c0) / a.profile_seconds:.2f} cores, "
                f"{(c1 - c0) / a.profile_seconds / rps * 1e6 if rps else 0:.0f} us CPU/req; "
                f"py-spy --nonblocking{' --gil' if a.profile_gil else ''} 200 Hz, "
                f"{a.profile_seconds} s)\n"
            )
            out.append(sc.summarize_profile(raw))
        except Exception as exc:
            out.append(f"profile {cfg}/{script} FAILED: {exc}\n")
        finally:
            srv.stop()
            if not a.keep:
                shutil.rmtree(srv.ws, ignore_errors=True)
    return "\n".join(out)


# ---------------------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="1 rep x 3 s")
    ap.add_argument("--reps", type=int, default=None, help="default 3 (1 with --quick)")
    ap.add_argument("--duration", type=int, default=None, help="s per cell; default 4 (3 quick)")
    ap.add_argument("--warmup", type=int, default=1, help="s of wrk -c16 after start (default 1)")
    ap.add_argument("--scripts", default="trivial,pandas,schema,mlflow")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--conns", default="1,16")
    ap.add_argument("--configs", default="azml,mt-off,mt-log,mt-collect")
    ap.add_argument("--log-all", action="store_true", help="mt-log for the pandas script too")
    ap.add_argument("--port", type=int, default=18001)
    ap.add_argument("--idle-limit", type=float, default=0.3)
    ap.add_argument("--idle-window", type=float, default=2.0)
    ap.add_argument("--idle-max", type=float, default=60.0)
    ap.add_argument("--results", default="/tmp/modeltap-bench/results-serving.jsonl")
    ap.add_argument("--profile", action="store_true", help="also profile after the runs")
    ap.add_argument("--profile-only", action="store_true")
    ap.add_argument(
        "--profile-targets", default="mt-collect:trivial,mt-collect:pandas,mt-off:trivial"
    )
    ap.add_argument("--profile-seconds", type=int, default=8)
    ap.add_argument(
        "--profile-all-threads",
        dest="profile_gil",
        action="store_false",
        help="sample every non-idle thread (default: py-spy --gil, only the thread "
        "holding the GIL, i.e. where the worker's interpreter time goes)",
    )
    ap.add_argument(
        "--probe",
        action="store_true",
        help="also measure raw 1-connection latency (serving_probe.py) after the runs",
    )
    ap.add_argument("--probe-only", action="store_true")
    ap.add_argument("--probe-configs", default="azml,mt-off,mt-log,mt-collect")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args(argv)
    if a.quick:
        a.reps = 1 if a.reps is None else a.reps
        a.duration = 3 if a.duration is None else a.duration
    a.reps = 3 if a.reps is None else a.reps
    a.duration = 4 if a.duration is None else a.duration
    a.scripts = [s for s in a.scripts.split(",") if s]
    a.workers = [int(w) for w in a.workers.split(",")]
    a.conns = [int(c) for c in a.conns.split(",")]
    configs = [c for c in a.configs.split(",") if c]
    for s in a.scripts:
        if s not in SCRIPTS:
            sc.die(f"unknown script {s}")
    for c in configs:
        if c not in CONFIGS:
            sc.die(f"unknown config {c}")
    if not Path(WRK).exists():
        sc.die("wrk not found: apt-get install wrk")
    if "azml" in configs and not (a.profile_only or a.probe_only) and not AZML_PY.exists():
        sc.die(
            f"{AZML_PY} missing. Install as the anchor did:\n"
            "  python3 -m venv /tmp/srv-bench/venv\n"
            "  /tmp/srv-bench/venv/bin/pip install azureml-inference-server-http==1.5.1 pandas"
        )
    for f in (
        "score_trivial.py",
        "score_pandas.py",
        "azmlinfsrv_local.py",
        "post.lua",
        "body.json",
    ):
        if not (ANCHOR_SRV / f).is_file():
            sc.die(f"anchor file {ANCHOR_SRV / f} missing")

    work = Path(tempfile.mkdtemp(prefix="modeltap-bench-serving-", dir=a.workdir))
    if not a.keep:
        atexit.register(shutil.rmtree, work, True)
    src = sc.copy_src(work)
    app = prepare_app(work)
    expected = expected_answers(app)
    results = Path(a.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    a.run_id = sc.new_run_id()
    meta = sc.machine_info()
    meta.update(
        modeltap_venv=sc.versions(
            sys.executable,
            src,
            [
                "modeltap",
                "uvicorn",
                "starlette",
                "httptools",
                "uvloop",
                "orjson",
                "pandas",
                "numpy",
                "py-spy",
            ],
        ),
        azml_venv=sc.versions(
            str(AZML_PY),
            None,
            ["azureml-inference-server-http", "flask", "werkzeug", "gunicorn", "pandas", "numpy"],
        )
        if AZML_PY.exists()
        else None,
        wrk=subprocess.run([WRK, "--version"], capture_output=True, text=True).stdout.split("\n")[
            0
        ],
        run_id=a.run_id,
        command=" ".join([Path(sys.executable).name, *sys.argv]),
        duration=a.duration,
        reps=a.reps,
    )
    sc.log(f"run {a.run_id}: work dir {work}, results -> {results}")
    sc.log(json.dumps(meta))
    rows, groups, flags = [], [], []
    t_start = time.time()
    if not (a.profile_only or a.probe_only):
        for rep in range(1, a.reps + 1):
            sc.log(f"== rep {rep}/{a.reps}  {time.strftime('%H:%M:%S')}")
            k = 0
            for s in a.scripts:
                for w in a.workers:
                    cfgs = [
                        c
                        for c in configs
                        if not (c == "mt-log" and s != "trivial" and not a.log_all)
                    ]
                    shift = (rep - 1 + k) % len(cfgs)
                    k += 1
                    for cfg in cfgs[shift:] + cfgs[:shift]:
                        groups.append(
                            measure_group(
                                a, cfg, s, w, rep, app, work, src, expected, results, rows, flags
                            )
                        )
    probe_md = ""
    if a.probe or a.probe_only:
        sc.log(f"== probe {time.strftime('%H:%M:%S')}")
        probe_md = probe(a, app, work, src, expected, results)
    prof_md = ""
    if a.profile or a.profile_only:
        sc.log(f"== profile {time.strftime('%H:%M:%S')}")
        prof_md = profile(a, app, work, src, expected)
    sc.finish_run(results, "serving-meta", meta, t_start)
    print(f"## Serving benchmark: modeltap serve vs azmlinfsrv 1.5.1 ({a.run_id})\n")
    mv, av = meta["modeltap_venv"], meta["azml_venv"] or {}
    print(
        f"Machine: {meta['nproc']} CPU ({meta['cpu_model']}), {meta['mem']}, "
        f"kernel {meta['kernel']}; python {mv.get('python')}; "
        f"modeltap {mv.get('modeltap')} @ {meta.get('modeltap_commit')}, "
        f"uvicorn {mv.get('uvicorn')}, starlette {mv.get('starlette')}, "
        f"httptools {mv.get('httptools')}, uvloop {mv.get('uvloop')}, orjson {mv.get('orjson')}, "
        f"pandas {mv.get('pandas')}; azmlinfsrv venv: azureml-inference-server-http "
        f"{av.get('azureml-inference-server-http')}, "
        f"Flask {av.get('flask')}, Werkzeug {av.get('werkzeug')}, gunicorn {av.get('gunicorn')}, "
        f"pandas {av.get('pandas')}; {meta['wrk']}\n"
    )
    print(f"Command: `{meta['command']}` (wall {meta['wall_s']} s)\n")
    if rows or groups:
        print(report(rows, groups, a, flags))
    if probe_md:
        print("### Raw latency at 1 connection (serving_probe.py)\n")
        print(probe_md)
    if prof_md:
        print("### Profile (py-spy)\n")
        print(prof_md)
    return 0 if not any("error" in gr for gr in groups) else 1


if __name__ == "__main__":
    sys.exit(main())
