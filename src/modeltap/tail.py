"""The newest records of a collection, then the ones that arrive after them.

    from modeltap import tail

    for line in tail.tail("my_endpoint/blue/model_inputs", 5, workspace="ws"):
        print(line.time, line.correlationid, line.data)

`modeltap data tail` calls these functions. A tail reads partitions from the newest
backwards and stops as soon as it has enough lines. See docs/inspecting.md.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from modeltap.assets import Catalog
from modeltap.config import DEFAULT_DATASTORE, load_workspace
from modeltap.errors import ConfigError, ModeltapError
from modeltap.layout import DEFAULT_ROOT, collection_prefix, validate_name
from modeltap.read._load import _THREADS
from modeltap.read._parse import _py_time
from modeltap.read._range import MAX_PREFIXES, detect_depth, in_range, partition_of, plan_prefixes
from modeltap.read._source import NotFoundError, Source, _open, suggest
from modeltap.storage.base import ObjectInfo, Storage
from modeltap.storage.local import LocalStorage

__all__ = ["Line", "Tail", "open_tail", "parse_collection", "resolve_collection", "tail"]

log = logging.getLogger(__name__)

# A tail lists the partitions of these spans back from now, one after the other, and
# lists the whole collection only when they hold fewer lines than asked for.
TAIL_STAGES = (timedelta(hours=1), timedelta(days=1), timedelta(days=31))
# Following watches partitions from this long ago (late flushes, clock skew between
# writers) up to this far ahead, in at most FOLLOW_LISTINGS listings per poll.
FOLLOW_LOOKBACK = timedelta(minutes=15)
AHEAD = timedelta(hours=1)
FOLLOW_LISTINGS = 6
_OLDEST = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Line:
    """One stored line (one record) of a collection."""

    raw: bytes  # as stored, without its newline
    record: dict[str, Any]  # the parsed line
    time: datetime | None  # its `time`, None when missing or not a time
    path: str  # the object it came from
    index: int  # its line number in that object, from 0

    @property
    def correlationid(self) -> str | None:
        value = self.record.get("correlationid")
        return None if value is None else str(value)

    @property
    def data(self) -> Any:
        return self.record.get("data")


def _order(line: Line) -> tuple[datetime, str, int]:
    return (line.time or _OLDEST, line.path, line.index)


def parse_collection(text: str) -> tuple[str, str, str]:
    """(endpoint, deployment, collection) from 'ENDPOINT/DEPLOYMENT/COLLECTION'."""
    parts = text.strip().split("/") if isinstance(text, str) else []
    if len(parts) != 3:
        raise ConfigError(
            f"{text!r} is not ENDPOINT/DEPLOYMENT/COLLECTION, e.g. my_endpoint/blue/model_inputs"
        )
    endpoint, deployment, collection = parts
    return (
        validate_name(endpoint, "endpoint"),
        validate_name(deployment, "deployment"),
        validate_name(collection, "collection"),
    )


def resolve_collection(
    endpoint: str,
    deployment: str,
    collection: str,
    workspace: str | os.PathLike[str] | None = None,
) -> Source:
    """The folder of one collection: that of the asset registered for it (the most recently
    registered one, if several), else modelDataCollector/<e>/<d>/<c> in workspaceblobstore.

    Neither registered nor on disk: NotFoundError suggesting the closest collections."""
    validate_name(endpoint, "endpoint")
    validate_name(deployment, "deployment")
    validate_name(collection, "collection")
    ws = load_workspace(workspace)
    label = f"{endpoint}/{deployment}/{collection}"
    assets = Catalog(ws.root).list()
    matching = [
        a
        for a in assets
        if (a.endpoint, a.deployment, a.collection) == (endpoint, deployment, collection)
    ]
    if matching:
        asset = max(matching, key=lambda a: (a.created, a.version))
        return Source(_open(ws, asset.datastore), asset.path, label)
    storage = _open(ws, DEFAULT_DATASTORE)
    prefix = collection_prefix(DEFAULT_ROOT, endpoint, deployment, collection)
    if _exists(storage, prefix):
        return Source(storage, prefix, label)
    storage.close()
    known = sorted({f"{a.endpoint}/{a.deployment}/{a.collection}" for a in assets})
    raise NotFoundError(
        f"no collection {label!r} in workspace {str(ws.root)!r}: no asset is registered for "
        f"it and {DEFAULT_DATASTORE} has no folder {prefix!r}{suggest(label, known, 'collections')}"
    )


def _exists(storage: Storage, prefix: str) -> bool:
    if isinstance(storage, LocalStorage):  # its listing walks the whole folder first
        return Path(storage.url(prefix)).is_dir()
    return next(iter(storage.list(prefix)), None) is not None


def open_tail(target: str, workspace: str | os.PathLike[str] | None = None) -> Tail:
    """A Tail of 'ENDPOINT/DEPLOYMENT/COLLECTION' in the workspace."""
    return Tail(resolve_collection(*parse_collection(target), workspace=workspace))


def tail(
    target: str, n: int = 20, *, workspace: str | os.PathLike[str] | None = None
) -> list[Line]:
    """The newest n lines of 'ENDPOINT/DEPLOYMENT/COLLECTION', oldest first."""
    with open_tail(target, workspace) as t:
        return t.last(n)


class Tail:
    """The newest lines of one collection folder, then the lines that arrive after them.

    `last(n)` lists the partitions of the last hour, day, month (and only then the whole
    collection) until it has n lines, reading partitions from the newest backwards.
    `poll()` lists the partitions from FOLLOW_LOOKBACK ago on and returns the lines of
    objects that were not there at the previous call. Objects are written whole and never
    changed (every flush writes a new one), so new objects are exactly the new lines.
    """

    def __init__(self, source: Source):
        self.source = source
        self.bad_lines = 0  # lines seen that are not JSON objects (skipped)
        self._depth: int | None = None
        self._seen: set[str] | None = None
        self._cache: dict[str, list[Line]] = {}

    def __enter__(self) -> Tail:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.source.storage.close()

    def last(self, n: int) -> list[Line]:
        """The newest n lines, oldest first (by time, then object and line order)."""
        now = datetime.now(UTC)
        if n <= 0:
            self._seen = {info.path for info in self._window(now)}
            return []
        listed: dict[str, ObjectInfo] = {}
        depth = self._detect()
        try:
            if depth is not None:
                hi = now + AHEAD
                for back in TAIL_STAGES:
                    lo = now - back
                    listed.update((i.path, i) for i in self._list(lo, hi, depth, MAX_PREFIXES))
                    hi = lo
                    found = self._newest(listed.values(), n)
                    # Everything not listed is older than lo.
                    if len(found) == n and found[0].time is not None and found[0].time >= lo:
                        return found
            prefix = self.source.prefix
            listed.update((i.path, i) for i in in_range(self._all(), prefix, None, None))
            return self._newest(listed.values(), n)
        finally:
            self._seen = set(listed)
            self._cache.clear()

    def poll(self) -> list[Line]:
        """Lines of the objects written since the previous last() or poll(), oldest first.

        The first call without a last() before it only notes what is there."""
        window = self._window(datetime.now(UTC))
        seen, self._seen = self._seen, {info.path for info in window}
        if seen is None:
            return []
        try:
            lines = self._read([info for info in window if info.path not in seen])
        finally:
            self._cache.clear()
        return sorted(lines, key=_order)

    # -- listing --------------------------------------------------------------------------

    def _detect(self) -> int | None:
        if self._depth is None:
            self._depth = detect_depth(self.source.storage, self.source.prefix)
        return self._depth

    def _all(self) -> Iterator[ObjectInfo]:
        return self.source.storage.list(self.source.prefix)

    def _window(self, now: datetime) -> list[ObjectInfo]:
        depth = self._detect()
        if depth is None:  # no partition folders (yet): the whole folder
            return in_range(self._all(), self.source.prefix, None, None)
        return self._list(now - FOLLOW_LOOKBACK, now + AHEAD, depth, FOLLOW_LISTINGS)

    def _list(self, lo: datetime, hi: datetime, depth: int, limit: int) -> list[ObjectInfo]:
        """The line files of partitions overlapping [lo, hi), listed partition by partition
        (or by their parents, to stay within `limit` listings)."""
        storage, prefix = self.source.storage, self.source.prefix
        prefixes = plan_prefixes(lo, hi, depth, limit)
        if prefixes is None:
            return in_range(self._all(), prefix, lo, hi)
        folders = [f"{prefix}/{p}" if prefix else p for p in prefixes]
        if len(folders) <= 2:
            listed = [list(storage.list(f)) for f in folders]
        else:
            with ThreadPoolExecutor(min(_THREADS, len(folders))) as pool:
                listed = list(pool.map(lambda f: list(storage.list(f)), folders))
        return in_range([info for found in listed for info in found], prefix, lo, hi)

    # -- reading --------------------------------------------------------------------------

    def _newest(self, infos: Iterable[ObjectInfo], n: int) -> list[Line]:
        """Read partitions from the newest backwards until no unread one can hold a line
        newer than the n-th newest line read."""
        groups: dict[tuple[datetime, datetime], list[ObjectInfo]] = {}
        loose: list[ObjectInfo] = []
        for info in infos:
            span = partition_of(info.path, self.source.prefix)[1]
            if span is None:
                loose.append(info)  # outside partition folders: any time, always read
            else:
                groups.setdefault(span, []).append(info)
        spans = sorted(groups, reverse=True)
        # later_end[i]: the latest end among spans[i:] (rolling rates may have changed)
        later_end: list[datetime] = []
        for start_end in reversed(spans):
            later_end.append(max(start_end[1], later_end[-1]) if later_end else start_end[1])
        later_end.reverse()
        lines = sorted(self._read(loose), key=_order)[-n:]
        for i, span in enumerate(spans):
            if len(lines) >= n:
                cut = lines[0].time
                if cut is not None and later_end[i] <= cut:
                    break
            lines = sorted([*lines, *self._read(groups[span])], key=_order)[-n:]
        return lines

    def _read(self, infos: list[ObjectInfo]) -> list[Line]:
        todo = [info for info in infos if info.path not in self._cache]
        if len(todo) <= 1:
            parsed = [self._parse(info) for info in todo]
        else:
            with ThreadPoolExecutor(min(_THREADS, len(todo))) as pool:
                parsed = list(pool.map(self._parse, todo))
        for info, (lines, bad) in zip(todo, parsed, strict=True):
            self._cache[info.path] = lines
            self.bad_lines += bad
        return [line for info in infos for line in self._cache[info.path]]

    def _parse(self, info: ObjectInfo) -> tuple[list[Line], int]:
        """The object's lines, and how many of them are not JSON objects (skipped)."""
        try:
            data = self.source.storage.get(info.path)
        except ModeltapError as exc:
            log.warning("modeltap: skipped %s: could not be read: %s", info.path, exc)
            return [], 0
        out = []
        bad = 0
        for index, raw in enumerate(data.split(b"\n")):
            if not raw.strip():
                continue
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                obj = None
            if not isinstance(obj, dict):
                bad += 1
                continue
            out.append(Line(raw, obj, _py_time(obj.get("time")), info.path, index))
        return out, bad
