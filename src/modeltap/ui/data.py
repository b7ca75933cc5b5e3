"""What each page shows, gathered through summary, tail, assets and status.

Collection summaries come from `summary.list_assets` (within a byte budget), records from
`tail.Tail` (pages newest first, one correlation id), pipeline counters from
`status.read`. The one read of its own is `payload_object`: a stored payload, fetched for
download from the collection's datastore, and only a payload object inside the
collection's folder. Plain dataclasses out; the templates only lay them out.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from modeltap import status, summary
from modeltap import tail as tails
from modeltap.assets import Catalog
from modeltap.config import load_workspace
from modeltap.errors import NotFoundError
from modeltap.read.shared import to_utc
from modeltap.ui.present import Table, payload_table, rows_table

__all__ = [
    "CHART_BUCKETS",
    "PAGE_SIZES",
    "REQUEST_WINDOW",
    "SEARCH_BYTES",
    "SUMMARY_BYTES",
    "CollectionPage",
    "Deployment",
    "Overview",
    "RequestView",
    "assets",
    "chart",
    "collection_page",
    "overview",
    "parse_time",
    "payload_object",
    "request_view",
]

# Bounded reads: never a whole collection for one page.
SUMMARY_BYTES = 16 * 2**20  # per asset, past its first and last partitions; the rest estimated
SEARCH_BYTES = 256 * 2**20  # a correlation-id search without a time range stops here
REQUEST_WINDOW = timedelta(minutes=10)  # a request's records lie this close to its time
CHART_BUCKETS = 48  # hours (or partitions) in a collection's chart
PAGE_SIZES = (20, 50, 100, 200)
PAIRS = (("model_inputs", "model_outputs"), ("request", "response"))


def parse_time(value: str | None, name: str) -> datetime | None:
    """A query parameter as a UTC time; ValueError names the parameter."""
    if value is None or not value.strip():
        return None
    return to_utc(value, name)


# -- overview -------------------------------------------------------------------------------


@dataclass
class Collection:
    summary: summary.AssetSummary
    chart: dict[str, Any]  # labels, values, estimated, unit

    @property
    def name(self) -> str:
        return self.summary.asset.collection


@dataclass
class Deployment:
    endpoint: str
    name: str
    collections: list[Collection] = field(default_factory=list)
    processes: list[status.ProcessStatus] = field(default_factory=list)

    @property
    def counters(self) -> dict[str, int]:
        return status.totals(self.processes)


@dataclass
class Overview:
    workspace: Path
    exists: bool
    endpoints: dict[str, list[Deployment]]
    errors: list[summary.AssetSummary]


def overview(workspace: str | os.PathLike[str]) -> Overview:
    ws = load_workspace(workspace)
    summaries = summary.list_assets(ws.root, progress=False, max_bytes=SUMMARY_BYTES)
    running = status.read(ws.root)
    deployments: dict[tuple[str, str], Deployment] = {}
    for s in _newest_per_collection(summaries):
        a = s.asset
        d = deployments.setdefault((a.endpoint, a.deployment), Deployment(a.endpoint, a.deployment))
        d.collections.append(Collection(s, chart(s)))
    for p in running:
        d = deployments.setdefault((p.endpoint, p.deployment), Deployment(p.endpoint, p.deployment))
        d.processes.append(p)
    endpoints: dict[str, list[Deployment]] = {}
    for key in sorted(deployments):
        endpoints.setdefault(key[0], []).append(deployments[key])
    return Overview(ws.root, ws.root.is_dir(), endpoints, [s for s in summaries if s.error])


def assets(workspace: str | os.PathLike[str]) -> list[summary.AssetSummary]:
    """Every asset, as `modeltap assets list` shows them (counts within the byte budget)."""
    return summary.list_assets(workspace, progress=False, max_bytes=SUMMARY_BYTES)


def _newest_per_collection(summaries: list[summary.AssetSummary]) -> list[summary.AssetSummary]:
    """One asset per collection: the most recently registered (as tail resolves it)."""
    best: dict[tuple[str, str, str], summary.AssetSummary] = {}
    for s in summaries:
        a = s.asset
        key = (a.endpoint, a.deployment, a.collection)
        if key not in best or (a.created, a.version) > (
            best[key].asset.created,
            best[key].asset.version,
        ):
            best[key] = s
    return sorted(
        best.values(), key=lambda s: (s.asset.endpoint, s.asset.deployment, s.asset.collection)
    )


def chart(s: summary.AssetSummary) -> dict[str, Any]:
    """Records per hour over the CHART_BUCKETS hours up to the newest partition (per
    partition when they are coarser: days, months, years)."""
    parts = s.by_partition
    if not parts:
        return {"labels": [], "values": [], "estimated": [], "unit": "hour"}
    if all(p.end - p.start <= timedelta(hours=1) for p in parts):
        hours: dict[datetime, list[int]] = {}
        for p in parts:
            bucket = hours.setdefault(p.start.replace(minute=0), [0, 0])
            bucket[0] += p.records
            bucket[1] |= p.estimated
        last = max(hours)
        keys = [last - timedelta(hours=k) for k in range(CHART_BUCKETS - 1, -1, -1)]
        return {
            "labels": [k.strftime("%m-%d %H:00") for k in keys],
            "values": [hours.get(k, [0, 0])[0] for k in keys],
            "estimated": [bool(hours.get(k, [0, 0])[1]) for k in keys],
            "unit": "hour",
        }
    recent = parts[-CHART_BUCKETS:]
    unit = {3: "day", 2: "month", 1: "year"}.get(recent[-1].folder.count("/") + 1, "partition")
    return {
        "labels": [p.folder for p in recent],
        "values": [p.records for p in recent],
        "estimated": [p.estimated for p in recent],
        "unit": unit,
    }


# -- a collection ---------------------------------------------------------------------------


@dataclass
class CollectionPage:
    endpoint: str
    deployment: str
    collection: str
    table: Table
    lines: list[tails.Line]
    more: bool
    stopped_at: datetime | None  # a search ran out of bytes before this time
    bad_lines: int


@contextmanager
def _tail(workspace: str | os.PathLike[str], e: str, d: str, c: str) -> Iterator[tails.Tail]:
    with tails.Tail(tails.resolve_collection(e, d, c, workspace)) as t:
        yield t


def collection_page(
    workspace: str | os.PathLike[str],
    endpoint: str,
    deployment: str,
    collection: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    offset: int = 0,
    limit: int = 50,
    correlation_id: str | None = None,
) -> CollectionPage:
    with _tail(workspace, endpoint, deployment, collection) as t:
        stopped_at = None
        if correlation_id:
            found = t.find(correlation_id, start, end, max_bytes=SEARCH_BYTES)
            lines, more, stopped_at = found.lines[::-1], False, found.stopped_at
        else:
            lines, more = t.page(limit, offset, start, end)
        bad = t.bad_lines
    table = rows_table(lines) if _has_rows(lines) else payload_table(lines)
    return CollectionPage(endpoint, deployment, collection, table, lines, more, stopped_at, bad)


def _has_rows(lines: list[tails.Line]) -> bool:
    """Collected frames (data is a list of row objects), not HTTP payloads."""
    return bool(lines) and all(
        isinstance(line.data, list) and "datainblob" not in line.record for line in lines
    )


# -- one request ----------------------------------------------------------------------------


@dataclass
class Part:
    collection: str
    lines: list[tails.Line]
    stopped_at: datetime | None


@dataclass
class RequestView:
    endpoint: str
    deployment: str
    correlation_id: str
    around: datetime | None
    rows: list[list[Part]]  # pairs side by side: inputs | outputs, request | response


def request_view(
    workspace: str | os.PathLike[str],
    endpoint: str,
    deployment: str,
    correlation_id: str,
    around: datetime | None = None,
) -> RequestView:
    """Every collection of the deployment, searched for one correlation id: within
    REQUEST_WINDOW of `around` when it is known (the time of the record clicked)."""
    ws = load_workspace(workspace)
    names = sorted(
        {
            a.collection
            for a in Catalog(ws.root).list()
            if (a.endpoint, a.deployment) == (endpoint, deployment)
        }
    )
    start = around - REQUEST_WINDOW if around is not None else None
    end = around + REQUEST_WINDOW if around is not None else None
    parts: dict[str, Part] = {}
    for name in names:
        with _tail(ws.root, endpoint, deployment, name) as t:
            found = t.find(correlation_id, start, end, max_bytes=SEARCH_BYTES)
        parts[name] = Part(name, found.lines, found.stopped_at)
    rows: list[list[Part]] = []
    for pair in PAIRS:
        if any(name in parts for name in pair):
            rows.append([parts.pop(name, Part(name, [], None)) for name in pair])
    rows += [[parts[name]] for name in sorted(parts)]
    return RequestView(endpoint, deployment, correlation_id, around, rows)


def payload_object(
    workspace: str | os.PathLike[str], endpoint: str, deployment: str, collection: str, path: str
) -> bytes:
    """One payload stored as its own object in this collection's folder."""
    source = tails.resolve_collection(endpoint, deployment, collection, workspace)
    try:
        folder, name = posixpath.split(path)
        inside = source.prefix == "" or path.startswith(source.prefix.rstrip("/") + "/")
        plain = name and not name.startswith(".") and not name.endswith(".jsonl")
        safe = inside and plain and ".." not in path.split("/")
        if safe and any(info.path == path for info in source.storage.list(folder)):
            return source.storage.get(path)
        raise NotFoundError(f"no payload object {path!r} in {endpoint}/{deployment}/{collection}")
    finally:
        source.storage.close()
