"""load(): a collection back as one table, one row per data row (SPEC R6.2)."""

from __future__ import annotations

import json
import logging
import os
import posixpath
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Literal, overload

import orjson
import pandas as pd
import pyarrow as pa

from modeltap import runtime
from modeltap.errors import ModeltapError
from modeltap.read._parse import ENVELOPE, ENVELOPE_FIELDS, TIME_TYPE, Parser, Part
from modeltap.read._range import TimeLike, detect_depth, in_range, plan_prefixes, to_utc
from modeltap.read._source import NotFoundError, Source, resolve, suggest
from modeltap.storage.base import ObjectInfo

__all__ = ["load"]

log = logging.getLogger(__name__)

Engine = Literal["pandas", "arrow", "duckdb"]
ENGINES = ("pandas", "arrow", "duckdb")
SKIPPED = "modeltap_skipped"  # key of df.attrs / the Arrow schema metadata
PROGRESS_FILES = 20  # the automatic progress bar shows from this many files
_THREADS = min(8, (os.cpu_count() or 1) * 2)
# Envelope fields that `columns=` may ask for beside the user's columns.
_EXTRA = ENVELOPE_FIELDS - {"id", "time", "correlationid"}
_PAYLOAD_DROP = ("specversion", "source", "type")


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
        _duckdb_module()  # fail before reading, not after
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
            frame = _payload_frame(src, payload, resolve_blobs, skipped)
            if rows:  # a collection with both rows and payloads: one frame, in time order
                frame = pd.concat([_to_pandas(_concat(rows)), frame], ignore_index=True)
                frame = frame.sort_values("time", kind="stable", ignore_index=True)
            frame = _select_frame(frame, wanted, src)
            return _finish_frame(frame, engine, skipped, resolve_blobs)
        table = _select(rows, wanted, src)
    finally:
        src.storage.close()
    if table.num_rows == 0:
        where = f" between {t0 or 'the start'} and {t1 or 'now'}" if t0 or t1 else ""
        log.info("modeltap: no rows in %s%s (%d files read)", src.label, where, len(infos))
    return _finish_table(table, engine, skipped)


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
    table = _concat(rows) if rows else _empty(wanted)
    if wanted is not None:
        table = _with_columns(table, [*(c for c in wanted if c not in ENVELOPE), *ENVELOPE])
    return table


def _check_columns(wanted: list[str], known: list[str], src: Source, any_rows: bool) -> None:
    if not any_rows:
        return
    for name in wanted:
        if name not in known and name not in ENVELOPE:
            raise NotFoundError(
                f"no column {name!r} in {src.label}{suggest(name, known, 'columns')}"
            )


def _with_columns(table: Any, names: list[str]) -> Any:
    for name in names:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows))
    return table.select(names)


def _empty(wanted: list[str] | None) -> Any:
    fields = [pa.field(c, pa.null()) for c in wanted or () if c not in ENVELOPE]
    fields += [
        pa.field("correlationid", pa.string()),
        pa.field("time", TIME_TYPE),
        pa.field("record_id", pa.string()),
    ]
    return pa.schema(fields).empty_table()


def _concat(tables: list[Any]) -> Any:
    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    # A column whose type differs between files (a number here, a string there): its values
    # become JSON text everywhere, so nothing is lost.
    types: dict[str, list[Any]] = {}
    for t in tables:
        for f in t.schema:
            types.setdefault(f.name, []).append(f)
    clash = set()
    for name, fields in types.items():
        try:
            pa.unify_schemas([pa.schema([f]) for f in fields], promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            clash.add(name)
    fixed = []
    for t in tables:
        for name in clash & set(t.column_names):
            i = t.column_names.index(name)
            t = t.set_column(i, name, _as_text(t.column(i)))
        fixed.append(t)
    return pa.concat_tables(fixed, promote_options="permissive")


def _as_text(column: Any) -> Any:
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column
    values = column.to_pylist()
    return pa.array(
        [v if v is None or isinstance(v, str) else orjson.dumps(v).decode() for v in values],
        pa.string(),
    )


_NULLABLE = {
    **{t: pd.Int64Dtype() for t in (pa.int64(), pa.int32(), pa.int16(), pa.int8())},
    **{t: pd.UInt64Dtype() for t in (pa.uint64(), pa.uint32(), pa.uint16(), pa.uint8())},
    pa.bool_(): pd.BooleanDtype(),
}


def _to_pandas(table: Any) -> pd.DataFrame:
    """Arrow -> pandas; integer and boolean columns with nulls become nullable (Int64,
    boolean) rather than float64 / object."""
    frame: pd.DataFrame = table.to_pandas()
    for i, column in enumerate(table.columns):
        if column.null_count and column.type in _NULLABLE:
            frame.isetitem(i, column.to_pandas(types_mapper=_NULLABLE.get))
    return frame


def _finish_table(table: Any, engine: Engine, skipped: dict[str, Any]) -> Any:
    if engine == "pandas":
        frame = _to_pandas(table)
        frame.attrs[SKIPPED] = skipped
        return frame
    table = table.replace_schema_metadata({SKIPPED: json.dumps(skipped)})
    if engine == "arrow":
        return table
    return _duckdb(table)


def _duckdb_module() -> Any:
    try:
        import duckdb  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise ImportError("engine='duckdb' needs duckdb: pip install duckdb") from None
    return duckdb


def _duckdb(table: Any) -> Any:
    return _duckdb_module().from_arrow(table)


# -- payloads -----------------------------------------------------------------------------


def _payload_frame(
    src: Source,
    lines: list[tuple[str, dict[str, Any]]],
    resolve_blobs: bool,
    skipped: dict[str, Any],
) -> pd.DataFrame:
    """One row per line: the body in `data` (the parsed JSON value, text, or where the
    payload is stored), the payload fields, then correlationid, time, record_id."""
    records = []
    for _, line in lines:
        rec = {k: v for k, v in line.items() if k not in _PAYLOAD_DROP}
        rec["record_id"] = rec.pop("id", None)
        records.append(rec)
    if resolve_blobs:
        _fetch_blobs(src, lines, records, skipped)
    names = list(dict.fromkeys(k for rec in records for k in rec))
    first = ["data"]
    last = [*ENVELOPE]
    order = [*first, *(n for n in names if n not in first and n not in last), *last]
    columns: dict[str, Any] = {
        n: pd.Series([r.get(n) for r in records], dtype=object) for n in order
    }
    # The envelope columns get the same types as in a table of rows.
    columns["time"] = pa.array([r.get("time") for r in records], TIME_TYPE).to_pandas()
    for name in ("correlationid", "record_id"):
        values = [r.get(name) for r in records]
        columns[name] = pa.array(
            [v if v is None or isinstance(v, str) else str(v) for v in values], pa.string()
        ).to_pandas()
    return pd.DataFrame(columns)


def _fetch_blobs(
    src: Source,
    lines: list[tuple[str, dict[str, Any]]],
    records: list[dict[str, Any]],
    skipped: dict[str, Any],
) -> None:
    todo = [
        (i, f"{posixpath.dirname(path)}/{line.get('id')}")
        for i, (path, line) in enumerate(lines)
        if str(line.get("datainblob", "")).lower() == "true" and line.get("id")
    ]

    def get(path: str) -> bytes | None:
        try:
            return src.storage.get(path)
        except ModeltapError as exc:
            log.warning("modeltap: payload %s could not be read: %s", path, exc)
            return None

    with ThreadPoolExecutor(_THREADS) as pool:
        for (i, path), body in zip(todo, pool.map(get, [p for _, p in todo]), strict=True):
            records[i]["data"] = body
            if body is None:
                skipped["blobs"].append(path)


def _select_frame(frame: pd.DataFrame, wanted: list[str] | None, src: Source) -> pd.DataFrame:
    if wanted is None:
        return frame
    known = [str(c) for c in frame.columns]
    _check_columns(wanted, known, src, True)
    return frame[[*(c for c in wanted if c not in ENVELOPE), *ENVELOPE]]


def _finish_frame(
    frame: pd.DataFrame, engine: Engine, skipped: dict[str, Any], resolve_blobs: bool
) -> Any:
    if engine == "pandas":
        frame.attrs[SKIPPED] = skipped
        return frame
    out = frame.copy()
    if "data" in out.columns:
        # Arrow needs one type: the body's JSON text, or its bytes when blobs were fetched.
        def encode(value: Any) -> Any:
            if value is None or isinstance(value, bytes):
                return value
            text = value if isinstance(value, str) else orjson.dumps(value).decode()
            return text.encode() if resolve_blobs else text

        out["data"] = out["data"].map(encode)
    table = pa.Table.from_pandas(out, preserve_index=False)
    return _finish_table(table, engine, skipped)
