"""Records laid out for people: data rows flattened to columns, payloads summarized, values
as short text. Plain strings out; the templates escape every one of them."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from modeltap.tail import Line

__all__ = [
    "Cell",
    "RecordView",
    "Row",
    "Table",
    "blob_path",
    "body_size",
    "flatten",
    "human_size",
    "payload_table",
    "pretty",
    "record_view",
    "rows_table",
    "text",
    "when",
]

ROWS_PER_RECORD = 3  # data rows of one record shown in a collection's table (all: its request view)
MAX_COLUMNS = 40
MAX_CELL = 120  # characters shown in a cell; the whole value (up to MAX_TITLE) on hover
MAX_TITLE = 2000
MAX_PRETTY = 200_000  # characters of one body shown in the request view
FLATTEN_DEPTH = 3
PAYLOAD_FIELDS = ("method", "path", "statuscode", "latencyms", "datacontenttype")


@dataclass
class Cell:
    text: str
    title: str = ""  # the whole value, when `text` is cut
    kind: str = "str"  # str, num, null, json: for alignment and colour


@dataclass
class Row:
    line: Line
    cells: list[Cell]
    first: bool = True  # the first row of its record
    more_rows: int = 0  # rows of this record not shown (on its last shown row)
    blob: str | None = None  # where the payload is, when it is stored as its own object


@dataclass
class Table:
    kind: str  # "rows": collected frames; "payload": bodies and their fields
    columns: list[str] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    hidden_columns: int = 0


def text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value)
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return repr(value)


def cell(value: Any) -> Cell:
    full = text(value)
    kind = (
        "null"
        if value is None
        else "num"
        if isinstance(value, int | float) and not isinstance(value, bool)
        else "json"
        if isinstance(value, dict | list)
        else "str"
    )
    if len(full) <= MAX_CELL:
        return Cell(full, "", kind)
    return Cell(full[: MAX_CELL - 1] + "\N{HORIZONTAL ELLIPSIS}", full[:MAX_TITLE], kind)


def flatten(value: Any, prefix: str = "", depth: int = 0) -> dict[str, Any]:
    """A row object as columns: nested objects become dotted names (a few levels deep)."""
    if not isinstance(value, dict):
        return {prefix or "value": value}
    if depth >= FLATTEN_DEPTH and prefix:
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, inner in value.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(inner, dict) and inner:
            out.update(flatten(inner, name, depth + 1))
        else:
            out[name] = inner
    return out


def rows_table(lines: list[Line]) -> Table:
    """One table row per data row (the first ROWS_PER_RECORD of each record)."""
    flat: list[tuple[Line, list[dict[str, Any]], int]] = []
    columns: dict[str, None] = {}
    for line in lines:
        data = line.data if isinstance(line.data, list) else []
        shown = [flatten(row) for row in data[:ROWS_PER_RECORD]]
        for row in shown:
            columns.update(dict.fromkeys(row))
        flat.append((line, shown, len(data) - len(shown)))
    names = list(columns)
    table = Table("rows", names[:MAX_COLUMNS], hidden_columns=max(0, len(names) - MAX_COLUMNS))
    for line, shown, more in flat:
        if not shown:
            table.rows.append(Row(line, []))  # shown as "no rows"
            continue
        for i, row in enumerate(shown):
            cells = [
                cell(row.get(name)) if name in row else Cell("", "", "null")
                for name in table.columns
            ]
            last = i == len(shown) - 1
            table.rows.append(Row(line, cells, first=i == 0, more_rows=more if last else 0))
    return table


def payload_table(lines: list[Line]) -> Table:
    """One row per record: the payload fields present, the body's size and its start."""
    present = [f for f in PAYLOAD_FIELDS if any(f in line.record for line in lines)]
    table = Table("payload", [*present, "size", "body"])
    for line in lines:
        record = line.record
        blob = blob_path(line)
        size = body_size(record)
        cells = [cell(record.get(f)) for f in present]
        cells.append(Cell(human_size(size) if size is not None else "", "", "num"))
        cells.append(Cell("stored as its own object", "", "null") if blob else cell(line.data))
        table.rows.append(Row(line, cells, blob=blob))
    return table


def blob_path(line: Line) -> str | None:
    """Where a payload stored as its own object is: beside its line, named by the record id
    (R4.3, R4.4); None for a payload in its line."""
    record = line.record
    if str(record.get("datainblob", "")).lower() != "true" or not record.get("id"):
        return None
    return posixpath.join(posixpath.dirname(line.path), str(record["id"]))


@dataclass
class RecordView:
    """One record whole, for the request view."""

    line: Line
    fields: list[tuple[str, str]]  # the envelope and payload fields, as text
    table: Table | None  # data rows, for collected frames
    body: str | None  # the body, for payloads in their line
    blob: str | None  # where the payload is, when stored as its own object
    size: int | None  # the payload's size in bytes
    status: int | None
    latency_ms: float | None


ENVELOPE_SHOWN = ("time", "id", "type", "datacontenttype", "modelversion", "collectdatatype",
                  "agent", "xrequestid", "contentrange", "method", "path", "error")  # fmt: skip


def record_view(line: Line) -> RecordView:
    record = line.record
    shown = [k for k in ENVELOPE_SHOWN if k in record]
    shown += [k for k in record if k not in ENVELOPE_SHOWN and k not in _NOT_FIELDS]
    fields = [(k, text(record[k])) for k in shown]
    data = line.data
    rows = isinstance(data, list) and all(isinstance(r, dict) for r in data) and data
    blob = blob_path(line)
    status = record.get("statuscode")
    latency = record.get("latencyms")
    return RecordView(
        line,
        fields,
        _all_rows(line) if rows and not blob else None,
        None if rows or blob else pretty(data),
        blob,
        body_size(record),
        status if isinstance(status, int) else None,
        float(latency) if isinstance(latency, int | float) else None,
    )


_NOT_FIELDS = {"data", "specversion", "source", "correlationid", "datainblob", "statuscode",
               "latencyms"}  # fmt: skip
MAX_RECORD_ROWS = 1000


def _all_rows(line: Line) -> Table:
    data = line.data[:MAX_RECORD_ROWS]
    flat = [flatten(row) for row in data]
    names = list(dict.fromkeys(name for row in flat for name in row))
    table = Table("rows", names)
    for row in flat:
        table.rows.append(
            Row(line, [cell(row.get(n)) if n in row else Cell("", "", "null") for n in names])
        )
    table.hidden_columns = 0
    if len(line.data) > MAX_RECORD_ROWS:
        table.rows[-1].more_rows = len(line.data) - MAX_RECORD_ROWS
    return table


_RANGE = re.compile(r"^bytes (?:\d+-\d+|\*)/(\d+)$")


def body_size(record: dict[str, Any]) -> int | None:
    """The body's size in bytes, from its `contentrange` ("bytes 0-N/SIZE")."""
    found = _RANGE.match(str(record.get("contentrange", "")))
    return int(found.group(1)) if found else None


def pretty(value: Any) -> str:
    """A body for reading: indented JSON (a string as it is), cut at MAX_PRETTY characters."""
    if isinstance(value, str):
        out = value
    else:
        try:
            out = orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
        except TypeError:
            out = repr(value)
    if len(out) > MAX_PRETTY:
        return (
            out[:MAX_PRETTY]
            + f"\n\N{HORIZONTAL ELLIPSIS} ({len(out) - MAX_PRETTY:,} more characters)"
        )
    return out


def human_size(n: int) -> str:
    """Bytes for people: 950 B, 1.2 kB, 3.4 MB (powers of 1000)."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000:
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def when(t: datetime | None) -> str:
    """UTC time as the lines carry it: 2026-11-25T10:00:00Z."""
    if t is None:
        return ""
    t = t.astimezone(UTC)
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if t.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    return t.strftime(fmt)
