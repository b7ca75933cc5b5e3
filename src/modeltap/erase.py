"""Erasure by id (SPEC R13.2): the lines of a correlation id, or the rows holding one value
of an id column, taken out of a collection's objects.

Objects are written whole and never changed in place, so an affected line file is
rewritten create-new-then-delete: its copy without those lines is written whole under
the next replacement name (`a.jsonl` -> `a.erased-1.jsonl`, layout.replacement_name),
then the old object is deleted. A crash in between leaves the old object, or both, never
neither; while both exist readers read only the newest (layout.superseded), so no row is
read twice and no erased row is read at all. Running the erasure again finishes the job:
it first deletes objects that a copy supersedes. Payloads stored as their own objects
(binary or large bodies, `datainblob`) are deleted before the line that points at them.
A collection that has a compacted Delta table has the rows taken out of it too
(`erase_sources` calls erase_table.py).

What it cannot reach: records still waiting in a writer's memory or spool (run it again
after they land), and copies made outside modeltap.
"""

from __future__ import annotations

import logging
import os
import posixpath
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson

from modeltap.erase_table import TableChange, erase_table
from modeltap.errors import ConfigError
from modeltap.layout import replacement_name, superseded
from modeltap.read.shared import Source
from modeltap.record import no_line_breaks
from modeltap.redact import value_text
from modeltap.storage.base import Storage

__all__ = ["Change", "Report", "Target", "erase", "erase_sources"]

log = logging.getLogger(__name__)

_THREADS = 8
_READ_AHEAD = 32


@dataclass(frozen=True)
class Target:
    """What to erase: lines of these correlation ids; rows whose `column` holds one of
    `values` (compared as text: 42, 42.0 and "42" are one value)."""

    correlation_ids: frozenset[str] = frozenset()
    column: str | None = None
    values: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        # any iterable, or one str; values as the text they are compared as
        ids, values = self.correlation_ids, self.values
        ids = frozenset({ids} if isinstance(ids, str) else map(str, ids))
        texts = {value_text(v) for v in ([values] if isinstance(values, str) else values)}
        object.__setattr__(self, "correlation_ids", ids)
        object.__setattr__(self, "values", frozenset(t for t in texts if t is not None))
        if not self.correlation_ids and not (self.column and self.values):
            raise ConfigError(
                "give correlation ids, or an id column and its values", field="correlation_ids"
            )
        if bool(self.column) != bool(self.values):
            raise ConfigError(
                "an id column needs the values to erase, and values their column "
                f"(column={self.column!r}, {len(self.values)} value(s))",
                field="column",
            )

    def needles(self) -> list[bytes]:
        """Byte strings one of which a line must contain to be affected (a quick filter)."""
        found = [_inner(cid) for cid in self.correlation_ids]
        if self.column:
            found += [_inner(value) for value in self.values]
        return found

    def line_matches(self, line: dict[str, Any]) -> bool:
        return line.get("correlationid") in self.correlation_ids

    def row_matches(self, row: Any) -> bool:
        return (
            self.column is not None
            and isinstance(row, dict)
            and self.column in row
            and value_text(row[self.column]) in self.values
        )

    def holds(self, value: Any) -> bool:
        """Whether a JSON value holds the column with one of the values, at any depth."""
        if isinstance(value, dict):
            return self.row_matches(value) or any(self.holds(v) for v in value.values())
        if isinstance(value, list):
            return any(self.holds(v) for v in value)
        return False


@dataclass
class Change:
    """What erasure did (or, in a dry run, would do) to one line file."""

    path: str
    replacement: str | None  # None: nothing was left, the object is deleted
    lines: int = 0  # lines removed whole
    rows: int = 0  # rows removed from lines that stay
    payloads: list[str] = field(default_factory=list)  # payload objects deleted


@dataclass
class Report:
    label: str
    scanned: int = 0  # line files read
    changes: list[Change] = field(default_factory=list)
    cleaned: list[str] = field(default_factory=list)  # superseded objects of an earlier run
    table: TableChange | None = None  # the collection's compacted table, when it has one

    @property
    def lines(self) -> int:
        return sum(c.lines for c in self.changes)

    @property
    def rows(self) -> int:
        return sum(c.rows for c in self.changes)


def _inner(text: str) -> bytes:
    """text as it appears inside a JSON string of a line."""
    return no_line_breaks(orjson.dumps(text))[1:-1]


def erase(
    storage: Storage, prefix: str, target: Target, *, label: str = "", dry_run: bool = False
) -> Report:
    """Take the target's lines and rows out of every line file under prefix."""
    report = Report(label or storage.url(prefix))
    for change in _changes(storage, prefix, target, report, dry_run):
        report.changes.append(change)
    return report


def _changes(
    storage: Storage, prefix: str, target: Target, report: Report, dry_run: bool
) -> Iterator[Change]:
    listed = [info.path for info in storage.list(prefix)]
    files = [p for p in listed if p.endswith(".jsonl") and posixpath.basename(p)[:1] != "."]
    stale = superseded(files)
    if stale:  # an earlier erasure stopped between writing a copy and deleting the old one
        if not dry_run:
            storage.delete_many(sorted(stale))
        report.cleaned.extend(sorted(stale))
    present = set(listed)
    needles = target.needles()
    current = [path for path in files if path not in stale]
    # Objects are fetched a few at a time in parallel (an object store answers each get
    # in milliseconds); at most _READ_AHEAD of them are held at once.
    with ThreadPoolExecutor(_THREADS) as pool:
        for start in range(0, len(current), _READ_AHEAD):
            chunk = current[start : start + _READ_AHEAD]
            for path, data in zip(chunk, pool.map(storage.get, chunk), strict=True):
                report.scanned += 1
                if not any(needle in data for needle in needles):
                    continue
                kept, change = _rewrite(data, target, path, present)
                if change is None:
                    continue
                if not dry_run:
                    _commit(storage, path, kept, change)
                yield change


def _rewrite(
    data: bytes, target: Target, path: str, present: set[str]
) -> tuple[bytes, Change | None]:
    """The object's bytes without the target's lines and rows, and what changed."""
    folder = posixpath.dirname(path)
    needles = target.needles()
    out: list[bytes] = []
    change = Change(path, None)
    for raw in data.splitlines(keepends=True):
        if not any(needle in raw for needle in needles):
            out.append(raw)
            continue
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            # A line no reader can parse but that names the target: it goes too.
            log.warning("modeltap: erase: removing an unreadable line of %s", path)
            change.lines += 1
            continue
        new = _line_without(line, target, change)
        if new is None:
            change.lines += 1
            blob = f"{folder}/{line.get('id')}" if line.get("datainblob") == "true" else None
            if blob in present:
                change.payloads.append(blob)
        elif new is line:
            out.append(raw)
        else:
            out.append(no_line_breaks(orjson.dumps(new)) + b"\n")
    if not change.lines and not change.rows:
        return data, None
    kept = b"".join(out)
    if kept.strip():
        change.replacement = replacement_name(path)
    return kept, change


def _line_without(line: Any, target: Target, change: Change) -> Any:
    """The line (the same object when untouched), a new line with fewer rows, or None."""
    if not isinstance(line, dict) or target.line_matches(line):
        return None
    if target.column is None:
        return line
    data = line.get("data")
    if isinstance(data, list) and data and all(isinstance(row, dict) for row in data):
        rows = [row for row in data if not target.row_matches(row)]
        if len(rows) == len(data):
            return line
        if not rows:
            return None
        change.rows += len(data) - len(rows)
        n = len(no_line_breaks(orjson.dumps(rows)))
        return {**line, "data": rows, "contentrange": f"bytes 0-{n - 1}/{n}"}
    # Any other body (a logged request, say) that holds the value goes whole.
    return None if target.holds(data) else line


def _commit(storage: Storage, path: str, kept: bytes, change: Change) -> None:
    """Payloads first, then the copy, then the old object: every step can be repeated."""
    if change.payloads:
        storage.delete_many(change.payloads)
    if change.replacement is not None:
        storage.put(change.replacement, kept, overwrite=False)
    storage.delete(path)


def erase_sources(
    sources: Iterable[str],
    target: Target,
    *,
    workspace: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
) -> Iterator[Report]:
    """erase() on each source: an asset name, name:version, datastore URI or folder (the
    reader's sources); workspace None is the default workspace."""
    from modeltap.config import default_workspace
    from modeltap.read.shared import resolve

    root = workspace if workspace is not None else default_workspace()
    for text in sources:
        source = resolve(text, root)
        try:
            found = _table(source, root)
            if found is not None and found[1]:  # the source is the table itself
                report = Report(source.label)
            else:  # the JSON lines first: a compaction meanwhile takes the erased copies
                report = erase(
                    source.storage, source.prefix, target, label=source.label, dry_run=dry_run
                )
            if found is not None:
                report.table = erase_table(found[0], target, dry_run=dry_run)
            yield report
        finally:
            source.storage.close()


def _table(source: Source, workspace: str | os.PathLike[str]) -> Any:
    """(TableLocation, whole) of the collection's compacted table, or None (also when the
    deltalake package, needed only by compacted collections, is not installed)."""
    try:
        from modeltap.read.shared import deltalake_module, find_table

        deltalake_module()
    except ImportError:
        return None
    return find_table(source, workspace)
