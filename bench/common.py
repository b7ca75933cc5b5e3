"""Helpers every benchmark here shares: medians with ranges, markdown tables, progress output,
run ids, the src/ snapshot, and what machine and commit a run measured. Imported as `common`
(bench/ is on sys.path when a bench runs)."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src"

# The short str column values of the anchor's frames (shared/bench-anchor/frames.py).
FRAME_WORDS = (
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo-7",
    "foxtrot",
    "golf_club",
    "hotel",
    "india",
    "juliett",
)


def log(*x):
    print(*x, file=sys.stderr, flush=True)


def die(msg):
    log(f"ERROR: {msg}")
    sys.exit(2)


def new_run_id() -> str:
    """Start time and pid: `20260101T120000-1234`."""
    return datetime.datetime.now().strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"


def finish_run(results: Path, bench: str, meta: dict, t_start: float) -> None:
    """Record the run's wall time in `meta`, append it to `results` as {"bench": bench, ...}."""
    meta["wall_s"] = round(time.time() - t_start)
    with open(results, "a") as f:
        f.write(json.dumps({"bench": bench, **meta}) + "\n")
    log(f"done in {meta['wall_s']} s")


def copy_src(work: Path) -> Path:
    """Copy src/ once, so that edits made by others during the run cannot mix versions."""
    dst = work / "src"
    shutil.copytree(SRC, dst, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def port_open(port: int, host="127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def find_pyspy(py: str = sys.executable) -> str | None:
    """py-spy next to the interpreter `py` (the venv), else on PATH."""
    return shutil.which("py-spy", path=str(Path(py).parent)) or shutil.which("py-spy")


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def agg(vals, fmt="{:.0f}"):
    """'median [min-max]' of the values that are not None ('-' when there are none)."""
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    m = fmt.format(statistics.median(vals))
    if len(vals) == 1:
        return m
    return f"{m} [{fmt.format(min(vals))}-{fmt.format(max(vals))}]"


def ratio(a, b, fmt="{:.2f}"):
    """'a/b' formatted with an 'x' ('-' when either is missing or b is 0)."""
    if a is None or b is None or b == 0:
        return "-"
    return fmt.format(a / b) + "x"


def table(header, lines):
    """A markdown table ('(no runs)' when there are no lines)."""
    if not lines:
        return "(no runs)\n"
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in ln) + " |" for ln in lines]
    return "\n".join(out) + "\n"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                return ln.split(":", 1)[1].strip()
    return "?"


def mem_kib() -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path("/proc/meminfo").read_text().split()[1])
    return None


def modeltap_commit() -> str | None:
    """HEAD's short hash, marked when src/ has uncommitted changes."""
    git = ["git", "-C", str(REPO)]
    with contextlib.suppress(OSError):
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        )
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", "src"], capture_output=True, text=True
        )
        return head.stdout.strip() + (" (src/ modified)" if dirty.stdout.strip() else "")
    return None


def machine_line(meta: dict, keys) -> str:
    """'Machine: k1 v1, k2 v2, ...' of the run's metadata, for the report's head."""
    return "Machine: " + ", ".join(f"{k} {meta.get(k)}" for k in keys) + "\n"
