"""One compaction run: closed partitions -> commits to the Delta table, exactly once.

Invariant: an object's rows are in the table if and only if a committed manifest names
the object. Each commit is made so:

1. load the table at its latest version V and the objects its committed manifests name;
2. list the collection (its partitions from `lookback` before the newest one compacted:
   how late an object may land and still be found); the objects of closed partitions that
   no committed manifest names are to do, a batch of partitions at a time (about
   `batch_bytes` of JSON lines);
3. read the batch's objects, write a manifest per partition under a new run id, then
   append the rows in one Delta commit that also carries the application transaction
   `modeltap-compact-<run id>` and may land only as version V+1 (no retry on conflict);
4. when another writer got there first, the commit fails: nothing of it is in the table,
   its manifests name a run that never committed; start again from 1.

A run killed at any point leaves the table at a committed version; what it wrote after
that (data files, manifests) is referred to by nothing and ignored. Two runs at once both
make progress: whichever commits first wins each version, the other re-plans.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa

from modeltap.compact import _batch
from modeltap.errors import ModeltapError
from modeltap.layout import original_name
from modeltap.read.shared import (
    APP_PREFIX,
    Snapshot,
    Source,
    TableLocation,
    concat,
    covered_objects,
    deltalake_module,
    in_range,
    list_objects,
    newest_partition,
    open_snapshot,
    partition_of,
    partition_span,
    read_objects,
)
from modeltap.storage.base import ObjectInfo

__all__ = ["Report", "run"]

log = logging.getLogger(__name__)

MAX_CONFLICTS = 50  # re-plans after losing a commit to another writer, per run
BATCH_BYTES = 256 << 20  # JSON lines read per commit (about)
LOOKBACK = timedelta(days=7)  # how late an object may land and still be found


@dataclass
class Report:
    """What one run did."""

    table: str
    version: int | None = None  # the table's version at the end
    commits: int = 0
    objects: int = 0  # compacted by this run
    rows: int = 0
    partitions: int = 0
    conflicts: int = 0  # commits lost to another writer (re-planned)
    waiting: int = 0  # objects of partitions not closed yet
    problems: list[str] = field(default_factory=list)  # objects left out, and why
    stopped: bool = False  # asked to stop before the end

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Job:
    src: Source  # the collection
    where: TableLocation  # the table
    grace: timedelta = timedelta(minutes=10)
    batch_bytes: int = BATCH_BYTES
    # Partitions listed: from this long before the newest compacted one (None: all of them).
    lookback: timedelta | None = LOOKBACK


def run(
    job: Job,
    until: datetime | None = None,
    now: datetime | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> Report:
    """Compact every closed partition (ending at or before `until`, when given)."""
    deltalake = deltalake_module()
    report = Report(job.where.label)
    now = now or datetime.now(UTC)
    horizon = now - job.grace if until is None else min(now - job.grace, until)
    while True:
        snap = open_snapshot(job.where, prefix_covered=False)
        since = _since(job, snap)
        if snap is not None:
            snap.covered = covered_objects(job.where, snap.table, since, None)
        report.version = snap.version if snap else None
        batches = _plan(job, snap, since, horizon, report)
        if not batches:
            return report
        try:
            for batch in batches:
                if stop():
                    report.stopped = True
                    return report
                snap = _commit(job, snap, batch, report, deltalake)
                report.version = snap.version if snap else report.version
            return report
        except deltalake.exceptions.CommitFailedError as exc:
            _lost(report, exc)
        except deltalake.exceptions.DeltaError as exc:
            if "already exists" not in str(exc).lower():
                raise ModeltapError(f"{job.where.label}: Delta commit failed: {exc}") from None
            _lost(report, exc)  # another run created the table first


def _lost(report: Report, exc: Exception) -> None:
    report.conflicts += 1
    log.info("modeltap: compact: another writer committed first, re-planning (%s)", exc)
    if report.conflicts > MAX_CONFLICTS:
        raise ModeltapError(
            f"{report.table}: gave up after losing {MAX_CONFLICTS} commits to other writers"
        ) from None


Partition = tuple[str, datetime, list[ObjectInfo]]  # folder, its start, objects to do


def _since(job: Job, snap: Snapshot | None) -> datetime | None:
    """Where the listing starts: `lookback` before the newest partition compacted."""
    if snap is None or job.lookback is None:
        return None
    newest = newest_partition(job.where, snap.table)
    span = partition_span(newest) if newest else None
    return span[0] - job.lookback if span else None


def _plan(
    job: Job,
    snap: Snapshot | None,
    since: datetime | None,
    horizon: datetime,
    report: Report,
) -> list[list[Partition]]:
    src = job.src
    base = f"{src.prefix}/" if src.prefix else ""
    covered = snap.covered if snap else set()
    todo: dict[str, Partition] = {}
    waiting = 0
    listed = (
        list_objects(src, since, None)
        if since is not None
        else in_range(src.storage.list(src.prefix), src.prefix, None, None)
    )
    for info in listed:
        folder, span = partition_of(info.path, src.prefix)
        if span is None:
            continue  # not in a partition folder: not modeltap's layout
        if span[1] > horizon:
            waiting += 1
            continue
        if original_name(info.path[len(base) :]) in covered:  # an erasure's copy too
            continue
        todo.setdefault(folder, (folder, span[0], []))[2].append(info)
    report.waiting = waiting
    batches: list[list[Partition]] = []
    current: list[Partition] = []
    size = 0
    for folder in sorted(todo):
        part = todo[folder]
        part_bytes = sum(i.size for i in part[2])
        if current and size + part_bytes > job.batch_bytes:
            batches.append(current)
            current, size = [], 0
        current.append(part)
        size += part_bytes
    if current:
        batches.append(current)
    return batches


def _commit(
    job: Job,
    snap: Snapshot | None,
    batch: list[Partition],
    report: Report,
    deltalake: Any,
) -> Snapshot | None:
    src, where = job.src, job.where
    base = f"{src.prefix}/" if src.prefix else ""
    committed = snap.schema() if snap is not None else None
    payload = snap.payload if snap is not None else False
    depth = _depth(batch)
    tables: list[pa.Table] = []
    manifests: dict[str, list[str]] = {}
    for folder, start, infos in batch:
        rows, lines, _skipped, failed = read_objects(src, infos)
        parts = []
        if rows is not None:
            parts.append(_batch.rows_table(rows, depth, start))
        if lines:
            parts.append(_batch.payload_table([line for _, line in lines], depth, start))
            payload = payload or rows is None
        try:
            fitted = [_batch.fit(t, committed) for t in parts]
        except _batch.Incompatible as exc:
            report.problems.append(
                f"{folder}: {exc}; its {len(infos)} object(s) stay in JSON lines only "
                "(load reads them from there; to take the new type, delete the table and "
                "compact again)"
            )
            log.warning("modeltap: compact %s: %s", report.problems[-1], src.label)
            continue
        for path in sorted(failed):
            report.problems.append(f"{path}: could not be read; left for the next run")
        tables.extend(fitted)
        manifests[folder] = [i.path[len(base) :] for i in infos if i.path not in failed]
    if not manifests or not any(manifests.values()):
        return snap
    data = concat(tables) if len(tables) > 1 else tables[0] if tables else None
    if data is None or (snap is None and data.num_rows == 0):
        return snap  # nothing to create a table from (empty objects): read again next time
    data = _batch.storable(data)
    run_id = uuid.uuid4().hex
    for folder, names in manifests.items():
        body = {"run": run_id, "partition": folder, "objects": names, "created": _now()}
        where.storage.put(where.manifest_path(folder, run_id), orjson.dumps(body))
    objects = sum(len(v) for v in manifests.values())
    # A commit that does not land leaves these manifests naming a run that never
    # committed: they count for nothing (and are small).
    _write(deltalake, job, snap, data, depth, payload, run_id, objects)
    report.commits += 1
    report.partitions += len(manifests)
    report.objects += objects
    report.rows += data.num_rows
    if snap is None:
        snap = open_snapshot(where, prefix_covered=False)
        assert snap is not None
    snap.covered.update(original_name(o) for v in manifests.values() for o in v)
    log.info(
        "modeltap: compact %s: version %d, %d partition(s), %d rows",
        where.label,
        snap.version,
        len(manifests),
        data.num_rows,
    )
    return snap


def _write(
    deltalake: Any,
    job: Job,
    snap: Snapshot | None,
    data: pa.Table,
    depth: int,
    payload: bool,
    run_id: str,
    objects: int,
) -> None:
    from deltalake import CommitProperties, Transaction, WriterProperties

    commit = CommitProperties(
        custom_metadata={"modeltap.run": run_id, "modeltap.objects": objects},
        max_commit_retries=0,  # land as the version after the one planned from, or fail
        app_transactions=[Transaction(APP_PREFIX + run_id, 1, int(time.time() * 1000))],
    )
    options: dict[str, Any] = {
        "mode": "append",
        "schema_mode": "merge",
        "writer_properties": WriterProperties(compression="ZSTD"),
        "commit_properties": commit,
    }
    if snap is None:
        kind = "payload" if payload else "rows"
        description = {"modeltap": "compacted collection", "kind": kind, "source": job.src.label}
        deltalake.write_deltalake(
            job.where.uri,
            data,
            partition_by=_batch.partition_columns(depth),
            storage_options=job.where.storage_options,
            description=orjson.dumps(description).decode(),
            **{**options, "mode": "error"},  # created by this commit, or lost to another
        )
    else:
        deltalake.write_deltalake(snap.table, data, **options)


def _depth(batch: list[Partition]) -> int:
    """The partition depth (4 = hourly) of the batch's folders."""
    return len(batch[0][0].split("/"))


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
