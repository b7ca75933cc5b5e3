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
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType

from modeltap.assets import Catalog
from modeltap.config import DEFAULT_DATASTORE, load_workspace
from modeltap.errors import ConfigError, NotFoundError
from modeltap.layout import DEFAULT_ROOT, collection_prefix, validate_name
from modeltap.read.shared import (
    FUTURE_SLACK,
    MAX_PREFIXES,
    OLDEST,
    THREADS,
    Key,
    Line,
    Reader,
    Source,
    by_span,
    detect_depth,
    in_range,
    matches,
    open_storage,
    order,
    plan_prefixes,
    suggest,
)
from modeltap.storage.base import ObjectInfo, Storage

__all__ = [
    "Found",
    "Line",
    "Tail",
    "open_tail",
    "parse_collection",
    "resolve_collection",
    "tail",
]

log = logging.getLogger(__name__)

# A tail lists the partitions of these spans back from now, one after the other, and
# lists the whole collection only when they hold fewer lines than asked for.
TAIL_STAGES = (timedelta(hours=1), timedelta(days=1), timedelta(days=31))
# Following watches partitions from this long ago (late flushes, clock skew between
# writers) up to this far ahead, in at most FOLLOW_LISTINGS listings per poll.
FOLLOW_LOOKBACK = timedelta(minutes=15)
AHEAD = timedelta(hours=1)
FOLLOW_LISTINGS = 6


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
        return Source(open_storage(ws, asset.datastore), asset.path, label)
    storage = open_storage(ws, DEFAULT_DATASTORE)
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
    folder = storage.local_path(prefix)
    if folder is not None:  # its listing walks the whole folder first
        return folder.is_dir()
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
    `newest()` and `page()` do the same within a time range; `find()` looks for one
    correlation id, newest partitions first. `poll()` lists the partitions from
    FOLLOW_LOOKBACK ago on and returns the lines of objects that were not there at the
    previous call. Objects are written whole and never changed (every flush writes a new
    one), so new objects are exactly the new lines.
    """

    def __init__(self, source: Source):
        self.source = source
        self._reader = Reader(source.storage, source.prefix)
        self._depth: int | None = None
        self._seen: set[str] | None = None

    @property
    def bad_lines(self) -> int:
        """Lines seen that are not JSON objects (skipped)."""
        return self._reader.bad_lines

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
        if n <= 0:
            self._seen = {info.path for info in self._window(datetime.now(UTC))}
            return []
        listed: dict[str, ObjectInfo] = {}
        try:
            return self._lines(n, None, None, listed, lambda keys: keys)
        finally:
            self._seen = set(listed)
            self._reader.clear()

    def newest(
        self, n: int, start: datetime | None = None, end: datetime | None = None
    ) -> list[Line]:
        """The newest n lines with start <= time < end, oldest first. With a start or an
        end, lines without a time are left out."""
        try:
            return self._lines(n, start, end, {}, lambda keys: keys) if n > 0 else []
        finally:
            self._reader.clear()

    def page(
        self,
        limit: int,
        offset: int = 0,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> tuple[list[Line], bool]:
        """One page of lines, newest first: the `limit` lines after the newest `offset`,
        and whether older ones follow. Reads only as far back as the page needs, and
        parses only the page's lines."""
        chosen = 0

        def newest_first(keys: list[Key]) -> list[Key]:
            nonlocal chosen
            chosen = len(keys)
            return keys[::-1][offset : offset + limit]

        try:
            lines = self._lines(offset + limit + 1, start, end, {}, newest_first)
        finally:
            self._reader.clear()
        return lines, chosen > offset + limit

    def find(
        self,
        correlation_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        max_bytes: int | None = None,
    ) -> Found:
        """The lines of one correlation id with start <= time < end, oldest first.

        Partitions are searched from the newest backwards; the search ends with the first
        partition that holds the id, or once `max_bytes` have been read (`Found.stopped_at`
        then says how far back it got). Only lines containing the id are parsed."""
        groups, loose = by_span(self._listing(start, end), self.source.prefix)
        spent = 0
        found: list[Line] = []
        for span in [None, *sorted(groups, reverse=True)]:
            infos = loose if span is None else groups[span]
            if not infos:
                continue
            if max_bytes is not None and spent >= max_bytes and span is not None:
                return Found(sorted(found, key=order), span[1])
            datas = self._reader.fetch(infos)
            spent += sum(map(len, datas))
            for info, data in zip(infos, datas, strict=True):
                found.extend(matches(data, correlation_id, info.path, start, end))
            if found:
                break
        return Found(sorted(found, key=order), None)

    def poll(self) -> list[Line]:
        """Lines of the objects written since the previous last() or poll(), oldest first.

        The first call without a last() before it only notes what is there."""
        window = self._window(datetime.now(UTC))
        seen, self._seen = self._seen, {info.path for info in window}
        if seen is None:
            return []
        try:
            return self._reader.lines([info for info in window if info.path not in seen])
        finally:
            self._reader.clear()

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

    def _listing(self, start: datetime | None, end: datetime | None) -> list[ObjectInfo]:
        """The line files of partitions overlapping [start, end)."""
        depth = self._detect()
        if depth is None or start is None:
            return in_range(self._all(), self.source.prefix, start, end)
        hi = end if end is not None else max(datetime.now(UTC), start) + FUTURE_SLACK
        return self._list(start, hi, depth, MAX_PREFIXES)

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
            with ThreadPoolExecutor(min(THREADS, len(folders))) as pool:
                listed = list(pool.map(lambda f: list(storage.list(f)), folders))
        return in_range([info for found in listed for info in found], prefix, lo, hi)

    # -- reading --------------------------------------------------------------------------

    def _lines(
        self,
        n: int,
        start: datetime | None,
        end: datetime | None,
        listed: dict[str, ObjectInfo],
        pick: Callable[[list[Key]], list[Key]],
    ) -> list[Line]:
        """The lines `pick` takes of the newest n (keys oldest first), parsed."""
        while True:
            lines = self._reader.lines_of(pick(self._newest_within(n, start, end, listed)))
            if lines is not None:
                return lines
            # a chosen line was not a JSON object after all: choose again without it

    def _newest_within(
        self,
        n: int,
        start: datetime | None,
        end: datetime | None,
        listed: dict[str, ObjectInfo],
    ) -> list[Key]:
        """List partitions of the last hour, day and month back from `end` (or now), then
        the rest of the range, until the newest n lines are certain."""
        now = datetime.now(UTC)
        depth = self._detect()
        if depth is not None:
            top = now if end is None else min(end, now)
            hi = now + AHEAD if end is None else min(end, now + AHEAD)
            for back in TAIL_STAGES:
                lo = top - back if start is None else max(top - back, start)
                if lo < hi:
                    listed.update((i.path, i) for i in self._list(lo, hi, depth, MAX_PREFIXES))
                    hi = lo
                found = self._reader.choose(listed.values(), n, start, end)
                # Everything not listed is older than lo, or outside the range.
                if end is not None and start is not None and lo <= start:
                    return found
                if len(found) == n and found[0][0] is not OLDEST and found[0][0] >= lo:
                    return found
        listed.update((i.path, i) for i in self._listing(start, end))
        return self._reader.choose(listed.values(), n, start, end)


@dataclass(frozen=True)
class Found:
    """What `Tail.find` found: the lines, and where it stopped when it ran out of bytes."""

    lines: list[Line]
    stopped_at: datetime | None  # partitions before this were not searched (None: all were)
