"""Agent capacity: `modeltap agent` vs the anchor's plain receiver.py, side by side in one run.

Both servers take what the azureml-ai-monitoring SDK posts (POST /modeldata/log, SDK headers,
a frame's to_json(orient="records") body) from 16 keep-alive connections driven by
serving_loadgen.py (the anchor's loadgen.py request builder, reading whole responses).

  modeltap   `modeltap agent -f deployment.yml --workspace W --port P` (deployment enabling
             model_inputs; everything else at the defaults), run from a copy of src/ taken
             when the run starts.
  receiver   ../shared/bench-anchor/receiver.py (raw ASGI on uvicorn+httptools+uvloop, one
             O_APPEND write per request before the 200), run with this venv's python.

Bodies: 1x10 (163 B) and 1000x20 (~336 KB) frames from the anchor's frames.py.

For every (rep, shape) both sides run back to back, the first side alternating by rep:
  start the server; wait until the machine is idle-ish (other processes < --idle-limit cores
  for --idle-window s, at most --idle-max s, then go on and flag it); warm up --warmup s;
  measure --duration s; SIGTERM; wait for exit (the agent flushes on shutdown); count lines.
"landed" = lines in the agent's model_inputs/*.jsonl (or in the receiver's file) after the
server exited; it must equal the number of 200 answers (warm-up included).  The loadgen lets
each connection finish its last request, so that count is exact.  The first and last line of
the output are parsed and must carry the frame's row count.

usage:
  .venv/bin/python bench/bench_agent.py             # 3 reps x 5 s (~3 min)
  .venv/bin/python bench/bench_agent.py --quick     # 1 rep x 3 s
  .venv/bin/python bench/bench_agent.py --pin on    # server on CPU 1, loadgen on CPU 0
"""

from __future__ import annotations

import argparse
import atexit
import collections
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serving_common as sc

RECEIVER = sc.ANCHOR / "receiver.py"
LOADGEN = sc.HERE / "serving_loadgen.py"
SHAPES = {"1x10": 1, "1000x20": 1000}
SIDES = ("modeltap", "receiver")
LABEL = {"modeltap": "modeltap agent", "receiver": "anchor receiver.py"}
DEPLOYMENT = """\
name: blue
endpoint_name: bench
data_collector:
  collections:
    model_inputs:
      enabled: 'True'
"""


def first_last_rows(paths: list[Path]) -> list[int | None]:
    """Row counts of the first and the last line of the output (parsed with orjson)."""
    import orjson

    out = []
    files = [p for p in paths if p.stat().st_size]
    if not files:
        return []
    with open(files[0], "rb") as f:
        out.append(f.readline())
    with open(files[-1], "rb") as f:
        size = f.seek(0, 2)
        f.seek(max(0, size - 2_000_000))
        out.append(f.read().rstrip(b"\n").rsplit(b"\n", 1)[-1])
    rows = []
    for ln in out:
        try:
            rec = orjson.loads(ln)
        except orjson.JSONDecodeError:
            rows.append(None)
            continue
        data = rec.get("data", rec.get("body"))
        rows.append(len(data) if isinstance(data, list) else None)
    return rows


def agent_cmd(work: Path, ws: Path, port: int, workers: int = 1) -> list[str]:
    """`modeltap agent` on DEPLOYMENT (written to work/deployment.yml), workspace `ws`."""
    dep = work / "deployment.yml"
    dep.write_text(DEPLOYMENT)
    return [
        sys.executable,
        "-m",
        "modeltap.cli",
        "agent",
        "-f",
        str(dep),
        "--workspace",
        str(ws),
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]


def run_loadgen(a, port, shape, seconds, pin0):
    cmd = [
        *pin0,
        sys.executable,
        str(LOADGEN),
        "--port",
        str(port),
        "--shape",
        shape,
        "--conns",
        str(a.conns),
        "--duration",
        str(seconds),
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    if p.returncode != 0:
        raise RuntimeError(f"loadgen failed: {p.stderr[-1500:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def one_run(a, rep, shape, side, work, src, results, flags, pin0, pin1):
    port = a.port
    if sc.port_open(port):
        sc.die(f"port {port} is in use; pass --port")
    ws = work / f"ws-{side}-{shape}-{rep}"
    out_file = work / f"received-{shape}-{rep}.jsonl"
    logf = work / f"server-{side}.log"
    if side == "modeltap":
        cmd = [*pin1, *agent_cmd(work, ws, port, a.agent_workers)]
        env = sc.child_env(src)
    else:
        out_file.write_bytes(b"")
        cmd = [
            *pin1,
            sys.executable,
            str(RECEIVER),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--out",
            str(out_file),
        ]
        env = sc.child_env(None)
    r = {
        "bench": "agent",
        "run_id": a.run_id,
        "rep": rep,
        "shape": shape,
        "side": side,
        "conns": a.conns,
        "duration_s": a.duration,
    }
    with open(logf, "ab") as lf:
        proc = subprocess.Popen(cmd, env=env, stdout=lf, stderr=subprocess.STDOUT)
    cpu = sc.TreeCPU(proc.pid)
    try:
        if not sc.wait_port(proc, port, timeout=60):
            raise RuntimeError(f"{side} did not start: {logf.read_text()[-1500:]}")
        if sc.listening_not_loopback(port):
            raise RuntimeError(f"{side} listens on a non-loopback address")
        ok_total = 0
        answered_total = 0
        if a.warmup > 0:
            w = run_loadgen(a, port, shape, a.warmup, pin0)
            ok_total += w["ok200"]
            answered_total += w["answered"]
        waited, foreign_before, quiet = sc.wait_idle([cpu], a.idle_limit, a.idle_window, a.idle_max)
        s0, c0 = sc.cpu_stat(), cpu.seconds()
        m = run_loadgen(a, port, shape, a.duration, pin0)
        s1, c1 = sc.cpu_stat(), cpu.seconds()
        dt = m["duration_s"]
        ok_total += m["ok200"]
        answered_total += m["answered"]
        lg_cpu = m["loadgen_cpu_pct"] / 100
        srv_cores = (c1 - c0) / dt
        foreign = max(0.0, sc.busy_cores(s0, s1) - srv_cores - lg_cpu)
        r.update(
            req_per_s=m["req_per_s"],
            MB_per_s=m["MB_per_s"],
            request_bytes=m["request_bytes"],
            status_counts=m["status_counts"],
            connection_errors=m["connection_error_count"],
            server_cpu_cores=round(srv_cores, 3),
            server_cpu_us_per_req=round((c1 - c0) / max(m["ok200"], 1) * 1e6),
            loadgen_cpu_cores=round(lg_cpu, 3),
            foreign_cores=round(foreign, 3),
            irq_cores=round(sc.irq_cores(s0, s1), 3),
            idle_wait_s=waited,
            idle_foreign_before=foreign_before,
            idle_ok=quiet,
        )
    except Exception as exc:
        r["error"] = f"{type(exc).__name__}: {exc}"
        ok_total = answered_total = None
    finally:
        t_stop = time.monotonic()
        rc, stop_s, killed = sc.stop_tree(proc, timeout=120)
        r.update(
            exit_code=rc, stop_s=stop_s, killed=killed, drain_s=round(time.monotonic() - t_stop, 2)
        )
    # landed
    paths = sc.jsonl_files(ws, "model_inputs") if side == "modeltap" else [out_file]
    landed = sc.count_lines(paths) if all(p.exists() for p in paths) else 0
    rows = first_last_rows(paths) if landed else []
    r.update(
        ok200_total=ok_total,
        answered_total=answered_total,
        landed=landed,
        sample_rows=rows,
        files=len(paths),
    )
    problems = []
    if "error" in r:
        problems.append(f"FAILED: {r['error']}")
    if ok_total is not None and landed != ok_total:
        problems.append(f"landed {landed} != 200-answered {ok_total} (diff {landed - ok_total})")
    if ok_total is not None and answered_total != ok_total:
        problems.append(f"non-200 answers: {r.get('status_counts')}")
    if r.get("connection_errors"):
        problems.append(f"{r['connection_errors']} connections failed")
    if any(x != SHAPES[shape] for x in rows):
        problems.append(f"sampled lines carry {rows} rows, expected {SHAPES[shape]}")
    if killed:
        problems.append(f"SIGKILLed {killed}")
    # the receiver has no SIGTERM handler of its own: uvicorn re-raises the signal after its
    # graceful shutdown, so -15 is its normal exit
    if rc not in ((0,) if side == "modeltap" else (0, -15)):
        problems.append(f"exit code {rc}")
    if r.get("idle_ok") is False:
        flags.append(
            f"rep {rep} {side} {shape}: machine not idle after {r['idle_wait_s']} s "
            f"({r['idle_foreign_before']} cores); measured anyway"
        )
    if (r.get("foreign_cores") or 0) > 0.3:
        flags.append(
            f"rep {rep} {side} {shape}: other processes used {r['foreign_cores']:.2f} cores"
        )
    r["problems"] = problems
    flags += [f"rep {rep} {side} {shape}: {p}" for p in problems]
    sc.log(
        f"   rep {rep} {side:8s} {shape:7s} {r.get('req_per_s', 0):8.0f} req/s "
        f"{r.get('MB_per_s', 0):6.1f} MB/s srv {r.get('server_cpu_cores', 0):.2f} "
        f"lg {r.get('loadgen_cpu_cores', 0):.2f} foreign {r.get('foreign_cores', 0):.2f} "
        f"landed {landed}/{ok_total} stop {stop_s}s rows {rows}"
        + (f"  PROBLEMS {problems}" if problems else "")
    )
    with open(results, "a") as f:
        f.write(json.dumps(r) + "\n")
    if not a.keep:
        shutil.rmtree(ws, ignore_errors=True)
        with contextlib.suppress(OSError):
            out_file.unlink()
    return r


def profile(a, work, src) -> str:
    """py-spy --gil on the agent under 16-connection load, per shape."""
    pyspy = sc.find_pyspy()
    if not pyspy:
        return "py-spy not found (pip install py-spy into the venv)\n"
    out = []
    for shape in a.profile_shapes.split(","):
        ws = work / f"ws-prof-{shape}"
        proc = subprocess.Popen(
            agent_cmd(work, ws, a.port, a.agent_workers),
            env=sc.child_env(src),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        cpu = sc.TreeCPU(proc.pid)
        try:
            if not sc.wait_port(proc, a.port, timeout=60):
                raise RuntimeError("agent did not start")
            run_loadgen(a, a.port, shape, 1, [])
            sc.wait_idle([cpu], a.idle_limit, a.idle_window, a.idle_max)
            raw = work / f"prof-agent-{shape}.txt"
            lg = subprocess.Popen(
                [
                    sys.executable,
                    str(LOADGEN),
                    "--port",
                    str(a.port),
                    "--shape",
                    shape,
                    "--conns",
                    str(a.conns),
                    "--duration",
                    str(a.profile_seconds + 2),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            time.sleep(1)
            c0 = cpu.seconds()
            sp = sc.pyspy_record(pyspy, proc.pid, a.profile_seconds, raw, gil=True)
            c1 = cpu.seconds()
            lout, _ = lg.communicate(timeout=a.profile_seconds + 60)
            res = json.loads(lout.strip().splitlines()[-1])
            if sp.returncode != 0 or not raw.exists():
                out.append(f"py-spy failed for {shape}: {sp.stderr[-800:]}\n")
                continue
            rps = res["req_per_s"] or 1
            cores = (c1 - c0) / a.profile_seconds
            out.append(
                f"#### modeltap agent, {shape} bodies, {a.conns} connections "
                f"({rps:.0f} req/s during "
                f"the profile, agent CPU {cores:.2f} cores, {cores / rps * 1e6:.0f} us CPU/req; "
                f"py-spy --nonblocking --gil 200 Hz, {a.profile_seconds} s)\n"
            )
            out.append(sc.summarize_profile(raw))
        except Exception as exc:
            out.append(f"profile {shape} FAILED: {exc}\n")
        finally:
            sc.stop_tree(proc, timeout=120)
            if not a.keep:
                shutil.rmtree(ws, ignore_errors=True)
    return "\n".join(out)


def report(rows, a, flags):
    g = collections.defaultdict(list)
    for r in rows:
        if "error" not in r:
            g[(r["shape"], r["side"])].append(r)
    nrep = len({r["rep"] for r in rows})
    out = [
        f"{a.conns} keep-alive connections, {a.duration} s per run after a {a.warmup} s warm-up, "
        f"{nrep} rep(s) interleaved; pinning: {a.pinning}. Cells: median [min-max].\n",
        "### Capacity\n",
    ]
    lines = []
    for sh in SHAPES:
        for sd in SIDES:
            v = g.get((sh, sd))
            if not v:
                continue
            lines.append(
                [
                    sh,
                    LABEL[sd],
                    v[0]["request_bytes"],
                    sc.agg([r["req_per_s"] for r in v]),
                    sc.agg([r["MB_per_s"] for r in v], "{:.1f}"),
                    sc.agg([r["server_cpu_cores"] for r in v], "{:.2f}"),
                    sc.agg([r["server_cpu_us_per_req"] for r in v]),
                    sc.agg([r["loadgen_cpu_cores"] for r in v], "{:.2f}"),
                    sc.agg([r["foreign_cores"] for r in v], "{:.2f}"),
                    sc.agg([r["stop_s"] for r in v], "{:.2f}"),
                    " / ".join(
                        f"{r['landed']}={r['ok200_total']}"
                        if r["landed"] == r["ok200_total"]
                        else f"**{r['landed']}!={r['ok200_total']}**"
                        for r in v
                    ),
                ]
            )
    out.append(
        sc.table(
            [
                "frame",
                "server",
                "request bytes",
                "req/s landed",
                "MB/s",
                "server CPU cores",
                "server CPU us/req",
                "loadgen CPU cores",
                "other procs cores",
                "SIGTERM to exit (s)",
                "landed = 200s, per rep",
            ],
            lines,
        )
    )
    out.append("### Ratio modeltap agent / receiver (of the medians; target >= 0.8x)\n")
    lines = []
    for sh in SHAPES:
        mt = sc.med([r["req_per_s"] for r in g.get((sh, "modeltap"), [])])
        rc = sc.med([r["req_per_s"] for r in g.get((sh, "receiver"), [])])
        per = [
            x["req_per_s"] / y["req_per_s"]
            for x in g.get((sh, "modeltap"), [])
            for y in g.get((sh, "receiver"), [])
            if x["rep"] == y["rep"] and y["req_per_s"]
        ]
        cpu_m = sc.med([r["server_cpu_us_per_req"] for r in g.get((sh, "modeltap"), [])])
        cpu_r = sc.med([r["server_cpu_us_per_req"] for r in g.get((sh, "receiver"), [])])
        lines.append(
            [
                sh,
                sc.ratio(mt, rc),
                sc.agg(per, "{:.2f}") if per else "-",
                sc.ratio(cpu_m, cpu_r),
                "-" if mt is None or rc is None else ("met" if mt >= 0.8 * rc else "MISSED"),
            ]
        )
    out.append(
        sc.table(
            [
                "frame",
                "req/s ratio",
                "per-rep ratios (same rep)",
                "server CPU per request ratio",
                "target",
            ],
            lines,
        )
    )
    out += sc.flags_md(flags)
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="1 rep x 3 s")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--duration", type=float, default=None, help="s per run (default 5; 3 quick)")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--shapes", default="1x10,1000x20")
    ap.add_argument("--sides", default="modeltap,receiver")
    ap.add_argument(
        "--pin",
        choices=["on", "off"],
        default="off",
        help="on: server on CPU 1, loadgen on CPU 0 (default off)",
    )
    ap.add_argument("--port", type=int, default=50011)
    ap.add_argument(
        "--agent-workers", type=int, default=1, help="modeltap agent --workers (default 1)"
    )
    ap.add_argument("--idle-limit", type=float, default=0.3)
    ap.add_argument("--idle-window", type=float, default=2.0)
    ap.add_argument("--idle-max", type=float, default=60.0)
    ap.add_argument("--results", default="/tmp/modeltap-bench/results-agent.jsonl")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--profile", action="store_true", help="also py-spy the agent after the runs")
    ap.add_argument("--profile-only", action="store_true")
    ap.add_argument("--profile-shapes", default="1x10,1000x20")
    ap.add_argument("--profile-seconds", type=int, default=6)
    a = ap.parse_args(argv)
    if a.quick:
        a.reps = 1 if a.reps is None else a.reps
        a.duration = 3.0 if a.duration is None else a.duration
    a.reps = 3 if a.reps is None else a.reps
    a.duration = 5.0 if a.duration is None else a.duration
    shapes = [s for s in a.shapes.split(",") if s]
    sides = [s for s in a.sides.split(",") if s]
    for s in shapes:
        if s not in SHAPES:
            sc.die(f"unknown shape {s}")
    if not RECEIVER.is_file() or not (sc.ANCHOR / "loadgen.py").is_file():
        sc.die(f"anchor receiver.py / loadgen.py not found in {sc.ANCHOR}")
    taskset = shutil.which("taskset")
    pin = a.pin == "on" and taskset and sc.NCPU >= 2
    pin0 = [taskset, "-c", "0"] if pin else []
    pin1 = [taskset, "-c", "1"] if pin else []
    a.pinning = "server on CPU 1, loadgen on CPU 0" if pin else "none"

    work = Path(tempfile.mkdtemp(prefix="modeltap-bench-agent-", dir=a.workdir))
    if not a.keep:
        atexit.register(shutil.rmtree, work, True)
    src = sc.copy_src(work)
    results = Path(a.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    a.run_id = sc.new_run_id()
    meta = sc.machine_info()
    meta.update(
        versions=sc.versions(
            sys.executable,
            src,
            ["modeltap", "uvicorn", "httptools", "uvloop", "orjson", "pandas", "starlette"],
        ),
        run_id=a.run_id,
        command=" ".join([Path(sys.executable).name, *sys.argv]),
        duration=a.duration,
        reps=a.reps,
        pinning=a.pinning,
    )
    sc.log(f"run {a.run_id}: work dir {work}, results -> {results}")
    sc.log(json.dumps(meta))
    rows, flags = [], []
    t_start = time.time()
    for rep in range(1, (0 if a.profile_only else a.reps) + 1):
        order = sides if rep % 2 == 1 else sides[::-1]
        sc.log(f"== rep {rep}/{a.reps} {time.strftime('%H:%M:%S')} order {order}")
        for sh in shapes:
            for sd in order:
                rows.append(one_run(a, rep, sh, sd, work, src, results, flags, pin0, pin1))
    prof_md = ""
    if a.profile or a.profile_only:
        sc.log(f"== profile {time.strftime('%H:%M:%S')}")
        prof_md = profile(a, work, src)
    sc.finish_run(results, "agent-meta", meta, t_start)
    v = meta["versions"]
    print(f"## Agent capacity: modeltap agent vs the anchor receiver ({a.run_id})\n")
    print(
        f"Machine: {meta['nproc']} CPU ({meta['cpu_model']}), {meta['mem']}, "
        f"kernel {meta['kernel']}; "
        f"python {v.get('python')}; modeltap {v.get('modeltap')} @ {meta.get('modeltap_commit')}; "
        f"uvicorn {v.get('uvicorn')}, httptools {v.get('httptools')}, uvloop {v.get('uvloop')}, "
        f"orjson {v.get('orjson')}, pandas {v.get('pandas')} (both servers run with this venv)\n"
    )
    print(f"Command: `{meta['command']}` (wall {meta['wall_s']} s)\n")
    if rows:
        print(report(rows, a, flags))
    if prof_md:
        print("### Profile of the agent (py-spy)\n")
        print(prof_md)
    return 0 if not any(r.get("problems") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
