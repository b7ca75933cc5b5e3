"""Where a run's results go: one Parquet file of result rows, one details JSON and one HTML
report per run, in the workspace (the layout is fixed by the monitor contract; the web page
and the Spark engine read it through `modeltap.monitor.history`).

    WORKSPACE/monitoring/<monitor>/runs/<run_id>.parquet    result rows (the table)
    WORKSPACE/monitoring/<monitor>/runs/<run_id>.json       details: distributions
    WORKSPACE/monitoring/<monitor>/reports/<run_id>.html    the report

Files appear whole (written under a temporary name, then renamed). The details JSON is
written before the Parquet file, so a run whose rows are visible always has its details.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from modeltap.errors import StorageError

__all__ = [
    "COLUMNS",
    "ResultRow",
    "monitor_dir",
    "reserve_run_id",
    "rows_table",
    "run_id_for",
    "write_details",
    "write_report",
    "write_rows",
]

MONITORING = "monitoring"
# The Parquet columns, in order, with their Arrow types (see the contract).
COLUMNS: dict[str, str] = {
    "run_id": "string",
    "run_time": "timestamp[us, UTC]",
    "monitor": "string",
    "signal": "string",
    "signal_type": "string",
    "feature": "string",
    "feature_type": "string",
    "metric": "string",
    "value": "float64",
    "threshold": "float64",
    "breached": "bool",
    "window_start": "timestamp[us, UTC]",
    "window_end": "timestamp[us, UTC]",
    "production_rows": "int64",
    "reference_rows": "int64",
}


@dataclass(frozen=True)
class ResultRow:
    """One result: a signal's metric for one feature (feature "" for whole-model metrics)."""

    signal: str
    signal_type: str
    feature: str
    feature_type: str
    metric: str
    value: float
    threshold: float
    breached: bool
    window_start: datetime | None
    window_end: datetime | None
    production_rows: int
    reference_rows: int

    def as_dict(self, run_id: str, run_time: datetime, monitor: str) -> dict[str, Any]:
        return {
            "run_id": run_id,
            "run_time": run_time,
            "monitor": monitor,
            **{name: getattr(self, name) for name in self.__dataclass_fields__},
        }


def monitor_dir(workspace: Path, monitor: str) -> Path:
    return Path(workspace) / MONITORING / monitor


def run_id_for(run_time: datetime) -> str:
    """The run time as `YYYYMMDDTHHMMSSZ` (UTC): ids sort as times do."""
    return run_time.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


@contextlib.contextmanager
def reserve_run_id(workspace: Path, monitor: str, run_time: datetime) -> Iterator[str]:
    """A run id no other run has: the run time, with `-2`, `-3`... when it is taken.

    The id is held by a hidden lock file for as long as the block runs, so two runs
    started in the same second never write each other's files."""
    runs = monitor_dir(workspace, monitor) / "runs"
    _mkdir(runs)
    base = run_id_for(run_time)
    for n in range(1, 10_000):
        run_id = base if n == 1 else f"{base}-{n}"
        if (runs / f"{run_id}.parquet").exists() or (runs / f"{run_id}.json").exists():
            continue
        lock = runs / f".{run_id}.lock"
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            continue
        except OSError as exc:
            raise StorageError(f"cannot create: {exc.strerror}", path=str(lock)) from None
        os.close(fd)
        try:
            yield run_id
        finally:
            lock.unlink(missing_ok=True)
        return
    raise StorageError("no free run id", path=str(runs))


def rows_table(rows: Iterable[ResultRow], run_id: str, run_time: datetime, monitor: str) -> Any:
    """The result rows as a pyarrow Table with the contract's columns and types."""
    import pyarrow as pa

    records = [row.as_dict(run_id, run_time, monitor) for row in rows]
    schema = pa.schema([(name, _arrow_type(pa, kind)) for name, kind in COLUMNS.items()])
    columns = {name: [r[name] for r in records] for name in COLUMNS}
    return pa.Table.from_pydict(columns, schema=schema)


def write_rows(
    workspace: Path, monitor: str, run_id: str, run_time: datetime, rows: Iterable[ResultRow]
) -> Path:
    import pyarrow.parquet as pq

    table = rows_table(rows, run_id, run_time, monitor)
    target = monitor_dir(workspace, monitor) / "runs" / f"{run_id}.parquet"
    with _atomic(target) as tmp:
        pq.write_table(table, tmp)
    return target


def write_details(workspace: Path, monitor: str, run_id: str, details: Mapping[str, Any]) -> Path:
    target = monitor_dir(workspace, monitor) / "runs" / f"{run_id}.json"
    data = orjson.dumps(details, option=orjson.OPT_SERIALIZE_NUMPY)
    with _atomic(target) as tmp:
        Path(tmp).write_bytes(data)
    return target


def write_report(workspace: Path, monitor: str, run_id: str, html: str) -> Path:
    target = monitor_dir(workspace, monitor) / "reports" / f"{run_id}.html"
    with _atomic(target) as tmp:
        Path(tmp).write_text(html, encoding="utf-8")
    return target


def _arrow_type(pa: Any, kind: str) -> Any:
    if kind.startswith("timestamp"):
        return pa.timestamp("us", tz="UTC")
    return {"string": pa.string(), "float64": pa.float64(), "bool": pa.bool_()}.get(
        kind, pa.int64()
    )


def _mkdir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create folder: {exc.strerror}", path=str(path)) from None


@contextlib.contextmanager
def _atomic(target: Path) -> Iterator[str]:
    """A temporary path beside `target`, renamed onto it when the block succeeds."""
    _mkdir(target.parent)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as exc:
        raise StorageError(f"cannot write: {exc.strerror}", path=str(target)) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
