"""Retention (SPEC R13.2): partitions older than a deployment's
`data_collector.modeltap.retention` are deleted from its collections' datastores.

A partition goes when its END is older than the retention: with P90D, the hour
2026/01/01/10 goes once 2026/01/01/11:00 is 90 days past. The current partition never
goes (its end is in the future), nor anything outside partition folders.

Each runtime records its deployment's policy in the workspace (table `retention` of
catalog.sqlite, beside the asset catalog), so `modeltap retention apply --workspace DIR`
can enforce every deployment that ever collected there, running or not. A deployment
started without a retention clears the policy of its collections.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from modeltap.errors import ConfigError, StorageError

if TYPE_CHECKING:
    from modeltap.config import DeploymentSettings, WorkspaceSettings
    from modeltap.erase_table import TableChange
    from modeltap.storage.base import ObjectInfo, Storage

__all__ = [
    "Expired",
    "Policy",
    "expired",
    "of_deployment",
    "policies",
    "remember",
    "sweep",
    "trim_tables",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS retention (
    datastore TEXT NOT NULL,
    path TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    deployment TEXT NOT NULL,
    collection TEXT NOT NULL,
    seconds REAL,
    updated REAL NOT NULL,
    PRIMARY KEY (datastore, path)
)
"""


@dataclass(frozen=True)
class Policy:
    """A collection folder and how long its partitions are kept."""

    datastore: str
    path: str
    endpoint: str
    deployment: str
    collection: str
    age: timedelta

    @property
    def label(self) -> str:
        return f"{self.endpoint}/{self.deployment}/{self.collection}"


@dataclass(frozen=True)
class Expired:
    """A partition past its retention: its folder and the objects in it."""

    folder: str  # relative to the datastore root
    end: datetime
    objects: tuple[str, ...]
    nbytes: int


@contextmanager
def _db(workspace: Path) -> Iterator[sqlite3.Connection]:
    file = workspace / "catalog.sqlite"
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(file, timeout=30)) as db, db:
            db.execute(_SCHEMA)
            yield db
    except sqlite3.Error as exc:
        raise StorageError(f"retention policies: {exc}", path=str(file)) from exc


def remember(workspace: Path, deployment: DeploymentSettings) -> None:
    """Record (or clear) the deployment's retention for each of its collections."""
    seconds = deployment.retention.total_seconds() if deployment.retention else None
    now = time.time()
    with _db(workspace) as db:
        db.executemany(
            "INSERT INTO retention VALUES (?,?,?,?,?,?,?) ON CONFLICT(datastore, path) DO UPDATE "
            "SET endpoint=excluded.endpoint, deployment=excluded.deployment, "
            "collection=excluded.collection, seconds=excluded.seconds, updated=excluded.updated",
            [
                (
                    c.datastore,
                    c.path,
                    deployment.endpoint,
                    deployment.deployment,
                    name,
                    seconds,
                    now,
                )
                for name, c in deployment.collections.items()
            ],
        )


def policies(workspace: Path) -> list[Policy]:
    """The retention policies recorded in the workspace (collections without one left out)."""
    if not (workspace / "catalog.sqlite").exists():
        return []
    with _db(workspace) as db:
        rows = db.execute(
            "SELECT datastore, path, endpoint, deployment, collection, seconds FROM retention "
            "WHERE seconds IS NOT NULL ORDER BY endpoint, deployment, collection"
        ).fetchall()
    return [
        Policy(datastore, path, endpoint, deployment, collection, timedelta(seconds=seconds))
        for datastore, path, endpoint, deployment, collection, seconds in rows
    ]


def of_deployment(deployment: DeploymentSettings) -> list[Policy]:
    """The policies a deployment file sets (none without a retention)."""
    if deployment.retention is None:
        return []
    return [
        Policy(
            c.datastore,
            c.path,
            deployment.endpoint,
            deployment.deployment,
            name,
            deployment.retention,
        )
        for name, c in deployment.collections.items()
    ]


def expired(
    storage: Storage, prefix: str, age: timedelta, now: datetime | None = None
) -> list[Expired]:
    """The partitions under prefix whose end is more than `age` before now, oldest first."""
    from modeltap.read.shared import partition_of

    if age <= timedelta(0):
        raise ConfigError(f"{age} is not a retention: it must be positive", field="age")
    now = now or datetime.now(UTC)
    cutoff = now - age
    folders: dict[str, tuple[datetime, list[ObjectInfo]]] = {}
    for info in storage.list(prefix):
        folder, span = partition_of(info.path, prefix)
        # the current partition, and any in the future, end after now: never expired
        if span is None or span[1] > cutoff or span[1] > now:
            continue
        folders.setdefault(folder, (span[1], []))[1].append(info)
    base = f"{prefix}/" if prefix else ""
    return [
        Expired(base + folder, end, tuple(i.path for i in infos), sum(i.size for i in infos))
        for folder, (end, infos) in sorted(folders.items(), key=lambda item: item[1][0])
    ]


def trim_tables(
    ws: WorkspaceSettings,
    chosen: Iterable[Policy],
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> Iterator[tuple[Policy, TableChange]]:
    """The same retention in each policy's compacted table, when it has one: the rows of
    partitions that ended before the retention (the hours of a table of minute partitions
    once their whole hour has) are deleted, with the data files that held them."""
    try:
        from modeltap.read.shared import deltalake_module, find_table

        deltalake_module()
    except ImportError:  # no deltalake, so no compacted tables were made here
        return
    from modeltap.erase_table import delete_before
    from modeltap.read.shared import Source, detect_depth
    from modeltap.storage.registry import open_datastore

    now = now or datetime.now(UTC)
    for policy in chosen:
        settings = ws.datastores.get(policy.datastore)
        if settings is None:
            continue  # sweep() names it
        storage = open_datastore(policy.datastore, settings, ws.root)
        try:
            found = find_table(Source(storage, policy.path, policy.path), ws.root)
            if found is None or found[1]:
                continue
            depth = detect_depth(storage, policy.path) or 4
            yield policy, delete_before(found[0], _floor(now - policy.age, depth), dry_run=dry_run)
        finally:
            storage.close()


def _floor(moment: datetime, depth: int) -> datetime:
    """The start of the partition (1 = year ... 5 = minute) that holds moment: every
    partition that ended at or before moment ends at or before it."""
    fields = [moment.year, moment.month, moment.day, moment.hour, moment.minute][:depth]
    y, mo, d, h, mi = [*fields, *(1, 1, 0, 0)[len(fields) - 1 :]][:5]
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def sweep(
    ws: WorkspaceSettings,
    chosen: Iterable[Policy],
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> Iterator[tuple[Policy, Expired]]:
    """Delete (with dry_run, only find) the expired partitions of each policy's collection,
    yielding each partition as it goes."""
    from modeltap.storage.registry import open_datastore

    stores: dict[str, Storage] = {}
    try:
        for policy in chosen:
            storage = stores.get(policy.datastore)
            if storage is None:
                settings = ws.datastores.get(policy.datastore)
                if settings is None:
                    raise ConfigError(
                        f"{policy.label} is kept in datastore {policy.datastore!r}, which the "
                        f"workspace does not define (add it to {ws.root / 'workspace.yml'})",
                        field="datastores",
                    )
                storage = stores[policy.datastore] = open_datastore(
                    policy.datastore, settings, ws.root
                )
            for partition in expired(storage, policy.path, policy.age, now):
                if not dry_run:
                    storage.delete_many(partition.objects)
                yield policy, partition
    finally:
        for storage in stores.values():
            storage.close()
