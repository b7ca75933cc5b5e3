"""Arrow tables of rows: concatenation across files, pandas conversion, engines."""

from __future__ import annotations

import json
from typing import Any, Literal

import orjson
import pandas as pd
import pyarrow as pa

from modeltap.read._parse import ENVELOPE, TIME_TYPE

__all__ = [
    "SKIPPED",
    "Engine",
    "concat",
    "duckdb_module",
    "empty",
    "finish_table",
    "to_pandas",
    "with_columns",
]

Engine = Literal["pandas", "arrow", "duckdb"]
SKIPPED = "modeltap_skipped"  # key of df.attrs / the Arrow schema metadata


def with_columns(table: Any, names: list[str]) -> Any:
    for name in names:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows))
    return table.select(names)


def empty(wanted: list[str] | None) -> Any:
    fields = [pa.field(c, pa.null()) for c in wanted or () if c not in ENVELOPE]
    fields += [
        pa.field("correlationid", pa.string()),
        pa.field("time", TIME_TYPE),
        pa.field("record_id", pa.string()),
    ]
    return pa.schema(fields).empty_table()


def concat(tables: list[Any]) -> Any:
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


def to_pandas(table: Any) -> pd.DataFrame:
    """Arrow -> pandas; integer and boolean columns with nulls become nullable (Int64,
    boolean) rather than float64 / object. Strings stay in Arrow memory (pandas' str)."""
    names = table.column_names
    nullable = {
        i: column.to_pandas(types_mapper=_NULLABLE.get).array
        for i, column in enumerate(table.columns)
        if column.null_count and column.type in _NULLABLE
    }
    for i in sorted(nullable, reverse=True):
        table = table.remove_column(i)
    frame: pd.DataFrame = table.to_pandas()
    for i in sorted(nullable):
        frame.insert(i, names[i], nullable[i], allow_duplicates=True)
    return frame


def finish_table(table: Any, engine: Engine, skipped: dict[str, Any]) -> Any:
    if engine == "pandas":
        frame = to_pandas(table)
        frame.attrs[SKIPPED] = skipped
        return frame
    table = table.replace_schema_metadata({SKIPPED: json.dumps(skipped)})
    if engine == "arrow":
        return table
    return _duckdb(table)


def duckdb_module() -> Any:
    try:
        import duckdb  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise ImportError("engine='duckdb' needs duckdb: pip install duckdb") from None
    return duckdb


def _duckdb(table: Any) -> Any:
    return duckdb_module().from_arrow(table)
