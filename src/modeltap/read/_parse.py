"""One object of JSON lines -> an Arrow table with one row per data row.

The fast path hands the whole object to `pyarrow.json` (C++, multithreaded) and
expands the `data` lists with Arrow compute kernels: no Python object per row. When
that fails (a corrupt or cut line, values whose type changes between lines, numbers
too big for a double) the object is read line by line with orjson: bad lines are
skipped and counted, the rest is kept.

Lines whose `data` is not a list of row objects (HTTP payloads: a JSON body, text, or
the location of a payload stored as its own object) are returned as `payload` lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from modeltap.record import LINE_FIELDS

try:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("reading collected data needs pyarrow: pip install pyarrow") from exc

__all__ = ["ENVELOPE", "TIME_TYPE", "Parser", "Part", "times_of"]

ENVELOPE = ("correlationid", "time", "record_id")
TIME_TYPE = pa.timestamp("us", tz="UTC")

# Envelope fields (SPEC R4.2) are strings: read them as such, so that an id that looks
# like a date is not turned into a timestamp.
_STRING_FIELDS = tuple(f for f in LINE_FIELDS if f != "data")
ENVELOPE_FIELDS = frozenset(_STRING_FIELDS)
_LINE_SCHEMA = pa.schema([(name, pa.string()) for name in _STRING_FIELDS])
_BLOCK = 1 << 20
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)


@dataclass
class Part:
    """What one object gave."""

    path: str
    rows: pa.Table | None = None  # user columns, extra envelope columns, then ENVELOPE
    payload: list[dict[str, Any]] = field(default_factory=list)  # lines that are not rows
    bad_lines: int = 0
    error: str | None = None  # why the whole object was skipped


class Parser:
    """Parses objects of one read: the time range and the envelope columns to keep."""

    def __init__(
        self,
        start: datetime | None,
        end: datetime | None,
        extra: tuple[str, ...] = (),
        *,
        threads: bool = True,
    ):
        self.start = start
        self.end = end
        self.extra = extra  # envelope fields asked for as columns (e.g. modelversion)
        # pyarrow's own threads for one object; off when objects are parsed side by side.
        self.threads = threads
        self._hint: Any = None  # `data` type learned from an earlier object with date strings

    def parse(self, path: str, data: bytes) -> Part:
        if not data or data.isspace():
            return Part(path)
        try:
            lines = self._arrow(data)
        except _ARROW_ERRORS:
            return self._python(path, data)
        if "method" in lines.column_names or not _is_rows(lines):
            return self._python(path, data)  # HTTP payloads, or data that is not rows
        return Part(path, rows=self._expand(self._in_range(lines)))

    # -- fast path ------------------------------------------------------------------------

    def _arrow(self, data: bytes) -> pa.Table:
        hint = self._hint
        try:
            table = _read(data, hint, self.threads)
        except _ARROW_ERRORS:
            if hint is None:
                raise
            table = _read(data, None, self.threads)  # the hint no longer fits: infer again
        if "data" in table.column_names:
            found = table.schema.field("data").type
            fixed = _no_timestamps(found)
            if fixed != found:
                # pyarrow turns ISO-looking strings into timestamps; keep them as the text
                # that was written (values come back as they were collected).
                table = _read(data, fixed, self.threads)
                self._hint = fixed
        return table

    def _in_range(self, lines: pa.Table) -> pa.Table:
        lines = lines.set_column(
            lines.column_names.index("time"), "time", times_of(lines.column("time"))
        )
        if self.start is None and self.end is None:
            return lines
        return lines.filter(_mask(lines.column("time"), self.start, self.end))

    def _expand(self, lines: pa.Table) -> pa.Table:
        data = lines.column("data").combine_chunks()
        parents = pc.list_parent_indices(data)
        flat = pc.list_flatten(data)
        names: list[str] = []
        columns: list[Any] = []
        if pa.types.is_struct(flat.type):
            names = [f.name for f in flat.type]
            columns = flat.flatten()
        envelope = lines.select(["correlationid", "time", "id", *self.extra]).take(parents)
        return _assemble(names, columns, envelope, self.extra)

    # -- line by line -------------------------------------------------------------------

    def _python(self, path: str, data: bytes) -> Part:
        good: list[dict[str, Any]] = []
        raws: list[bytes] = []
        bad = 0
        for raw in data.split(b"\n"):
            raw = raw.strip()
            if not raw:
                continue
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                bad += 1
                continue
            if not isinstance(obj, dict):
                bad += 1
                continue
            good.append(obj)
            raws.append(raw)
        if not good:
            return Part(path, error=f"no JSON object line in {bad} line(s)")
        rows = [o for o in good if _row_data(o)]
        if bad and len(rows) == len(good):
            try:  # only some lines were bad: the fast path can take the rest
                lines = self._arrow(b"\n".join(raws))
                if _is_rows(lines):
                    return Part(path, rows=self._expand(self._in_range(lines)), bad_lines=bad)
            except _ARROW_ERRORS:
                pass
        payload = []
        for o in good:
            if not _row_data(o):
                o["time"] = py_time(o.get("time"))
                if _py_in_range(o["time"], self.start, self.end):
                    payload.append(o)
        table = self._rows_from_python(rows) if rows else None
        return Part(path, rows=table, payload=payload, bad_lines=bad)

    def _rows_from_python(self, lines: list[dict[str, Any]]) -> pa.Table:
        rows: list[dict[str, Any]] = []
        parents: list[int] = []
        for i, line in enumerate(lines):
            for row in line["data"]:
                rows.append(row if isinstance(row, dict) else {})
                parents.append(i)
        names = list(dict.fromkeys(k for row in rows for k in row))
        columns = [_array([row.get(name) for row in rows]) for name in names]
        envelope = pa.table(
            {
                "correlationid": _text_array([lines[p].get("correlationid") for p in parents]),
                "time": times_of(_text_array([lines[p].get("time") for p in parents])),
                "id": _text_array([lines[p].get("id") for p in parents]),
                **{f: _text_array([lines[p].get(f) for p in parents]) for f in self.extra},
            }
        )
        table = _assemble(names, columns, envelope, self.extra)
        if self.start is None and self.end is None:
            return table
        return table.filter(_mask(table.column("time"), self.start, self.end))


def _read(data: bytes, data_type: Any, threads: bool) -> pa.Table:
    schema = _LINE_SCHEMA if data_type is None else _LINE_SCHEMA.append(pa.field("data", data_type))
    parse = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")
    options = pj.ReadOptions(use_threads=threads, block_size=_BLOCK)
    try:
        return pj.read_json(pa.BufferReader(data), read_options=options, parse_options=parse)
    except pa.ArrowInvalid as exc:
        if "straddl" not in str(exc) or len(data) < _BLOCK:
            raise
        # A line longer than a block (a large frame in one collect): one block for all.
        options = pj.ReadOptions(use_threads=threads, block_size=len(data) + 1)
        return pj.read_json(pa.BufferReader(data), read_options=options, parse_options=parse)


def _no_timestamps(t: Any) -> Any:
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return pa.string()
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_no_timestamps(f.type)) for f in t])
    if pa.types.is_list(t):
        return pa.list_(t.value_field.with_type(_no_timestamps(t.value_type)))
    return t


def _is_rows(lines: pa.Table) -> bool:
    if "data" not in lines.column_names:
        return False
    t = lines.schema.field("data").type
    return bool(
        pa.types.is_list(t) and (pa.types.is_struct(t.value_type) or pa.types.is_null(t.value_type))
    )


def _row_data(line: dict[str, Any]) -> bool:
    data = line.get("data")
    return (
        "method" not in line
        and isinstance(data, list)
        and all(isinstance(r, dict) or r is None for r in data)
    )


def _assemble(
    names: list[str], columns: list[Any], envelope: pa.Table, extra: tuple[str, ...]
) -> pa.Table:
    reserved = {*ENVELOPE, *extra}
    # A user column named like an envelope column keeps its value as `data.<name>`.
    names = [f"data.{n}" if n in reserved else n for n in names]
    env_names = ["correlationid", "time", "record_id"]
    extra_cols = [envelope.column(f) for f in extra]
    return pa.Table.from_arrays(
        [*columns, *extra_cols, *(envelope.column(i) for i in range(3))],
        names=[*names, *extra, *env_names],
    )


def times_of(column: Any) -> Any:
    """Line times (YYYY-MM-DDTHH:MM:SSZ) as UTC timestamps; unreadable ones become null."""
    if column.type == TIME_TYPE:
        return column
    try:
        return pc.cast(column, TIME_TYPE)
    except _ARROW_ERRORS:
        values = column.to_pylist()
        return pa.array([py_time(v) for v in values], TIME_TYPE)


def py_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _py_in_range(t: datetime | None, start: datetime | None, end: datetime | None) -> bool:
    if start is None and end is None:
        return True
    return t is not None and (start is None or t >= start) and (end is None or t < end)


def _mask(times: Any, start: datetime | None, end: datetime | None) -> Any:
    mask = None
    if start is not None:
        mask = pc.greater_equal(times, pa.scalar(start, TIME_TYPE))
    if end is not None:
        below = pc.less(times, pa.scalar(end, TIME_TYPE))
        mask = below if mask is None else pc.and_(mask, below)
    return mask


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _text_array(values: list[Any]) -> pa.Array:
    return pa.array([_text(v) for v in values], pa.string())


def _array(values: list[Any]) -> pa.Array:
    """A column from JSON values; values whose types do not mix become their JSON text."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return _text_array(values)
