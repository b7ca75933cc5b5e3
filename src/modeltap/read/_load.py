"""load(): a collection back as one table, one row per data row (SPEC R6.2)."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, overload

import pandas as pd

from modeltap.config import default_workspace
from modeltap.errors import ModeltapError
from modeltap.read import _delta, _duck
from modeltap.read._gather import Gathered
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
from modeltap.storage.base import ObjectInfo, Storage
from modeltap.storage.local import LocalStorage

__all__ = ["SKIPPED", "load"]

log = logging.getLogger(__name__)

ENGINES = ("pandas", "arrow", "duckdb")
PROGRESS_FILES = 20  # the automatic progress bar shows from this many files
# Below this many bytes in all, pyarrow reads faster than DuckDB starts (and reads exactly).
DUCKDB_FROM_BYTES = 8 << 20
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
    the JSON lines). Rows from the table come in time order.
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
    ws = workspace if workspace is not None else default_workspace()
    src = resolve(source, ws)
    try:
        table = _delta.find(src.storage, src.prefix, ws) if delta else None
        if table is not None:
            from modeltap.read import _compacted

            return _compacted.load(
                src, table, t0, t1, engine, wanted, resolve_blobs, progress, exact, _json_part
            )
        return _load_json(
            src, _objects(src, t0, t1), t0, t1, engine, wanted, resolve_blobs, progress, exact
        )
    finally:
        src.storage.close()


def _json_part(
    src: Source,
    infos: list[ObjectInfo],
    t0: datetime | None,
    t1: datetime | None,
    engine: Engine,
    wanted: list[str] | None,
    resolve_blobs: bool,
    progress: bool | None,
    exact: bool,
) -> Any:
    """load() of the objects given (None lists them: the time range's)."""
    if infos is None:
        infos = _objects(src, t0, t1)
    return _load_json(src, infos, t0, t1, engine, wanted, resolve_blobs, progress, exact)


def _load_json(
    src: Source,
    infos: list[ObjectInfo],
    t0: datetime | None,
    t1: datetime | None,
    engine: Engine,
    wanted: list[str] | None,
    resolve_blobs: bool,
    progress: bool | None,
    exact: bool,
) -> Any:
    extra = tuple(c for c in wanted or () if c in _EXTRA)
    parser = Parser(t0, t1, extra, threads=len(infos) < _THREADS)
    duck: _duck.DuckRead | None = None
    if exact or not _use_duckdb(infos):
        parts = _parse_all(src.storage, infos, parser, progress, src.label)
    else:
        try:
            duck, parts = _read_duckdb(src, infos, parser, wanted, progress)
        except Exception as exc:  # e.g. no room for the temporary copy: never fatal
            log.warning("modeltap: reading %s line by line: %s", src.label, exc)
            log.debug("DuckDB read of %s failed", src.label, exc_info=True)
            parts = _parse_all(src.storage, infos, parser, progress, src.label)
    skipped = _report(src, parts)
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
        frame = payload_frame(src, payload, resolve_blobs, skipped)
        if rows:  # a collection with both rows and payloads: one frame, in time order
            frame = pd.concat([to_pandas(concat(rows)), frame], ignore_index=True)
            frame = frame.sort_values("time", kind="stable", ignore_index=True)
        frame = _select_frame(frame, wanted, src)
        return finish_frame(frame, engine, skipped, resolve_blobs)
    table = _select(rows, wanted, src, sampled)
    del rows, parts
    if table.num_rows == 0:
        _no_rows(src, t0, t1, infos)
    return finish_table(table, engine, skipped)


def read_objects(
    src: Source, infos: list[ObjectInfo]
) -> tuple[Any, list[tuple[str, dict[str, Any]]], dict[str, Any], set[str]]:
    """Every row of these objects, with no time filter, for the compactor: (an Arrow table
    of rows with load's columns, or None; payload lines as (object path, line); the report
    of what was skipped; the paths of objects that could not be read at all)."""
    parser = Parser(None, None, threads=len(infos) < _THREADS)
    duck: _duck.DuckRead | None = None
    if not _use_duckdb(infos):
        parts = _parse_all(src.storage, infos, parser, False, src.label)
    else:
        try:
            duck, parts = _read_duckdb(src, infos, parser, None, False)
        except Exception as exc:
            log.warning("modeltap: reading %s line by line: %s", src.label, exc)
            parts = _parse_all(src.storage, infos, parser, False, src.label)
    skipped = _report(src, parts)
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
        with _progress(100, progress if progress is not None else auto, src.label) as advance:
            done = 0

            def tick(pct: float) -> None:
                nonlocal done
                if pct > done:
                    advance(int(pct) - done)
                    done = int(pct)

            duck = _duck.read(paths, found, parser.start, parser.end, parser.extra, wanted, tick)
        rest = found if duck is None else duck.exact
        parts = _parse_all(storage, rest, parser, progress if duck is None else False, src.label)
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
            _progress(len(infos), progress, src.label) as advance,
            ThreadPoolExecutor(min(_THREADS, len(infos))) as pool,
        ):
            results = []
            for result in pool.map(fetch, infos):
                results.append(result)
                advance()
        found = [info for info, r in zip(infos, results, strict=True) if r is None]
        failed = [r for r in results if r is not None]
        yield copy, [copy.url(info.path) for info in found], found, failed


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
    storage: Storage, infos: list[ObjectInfo], parser: Parser, progress: bool | None, label: str
) -> list[Part]:
    def one(info: ObjectInfo) -> Part:
        try:
            data = storage.get(info.path)
        except ModeltapError as exc:
            return Part(info.path, error=f"could not be read: {exc}")
        try:
            return parser.parse(info.path, data)
        except Exception as exc:  # never let one odd object break a whole read
            log.debug("parse of %s failed", info.path, exc_info=True)
            return Part(info.path, error=f"could not be parsed: {type(exc).__name__}: {exc}")

    if not infos:
        return []
    with _progress(len(infos), progress, label) as advance:
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
def _progress(total: int, enabled: bool | None, label: str) -> Iterator[Callable[..., None]]:
    """A bar of `total` steps on stderr; `advance(n=1)` moves it on."""
    show = enabled if enabled is not None else total >= PROGRESS_FILES and sys.stderr.isatty()
    if not show:
        yield _nothing
        return
    try:
        from rich.console import Console  # type: ignore[import-not-found, unused-ignore]
        from rich.progress import Progress  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        if enabled:
            log.warning("modeltap: progress=True needs rich: pip install rich")
        yield _nothing
        return
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"reading {label}", total=total)
        yield lambda n=1: bar.advance(task, n)


def _nothing(n: int = 1) -> None:
    pass


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
