"""Erasure in a compacted collection's Delta table (SPEC R13.2, with R12.1).

The table's rows that `erase.Target` names are found with a scan (pyarrow), then deleted
with deltalake's `delete` by their line id and row position only: the predicate is kept in
the table's log, so it names random record ids, never the erased values. The data files
that commit removed are then deleted from the datastore (a Delta delete alone leaves them
for time travel until a VACUUM), so the old rows are gone, not just hidden.

A crash between the commit and the file deletion leaves files no version after it refers
to; running the erasure again finds no rows and does not touch them. Run `erase` after a
compaction that ran at the same time as it (the compaction may have read an object before
the erasure rewrote it).
"""

from __future__ import annotations

import logging
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from modeltap.errors import ModeltapError

if TYPE_CHECKING:
    from modeltap.erase import Target
    from modeltap.read.shared import Snapshot, TableLocation

__all__ = ["TableChange", "delete_before", "erase_table"]

log = logging.getLogger(__name__)

_BATCH = 500  # lines named per delete commit (the predicate grows with them)


@dataclass
class TableChange:
    """What an erasure did (or, in a dry run, would do) to a Delta table."""

    table: str
    rows: int = 0  # rows deleted
    version: int | None = None  # the table's version afterwards
    files: list[str] = field(default_factory=list)  # data files deleted from the datastore
    problems: list[str] = field(default_factory=list)


def erase_table(where: TableLocation, target: Target, *, dry_run: bool = False) -> TableChange:
    """Delete the target's rows from the table at `where` (and the files that held them)."""
    from modeltap.read.shared import open_snapshot

    change = TableChange(where.label)
    snap = open_snapshot(where, prefix_covered=False)
    if snap is None:
        return change
    change.version = snap.version
    lines = _matches(snap, target, change)
    if dry_run or not lines:
        change.rows = _count(snap, lines)
        return change
    items = sorted(lines.items())
    for start in range(0, len(items), _BATCH):
        predicate = " OR ".join(_where(rid, rows) for rid, rows in items[start : start + _BATCH])
        try:
            metrics = snap.table.delete(predicate)
        except Exception as exc:  # deltalake's errors: one line, the table named
            raise ModeltapError(f"{where.label}: Delta delete failed: {exc}") from None
        change.rows += int(metrics.get("num_deleted_rows", 0))
        change.version = int(snap.table.version())
        change.files += _drop_removed(where, change.version)
    return change


def _count(snap: Snapshot, lines: dict[str, list[int]]) -> int:
    """The rows a delete of these lines and positions would take (for a dry run)."""
    import pyarrow.compute as pc

    whole = sorted(rid for rid, rows in lines.items() if not rows)
    counted = sum(len(set(rows)) for rows in lines.values())
    if whole:
        dataset = snap.table.to_pyarrow_dataset()
        counted += dataset.count_rows(filter=pc.field("record_id").isin(whole))
    return counted


def _matches(snap: Snapshot, target: Target, change: TableChange) -> dict[str, list[int]]:
    """record_id -> the row positions to delete ([] for the whole line; payload tables
    have one row per line)."""
    import pyarrow.compute as pc

    dataset = snap.table.to_pyarrow_dataset()
    names = set(dataset.schema.names)
    whole = "row_index" not in names
    found: dict[str, list[int]] = {}
    if target.correlation_ids:
        hits = dataset.to_table(
            columns=["record_id"],
            filter=pc.field("correlationid").isin(sorted(target.correlation_ids)),
        )
        for rid in hits.column("record_id").to_pylist():
            found[rid] = []
    if target.column is None:
        return found
    if snap.payload:  # the body as JSON text: a body holding the value goes whole
        rows = dataset.to_table(columns=["record_id", "data"])
        for rid, text in zip(
            rows.column("record_id").to_pylist(), rows.column("data").to_pylist(), strict=True
        ):
            if text is not None and target.holds(orjson.loads(text)):
                found[rid] = []
        return found
    from modeltap.read.shared import TABLE_ONLY

    column = f"data.{target.column}" if target.column in TABLE_ONLY else target.column
    if column not in names:
        return found
    values = _typed(dataset.schema.field(column).type, target.values)
    if values is None:
        change.problems.append(
            f"column {target.column!r} is {dataset.schema.field(column).type} in the table: "
            "rows not matched by value there"
        )
        return found
    hits = dataset.to_table(
        columns=["record_id"] + ([] if whole else ["row_index"]),
        filter=pc.field(column).isin(values),
    )
    ids = hits.column("record_id").to_pylist()
    positions = [None] * len(ids) if whole else hits.column("row_index").to_pylist()
    for rid, position in zip(ids, positions, strict=True):
        if position is None:  # a table without row positions: the line goes
            found[rid] = []
        elif found.get(rid) != []:  # [] : the whole line goes already
            found.setdefault(rid, []).append(int(position))
    return found


def _typed(kind: Any, texts: frozenset[str]) -> list[Any] | None:
    """The values as the column's type holds them (texts that cannot be one are left out),
    or None for a type that is not compared by value."""
    import pyarrow as pa

    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return sorted(texts)
    out: list[Any] = []
    for text in texts:
        try:
            number = float(text)
        except ValueError:
            continue
        if pa.types.is_integer(kind) and number.is_integer():
            out.append(int(number))
        elif pa.types.is_floating(kind):
            out.append(number)
    if pa.types.is_boolean(kind):
        return [text == "true" for text in texts if text in ("true", "false")]
    return out if pa.types.is_integer(kind) or pa.types.is_floating(kind) else None


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _where(record_id: str, rows: list[int]) -> str:
    if not rows:
        return f"record_id = {_quote(record_id)}"
    positions = ", ".join(str(p) for p in sorted(set(rows)))
    return f"(record_id = {_quote(record_id)} AND row_index IN ({positions}))"


def delete_before(
    where: TableLocation, boundary: datetime, *, dry_run: bool = False
) -> TableChange:
    """Retention in a compacted table: delete the rows of the table's partitions (date, and
    hour when it has one) that end at or before `boundary`, and the files that held them."""
    from modeltap.read.shared import open_snapshot

    change = TableChange(where.label)
    snap = open_snapshot(where, prefix_covered=False)
    if snap is None:
        return change
    change.version = snap.version
    hourly = "hour" in snap.table.metadata().partition_columns
    day = boundary.strftime("%Y-%m-%d")
    predicate = f"date < '{day}'"
    if hourly and boundary.hour:
        predicate = f"({predicate} OR (date = '{day}' AND hour < {boundary.hour}))"
    if dry_run:
        import pyarrow.compute as pc

        when = pc.field("date") < pa_date(boundary)
        if hourly and boundary.hour:
            same = (pc.field("date") == pa_date(boundary)) & (pc.field("hour") < boundary.hour)
            when = when | same
        change.rows = snap.table.to_pyarrow_dataset().count_rows(filter=when)
        return change
    try:
        metrics = snap.table.delete(predicate)
    except Exception as exc:
        raise ModeltapError(f"{where.label}: Delta delete failed: {exc}") from None
    change.rows = int(metrics.get("num_deleted_rows", 0))
    if change.rows or metrics.get("num_removed_files"):
        change.version = int(snap.table.version())
        change.files = _drop_removed(where, change.version)
    return change


def pa_date(moment: datetime) -> Any:
    import pyarrow as pa

    return pa.scalar(moment.date(), pa.date32())


def _drop_removed(where: TableLocation, version: int) -> list[str]:
    """Delete the data files the commit of `version` removed; their paths."""
    log_path = "/".join(p for p in (where.path, "_delta_log", f"{version:020d}.json") if p)
    removed = []
    for line in where.storage.get(log_path).splitlines():
        action = orjson.loads(line) if line.strip() else {}
        if "remove" in action:
            removed.append(urllib.parse.unquote(action["remove"]["path"]))
    paths = ["/".join(p for p in (where.path, name) if p) for name in removed]
    where.storage.delete_many(paths)
    return paths
