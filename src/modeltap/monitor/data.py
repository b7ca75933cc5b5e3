"""A signal's data: production rows from a collection (through modeltap.read, only the
partitions of the window) and the reference from a file, a folder or an asset.

    azureml:name:version, name:version or a bare name   a data asset of the workspace
    azureml://datastores/<ds>/paths/<p>                  a datastore folder
    a .parquet, .csv or .jsonl/.json file                a table
    a folder                                             collected JSON lines (yyyy/MM/...
                                                          partitions) or .parquet/.csv files
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from modeltap.errors import ConfigError
from modeltap.monitor.spec import DataSpec

__all__ = ["ENVELOPE", "Window", "load_data", "window_for"]

log = logging.getLogger(__name__)

ENVELOPE = frozenset({"correlationid", "time", "record_id"})
_TABLE_SUFFIXES = (".parquet", ".csv", ".jsonl", ".json", ".ndjson")


@dataclass(frozen=True)
class Window:
    start: datetime | None
    end: datetime | None


def window_for(spec: DataSpec, at: datetime) -> Window:
    """[at - offset - size, at - offset), or the explicit window_start/window_end."""
    if spec.window_start is not None or spec.window_end is not None:
        return Window(
            _time(spec.window_start, f"{spec.where}.data_window.window_start"),
            _time(spec.window_end, f"{spec.where}.data_window.window_end"),
        )
    if spec.window_size is None:
        return Window(None, None)
    end = at - spec.window_offset
    return Window(end - spec.window_size, end)


def load_data(
    spec: DataSpec,
    at: datetime,
    workspace: Path,
    columns: list[str] | None = None,
    default_window: bool = False,
) -> tuple[pd.DataFrame, Window]:
    """The rows of `spec` (and the window they were read for). An asset, URI or folder of
    collected lines is read through modeltap.read.load with the window; a file as a table.
    default_window: production data with no data_window reads the 7 days before `at`."""
    from datetime import timedelta

    window = window_for(spec, at)
    if default_window and window.start is None and window.end is None:
        window = Window(at - timedelta(days=7), at)
    path = spec.path
    where = f"{spec.where}.input_data.path"
    local = Path(path)
    if local.is_file():
        frame = _read_file(local, where)
        frame = _filter_time(frame, window, spec.where) if window.start or window.end else frame
    elif local.is_dir() and not _is_collection(local):
        frame = pd.concat(
            [_read_file(f, where) for f in sorted(local.iterdir()) if f.suffix in _TABLE_SUFFIXES],
            ignore_index=True,
        )
    else:
        frame = _read_collection(path, window, workspace, columns, where)
    if frame.empty:
        bounds = _describe(window)
        raise ConfigError(f"no rows in {path!r}{bounds}", field=_window_field(spec))
    return frame, window


def _read_collection(
    path: str, window: Window, workspace: Path, columns: list[str] | None, where: str
) -> pd.DataFrame:
    from modeltap import read

    source = path[len("azureml:") :] if path.startswith("azureml:") and "://" not in path else path
    if source.startswith("/") and not Path(source).exists():
        raise ConfigError(f"{path!r} does not exist", field=where)
    try:
        frame = read.load(source, window.start, window.end, workspace=workspace, columns=columns)
    except read.NotFoundError as exc:
        if columns is not None and str(exc).startswith("no column"):  # a named feature
            where = where.rsplit(".", 3)[0] + ".features"
        raise ConfigError(str(exc), field=where) from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(str(exc), field=where) from None
    assert isinstance(frame, pd.DataFrame)
    return frame


def _is_collection(folder: Path) -> bool:
    """A folder of collected JSON lines (yyyy/... partitions or .jsonl files), not a
    folder of table files."""
    return not any(f.suffix in (".parquet", ".csv") for f in folder.iterdir() if f.is_file())


def _read_file(path: Path, where: str) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix in (".jsonl", ".ndjson"):
            return pd.read_json(path, lines=True)
        if suffix == ".json":
            return pd.read_json(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {str(path)!r}: {exc}", field=where) from None
    raise ConfigError(
        f"{str(path)!r}: unknown file type; allowed: .parquet, .csv, .jsonl, .json", field=where
    )


def _filter_time(frame: pd.DataFrame, window: Window, where: str) -> pd.DataFrame:
    if "time" not in frame.columns:
        raise ConfigError(
            "a data_window needs a 'time' column in the file", field=f"{where}.data_window"
        )
    times = pd.to_datetime(frame["time"], utc=True)
    keep = pd.Series(True, index=frame.index)
    if window.start is not None:
        keep &= times >= window.start
    if window.end is not None:
        keep &= times < window.end
    return frame[keep].reset_index(drop=True)


def _time(value: str | None, where: str) -> datetime | None:
    if value is None:
        return None
    try:
        t = pd.Timestamp(value)
    except ValueError:
        raise ConfigError(f"{value!r} is not an ISO 8601 time", field=where) from None
    return (t.tz_localize(UTC) if t.tzinfo is None else t.tz_convert(UTC)).to_pydatetime()


def _describe(window: Window) -> str:
    if window.start is None and window.end is None:
        return ""
    return f" between {_iso(window.start)} and {_iso(window.end)}"


def _iso(t: datetime | None) -> str:
    return t.isoformat().replace("+00:00", "Z") if t is not None else "..."


def _window_field(spec: DataSpec) -> str:
    if spec.window_size is not None or spec.window_start or spec.window_end:
        return f"{spec.where}.data_window"
    return f"{spec.where}.input_data.path"
