"""load() of a compacted collection: the Delta table for the objects it covers, the JSON
lines for the rest (objects not compacted yet, or that arrived after their partition was),
one result as if every row had been read from the JSON lines."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pyarrow as pa

from modeltap.errors import NotFoundError
from modeltap.read import _delta
from modeltap.read._delta import _RENAMED, TABLE_ONLY
from modeltap.read._objects import list_objects
from modeltap.read._parse import ENVELOPE, TIME_TYPE
from modeltap.read._payload import finish_frame
from modeltap.read._source import Source, suggest
from modeltap.read._tables import SKIPPED, Engine, concat, finish_table, with_columns
from modeltap.storage.base import ObjectInfo

__all__ = ["decode_payload", "file_schema", "load", "read_rows"]

log = logging.getLogger(__name__)


def load(
    src: Source,
    found: tuple[_delta.TableLocation, bool],
    t0: datetime | None,
    t1: datetime | None,
    engine: Engine,
    wanted: list[str] | None,
    resolve_blobs: bool,
    progress: bool | None,
    exact: bool,
    json_part: Callable[..., Any],
) -> Any:
    where, whole = found
    snap = _delta.open_snapshot(where, not whole, t0, t1)

    def json_only(infos: list[ObjectInfo] | None) -> Any:
        return json_part(src, infos, t0, t1, engine, wanted, resolve_blobs, progress, exact)

    if snap is None:  # registered, never committed
        return json_only(None)
    if snap.payload and resolve_blobs and not whole:
        return json_only(None)  # stored payloads are found from the objects' folders
    if whole:
        rest: list[ObjectInfo] = []
    else:
        base = f"{src.prefix}/" if src.prefix else ""
        infos = list_objects(src, t0, t1)
        rest = [i for i in infos if not snap.covers(i.path[len(base) :])]
        if len(rest) == len(infos) and not snap.covered:
            return json_only(infos)
    log.debug(
        "modeltap: %s: Delta table version %d, %d object(s) from JSON lines",
        src.label,
        snap.version,
        len(rest),
    )
    table = read_rows(snap, t0, t1, None)
    if snap.payload:
        return _payload(snap, table, rest, json_part, src, t0, t1, wanted, engine, progress)
    skipped: dict[str, Any] = {"lines": 0, "files": [], "partial_files": [], "blobs": []}
    parts = [table]
    if rest:
        more = json_part(src, rest, t0, t1, "arrow", None, False, progress, exact)
        skipped = _merge_skipped(skipped, more)
        if more.num_rows or more.num_columns > len(ENVELOPE):
            parts.append(more.replace_schema_metadata(None))
    rows = concat(parts) if len(parts) > 1 else parts[0]
    names = [c for c in rows.column_names if c not in ENVELOPE]
    if wanted is not None:
        _check(wanted, names, src, rows.num_rows > 0)
        names = [c for c in wanted if c not in ENVELOPE]
    rows = with_columns(rows, [*names, *ENVELOPE])
    return finish_table(rows, engine, skipped)


def _payload(
    snap: _delta.Snapshot,
    table: Any,
    rest: list[ObjectInfo],
    json_part: Callable[..., Any],
    src: Source,
    t0: datetime | None,
    t1: datetime | None,
    wanted: list[str] | None,
    engine: Engine,
    progress: bool | None,
) -> Any:
    frame = decode_payload(table)
    skipped: dict[str, Any] = {"lines": 0, "files": [], "partial_files": [], "blobs": []}
    if rest:
        more = json_part(src, rest, t0, t1, "pandas", None, False, progress, False)
        skipped = _merge_skipped(skipped, more)
        if len(more):
            frame = pd.concat([frame, more], ignore_index=True)
    frame = frame.sort_values("time", kind="stable", ignore_index=True)
    if wanted is not None:
        names = [str(c) for c in frame.columns if c not in ENVELOPE]
        _check(wanted, names, src, len(frame) > 0)
        frame = frame[[*(c for c in wanted if c not in ENVELOPE), *ENVELOPE]]
    return finish_frame(frame, engine, skipped, False)


def _merge_skipped(skipped: dict[str, Any], part: Any) -> dict[str, Any]:
    import json

    if isinstance(part, pd.DataFrame):
        found = part.attrs.get(SKIPPED) or {}
    else:
        meta = part.schema.metadata or {}
        raw = meta.get(SKIPPED.encode())
        found = json.loads(raw) if raw else {}
    for key, value in found.items():
        skipped[key] = skipped.get(key, 0 if key == "lines" else []) + value
    return skipped


def _check(wanted: list[str], known: list[str], src: Source, any_rows: bool) -> None:
    if not any_rows:
        return
    for name in wanted:
        if name not in known and name not in ENVELOPE:
            raise NotFoundError(
                f"no column {name!r} in {src.label}{suggest(name, known, 'columns')}"
            )


# -- rows ------------------------------------------------------------------------------------


def file_schema(snap: _delta.Snapshot) -> pa.Schema:
    """The columns the data files hold (the table's, less its partition columns)."""
    parts = set(snap.table.metadata().partition_columns)
    schema = snap.schema()
    return pa.schema([f for f in schema if f.name not in parts])


def read_rows(
    snap: _delta.Snapshot,
    start: datetime | None,
    end: datetime | None,
    columns: list[str] | None = None,
) -> pa.Table:
    """The table's rows in [start, end), with load's columns: the user's (or those asked
    for that the table has), then correlationid, time, record_id."""
    import pyarrow.dataset as ds

    # strings as large_string: what pandas keeps them as (no cast after the read)
    schema = pa.schema(
        [
            f.with_type(pa.large_string()) if pa.types.is_string(f.type) else f
            for f in file_schema(snap)
        ]
    )
    files = snap.files(start, end)
    if snap.where.storage.local_path("") is not None:  # a table in a local folder
        filesystem: Any = None
        paths = [str(Path(snap.where.uri, f)) for f in files]
    else:
        import pyarrow.fs as pa_fs
        from deltalake.fs import DeltaStorageHandler

        handler = DeltaStorageHandler(snap.where.uri, snap.where.storage_options)
        filesystem, paths = pa_fs.PyFileSystem(handler), list(files)
    user = [f.name for f in schema if f.name not in (*ENVELOPE, *TABLE_ONLY)]
    if columns is not None:
        stored = {_RENAMED.get(n, n): n for n in user}
        user = [stored[c] for c in columns if c in stored]
    names = [*user, *ENVELOPE]
    if not paths:
        return schema.empty_table().select(names).rename_columns(_shown(names))
    dataset = ds.dataset(paths, schema=schema, format="parquet", filesystem=filesystem)
    when = None
    if start is not None:
        when = ds.field("time") >= pa.scalar(start, TIME_TYPE)
    if end is not None:
        below = ds.field("time") < pa.scalar(end, TIME_TYPE)
        when = below if when is None else when & below
    # malloc, as _gather.py: mimalloc (the default pool) is slow to hand out fresh memory
    table = dataset.to_table(columns=names, filter=when, memory_pool=pa.system_memory_pool())
    return table.rename_columns(_shown(names))


def _shown(names: list[str]) -> list[str]:
    return [_RENAMED.get(n, n) for n in names]


def decode_payload(table: pa.Table) -> Any:
    """A payload table's rows as load gives them: `data` back from its JSON text, the
    payload fields as Python values (object columns), the envelope typed."""
    import pandas as pd

    columns: dict[str, Any] = {}
    for name in table.column_names:
        values = table.column(name)
        if name == "data":
            columns[name] = pd.Series(
                [None if v is None else orjson.loads(v) for v in values.to_pylist()], dtype=object
            )
        elif name in ENVELOPE:
            columns[name] = values.to_pandas()
        else:
            columns[name] = pd.Series(values.to_pylist(), dtype=object)
    return pd.DataFrame(columns)
