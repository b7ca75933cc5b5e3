"""Asset summaries: what each data asset's folder holds, without loading it.

    from modeltap import summary

    for s in summary.list_assets(workspace="ws"):
        print(s.asset.name, s.records, s.first, s.last)

`modeltap assets list|show` call these functions. A summary lists the collection folder
once and reads its line files to count records the way `read.load` reads them: a line
that is a JSON object is one record; other lines, and files without one such line, are
counted as skipped (load skips them too). Lines are validated without building objects
(simdjson); only the lines of the first and last partitions are parsed, for the first
and last record times. See docs/inspecting.md.
"""

from __future__ import annotations

import logging
import os
import posixpath
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from modeltap.assets import Asset, Catalog
from modeltap.config import WorkspaceSettings, load_workspace
from modeltap.errors import ModeltapError
from modeltap.jsoncheck import is_json_object
from modeltap.layout import RollingRate
from modeltap.read._load import _THREADS, _progress
from modeltap.read._parse import _py_time
from modeltap.read._range import in_range, partition_of
from modeltap.read._source import _open, find_asset
from modeltap.storage.base import ObjectInfo, Storage

__all__ = ["AssetSummary", "Partitions", "format_time", "list_assets", "show_asset"]

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
    workspace: str | os.PathLike[str] | None = None, *, progress: bool | None = None
) -> list[AssetSummary]:
    """Every registered data asset of the workspace, summarized, in name order.

    Reads every line file of every asset to count lines. An asset whose folder cannot be
    listed (say its datastore left the workspace file) is kept, with `error` set.
    progress: a progress bar on stderr (needs rich); None shows it for many files when
    stderr is a terminal.
    """
    ws = load_workspace(workspace)
    assets = Catalog(ws.root).list()
    stores: dict[str, Storage] = {}
    try:
        plans = [_plan(asset, ws, stores, keep_errors=True) for asset in assets]
        return _summarize(plans, progress, f"{len(assets)} assets")
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
            storage = stores[asset.datastore] = _open(ws, asset.datastore)
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


def _summarize(plans: list[_Plan], progress: bool | None, label: str) -> list[AssetSummary]:
    jobs = [(plan, info) for plan in plans for info in plan.files]

    def scan(job: tuple[_Plan, ObjectInfo]) -> _Scan:
        plan, info = job
        assert plan.storage is not None
        try:
            data = plan.storage.get(info.path)
        except ModeltapError as exc:
            log.warning("modeltap: skipped %s: could not be read: %s", info.path, exc)
            return _Scan(0, unread=True)
        lines, skipped = count_records(data)
        if not lines:
            return _Scan(0, skipped=skipped, unread=skipped > 0)
        if info.path not in plan.timed:
            return _Scan(lines, skipped=skipped)
        times = [t for t in map(_line_time, data.split(b"\n")) if t is not None]
        return _Scan(lines, min(times, default=None), max(times, default=None), skipped)

    scans: list[_Scan] = []
    with _progress(len(jobs), progress, label) as advance:
        if len(jobs) <= 1:
            for job in jobs:
                scans.append(scan(job))
                advance()
        else:
            with ThreadPoolExecutor(min(_THREADS, len(jobs))) as pool:
                for found in pool.map(scan, jobs):
                    scans.append(found)
                    advance()
    by_plan: dict[int, list[_Scan]] = {}
    for (plan, _info), found in zip(jobs, scans, strict=True):
        by_plan.setdefault(id(plan), []).append(found)
    return [_summary(plan, by_plan.get(id(plan), [])) for plan in plans]


def _summary(plan: _Plan, scans: list[_Scan]) -> AssetSummary:
    firsts = [s.first for s in scans if s.first is not None]
    lasts = [s.last for s in scans if s.last is not None]
    folders = sorted(plan.partitions, key=lambda f: plan.partitions[f])
    newest = folders[-1] if folders else None
    return AssetSummary(
        asset=plan.asset,
        url=plan.url,
        records=sum(s.lines for s in scans),
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
        skipped_lines=sum(s.skipped for s in scans),
        skipped_files=sum(s.unread for s in scans),
    )


def _line_time(raw: bytes) -> datetime | None:
    if not raw.strip():
        return None
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return _py_time(obj.get("time")) if isinstance(obj, dict) else None
