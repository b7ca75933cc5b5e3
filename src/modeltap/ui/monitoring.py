"""What the monitoring pages show, through `modeltap.monitor.history` (the monitor contract):
each monitor's latest run, one run's results with breaches first, distributions per
feature, and each metric over the last runs."""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from modeltap.errors import NotFoundError
from modeltap.monitor import history
from modeltap.read.shared import suggest
from modeltap.ui.present import when

__all__ = ["HISTORY_RUNS", "MonitorCard", "MonitorDetail", "monitor", "monitors", "report_path"]

HISTORY_RUNS = 30  # runs in a metric's history chart


@dataclass
class MonitorCard:
    name: str
    latest: history.RunInfo
    runs: int
    rows: list[dict[str, Any]]  # the latest run's results, breaches first

    @property
    def breaches(self) -> int:
        return sum(1 for r in self.rows if r["breached"])


@dataclass
class MonitorDetail:
    name: str
    runs: list[history.RunInfo]  # newest first
    run: history.RunInfo  # the one shown
    rows: list[dict[str, Any]]
    distributions: list[dict[str, Any]]  # chart specs, one per feature
    histories: list[dict[str, Any]]  # chart specs, one per signal x feature x metric
    notes: list[str]

    @property
    def breaches(self) -> int:
        return sum(1 for r in self.rows if r["breached"])


def monitors(workspace: str | os.PathLike[str]) -> list[MonitorCard]:
    cards = []
    for name in history.monitors(workspace):
        runs = history.runs(name, workspace)
        latest = history.results(name, workspace, last=1)
        cards.append(MonitorCard(name, runs[0], len(runs), _rows(latest)))
    return cards


def monitor(
    workspace: str | os.PathLike[str], name: str, run_id: str | None = None
) -> MonitorDetail:
    runs = _runs(workspace, name)
    run = runs[0] if run_id is None else next((r for r in runs if r.run_id == run_id), None)
    if run is None:
        raise NotFoundError(f"monitor {name!r} has no run {run_id!r}")
    frame = history.results(name, workspace, last=HISTORY_RUNS)
    rows = _rows(frame[frame["run_id"] == run.run_id])
    details: dict[str, Any] = {}
    if run.details_path is not None:
        details = history.details(name, run.run_id, workspace)
    notes = [str(n) for n in details.get("notes", []) if isinstance(n, str)]
    return MonitorDetail(name, runs, run, rows, _distributions(details), _histories(frame), notes)


def report_path(workspace: str | os.PathLike[str], name: str, run_id: str) -> Path | None:
    """The run's HTML report: only for a monitor and run that history knows."""
    found = next((r for r in _runs(workspace, name) if r.run_id == run_id), None)
    return found.report_path if found is not None else None


def _runs(workspace: str | os.PathLike[str], name: str) -> list[history.RunInfo]:
    known = history.monitors(workspace)
    if name not in known:
        raise NotFoundError(
            f"no monitor {name!r} has run in this workspace{suggest(name, known, 'monitors')}"
        )
    return history.runs(name, workspace)


def _rows(frame: Any) -> list[dict[str, Any]]:
    """Result rows as plain values, breaches first, then by signal, feature and metric."""
    rows = []
    for r in frame.to_dict("records"):
        value, threshold = float(r["value"]), float(r["threshold"])
        rows.append(
            {
                **r,
                "value": None if math.isnan(value) else value,
                "threshold": None if math.isnan(threshold) else threshold,
                "breached": bool(r["breached"]),
                "window": _window(r["window_start"], r["window_end"]),
            }
        )
    rows.sort(key=lambda r: (not r["breached"], r["signal"], r["feature"], r["metric"]))
    return rows


def _distributions(details: dict[str, Any]) -> list[dict[str, Any]]:
    """One chart spec per feature of the details JSON (contract: edges or categories)."""
    out = []
    for f in details.get("features", []):
        if not isinstance(f, dict):
            continue
        ref, prod = f.get("reference") or {}, f.get("production") or {}
        if "edges" in ref:
            edges = [float(e) for e in ref["edges"]]
            labels = [f"{_short(a)} to {_short(b)}" for a, b in itertools.pairwise(edges)]
        else:
            labels = [str(c) for c in ref.get("categories", [])]
        out.append(
            {
                "kind": "distribution",
                "signal": str(f.get("signal", "")),
                "feature": str(f.get("feature", "")),
                "feature_type": str(f.get("feature_type", "")),
                "labels": labels,
                "reference": [float(c) for c in ref.get("counts", [])],
                "production": [float(c) for c in prod.get("counts", [])],
            }
        )
    return out


def _histories(frame: Any) -> list[dict[str, Any]]:
    """Each signal x feature x metric over the runs in `frame`, oldest first."""
    out = []
    run_ids = list(dict.fromkeys(frame["run_id"]))
    keyed: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
    for r in _rows(frame):
        keyed.setdefault((r["signal"], r["feature"], r["metric"]), {})[r["run_id"]] = r
    for (signal, feature, metric), by_run in sorted(keyed.items()):
        present = [run for run in run_ids if run in by_run]
        out.append(
            {
                "kind": "history",
                "signal": signal,
                "feature": feature,
                "metric": metric,
                "labels": present,
                "values": [by_run[run]["value"] for run in present],
                "thresholds": [by_run[run]["threshold"] for run in present],
                "breached": [by_run[run]["breached"] for run in present],
            }
        )
    return out


def _window(start: Any, end: Any) -> str:
    start, end = _time(start), _time(end)
    return f"{when(start)} to {when(end)}" if start is not None and end is not None else ""


def _time(value: Any) -> datetime | None:
    """A pandas Timestamp (or NaT) as a datetime."""
    if value is None or value != value:  # NaT is not equal to itself
        return None
    return value.to_pydatetime() if hasattr(value, "to_pydatetime") else value  # type: ignore[no-any-return]


def _short(x: float) -> str:
    return f"{x:.4g}"
