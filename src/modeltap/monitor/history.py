"""Read monitoring results back: which monitors ran, their runs, result rows and details.

A pure read of the layout `store.py` writes (the monitor contract); the web page, the CLI's
`monitor show` and the Spark engine's tests use it. pandas and pyarrow are imported only
when rows are read.

    from modeltap.monitor import history
    history.monitors()                       # ["credit_default_monitor"]
    history.runs("credit_default_monitor")   # newest first
    history.results("credit_default_monitor", last=10)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from modeltap.config import default_workspace
from modeltap.errors import StorageError
from modeltap.monitor.store import COLUMNS, MONITORING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RunInfo", "details", "monitors", "results", "runs"]

_RUN_ID = re.compile(r"^(\d{8}T\d{6}Z)(?:-(\d+))?$")


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    run_time: datetime  # UTC
    monitor: str
    breached: bool  # any result row of the run breached its threshold
    results_path: Path
    details_path: Path | None
    report_path: Path | None


def _root(workspace: str | os.PathLike[str] | None) -> Path:
    ws = Path(workspace).resolve() if workspace is not None else default_workspace()
    return ws / MONITORING


def monitors(workspace: str | os.PathLike[str] | None = None) -> list[str]:
    """Names of the monitors with at least one run, sorted."""
    root = _root(workspace)
    if not root.is_dir():
        return []
    return sorted(d.name for d in root.iterdir() if d.is_dir() and _run_files(d / "runs"))


def runs(name: str, workspace: str | os.PathLike[str] | None = None) -> list[RunInfo]:
    """The runs of monitor `name`, newest first (an empty list when it never ran)."""
    folder = _root(workspace) / name
    infos = []
    for path in _run_files(folder / "runs"):
        run_id = path.stem
        details = path.with_suffix(".json")
        report = folder / "reports" / f"{run_id}.html"
        infos.append(
            RunInfo(
                run_id=run_id,
                run_time=_run_time(path),
                monitor=name,
                breached=_any_breached(path),
                results_path=path,
                details_path=details if details.exists() else None,
                report_path=report if report.exists() else None,
            )
        )
    infos.sort(key=_order, reverse=True)
    return infos


def results(
    name: str | None = None,
    workspace: str | os.PathLike[str] | None = None,
    last: int | None = None,
) -> pd.DataFrame:
    """Result rows of monitor `name` (every monitor when None), sorted by run time: all
    runs, or each monitor's `last` N runs. Columns as in store.COLUMNS."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from modeltap.monitor.store import rows_table

    names = [name] if name is not None else monitors(workspace)
    paths: list[Path] = []
    for monitor in names:
        found = sorted(runs(monitor, workspace), key=_order)
        if last is not None:
            found = found[-last:] if last > 0 else []
        paths.extend(info.results_path for info in found)
    empty = rows_table([], "", datetime.now(UTC), "")
    tables = [empty, *(_read(pq, p).cast(empty.schema) for p in paths)]
    frame = pa.concat_tables(tables).to_pandas()
    # run time, then the -N of runs in one second (as numbers: -10 after -9)
    seq = frame["run_id"].str.extract(r"-(\d+)$", expand=False).fillna("1").astype("int64")
    frame = frame.assign(_seq=seq).sort_values(["run_time", "monitor", "_seq"], kind="stable")
    frame = frame.drop(columns="_seq").reset_index(drop=True)
    assert isinstance(frame, pd.DataFrame)
    return frame[list(COLUMNS)]


def details(
    name: str, run_id: str, workspace: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """The details JSON of one run (distributions for charts)."""
    path = _root(workspace) / name / "runs" / f"{run_id}.json"
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise StorageError("no such run", path=str(path)) from None
    except (OSError, orjson.JSONDecodeError) as exc:
        raise StorageError(f"cannot read run details: {exc}", path=str(path)) from None
    if not isinstance(data, dict):
        raise StorageError("run details are not a JSON object", path=str(path))
    return data


def _run_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [p for p in folder.glob("*.parquet") if _RUN_ID.match(p.stem)]


def _run_time(path: Path) -> datetime:
    match = _RUN_ID.match(path.stem)
    assert match is not None
    return datetime.strptime(match[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def _order(info: RunInfo) -> tuple[datetime, int]:
    match = _RUN_ID.match(info.run_id)
    return info.run_time, int(match[2]) if match and match[2] else 1


def _read(pq: Any, path: Path) -> Any:
    try:
        return pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise StorageError(f"cannot read run results: {exc}", path=str(path)) from None


def _any_breached(path: Path) -> bool:
    import pyarrow.parquet as pq

    try:
        column = pq.read_table(path, columns=["breached"]).column("breached")
    except (OSError, ValueError, KeyError) as exc:
        raise StorageError(f"cannot read run results: {exc}", path=str(path)) from None
    return bool(any(v is True for v in column.to_pylist()))
