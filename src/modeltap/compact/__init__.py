"""Compaction: a collection's closed partitions into a Delta Lake table (SPEC R12.1).

    from modeltap import compact

    report = compact.compact("my_endpoint-blue-model_inputs")
    print(report.version, report.objects, report.rows)

The JSON-lines objects stay where they are; the table (by default in the folder
`<collection folder>-delta` of the same datastore) is registered as the data asset
`{name}-delta`, and `modeltap.read.load` reads it for the objects it covers. Written with
the `deltalake` package (no JVM): `pip install 'modeltap[delta]'`. See docs/scale.md and
_run.py for how each commit lands exactly once.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from modeltap.compact._run import BATCH_BYTES, LOOKBACK, Job, Report, run

__all__ = [
    "BATCH_BYTES",
    "LOOKBACK",
    "Report",
    "Target",
    "compact",
    "next_run",
    "schedule",
    "target",
]

log = logging.getLogger(__name__)

GRACE = timedelta(minutes=10)


@dataclass(frozen=True)
class Target:
    """What to compact and where to: the collection, the table, the asset it registers."""

    job: Job
    asset: Any  # the source's data asset (modeltap.assets.Asset), or None
    depth: int | None  # partition depth of the collection (4 = hourly), None if unknown


def target(
    source: str | os.PathLike[str],
    to: str | os.PathLike[str] | None = None,
    *,
    workspace: str | os.PathLike[str] | None = None,
    grace: timedelta = GRACE,
    batch_bytes: int = BATCH_BYTES,
    lookback: timedelta | None = LOOKBACK,
) -> Target:
    """Resolve SOURCE (as `modeltap read` takes it) and the table location. `to`: an
    azureml://datastores/<ds>/paths/<p> URI or a local folder; default: the folder
    `<collection folder>-delta` beside the collection, in the same datastore."""
    from modeltap.assets import Catalog
    from modeltap.config import default_workspace, load_workspace, parse_datastore_uri
    from modeltap.read.shared import (
        default_table_path,
        detect_depth,
        folder_location,
        resolve,
        table_location,
    )

    ws_root = Path(workspace if workspace is not None else default_workspace())
    src = resolve(source, ws_root)
    asset = src.asset if src.asset is not None and src.asset.type != "delta" else None
    if asset is None and (ws_root / "catalog.sqlite").is_file():
        matches = [
            a
            for a in Catalog(ws_root).list()
            if a.datastore == src.storage.name and a.path == src.prefix and a.type != "delta"
        ]
        asset = max(matches, key=lambda a: a.created) if matches else None
    if to is None:
        if src.storage.name == "folder":  # a folder path: the table beside it
            folder = Path(src.storage.url(src.prefix))
            where = folder_location(folder.with_name(f"{folder.name}-delta"))
        else:
            ws = load_workspace(ws_root)
            where = table_location(ws, src.storage.name, default_table_path(src.prefix))
    elif str(to).startswith("azureml://"):
        datastore, path = parse_datastore_uri(str(to), where="--to")
        where = table_location(load_workspace(ws_root), datastore, path)
    else:
        where = folder_location(Path(to))
    depth = detect_depth(src.storage, src.prefix)
    return Target(Job(src, where, grace, batch_bytes, lookback), asset, depth)


def compact(
    source: str | os.PathLike[str],
    to: str | os.PathLike[str] | None = None,
    until: datetime | str | None = None,
    *,
    workspace: str | os.PathLike[str] | None = None,
    grace: timedelta = GRACE,
    stop: threading.Event | None = None,
    batch_bytes: int = BATCH_BYTES,
    lookback: timedelta | None = LOOKBACK,
) -> Report:
    """Compact the closed partitions of a collection (those that ended at least `grace`
    ago, and at or before `until` when given) that the table does not hold yet.

    lookback: once the table has rows, partitions are listed from this long before the
    newest one compacted (objects landing later than that are not looked for); None
    lists the whole collection."""
    from modeltap.read.shared import to_utc

    t = target(
        source, to, workspace=workspace, grace=grace, batch_bytes=batch_bytes, lookback=lookback
    )
    try:
        register(t, workspace)
        flag = stop or threading.Event()
        return run(t.job, until=to_utc(until, "until"), stop=flag.is_set)
    finally:
        t.job.src.storage.close()


def register(t: Target, workspace: str | os.PathLike[str] | None) -> None:
    """Register the table as the asset `{name}-delta` (when the source is an asset and the
    table is in a datastore)."""
    from modeltap.assets import Catalog
    from modeltap.config import default_workspace

    where, asset = t.job.where, t.asset
    if asset is None or where.storage.name == "folder":
        return
    catalog = Catalog(Path(workspace if workspace is not None else default_workspace()))
    name = f"{asset.name}-delta"
    known = catalog.get(name)
    if known is not None and known.datastore == where.storage.name and known.path == where.path:
        return
    catalog.register(
        catalog.make(
            name,
            "1",
            asset.endpoint,
            asset.deployment,
            asset.collection,
            where.storage.name,
            where.path,
            type="delta",
        )
    )


_UNIT = {1: None, 2: None, 3: timedelta(days=1), 4: timedelta(hours=1), 5: timedelta(minutes=1)}


def next_run(depth: int | None, now: datetime, grace: timedelta) -> datetime:
    """When the next partition closes: the end of the current rolling unit plus the grace
    period (the next whole hour for hourly collections; daily for coarser ones)."""
    unit = _UNIT.get(depth or 4) or timedelta(days=1)
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    ends = epoch + ((now - grace - epoch) // unit + 1) * unit
    return ends + grace


def schedule(
    source: str | os.PathLike[str],
    to: str | os.PathLike[str] | None = None,
    *,
    workspace: str | os.PathLike[str] | None = None,
    grace: timedelta = GRACE,
    stop: threading.Event,
    on_report: Any = None,
    every: timedelta | None = None,
    batch_bytes: int = BATCH_BYTES,
    lookback: timedelta | None = LOOKBACK,
) -> int:
    """Compact now, then each time a partition closes (every rolling unit), until `stop`
    is set: a run in progress finishes its commit first. Returns the number of runs."""
    runs = 0
    while not stop.is_set():
        t = target(
            source,
            to,
            workspace=workspace,
            grace=grace,
            batch_bytes=batch_bytes,
            lookback=lookback,
        )
        try:
            register(t, workspace)
            report = run(t.job, stop=stop.is_set)
        except Exception:
            if stop.is_set():
                raise
            log.exception("modeltap: compact run failed; trying again at the next one")
            report = None
        finally:
            t.job.src.storage.close()
        runs += 1
        if on_report is not None and report is not None:
            on_report(report)
        now = datetime.now(UTC)
        wake = now + every if every is not None else next_run(t.depth, now, grace)
        stop.wait(max(0.0, (wake - now).total_seconds()))
    return runs
