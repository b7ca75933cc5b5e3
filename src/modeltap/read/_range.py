"""Time ranges and partition folders: which objects a time range needs.

A collection folder holds `{partition}/{instance_id}.jsonl`, the partition being
`yyyy`, `yyyy/MM`, `yyyy/MM/dd`, `yyyy/MM/dd/HH` or `yyyy/MM/dd/HH/mm` by rolling rate
(SPEC R4.1). The depth of the folders tells the rate, so a reader can list only the
partitions a time range touches instead of everything.
"""

from __future__ import annotations

import functools
import os
import posixpath
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from modeltap.errors import ConfigError
from modeltap.layout import superseded
from modeltap.storage.base import ObjectInfo, Storage

__all__ = [
    "MAX_PREFIXES",
    "TimeLike",
    "detect_depth",
    "partition_of",
    "period",
    "plan_prefixes",
    "to_utc",
    "utc_range",
]

TimeLike = datetime | date | str

_WIDTHS = (4, 2, 2, 2, 2)  # yyyy MM dd HH mm
MAX_PREFIXES = 500  # partitions listed one by one; past this, list their parents
FUTURE_SLACK = timedelta(days=1)  # an open end reads up to now + this


def to_utc(value: TimeLike | None, name: str) -> datetime | None:
    """A UTC datetime from a datetime (naive means UTC), a date, or an ISO 8601 string;
    a ConfigError (a ValueError) naming `name` for a string that is not a time."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ConfigError(
                f"{name}={value!r} is not an ISO 8601 time; "
                "e.g. '2026-11-25', '2026-11-25T10:00', '2026-11-25T10:00:00Z'"
            ) from None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise TypeError(
        f"{name} must be a datetime, a date or an ISO 8601 string, got {type(value).__name__}"
    )


def utc_range(
    start: TimeLike | None, end: TimeLike | None
) -> tuple[datetime | None, datetime | None]:
    """start and end of a read as UTC datetimes (None: open); a ConfigError when start is
    after end."""
    t0, t1 = to_utc(start, "start"), to_utc(end, "end")
    if t0 is not None and t1 is not None and t0 > t1:
        raise ConfigError(f"start ({t0.isoformat()}) is after end ({t1.isoformat()})")
    return t0, t1


def period(dirs: list[str]) -> tuple[datetime, datetime] | None:
    """[start, end) of the partition named by these folders, or None if they are not one."""
    return _period(tuple(dirs))


@functools.lru_cache(maxsize=4096)  # many objects share a partition folder
def _period(dirs: tuple[str, ...]) -> tuple[datetime, datetime] | None:
    if not 1 <= len(dirs) <= len(_WIDTHS):
        return None
    for part, width in zip(dirs, _WIDTHS, strict=False):
        if len(part) != width or not part.isdigit():
            return None
    try:
        start = _at([int(p) for p in dirs])
    except ValueError:  # month 13, hour 25, ...
        return None
    return start, _next(start, len(dirs))


def partition_of(path: str, prefix: str) -> tuple[str, tuple[datetime, datetime] | None]:
    """(partition folder, its [start, end)) of an object under `prefix`; None outside one."""
    return _partition_of(path[len(prefix) + 1 if prefix else 0 :].rpartition("/")[0])


@functools.lru_cache(maxsize=4096)  # many objects share a partition folder
def _partition_of(folder: str) -> tuple[str, tuple[datetime, datetime] | None]:
    return folder, period(folder.split("/")) if folder else None


def _at(fields: list[int]) -> datetime:
    """The start of a partition from its leading fields (year, month, day, hour, minute)."""
    y, mo, d, h, mi = [*fields, *(1, 1, 0, 0)[len(fields) - 1 :]][:5]
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def _floor(t: datetime, depth: int) -> datetime:
    return _at([t.year, t.month, t.day, t.hour, t.minute][:depth])


def _next(t: datetime, depth: int) -> datetime:
    if depth == 1:
        return t.replace(year=t.year + 1)
    if depth == 2:
        return t.replace(year=t.year + t.month // 12, month=t.month % 12 + 1)
    step = {3: timedelta(days=1), 4: timedelta(hours=1), 5: timedelta(minutes=1)}[depth]
    return t + step


def _name(t: datetime, depth: int) -> str:
    text = f"{t.year:04d}/{t.month:02d}/{t.day:02d}/{t.hour:02d}/{t.minute:02d}"
    return text[: (4, 7, 10, 13, 16)[depth - 1]]


def _partitions(start: datetime, end: datetime, depth: int, limit: int) -> list[str] | None:
    out: list[str] = []
    t = _floor(start, depth)
    while t < end:
        if len(out) >= limit:
            return None
        out.append(_name(t, depth))
        t = _next(t, depth)
    return out


def plan_prefixes(
    start: datetime | None, end: datetime | None, depth: int, limit: int = MAX_PREFIXES
) -> list[str] | None:
    """Partition folders (relative to the collection) that cover [start, end), listed at the
    data's depth or, when that would take more than `limit` listings, at a coarser one.

    None means "list the whole collection" (no start: the earliest partition is unknown).
    """
    if start is None:
        return None
    if end is None:
        end = max(datetime.now(UTC), start) + FUTURE_SLACK
    for level in range(depth, 0, -1):
        found = _partitions(start, end, level, limit)
        if found is not None:
            return found
    return None  # more than `limit` years: list everything


def detect_depth(storage: Storage, prefix: str) -> int | None:
    """How many partition folders sit between the collection folder and its files
    (1 = Year ... 5 = Minute), or None when the files are not in partition folders.

    Looks at the first file only: a local folder is walked down one branch; an object
    store's listing is consumed lazily and stopped at the first file.
    """
    folder = storage.local_path(prefix)
    if folder is not None:
        return _local_depth(folder, 0)
    base = f"{prefix}/" if prefix else ""
    for seen, info in enumerate(storage.list(prefix)):
        if seen >= 1000:
            break
        if not info.path.endswith(".jsonl"):
            continue
        dirs = info.path[len(base) :].split("/")[:-1]
        if period(dirs) is not None:
            return len(dirs)
    return None


def _local_depth(folder: Path, level: int) -> int | None:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return None
    if level and any(_is_line_file(e) for e in entries):
        return level
    if level == len(_WIDTHS):
        return None
    width = _WIDTHS[level]
    for entry in entries:
        if entry.name.isdigit() and len(entry.name) == width and entry.is_dir():
            found = _local_depth(Path(entry.path), level + 1)
            if found is not None:
                return found
    return None


def _is_line_file(entry: os.DirEntry[str]) -> bool:
    return entry.name.endswith(".jsonl") and not entry.name.startswith(".") and entry.is_file()


def in_range(
    infos: Iterator[ObjectInfo] | list[ObjectInfo],
    prefix: str,
    start: datetime | None,
    end: datetime | None,
) -> list[ObjectInfo]:
    """The .jsonl objects whose partition overlaps [start, end) (all of them without a range;
    files outside partition folders are kept, their rows are filtered by time), less those
    an erasure has replaced."""
    base = f"{prefix}/" if prefix else ""
    out = []
    for info in infos:
        if not info.path.endswith(".jsonl") or posixpath.basename(info.path).startswith("."):
            continue
        if start is not None or end is not None:
            span = period(info.path[len(base) :].split("/")[:-1])
            if span is not None and (
                (end is not None and span[0] >= end) or (start is not None and span[1] <= start)
            ):
                continue
        out.append(info)
    if any(".erased-" in info.path for info in out):  # an erasure's copies (layout.py)
        stale = superseded(info.path for info in out)
        out = [info for info in out if info.path not in stale]
    return out
