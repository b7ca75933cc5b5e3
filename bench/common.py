"""Helpers every benchmark here shares: medians with ranges, and what machine and
commit a run measured. Imported as `common` (bench/ is on sys.path when a bench runs)."""

from __future__ import annotations

import contextlib
import statistics
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


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
