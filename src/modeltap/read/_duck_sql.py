"""The DuckDB query that reads row files: read_ndjson with the sampled columns declared,
lines filtered by time, `data` expanded into rows, integers checked value by value."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

from modeltap.read._duck_sample import EXACT_INT, Sample, Unsuitable
from modeltap.read._parse import ENVELOPE

__all__ = ["COLUMN_IN_ERROR", "PAYLOAD", "Plan", "plan_query"]

# Errors the query raises on purpose; their text comes back in DuckDB's exception.
PAYLOAD = "modeltap: payload line"
_DECIMALS = "modeltap: decimals in column #"
_BEYOND = "modeltap: integers beyond 2**53 in column #"
COLUMN_IN_ERROR = re.compile(r"modeltap: (decimals|integers beyond 2\*\*53) in column #(\d+)\.")
_ENVELOPE = frozenset(ENVELOPE)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_TYPES = {
    "int": "DOUBLE",
    "big": "BIGINT",
    "float": "DOUBLE",
    "bool": "BOOLEAN",
    "str": "VARCHAR",
    None: "JSON",
}


@dataclass
class Plan:
    """One query: its SQL and parameters, and what to do with its columns afterwards."""

    sql: str
    columns: dict[str, str]  # read_ndjson's columns=
    json: list[str]  # output columns read as JSON (all null in the sample)
    sampled: set[str]
    sizes: dict[str, int] = field(default_factory=dict)  # file path -> bytes
    sample: Sample | None = None

    def rows_in(self, paths: list[str]) -> int:
        """About how many rows these files hold, to size the numpy columns: reserved, not
        touched, so a generous guess costs no memory (a short one costs a realloc)."""
        if self.sample is None:
            return 0
        return self.sample.rows_in(sum(self.sizes.get(p, 0) for p in paths))


def plan_query(
    sample: Sample,
    extra: tuple[str, ...],
    wanted: list[str] | None,
    start: datetime | None,
    end: datetime | None,
    floats: Collection[int] = (),  # columns (by position) read as float whatever the sample
) -> Plan:
    """The query for the sampled columns (those asked for, with wanted), their kinds turned
    into DuckDB types; Unsuitable for columns DuckDB cannot tell apart."""
    kinds = dict(sample.kinds)
    if wanted is not None:  # only the data columns asked for (those not sampled as JSON)
        kinds = {c: kinds.get(c) for c in wanted if c not in _ENVELOPE and c not in extra}
    kinds = {k: "float" if i in floats else kind for i, (k, kind) in enumerate(kinds.items())}
    if not kinds:
        raise Unsuitable("no data column to read")
    if len({k.lower() for k in kinds}) != len(kinds) or "" in kinds:
        raise Unsuitable("column names that differ only in case")  # one DuckDB struct field
    reserved = {*_ENVELOPE, *extra}
    names = {k: f"data.{k}" if k in reserved else k for k in kinds}
    if len({*names.values(), *reserved}) < len(names) + len(reserved):
        raise Unsuitable("a column name given twice")  # e.g. "time" and "data.time"
    columns = {
        "id": "VARCHAR",
        "time": "VARCHAR",
        "correlationid": "VARCHAR",
        "method": "VARCHAR",
        **{name: "VARCHAR" for name in extra},
        "data": "STRUCT("
        + ", ".join(f"{_ident(k)} {_TYPES[kind]}" for k, kind in kinds.items())
        + ")[]",
    }
    select = [
        *(
            f"{_value(i, k, kind)} AS {_ident(names[k])}"
            for i, (k, kind) in enumerate(kinds.items())
        ),
        *map(_ident, extra),
        'correlationid, t AS "time", id AS record_id',
    ]
    where = [f"CASE WHEN method IS NULL THEN true ELSE error('{PAYLOAD}') END"]
    if start is not None:
        where.append("t >= $start")
    if end is not None:
        where.append("t < $end")
    lines = (
        'SELECT *, TRY_CAST("time" AS TIMESTAMPTZ) AS t FROM read_ndjson($files, '
        "columns = $columns, format = 'newline_delimited', maximum_object_size = $size)"
    )
    rows = (
        f"SELECT unnest(data) AS r, {', '.join(['correlationid', 't', 'id', *map(_ident, extra)])} "
        f"FROM ({lines}) WHERE {' AND '.join(where)}"
    )
    return Plan(
        f"SELECT {', '.join(select)} FROM ({rows})",
        columns,
        [names[k] for k, kind in kinds.items() if kind is None],
        {names[k] for k in kinds if k in sample.kinds},
    )


def _value(i: int, key: str, kind: str | None) -> str:
    """The SQL for one data column. Integers are read as doubles (so that a float among
    them is not rounded) and turned back into BIGINT here, value by value: a value with
    decimals, or beyond 2**53, stops the query with an error naming the column."""
    field = f"r.{_ident(key)}"
    if kind != "int":
        return field
    return (
        f"CASE WHEN {field} IS NULL THEN NULL "
        f"WHEN {field} <> trunc({field}) THEN error('{_DECIMALS}{i}.') "
        f"WHEN abs({field}) > {EXACT_INT} THEN error('{_BEYOND}{i}.') "
        f"ELSE CAST({field} AS BIGINT) END"
    )
