"""Helpers shared by bench_serving.py and bench_agent.py (process CPU, idle wait, tables).

Nothing here measures anything by itself.  Conventions follow bench_collect.py: the run copies
src/ to a scratch dir at start (one run = one modeltap version), the repetition is the outer loop,
and cells are "median [min-max]" over the repetitions.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import time
from pathlib import Path

# re-exported: the serving benches use sc.agg, sc.med, sc.log, sc.table, ...
from common import agg as agg
from common import copy_src as copy_src
from common import cpu_model, mem_kib, modeltap_commit
from common import die as die
from common import find_pyspy as find_pyspy
from common import finish_run as finish_run
from common import log as log
from common import med as med
from common import new_run_id as new_run_id
from common import port_open as port_open
from common import ratio as ratio
from common import table as table

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# The anchor benchmark beside the repository (shared/); BENCH_ANCHOR for a worktree elsewhere.
ANCHOR = Path(os.environ.get("BENCH_ANCHOR") or REPO.parent / "shared" / "bench-anchor")
HZ = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1


# ------------------------------------------------------------------------------ child env
def child_env(src: Path | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    for k in list(env):  # never inherit collection settings from the caller's shell
        if k.startswith(("MODELTAP_", "AZUREML_")):
            del env[k]
    if src is not None:
        env["PYTHONPATH"] = str(src) + (
            os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
        )
    env.setdefault("PYTHONHASHSEED", "0")
    if extra:
        env.update(extra)
    return env


# --------------------------------------------------------------------------------- processes
def tree_pids(pid: int) -> list[int]:
    """pid and all its descendants (from /proc/*/stat ppid)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            f = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(f[1]), []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def proc_ticks(pid: int) -> int:
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(f[11]) + int(f[12])


class TreeCPU:
    """CPU seconds of a process tree.  Remembers the last reading of every pid seen, so a
    child that exits between two readings still counts up to its last sample."""

    def __init__(self, pid: int):
        self.pid = pid
        self.last: dict[int, int] = {}

    def seconds(self) -> float:
        for p in tree_pids(self.pid):
            t = proc_ticks(p)
            if t or p not in self.last:
                self.last[p] = max(t, self.last.get(p, 0))
        return sum(self.last.values()) / HZ


def cpu_stat() -> list[int]:
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:9]]


def busy_cores(a: list[int], b: list[int], task_only: bool = True) -> float:
    """Cores busy between two cpu_stat() samples.  task_only: user+nice+system only, i.e. what
    is charged to processes; irq/softirq (loopback TCP is processed there and charged to no
    process) and steal are left out, see irq_cores()."""
    d = [y - x for x, y in zip(a, b, strict=True)]
    total = sum(d)
    if total <= 0:
        return 0.0
    busy = d[0] + d[1] + d[2] if task_only else total - d[3] - d[4]
    return NCPU * busy / total


def irq_cores(a: list[int], b: list[int]) -> float:
    d = [y - x for x, y in zip(a, b, strict=True)]
    total = sum(d)
    return NCPU * (d[5] + d[6]) / total if total > 0 else 0.0


def wait_idle(own: list[TreeCPU], limit=0.3, window=2.0, max_wait=60.0):
    """Wait until processes other than `own` (and this one) use < `limit` cores for `window` s.
    Returns (waited_s, last_foreign_cores, ok)."""
    t0 = time.monotonic()
    me = TreeCPU(os.getpid())
    while True:
        s0, o0, m0 = cpu_stat(), [t.seconds() for t in own], me.seconds()
        w0 = time.monotonic()
        time.sleep(window)
        s1, o1, m1 = cpu_stat(), [t.seconds() for t in own], me.seconds()
        dt = time.monotonic() - w0
        ours = (sum(o1) - sum(o0) + m1 - m0) / dt
        foreign = max(0.0, busy_cores(s0, s1) - ours)
        waited = time.monotonic() - t0
        if foreign < limit:
            return round(waited, 1), round(foreign, 2), True
        if waited >= max_wait:
            return round(waited, 1), round(foreign, 2), False


def wait_port(proc: subprocess.Popen, port: int, timeout=60.0) -> bool:
    """Wait until something listens on `port`; False if `proc` exits or `timeout` s pass first."""
    t0 = time.monotonic()
    while not port_open(port):
        if proc.poll() is not None or time.monotonic() - t0 > timeout:
            return False
        time.sleep(0.05)
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening_not_loopback(port: int) -> bool:
    """True when something listens on `port` on an address other than 127.0.0.1."""
    p = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True)
    for ln in p.stdout.splitlines():
        parts = ln.split()
        if (
            len(parts) >= 4
            and parts[3].endswith(f":{port}")
            and not parts[3].startswith("127.0.0.1:")
        ):
            return True
    return False


def stop_tree(proc: subprocess.Popen, timeout=60.0) -> tuple[int | None, float, list[int]]:
    """SIGTERM the process (it stops its own children), wait up to `timeout` s for the whole
    tree to exit, SIGKILL what is left (by pid).  Returns (exit code, seconds, killed pids)."""
    kids = [p for p in tree_pids(proc.pid) if p != proc.pid]
    t0 = time.monotonic()
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    rc = None
    while time.monotonic() - t0 < timeout:
        rc = proc.poll()
        alive = [p for p in kids if _alive(p)]
        if rc is not None and not alive:
            break
        time.sleep(0.05)
    killed = []
    for p in [proc.pid, *kids]:
        if _alive(p) and (p != proc.pid or proc.poll() is None):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
                killed.append(p)
    with contextlib.suppress(subprocess.TimeoutExpired):
        rc = proc.wait(5)
    return rc, round(time.monotonic() - t0, 2), killed


def _alive(pid: int) -> bool:
    try:
        st = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return st != "Z"


# ------------------------------------------------------------------------------------- files
def count_lines(paths) -> int:
    n = 0
    for p in paths:
        with open(p, "rb") as f:
            while True:
                b = f.read(1 << 22)
                if not b:
                    break
                n += b.count(b"\n")
    return n


def jsonl_files(root: Path, collection: str) -> list[Path]:
    base = root / "datastores" / "workspaceblobstore" / "modelDataCollector"
    return sorted(p for p in base.rglob("*.jsonl") if f"/{collection}/" in p.as_posix())


# ----------------------------------------------------------------------------------- reports
def flags_md(flags: list[str]) -> list[str]:
    """The report's closing "Flags" section (no lines when nothing was flagged)."""
    if not flags:
        return []
    return ["### Flags\n", *[f"* {f}" for f in flags], ""]


def versions(py: str, src: Path | None, dists: list[str]) -> dict:
    code = (
        "import importlib.metadata as m, json, platform\n"
        "out = {'python': platform.python_version()}\n"
        f"for d in {dists!r}:\n"
        "    try: out[d] = m.version(d)\n"
        "    except Exception: out[d] = None\n"
        "print(json.dumps(out))\n"
    )
    p = subprocess.run([py, "-c", code], env=child_env(src), capture_output=True, text=True)
    info = json.loads(p.stdout) if p.returncode == 0 else {}
    return info


def machine_info() -> dict:
    cpu = cpu_model()
    kb = mem_kib()
    mem = "?" if kb is None else f"{kb / 1024 / 1024:.0f} GiB"
    info = dict(nproc=NCPU, cpu_model=cpu, mem=mem, kernel=platform.release())
    info["modeltap_commit"] = modeltap_commit()
    return info


# ----------------------------------------------------------------------------------- py-spy
def pyspy_record(pyspy: str, pid: int, seconds: int, raw: Path, gil: bool):
    """`py-spy record` of process `pid` for `seconds` s at 200 Hz, raw stacks of every thread
    (only the GIL holder's with `gil`) into `raw`, without stopping the process."""
    return subprocess.run(
        [
            pyspy,
            "record",
            "-p",
            str(pid),
            "-r",
            "200",
            "-d",
            str(seconds),
            "-f",
            "raw",
            "-o",
            str(raw),
            "--threads",
            "--nonblocking",
            *(["--gil"] if gil else []),
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )


def frame_name(fr: str) -> str:
    """py-spy raw frame "func (path/to/file.py:123)" -> "func (pkg/file.py)"."""
    import re

    m = re.match(r"(.*) \((.*?)(?::\d+)?\)$", fr)
    if not m:
        return fr
    func, path = m.groups()
    if path.startswith("/"):  # py-spy shortens module paths; scripts keep their full path
        path = path.rsplit("/", 1)[-1]
    return f"{func} ({path})"


# Category of a sample: the first "contains" rule that any frame of the stack matches, else
# the category of the leaf-most frame that matches a "leaf" rule.
CONTAINS = [
    (
        "writer thread: yield_gil (time.sleep(0) every 0.5 ms: mostly waiting for the GIL)",
        ["yield_gil "],
    ),
    ("writer thread: encode lines (record/tabular)", ["Writer._encode"]),
    (
        "writer thread: commit/write to storage",
        ["modeltap/storage/", "Commits.commit", "Spooler.upload"],
    ),
    ("collect() in run() (Collector.collect: snapshot, submit)", ["Collector.collect "]),
    (
        "payload logging: records at the end of a request (PayloadLogger._record)",
        ["PayloadLogger._record "],
    ),
    ("agent: parse + check + submit one post (AgentApp._accept)", ["AgentApp._accept "]),
    ("user run() excl. collect() (score_*.py)", ["score_"]),
]
LEAF = [
    ("writer thread: other", ["modeltap/pipeline/", "modeltap/record.py"]),
    ("uvicorn response send (transport write)", ["RequestResponseCycle.send "]),
    ("payload logging: receive/send wrappers (PayloadLogger)", ["modeltap/serving/payload.py"]),
    (
        "modeltap app: score endpoint, request id, response",
        ["modeltap/serving/app.py", "modeltap/context.py"],
    ),
    ("agent: ASGI app (headers, body, respond)", ["modeltap/serving/agent.py"]),
    ("Starlette (middleware, routing, Request, Response)", ["starlette/"]),
    ("uvicorn HTTP protocol (httptools parse, request cycle)", ["uvicorn/protocols/"]),
    ("json / orjson", ["json/", "orjson"]),
    ("event loop (uvloop; socket I/O in C)", ["asyncio/", "uvloop", "uvicorn/"]),
]


def _category(frames: list[str]) -> str:
    for cat, subs in CONTAINS:
        if any(s in f for f in frames for s in subs):
            return cat
    for f in reversed(frames):
        for cat, subs in LEAF:
            if any(s in f for s in subs):
                return cat
    return "other (mostly partial stacks that py-spy --nonblocking could not walk to the root)"


_BOILER = (
    "threading.py",
    "click/",
    "<module>",
    "runpy",
    "asyncio_run",
    "_compat.py",
    "asyncio/runners.py",
    "uvicorn/main.py",
    "uvicorn/server.py",
    "modeltap/cli/",
    "base_events.py",
    "Runner.run",
)


def summarize_profile(raw: Path, top=10) -> str:
    """Markdown: top frames by self time, top non-boilerplate frames by inclusive time, and
    a category breakdown, from a `py-spy record -f raw --threads` file."""
    from collections import Counter

    self_t, incl, cats, threads = Counter(), Counter(), Counter(), Counter()
    total = 0
    for ln in raw.read_text().splitlines():
        if not ln.strip():
            continue
        stack, _, n = ln.rpartition(" ")
        n = int(n)
        frames = stack.split(";")
        thread = next((f for f in frames if f.startswith("thread ")), "?")
        frames = [f for f in frames if not f.startswith(("thread ", "process "))]
        if not frames:
            continue
        total += n
        threads[thread.split(": ", 1)[-1].rstrip(")") if ": " in thread else thread] += n
        names = [frame_name(f) for f in frames]
        self_t[names[-1]] += n
        for f in set(names):
            if not any(b in f for b in _BOILER):
                incl[f] += n
        # a leaf in boilerplate code (Runner.run = uvloop's C loop) is event-loop time
        cats[_category(frames)] += n
    if not total:
        return "(no samples)\n"

    def pct(v):
        return f"{v / total * 100:.1f}%"

    s = table(
        [
            "#",
            "frame, self time (innermost Python frame; C code counts against its caller)",
            "share of samples",
        ],
        [[i + 1, f"`{k}`", pct(v)] for i, (k, v) in enumerate(self_t.most_common(top))],
    )
    s += "\n" + table(
        ["#", "frame, inclusive (threading/click/asyncio boilerplate left out)", "share"],
        [[i + 1, f"`{k}`", pct(v)] for i, (k, v) in enumerate(incl.most_common(top))],
    )
    s += "\n" + table(["category", "share"], [[k, pct(v)] for k, v in cats.most_common()])
    s += "\nThreads: " + ", ".join(f"{k} {pct(v)}" for k, v in threads.most_common())
    s += f" ({total} non-idle samples)\n"
    return s
