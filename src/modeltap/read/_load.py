"""load(): a collection back as one table, one row per data row (SPEC R6.2)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Literal, overload

import pandas as pd

from modeltap import runtime
from modeltap.errors import ModeltapError
from modeltap.read._parse import ENVELOPE, ENVELOPE_FIELDS, Parser, Part
from modeltap.read._payload import finish_frame, payload_frame
from modeltap.read._range import TimeLike, detect_depth, in_range, plan_prefixes, to_utc
from modeltap.read._source import NotFoundError, Source, resolve, suggest
from modeltap.read._tables import (
    SKIPPED,
    Engine,
    concat,
    duckdb_module,
    empty,
    finish_table,
    to_pandas,
    with_columns,
)
from modeltap.storage.base import ObjectInfo

__all__ = ["SKIPPED", "load"]

log = logging.getLogger(__name__)

ENGINES = ("pandas", "arrow", "duckdb")
PROGRESS_FILES = 20  # the automatic progress bar shows from this many files
_THREADS = min(8, (os.cpu_count() or 1) * 2)
# Envelope fields that `columns=` may ask for beside the user's columns.
_EXTRA = ENVELOPE_FIELDS - {"id", "time", "correlationid"}


@overload
def load(
    source: str | os.PathLike[str],
    start: TimeLike | None = ...,
    end: TimeLike | None = ...,
    *,
    workspace: str | os.PathLike[str] | None = ...,
    engine: Literal["pandas"] = ...,
    columns: Sequence[str] | None = ...,
    resolve_blobs: bool = ...,
    progress: bool | None = ...,
) -> pd.DataFrame: ...


@overload
def load(
    source: str | os.PathLike[str],
    start: TimeLike | None = ...,
    end: TimeLike | None = ...,
    *,
    workspace: str | os.PathLike[str] | None = ...,
    engine: Literal["arrow", "duckdb"],
    columns: Sequence[str] | None = ...,
    resolve_blobs: bool = ...,
    progress: bool | None = ...,
) -> Any: ...


def load(
    source: str | os.PathLike[str],
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    *,
    workspace: str | os.PathLike[str] | None = None,
    engine: Engine = "pandas",
    columns: Sequence[str] | None = None,
    resolve_blobs: bool = False,
    progress: bool | None = None,
) -> Any:
    """Read a collection back: one row per data row, with `correlationid`, `time` (UTC)
    and `record_id` (the id of the line the row came from).

    source: a data asset name, `name:version`, an `azureml://datastores/<ds>/paths/<p>`
    URI, or a local folder. start/end: a datetime (naive means UTC), a date or an ISO 8601
    string; only partitions overlapping [start, end) are listed and read, and rows are
    kept when start <= time < end. engine: "pandas" (a DataFrame), "arrow" (a
    pyarrow.Table) or "duckdb" (a DuckDB relation). columns: the data columns to keep
    (envelope fields such as "modelversion" may be named too). resolve_blobs: fetch
    payloads stored as their own objects and put their bytes in `data`.

    Files that cannot be read, and lines that are not JSON, are skipped, logged at
    WARNING and counted in `df.attrs["modeltap_skipped"]`.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r}; allowed: {', '.join(ENGINES)}")
    if engine == "duckdb":
        duckdb_module()  # fail before reading, not after
    if isinstance(columns, str):
        raise TypeError("columns must be a list of column names, not one string")
    wanted = list(dict.fromkeys(columns)) if columns is not None else None
    t0, t1 = to_utc(start, "start"), to_utc(end, "end")
    if t0 is not None and t1 is not None and t0 > t1:
        raise ValueError(f"start ({t0.isoformat()}) is after end ({t1.isoformat()})")
    src = resolve(source, workspace if workspace is not None else runtime.default_workspace())
    try:
        infos = _objects(src, t0, t1)
        extra = tuple(c for c in wanted or () if c in _EXTRA)
        parser = Parser(t0, t1, extra, threads=len(infos) < _THREADS)
        parts = _parse_all(src, infos, parser, progress)
        skipped = _report(src, parts)
        rows = [p.rows for p in parts if p.rows is not None]
        payload = [(p.path, line) for p in parts for line in p.payload]
        if payload:
            frame = payload_frame(src, payload, resolve_blobs, skipped)
            if rows:  # a collection with both rows and payloads: one frame, in time order
                frame = pd.concat([to_pandas(concat(rows)), frame], ignore_index=True)
                frame = frame.sort_values("time", kind="stable", ignore_index=True)
            frame = _select_frame(frame, wanted, src)
            return finish_frame(frame, engine, skipped, resolve_blobs)
        table = _select(rows, wanted, src)
    finally:
        src.storage.close()
    if table.num_rows == 0:
        where = f" between {t0 or 'the start'} and {t1 or 'now'}" if t0 or t1 else ""
        log.info("modeltap: no rows in %s%s (%d files read)", src.label, where, len(infos))
    return finish_table(table, engine, skipped)


# -- listing ------------------------------------------------------------------------------


def _objects(src: Source, start: datetime | None, end: datetime | None) -> list[ObjectInfo]:
    storage, prefix = src.storage, src.prefix
    if start is None and end is None:
        return in_range(storage.list(prefix), prefix, None, None)
    depth = detect_depth(storage, prefix)
    prefixes = plan_prefixes(start, end, depth) if depth is not None else None
    if depth is None:
        log.info("modeltap: %s has no yyyy/MM/... partition folders: listing all", src.label)
    if prefixes is None:
        return in_range(storage.list(prefix), prefix, start, end)
    folders = [f"{prefix}/{p}" if prefix else p for p in prefixes]
    if len(folders) <= 2:
        listed = [list(storage.list(f)) for f in folders]
    else:
        with ThreadPoolExecutor(_THREADS) as pool:
            listed = list(pool.map(lambda f: list(storage.list(f)), folders))
    return in_range([info for found in listed for info in found], prefix, start, end)


# -- reading ------------------------------------------------------------------------------


def _parse_all(
    src: Source, infos: list[ObjectInfo], parser: Parser, progress: bool | None
) -> list[Part]:
    def one(info: ObjectInfo) -> Part:
        try:
            data = src.storage.get(info.path)
        except ModeltapError as exc:
            return Part(info.path, error=f"could not be read: {exc}")
        try:
            return parser.parse(info.path, data)
        except Exception as exc:  # never let one odd object break a whole read
            log.debug("parse of %s failed", info.path, exc_info=True)
            return Part(info.path, error=f"could not be parsed: {type(exc).__name__}: {exc}")

    if not infos:
        return []
    with _progress(len(infos), progress, src.label) as advance:
        if len(infos) == 1:
            parts = [one(infos[0])]
            advance()
            return parts
        parts = []
        with ThreadPoolExecutor(min(_THREADS, len(infos))) as pool:
            for part in pool.map(one, infos):
                parts.append(part)
                advance()
    return parts


@contextmanager
def _progress(total: int, enabled: bool | None, label: str) -> Iterator[Callable[[], None]]:
    show = enabled if enabled is not None else total >= PROGRESS_FILES and sys.stderr.isatty()
    if not show:
        yield lambda: None
        return
    try:
        from rich.console import Console  # type: ignore[import-not-found, unused-ignore]
        from rich.progress import Progress  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        if enabled:
            log.warning("modeltap: progress=True needs rich: pip install rich")
        yield lambda: None
        return
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"reading {label}", total=total)
        yield lambda: bar.advance(task)


def _report(src: Source, parts: list[Part]) -> dict[str, Any]:
    skipped: dict[str, Any] = {"lines": 0, "files": [], "partial_files": [], "blobs": []}
    for part in parts:
        if part.error is not None:
            skipped["files"].append(part.path)
            log.warning("modeltap: skipped %s: %s", src.storage.url(part.path), part.error)
        elif part.bad_lines:
            skipped["lines"] += part.bad_lines
            skipped["partial_files"].append(part.path)
            log.warning(
                "modeltap: skipped %d line(s) of %s that are not JSON objects",
                part.bad_lines,
                src.storage.url(part.path),
            )
    return skipped


# -- tables -------------------------------------------------------------------------------


def _select(rows: list[Any], wanted: list[str] | None, src: Source) -> Any:
    if wanted is not None:
        known = list(dict.fromkeys(n for t in rows for n in t.column_names))
        _check_columns(wanted, known, src, bool(rows))
        keep = [*(c for c in wanted if c not in ENVELOPE), *ENVELOPE]
        rows = [t.select([c for c in keep if c in t.column_names]) for t in rows]
    table = concat(rows) if rows else empty(wanted)
    if wanted is not None:
        table = with_columns(table, [*(c for c in wanted if c not in ENVELOPE), *ENVELOPE])
    return table


def _check_columns(wanted: list[str], known: list[str], src: Source, any_rows: bool) -> None:
    if not any_rows:
        return
    for name in wanted:
        if name not in known and name not in ENVELOPE:
            raise NotFoundError(
                f"no column {name!r} in {src.label}{suggest(name, known, 'columns')}"
            )


def _select_frame(frame: pd.DataFrame, wanted: list[str] | None, src: Source) -> pd.DataFrame:
    if wanted is None:
        return frame
    known = [str(c) for c in frame.columns]
    _check_columns(wanted, known, src, True)
    return frame[[*(c for c in wanted if c not in ENVELOPE), *ENVELOPE]]
