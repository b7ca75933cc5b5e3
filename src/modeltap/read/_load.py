"""load(): a collection back as one table, one row per data row (SPEC R6.2)."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, overload

import pandas as pd

from modeltap.config import default_workspace
from modeltap.errors import ConfigError, ModeltapError, NotFoundError
from modeltap.read import _delta, _duck
from modeltap.read._gather import Gathered
from modeltap.read._objects import (
    PROGRESS_FILES,
    THREADS,
    list_objects,
    parse_all,
    progress_bar,
    report,
)
from modeltap.read._parse import ENVELOPE, ENVELOPE_FIELDS, Parser, Part
from modeltap.read._payload import finish_frame, payload_frame
from modeltap.read._range import TimeLike, utc_range
from modeltap.read._source import Source, resolve, suggest
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
from modeltap.storage.base import ObjectInfo, Storage
from modeltap.storage.local import LocalStorage

__all__ = ["SKIPPED", "load"]

log = logging.getLogger(__name__)

ENGINES = ("pandas", "arrow", "duckdb")
# Below this many bytes in all, pyarrow reads faster than DuckDB starts (and reads exactly).
DUCKDB_FROM_BYTES = 8 << 20
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
    exact: bool = ...,
    delta: bool = ...,
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
    exact: bool = ...,
    delta: bool = ...,
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
    exact: bool = False,
    delta: bool = True,
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

    With duckdb installed, DuckDB reads row collections, its columns taken from the first
    and last lines of every file; exact=True reads every line with pyarrow instead, which
    also finds a column that only rows in the middle of files have (slower).

    Files that cannot be read, and lines that are not JSON, are skipped, logged at
    WARNING and counted in `df.attrs["modeltap_skipped"]`.

    A collection compacted by `modeltap compact` is read from its Delta table for the
    objects the table covers and from the JSON lines for the rest (delta=False reads only
    the JSON lines). Rows come partition by partition, those from the table first.
    """
    wanted, t0, t1 = _arguments(engine, columns, start, end)
    ws = workspace if workspace is not None else default_workspace()
    src = resolve(source, ws)
    try:
        table = _delta.find(src, ws) if delta else None
        if table is not None:
            from modeltap.read import _compacted

            return _compacted.load(
                src, table, t0, t1, engine, wanted, resolve_blobs, progress, exact, _load_json
            )
        return _load_json(src, None, t0, t1, engine, wanted, resolve_blobs, progress, exact)
    finally:
        src.storage.close()


def _arguments(
    engine: Engine, columns: Sequence[str] | None, start: TimeLike | None, end: TimeLike | None
) -> tuple[list[str] | None, datetime | None, datetime | None]:
    """load()'s arguments checked before anything is read: (the columns asked for, once
    each; start and end in UTC)."""
    if engine not in ENGINES:
        raise ConfigError(f"engine={engine!r}; allowed: {', '.join(ENGINES)}")
    if engine == "duckdb":
        duckdb_module()  # fail before reading, not after
    if isinstance(columns, str):
        raise TypeError("columns must be a list of column names, not one string")
    wanted = list(dict.fromkeys(columns)) if columns is not None else None
    return (wanted, *utc_range(start, end))


def _load_json(
    src: Source,
    infos: list[ObjectInfo] | None,
    t0: datetime | None,
    t1: datetime | None,
    engine: Engine,
    wanted: list[str] | None,
    resolve_blobs: bool,
    progress: bool | None,
    exact: bool,
) -> Any:
    """load() from the JSON lines of these objects (None: those of the time range), in one
    of three shapes: DuckDB's columns as a DataFrame, payloads (request/response lines) as
    a DataFrame, or rows as one Arrow table (then converted for the engine)."""
    if infos is None:
        infos = list_objects(src, t0, t1)
    extra = tuple(c for c in wanted or () if c in _EXTRA)
    parser = Parser(t0, t1, extra, threads=len(infos) < THREADS)
    duck, parts = _read(src, infos, parser, wanted, progress, exact)
    skipped = report(src, parts)
    sampled = duck.sampled if duck is not None else []
    frame = _duckdb_frame(duck, engine, parts)
    if frame is not None:
        frame = _select_frame(frame, wanted, src, sampled)
        if frame.empty:
            _no_rows(src, t0, t1, infos)
        frame.attrs[SKIPPED] = skipped
        return frame
    rows = _rows(duck, parts)
    del duck
    payload = [(p.path, line) for p in parts for line in p.payload]
    if payload:
        return _payload(src, rows, payload, wanted, engine, resolve_blobs, skipped)
    table = _select(rows, wanted, src, sampled)
    del rows, parts  # the table holds what is left: let the rest go before converting it
    if table.num_rows == 0:
        _no_rows(src, t0, t1, infos)
    return finish_table(table, engine, skipped)


def _read(
    src: Source,
    infos: list[ObjectInfo],
    parser: Parser,
    wanted: list[str] | None,
    progress: bool | None,
    exact: bool = False,
) -> tuple[_duck.DuckRead | None, list[Part]]:
    """The objects parsed: by DuckDB when it is installed and the read is large enough
    (and not exact), else line by line, which also takes over when DuckDB fails."""
    if exact or not _use_duckdb(infos):
        return None, parse_all(src.storage, infos, parser, progress, src.label)
    try:
        return _read_duckdb(src, infos, parser, wanted, progress)
    except Exception as exc:  # e.g. no room for the temporary copy: never fatal
        log.warning("modeltap: reading %s line by line: %s", src.label, exc)
        log.debug("DuckDB read of %s failed", src.label, exc_info=True)
        return None, parse_all(src.storage, infos, parser, progress, src.label)


def _payload(
    src: Source,
    rows: list[Any],
    payload: list[tuple[str, dict[str, Any]]],
    wanted: list[str] | None,
    engine: Engine,
    resolve_blobs: bool,
    skipped: dict[str, Any],
) -> Any:
    """A collection of payload lines (and maybe rows too) as one frame, in time order."""
    frame = payload_frame(src, payload, resolve_blobs, skipped)
    if rows:  # a collection with both rows and payloads: one frame, in time order
        frame = pd.concat([to_pandas(concat(rows)), frame], ignore_index=True)
        frame = frame.sort_values("time", kind="stable", ignore_index=True)
    frame = _select_frame(frame, wanted, src)
    return finish_frame(frame, engine, skipped, resolve_blobs)


def read_objects(
    src: Source, infos: list[ObjectInfo]
) -> tuple[Any, list[tuple[str, dict[str, Any]]], dict[str, Any], set[str]]:
    """Every row of these objects, with no time filter, for the compactor: (an Arrow table
    of rows with load's columns, or None; payload lines as (object path, line); the report
    of what was skipped; the paths of objects that could not be read at all)."""
    parser = Parser(None, None, threads=len(infos) < THREADS)
    duck, parts = _read(src, infos, parser, None, False)
    skipped = report(src, parts)
    sampled = duck.sampled if duck is not None else []
    rows = _rows(duck, parts)
    table = _select(rows, None, src, sampled) if rows else None
    payload = [(p.path, line) for p in parts for line in p.payload]
    failed = {p.path for p in parts if p.error is not None}
    return table, payload, skipped, failed


def _no_rows(src: Source, t0: datetime | None, t1: datetime | None, infos: list[Any]) -> None:
    where = f" between {t0 or 'the start'} and {t1 or 'now'}" if t0 or t1 else ""
    log.info("modeltap: no rows in %s%s (%d files read)", src.label, where, len(infos))


def _rows(duck: _duck.DuckRead | None, parts: list[Part]) -> list[Any]:
    """Tables of rows in the order of the objects: DuckDB's, and those read line by line."""
    if duck is None:
        return [p.rows for p in parts if p.rows is not None]
    by_path = {p.path: p.rows for p in parts}
    rows = [by_path[p.path] if isinstance(p, ObjectInfo) else p.table() for p in duck.pieces]
    return [r for r in rows if r is not None]


def _duckdb_frame(duck: _duck.DuckRead | None, engine: Engine, parts: list[Part]) -> Any:
    """DuckDB's rows straight to pandas, when they are all there is (no object was read
    line by line): the numbers gathered in numpy become the frame's columns, no copy."""
    if engine != "pandas" or duck is None or len(duck.pieces) != 1:
        return None
    if any(p.rows is not None or p.payload for p in parts):
        return None
    [piece] = duck.pieces
    return piece.frame() if isinstance(piece, Gathered) else None


# -- DuckDB -------------------------------------------------------------------------------


def _use_duckdb(infos: list[ObjectInfo]) -> bool:
    if not infos or sum(info.size for info in infos) < DUCKDB_FROM_BYTES:
        return False
    return _duck.module() is not None


def _read_duckdb(
    src: Source,
    infos: list[ObjectInfo],
    parser: Parser,
    wanted: list[str] | None,
    progress: bool | None,
) -> tuple[_duck.DuckRead | None, list[Part]]:
    """DuckDB reads the objects from local disk; what it leaves (objects it stopped on, or
    all of them when the collection is not one for it) is read line by line."""
    with _on_local_disk(src, infos, progress) as (storage, paths, found, failed):
        auto = None if len(found) >= PROGRESS_FILES else False  # a bar in percent
        with progress_bar(100, progress if progress is not None else auto, src.label) as advance:
            done = 0

            def tick(pct: float) -> None:
                nonlocal done
                if pct > done:
                    advance(int(pct) - done)
                    done = int(pct)

            duck = _duck.read(paths, found, parser.start, parser.end, parser.extra, wanted, tick)
        rest = found if duck is None else duck.exact
        parts = parse_all(storage, rest, parser, progress if duck is None else False, src.label)
    return duck, failed + parts


@contextmanager
def _on_local_disk(
    src: Source, infos: list[ObjectInfo], progress: bool | None
) -> Iterator[tuple[Storage, list[str], list[ObjectInfo], list[Part]]]:
    """(a storage on local disk holding the objects, their file paths, the objects found,
    Parts for those that could not be fetched): the source itself when it is a folder,
    else a temporary copy made with Storage.get()."""
    paths = _duck.local_files(src.storage, infos)
    if paths is not None:
        yield src.storage, paths, infos, []
        return
    with tempfile.TemporaryDirectory(prefix="modeltap-read-") as tmp:
        copy = LocalStorage(tmp, name=src.storage.name)

        def fetch(info: ObjectInfo) -> Part | None:
            try:
                data = src.storage.get(info.path)
            except ModeltapError as exc:
                return Part(info.path, error=f"could not be read: {exc}")
            target = Path(copy.url(info.path))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            return None

        with (
            progress_bar(len(infos), progress, src.label) as advance,
            ThreadPoolExecutor(min(THREADS, len(infos))) as pool,
        ):
            results = []
            for result in pool.map(fetch, infos):
                results.append(result)
                advance()
        found = [info for info, r in zip(infos, results, strict=True) if r is None]
        failed = [r for r in results if r is not None]
        yield copy, [copy.url(info.path) for info in found], found, failed


# -- tables -------------------------------------------------------------------------------


def _select(rows: list[Any], wanted: list[str] | None, src: Source, sampled: list[str]) -> Any:
    if wanted is not None:
        known = list(dict.fromkeys([*sampled, *(n for t in rows for n in t.column_names)]))
        _check_columns(wanted, known, src, bool(rows))
        keep = [*(c for c in wanted if c not in ENVELOPE), *ENVELOPE]
        rows = [t.select([c for c in keep if c in t.column_names]) for t in rows]
    table = concat(rows) if rows else empty(wanted)
    if wanted is not None:
        table = with_columns(table, [*(c for c in wanted if c not in ENVELOPE), *ENVELOPE])
    elif len(rows) > 1:  # columns that only later objects have go before the envelope
        table = table.select([*(c for c in table.column_names if c not in ENVELOPE), *ENVELOPE])
    return table


def _check_columns(wanted: list[str], known: list[str], src: Source, any_rows: bool) -> None:
    if not any_rows:
        return
    for name in wanted:
        if name not in known and name not in ENVELOPE:
            raise NotFoundError(
                f"no column {name!r} in {src.label}{suggest(name, known, 'columns')}"
            )


def _select_frame(
    frame: pd.DataFrame, wanted: list[str] | None, src: Source, sampled: Sequence[str] = ()
) -> pd.DataFrame:
    if wanted is None:
        return frame
    known = list(dict.fromkeys([*sampled, *(str(c) for c in frame.columns)]))
    _check_columns(wanted, known, src, True)
    return frame[[*(c for c in wanted if c not in ENVELOPE), *ENVELOPE]]
