"""Rows read from a partition's objects -> an Arrow table in the Delta table's layout.

Columns: the user's, then correlationid, time (timestamp UTC), record_id, then
`row_index` (the row's position in its line's `data`, the platform's row key being
`{correlationid}_{row_index}`), and the partition columns `date` (and `hour` for hourly and
finer collections), taken from the row's time. A request/response collection has instead
`data` (the body as JSON text: an object, an array, or a quoted string for text bodies and
stored-payload locations) and the payload fields as text.

Types are settled here, before deltalake sees them, because deltalake casts a batch to the
table's schema without a word (a 1.5 written into a `long` column comes back as 1):

* a column the table does not have yet is added (all-null columns as strings);
* a value type that fits the table's column without loss is cast to it (null into
  anything; integers up to 2**53 into a double column; anything into a string column, as
  its JSON text, as `load` does when the types of a column clash between objects);
* any other change (a `long` column that now holds decimals, a string column that becomes
  a number, ...) is reported by `Incompatible`, naming the column and both types: those
  objects are left out of the table, and `load` keeps reading them from the JSON lines.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from modeltap.read.shared import ENVELOPE, TABLE_ONLY, TIME_TYPE

__all__ = ["Incompatible", "fit", "partition_columns", "payload_table", "rows_table"]

_EXACT_INT = 2**53


class Incompatible(Exception):
    """The batch has a column whose type the table's column cannot take without loss."""


def partition_columns(depth: int) -> list[str]:
    """date for daily and coarser collections; date and hour for hourly and finer ones."""
    return ["date", "hour"] if depth >= 4 else ["date"]


def rows_table(rows: pa.Table, depth: int, start: datetime) -> pa.Table:
    """A partition's rows (as read.shared.read_objects gives them) in the table's layout;
    `start` is the partition's start, the partition value of rows without a time."""
    names = [f"data.{n}" if n in TABLE_ONLY else n for n in rows.column_names]
    rows = rows.rename_columns(names)
    ids = rows.column("record_id").combine_chunks()
    rows = rows.append_column("row_index", pa.array(_positions(ids), pa.int32()))
    return _with_partitions(rows, depth, start)


def _positions(ids: Any) -> np.ndarray[Any, Any]:
    """Each row's position among the consecutive rows of its line (same record_id)."""
    n = len(ids)
    if n == 0:
        return np.zeros(0, dtype=np.int32)
    same = pc.equal(ids.slice(1), ids.slice(0, n - 1)).fill_null(False)
    starts = np.concatenate([[True], ~same.to_numpy(zero_copy_only=False)])
    index = np.arange(n)
    first = np.maximum.accumulate(np.where(starts, index, 0))
    return (index - first).astype(np.int32)


def payload_table(lines: list[dict[str, Any]], depth: int, start: datetime) -> pa.Table:
    """Payload lines (HTTP bodies, text, stored payloads): one row per line."""
    from modeltap.read.shared import py_time

    skip = {"specversion", "source", "type", "id", "time", "correlationid", "data"}
    fields = list(dict.fromkeys(k for line in lines for k in line if k not in skip))
    columns: dict[str, Any] = {
        "data": pa.array([_json(line.get("data")) for line in lines], pa.string())
    }
    for name in fields:
        columns[name] = pa.array([_text(line.get(name)) for line in lines], pa.string())
    columns["correlationid"] = pa.array([_text(x.get("correlationid")) for x in lines], pa.string())
    columns["time"] = pa.array([py_time(x.get("time")) for x in lines], TIME_TYPE)
    columns["record_id"] = pa.array([_text(x.get("id")) for x in lines], pa.string())
    columns["row_index"] = pa.array(np.zeros(len(lines), dtype=np.int32))
    return _with_partitions(pa.table(columns), depth, start)


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _with_partitions(table: pa.Table, depth: int, start: datetime) -> pa.Table:
    times = table.column("time")
    fallback = pa.scalar(start, TIME_TYPE)
    filled = pc.fill_null(times, fallback)
    table = table.append_column("date", pc.cast(filled, pa.date32()))
    if depth >= 4:
        table = table.append_column("hour", pc.cast(pc.hour(filled), pa.int32()))
    return table


# -- types --------------------------------------------------------------------------------


def storable(table: pa.Table) -> pa.Table:
    """Types a Delta table has: null columns become strings, unsigned integers int64 (or
    their text when too large), other odd types their JSON text."""
    for i, f in enumerate(table.schema):
        t = f.type
        if pa.types.is_null(t):
            table = table.set_column(i, f.name, pa.nulls(table.num_rows, pa.string()))
        elif pa.types.is_unsigned_integer(t):
            column = table.column(i)
            big = pc.max(column).as_py()
            fixed = column.cast(pa.int64()) if big is None or big < 2**63 else _as_text(column)
            table = table.set_column(i, f.name, fixed)
        elif pa.types.is_large_string(t) or pa.types.is_string_view(t):
            table = table.set_column(i, f.name, table.column(i).cast(pa.string()))
    return table


def fit(batch: pa.Table, schema: pa.Schema | None) -> pa.Table:
    """The batch with each column cast to the table's type where that loses nothing; raises
    Incompatible for a column that would need the table's column to change type."""
    batch = storable(batch)
    if schema is None:
        return batch
    for i, f in enumerate(batch.schema):
        j = schema.get_field_index(f.name)
        if j < 0:
            continue
        want = schema.field(j).type
        if f.type == want or _same(f.type, want):
            if f.type != want:
                batch = batch.set_column(i, f.name, batch.column(i).cast(want))
            continue
        column = batch.column(i)
        if column.null_count == len(column):
            batch = batch.set_column(i, f.name, pa.nulls(len(column), want))
        elif pa.types.is_string(want) and f.name not in ENVELOPE:
            batch = batch.set_column(i, f.name, _as_text(column))
        elif pa.types.is_floating(want) and pa.types.is_integer(f.type) and _exact(column):
            batch = batch.set_column(i, f.name, column.cast(want))
        else:
            raise Incompatible(
                f"column {f.name!r} holds {_kind(f.type)} values, but the table's column is "
                f"{_kind(want)}"
            )
    return batch


def _same(a: pa.DataType, b: pa.DataType) -> bool:
    """Types that differ only in how Arrow lays them out (string views, large lists)."""
    try:
        return bool(pa.types.is_nested(a) and pa.types.is_nested(b) and _loose(a) == _loose(b))
    except (TypeError, ValueError):
        return False


def _loose(t: pa.DataType) -> Any:
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_list(t) or pa.types.is_list(t) or pa.types.is_list_view(t):
        return ("list", _loose(t.value_type))
    if pa.types.is_struct(t):
        return tuple((f.name, _loose(f.type)) for f in t)
    return t


def _exact(column: Any) -> bool:
    low, high = pc.min_max(column).values()
    return all(v.as_py() is None or abs(v.as_py()) <= _EXACT_INT for v in (low, high))


def _kind(t: pa.DataType) -> str:
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t):
        return "decimal (double)"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    if pa.types.is_boolean(t):
        return "boolean"
    return str(t)


def _as_text(column: Any) -> Any:
    values = column.to_pylist()
    return pa.array(
        [v if v is None or isinstance(v, str) else orjson.dumps(v).decode() for v in values],
        pa.string(),
    )
