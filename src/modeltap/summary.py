"""Asset summaries: what each data asset's folder holds, without loading it.

    from modeltap import summary

    for s in summary.list_assets(workspace="ws"):
        print(s.asset.name, s.records, s.first, s.last)

`modeltap assets list|show` call these functions. A summary lists the collection folder
once and reads its line files to count records the way `read.load` reads them: a line
that is a JSON object is one record (validated without building objects, simdjson);
other lines, and files without one such line, are counted as skipped (load skips them
too). Only the times of the lines of the first and last partitions are read, for the
first and last record times. With `max_bytes` (the web page), files past that many
bytes, newest first, are not read: their records are estimated from their size
(`AssetSummary.estimated`). See docs/inspecting.md.
"""

from __future__ import annotations

import logging
import os
import posixpath
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from modeltap.assets import Asset, Catalog
from modeltap.config import WorkspaceSettings, load_workspace
from modeltap.errors import ModeltapError
from modeltap.jsoncheck import is_json_object
from modeltap.layout import RollingRate
from modeltap.read.shared import (
    THREADS,
    find_asset,
    in_range,
    open_storage,
    partition_of,
    progress_bar,
    time_range,
)
from modeltap.storage.base import ObjectInfo, Storage

__all__ = [
    "AssetSummary",
    "PartitionCount",
    "Partitions",
    "format_time",
    "list_assets",
    "show_asset",
]

log = logging.getLogger(__name__)

# Folder depth below the collection -> the rolling rate that makes it (SPEC R4.1).
_RATES = {
    1: RollingRate.YEAR,
    2: RollingRate.MONTH,
    3: RollingRate.DAY,
    4: RollingRate.HOUR,
    5: RollingRate.MINUTE,
}


def format_time(t: datetime | None) -> str | None:
    """UTC time as the lines carry it: 2026-11-25T10:00:00Z."""
    return None if t is None else t.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Partitions:
    count: int  # partition folders holding line files
    first: str | None  # e.g. "2026/11/25/10"
    last: str | None
    rolling_rate: str | None  # of the newest partition: Year, Month, Day, Hour or Minute


@dataclass(frozen=True)
class PartitionCount:
    """The records of one partition folder."""

    folder: str  # e.g. "2026/11/25/10"
    start: datetime
    end: datetime
    records: int
    estimated: bool  # some of its files were not read: counted from their size


@dataclass(frozen=True)
class AssetSummary:
    """One data asset and what its folder holds."""

    asset: Asset
    url: str | None  # the folder, for people and other tools (a local path, a blob URL)
    records: int  # lines of its .jsonl files that are JSON objects (what load reads)
    files: int  # .jsonl files
    blobs: int  # other objects: payloads stored as their own object (R4.3, R4.4)
    bytes: int  # size of all of them
    first: datetime | None  # earliest record time
    last: datetime | None  # latest record time
    partitions: Partitions
    error: str | None = None  # the folder could not be listed (only list_assets reports this)
    estimated: bool = False  # records include estimates for files not read (max_bytes)
    by_partition: tuple[PartitionCount, ...] = ()  # oldest first
    skipped_lines: int = 0  # lines that are not JSON objects (load skips them)
    skipped_files: int = 0  # .jsonl files unreadable or without a JSON object line

    def as_dict(self, partitions: bool = True) -> dict[str, Any]:
        """JSON-ready fields (times as YYYY-MM-DDTHH:MM:SSZ)."""
        a = self.asset
        out: dict[str, Any] = {
            "name": a.name,
            "version": a.version,
            "type": a.type,
            "endpoint": a.endpoint,
            "deployment": a.deployment,
            "collection": a.collection,
            "datastore": a.datastore,
            "path": a.path,
            "uri": a.uri,
            "url": self.url,
            "records": self.records,
            "skipped_lines": self.skipped_lines,
            "skipped_files": self.skipped_files,
            "files": self.files,
            "blobs": self.blobs,
            "bytes": self.bytes,
            "first": format_time(self.first),
            "last": format_time(self.last),
        }
        if partitions:
            out["partitions"] = {
                "count": self.partitions.count,
                "first": self.partitions.first,
                "last": self.partitions.last,
            }
            out["rolling_rate"] = self.partitions.rolling_rate
        out["error"] = self.error
        return out


def list_assets(
    workspace: str | os.PathLike[str] | None = None,
    *,
    progress: bool | None = None,
    max_bytes: int | None = None,
) -> list[AssetSummary]:
    """Every registered data asset of the workspace, summarized, in name order.

    Reads every line file of every asset to count lines; with max_bytes, only the first
    and last partitions and then, newest first, files up to that many bytes per asset (the
    others are estimated from their size). An asset whose folder cannot be listed (say
    its datastore left the workspace file) is kept, with `error` set.
    progress: a progress bar on stderr (needs rich); None shows it for many files when
    stderr is a terminal.
    """
    ws = load_workspace(workspace)
    assets = Catalog(ws.root).list()
    stores: dict[str, Storage] = {}
    try:
        plans = [_plan(asset, ws, stores, keep_errors=True) for asset in assets]
        return _summarize(plans, progress, f"{len(assets)} assets", max_bytes)
    finally:
        for store in stores.values():
            store.close()


def show_asset(
    name: str, workspace: str | os.PathLike[str] | None = None, *, progress: bool | None = None
) -> AssetSummary:
    """One data asset, `name` or `name:version` (the highest version without one).

    An unknown name is a NotFoundError suggesting the closest names."""
    ws = load_workspace(workspace)
    asset = find_asset(Catalog(ws.root), name, ws)
    stores: dict[str, Storage] = {}
    try:
        [summary] = _summarize([_plan(asset, ws, stores)], progress, asset.name)
        return summary
    finally:
        for store in stores.values():
            store.close()


@dataclass
class _Plan:
    """One asset's folder, listed, before its files are read."""

    asset: Asset
    storage: Storage | None
    url: str | None
    files: list[ObjectInfo]
    blobs: int
    bytes: int
    partitions: dict[str, tuple[datetime, datetime]]  # folder -> [start, end)
    timed: set[str]  # files whose line times are read: first and last partitions, loose files
    error: str | None = None


def _plan(
    asset: Asset, ws: WorkspaceSettings, stores: dict[str, Storage], keep_errors: bool = False
) -> _Plan:
    try:
        storage = stores.get(asset.datastore)
        if storage is None:
            storage = stores[asset.datastore] = open_storage(ws, asset.datastore)
        objects = list(storage.list(asset.path))
        url = storage.url(asset.path)
    except ModeltapError as exc:
        if not keep_errors:
            raise
        return _Plan(asset, None, None, [], 0, 0, {}, set(), error=str(exc))
    files = in_range(objects, asset.path, None, None)
    blobs = [
        o
        for o in objects
        if not o.path.endswith(".jsonl") and not posixpath.basename(o.path).startswith(".")
    ]
    spans: dict[str, tuple[datetime, datetime]] = {}
    in_folder: dict[str, list[str]] = {}
    timed: set[str] = set()
    for info in files:
        folder, span = partition_of(info.path, asset.path)
        if span is None:
            timed.add(info.path)  # outside partition folders: any time
        else:
            spans[folder] = span
            in_folder.setdefault(folder, []).append(info.path)
    if spans:
        # The earliest line is in a partition that starts before every partition ends
        # (with one rolling rate: the first partition); the latest, likewise.
        first_end = min(end for _, end in spans.values())
        last_start = max(start for start, _ in spans.values())
        for folder, (start, end) in spans.items():
            if start < first_end or end > last_start:
                timed.update(in_folder[folder])
    size = sum(o.size for o in files) + sum(o.size for o in blobs)
    return _Plan(asset, storage, url, files, len(blobs), size, spans, timed)


@dataclass(frozen=True)
class _Scan:
    lines: int  # JSON object lines
    first: datetime | None = None
    last: datetime | None = None
    timed: bool = False  # first and last were looked for
    skipped: int = 0  # other lines
    unread: bool = False  # the whole file is skipped: unreadable, or no JSON object line


def count_records(data: bytes) -> tuple[int, int]:
    """(records, skipped) of a line file: lines that are JSON objects, as `read.load`
    takes them, and the other lines that are not blank."""
    records = skipped = 0
    for raw in data.split(b"\n"):
        if not raw:
            continue
        if is_json_object(raw):
            records += 1
        elif raw.strip():
            skipped += 1
    return records, skipped


# What each object held, by (location, size): objects are written whole and never changed,
# so a summary made again (the web page's overview) reads only the objects that are new.
_SCANS: OrderedDict[tuple[str, int], _Scan] = OrderedDict()
_SCANS_KEPT = 200_000
_scans_lock = threading.Lock()


def _kept(key: tuple[str, int], timed: bool) -> _Scan | None:
    with _scans_lock:
        found = _SCANS.get(key)
        if found is None or (timed and not found.timed):
            return None
        _SCANS.move_to_end(key)
        return found


def _keep(key: tuple[str, int], found: _Scan) -> None:
    with _scans_lock:
        _SCANS[key] = found
        _SCANS.move_to_end(key)
        while len(_SCANS) > _SCANS_KEPT:
            _SCANS.popitem(last=False)


def _chosen(plan: _Plan, max_bytes: int | None) -> list[ObjectInfo]:
    """The files to read: all, or the timed ones and then the newest up to max_bytes."""
    if max_bytes is None:
        return plan.files
    chosen = [info for info in plan.files if info.path in plan.timed]
    spent = sum(info.size for info in chosen)

    def newest_first(info: ObjectInfo) -> tuple[datetime, str]:
        folder = partition_of(info.path, plan.asset.path)[0]
        return (plan.partitions[folder][0], info.path)

    for info in sorted(
        (i for i in plan.files if i.path not in plan.timed), key=newest_first, reverse=True
    ):
        if spent + info.size > max_bytes:
            break
        chosen.append(info)
        spent += info.size
    return chosen


def _summarize(
    plans: list[_Plan], progress: bool | None, label: str, max_bytes: int | None = None
) -> list[AssetSummary]:
    jobs = [(plan, info) for plan in plans for info in _chosen(plan, max_bytes)]

    def scan(job: tuple[_Plan, ObjectInfo]) -> _Scan:
        plan, info = job
        assert plan.storage is not None
        timed = info.path in plan.timed
        key = (plan.storage.url(info.path), info.size)
        found = _kept(key, timed)
        if found is not None:
            return found
        try:
            data = plan.storage.get(info.path)
        except ModeltapError as exc:
            log.warning("modeltap: skipped %s: could not be read: %s", info.path, exc)
            return _Scan(0, unread=True)
        lines, skipped = count_records(data)
        if not lines:
            found = _Scan(0, skipped=skipped, unread=skipped > 0, timed=timed)
        elif timed:
            found = _Scan(lines, *time_range(data), timed=True, skipped=skipped)
        else:
            found = _Scan(lines, skipped=skipped)
        _keep(key, found)
        return found

    scans: list[_Scan] = []
    with progress_bar(len(jobs), progress, label) as advance:
        if len(jobs) <= 1:
            for job in jobs:
                scans.append(scan(job))
                advance()
        else:
            with ThreadPoolExecutor(min(THREADS, len(jobs))) as pool:
                for found in pool.map(scan, jobs):
                    scans.append(found)
                    advance()
    by_plan: dict[int, dict[str, _Scan]] = {}
    for (plan, info), found in zip(jobs, scans, strict=True):
        by_plan.setdefault(id(plan), {})[info.path] = found
    return [_summary(plan, by_plan.get(id(plan), {})) for plan in plans]


def _summary(plan: _Plan, scans: dict[str, _Scan]) -> AssetSummary:
    firsts = [s.first for s in scans.values() if s.first is not None]
    lasts = [s.last for s in scans.values() if s.last is not None]
    folders = sorted(plan.partitions, key=lambda f: plan.partitions[f])
    newest = folders[-1] if folders else None
    # Files not read: as many lines as their size holds at the rate of the partition
    # files read (loose files may be anything).
    where = {info.path: partition_of(info.path, plan.asset.path)[0] for info in plan.files}
    sample = [i for i in plan.files if i.path in scans and where[i.path] in plan.partitions]
    read_bytes = sum(info.size for info in sample)
    per_byte = sum(scans[i.path].lines for i in sample) / read_bytes if read_bytes else 0.0
    counts: dict[str, list[float]] = {}  # folder -> [records, estimated files]
    for info in plan.files:
        found = scans.get(info.path)
        folder = where[info.path]
        count = counts.setdefault(folder, [0.0, 0])
        count[0] += found.lines if found is not None else info.size * per_byte
        count[1] += found is None
    by_partition = tuple(
        PartitionCount(f, *plan.partitions[f], round(counts[f][0]), bool(counts[f][1]))
        for f in folders
    )
    return AssetSummary(
        asset=plan.asset,
        url=plan.url,
        records=round(sum(c[0] for c in counts.values())),
        files=len(plan.files),
        blobs=plan.blobs,
        bytes=plan.bytes,
        first=min(firsts, default=None),
        last=max(lasts, default=None),
        partitions=Partitions(
            count=len(folders),
            first=folders[0] if folders else None,
            last=newest,
            rolling_rate=_RATES[newest.count("/") + 1].value if newest is not None else None,
        ),
        error=plan.error,
        estimated=len(scans) < len(plan.files),
        by_partition=by_partition,
        skipped_lines=sum(s.skipped for s in scans.values()),
        skipped_files=sum(s.unread for s in scans.values()),
    )
