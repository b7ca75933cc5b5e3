"""The lines of stored objects and their times, without parsing every line.

Tails, searches and summaries need the time of every line but the whole record of only a
few. Lines that modeltap writes start with the same envelope (record.py: specversion, id,
source, type, datacontenttype, then time), so one regular expression over an object finds
every line's time (`scan`); a line is parsed whole only when it is chosen. An object with
any other line (another writer's key order, an escaped quote in the envelope, a blank line)
is parsed line by line instead.

`Reader` picks the newest lines of a collection's objects, reading partitions from the
newest backwards (modeltap.tail uses it). Scanned objects are kept between operations in
`SCANNED`, up to CACHE_BYTES: objects are written whole and never changed (every flush
writes a new one), so an object's location and size name its content, and a page that
reads the same partitions again (the next page, another filter) only looks them up.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import logging
import operator
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import orjson

from modeltap.errors import ModeltapError
from modeltap.read._parse import py_time
from modeltap.read._range import partition_of
from modeltap.record import no_line_breaks
from modeltap.storage.base import ObjectInfo, Storage

__all__ = [
    "OLDEST",
    "SCANNED",
    "Line",
    "Lines",
    "Reader",
    "ScanCache",
    "by_span",
    "matches",
    "scan",
    "time_range",
]

log = logging.getLogger(__name__)

OLDEST = datetime.min.replace(tzinfo=UTC)  # the sort key of a line without a time
THREADS = 8  # objects fetched at once
CACHE_BYTES = 128 * 2**20  # scanned objects kept between operations (about their size)

# The envelope up to the time, right after a newline: each match is one line's own
# top-level `time` (every value before it is a plain string, so no key inside `data` can
# come first). A literal start lets the regex engine skip ahead fast (no `^`).
_ENVELOPE_TIME = re.compile(
    rb'\n\{"specversion":"[^"\\\n]*","id":"[^"\\\n]*","source":"[^"\\\n]*",'
    rb'"type":"[^"\\\n]*","datacontenttype":"[^"\\\n]*","time":"([^"\\\n]*)"'
)

Span = tuple[datetime, datetime]
Key = tuple[datetime, str, int, int]  # (time or OLDEST, object path, line number, k)


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


def order(line: Line) -> tuple[datetime, str, int]:
    return (line.time or OLDEST, line.path, line.index)


@dataclass
class Lines:
    """The JSON-object lines of one object: raw bytes, line numbers and times."""

    raw: list[bytes]  # without their newline
    index: list[int]  # line number in the object, from 0
    times: list[datetime | None]
    bad: int = 0  # lines that are not JSON objects (left out)
    parsed: dict[int, dict[str, Any]] = field(default_factory=dict)  # k -> record, when known
    dropped: set[int] = field(default_factory=set)  # k found not to be a JSON object
    ordered: bool = False  # every line has a time, in order (one writer's flush usually is)

    def check_order(self) -> Lines:
        times = cast("list[datetime]", self.times)
        self.ordered = None not in self.times and all(map(operator.le, times, times[1:]))
        return self

    def record(self, k: int) -> dict[str, Any] | None:
        """The k-th line parsed; None when it turns out not to be a JSON object (it is then
        counted in `bad` and left out from then on)."""
        found = self.parsed.get(k)
        if found is not None:
            return found
        try:
            obj = orjson.loads(self.raw[k])
        except orjson.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict):
            self.dropped.add(k)
            self.bad += 1
            return None
        self.parsed[k] = obj
        return obj


def scan(data: bytes) -> Lines:
    """The lines of an object with their times."""
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    stamps = _ENVELOPE_TIME.findall(b"\n" + data)
    if len(stamps) == len(lines):  # every line starts with modeltap's envelope
        times = {s: py_time(s.decode("ascii", "replace")) for s in set(stamps)}
        return Lines(lines, list(range(len(lines))), [times[s] for s in stamps]).check_order()
    out = Lines([], [], [])
    for index, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict):
            out.bad += 1
            continue
        out.parsed[len(out.raw)] = obj
        out.raw.append(raw)
        out.index.append(index)
        out.times.append(py_time(obj.get("time")))
    return out.check_order()


def time_range(data: bytes) -> tuple[datetime | None, datetime | None]:
    """The earliest and latest line time of an object."""
    stamps = _ENVELOPE_TIME.findall(b"\n" + data)
    lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    if stamps and len(stamps) == lines and {len(s) for s in stamps} == {20}:
        # all YYYY-MM-DDTHH:MM:SSZ (as modeltap writes them): text order is time order
        first, last = min(stamps), max(stamps)
        return py_time(first.decode("ascii", "replace")), py_time(last.decode("ascii", "replace"))
    times = [t for t in scan(data).times if t is not None]
    return min(times, default=None), max(times, default=None)


def by_span(
    infos: Iterable[ObjectInfo], prefix: str
) -> tuple[dict[Span, list[ObjectInfo]], list[ObjectInfo]]:
    """Objects by partition [start, end), and those outside partition folders (any time)."""
    groups: dict[Span, list[ObjectInfo]] = {}
    loose: list[ObjectInfo] = []
    for info in infos:
        span = partition_of(info.path, prefix)[1]
        if span is None:
            loose.append(info)
        else:
            groups.setdefault(span, []).append(info)
    return groups, loose


def _in(t: datetime | None, start: datetime | None, end: datetime | None) -> bool:
    if start is None and end is None:
        return True
    return t is not None and (start is None or t >= start) and (end is None or t < end)


def matches(
    data: bytes,
    correlation_id: str,
    path: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Iterator[Line]:
    """Lines of one object whose correlationid is this one, within [start, end). Only the
    lines holding the id as modeltap writes it are parsed."""
    needle = no_line_breaks(orjson.dumps(correlation_id))
    at = data.find(needle)
    while at != -1:
        begin = data.rfind(b"\n", 0, at) + 1
        stop = data.find(b"\n", at)
        stop = len(data) if stop == -1 else stop
        raw = data[begin:stop]
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict) and str(obj.get("correlationid")) == correlation_id:
            t = py_time(obj.get("time"))
            if _in(t, start, end):
                yield Line(raw, obj, t, path, data.count(b"\n", 0, begin))
        at = data.find(needle, stop)


class ScanCache:
    """Scanned objects by (location, size), least recently used dropped past max_bytes."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, int], tuple[Lines, int]] = OrderedDict()
        self._bytes = 0

    def get(self, key: tuple[str, int]) -> Lines | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found[0]

    def put(self, key: tuple[str, int], lines: Lines, nbytes: int) -> None:
        with self._lock:
            if key in self._items or nbytes > self.max_bytes:
                return
            self._items[key] = (lines, nbytes)
            self._bytes += nbytes
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


SCANNED = ScanCache(CACHE_BYTES)


class Reader:
    """Objects of one collection folder, fetched and scanned once per operation."""

    def __init__(self, storage: Storage, prefix: str):
        self.storage = storage
        self.prefix = prefix
        self.bad_lines = 0  # lines seen that are not JSON objects (skipped)
        self._cache: dict[str, Lines] = {}

    def clear(self) -> None:
        self._cache.clear()

    def choose(
        self,
        infos: Iterable[ObjectInfo],
        n: int,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[Key]:
        """The keys of the newest n lines within [start, end), oldest first. Reads
        partitions from the newest backwards until no unread one can hold a line newer than
        the n-th newest line read; parses no line."""
        groups, loose = by_span(infos, self.prefix)
        spans = sorted(groups, reverse=True)
        # later_end[i]: the latest end among spans[i:] (rolling rates may have changed)
        later_end: list[datetime] = []
        for span in reversed(spans):
            later_end.append(max(span[1], later_end[-1]) if later_end else span[1])
        later_end.reverse()
        chosen = heapq.nlargest(n, self._keys(loose, start, end, n))
        for i, span in enumerate(spans):
            if len(chosen) >= n:
                cut = chosen[-1][0]
                if cut is not OLDEST and later_end[i] <= cut:
                    break
            more = self._keys(groups[span], start, end, n)
            chosen = heapq.nlargest(n, itertools.chain(chosen, more))
        return chosen[::-1]

    def lines_of(self, keys: list[Key]) -> list[Line] | None:
        """These lines parsed, or None when one is not a JSON object after all (it is left
        out from then on: choose again)."""
        lines = [self._line(key) for key in keys]
        return None if any(line is None for line in lines) else lines  # type: ignore[return-value]

    def lines(self, infos: list[ObjectInfo]) -> list[Line]:
        """Every line of these objects, oldest first."""
        keys = sorted(self._keys(infos, None, None))
        return [line for line in map(self._line, keys) if line is not None]

    def fetch(self, infos: list[ObjectInfo]) -> list[bytes]:
        """The objects' bytes (an unreadable one is skipped with a warning: b"")."""
        if len(infos) <= 1:
            return [self._get(info) for info in infos]
        with ThreadPoolExecutor(min(THREADS, len(infos))) as pool:
            return list(pool.map(self._get, infos))

    def _keys(
        self,
        infos: list[ObjectInfo],
        start: datetime | None,
        end: datetime | None,
        n: int | None = None,
    ) -> Iterator[Key]:
        """(time, path, line number, k) of the lines within the range: of each object, only
        its newest n when n is given and its lines are in time order."""
        todo = []
        for info in infos:
            if info.path in self._cache:
                continue
            kept = SCANNED.get((self.storage.url(info.path), info.size))
            if kept is None:
                todo.append(info)
            else:
                self._cache[info.path] = kept
                self.bad_lines += kept.bad
        for info, data in zip(todo, self.fetch(todo), strict=True):
            scanned = self._cache[info.path] = scan(data)
            self.bad_lines += scanned.bad
            if data:  # not an object that could not be read
                key = (self.storage.url(info.path), info.size)
                SCANNED.put(key, scanned, len(data) + 64 * len(scanned.raw))
        ranged = start is not None or end is not None
        for info in infos:
            lines = self._cache[info.path]
            path, index, dropped, times = info.path, lines.index, lines.dropped, lines.times
            if lines.ordered and n is not None:
                # in time order: the newest n within the range are the last n before `end`
                known = cast("list[datetime]", times)
                lo = 0 if start is None else bisect.bisect_left(known, start)
                hi = len(known) if end is None else bisect.bisect_left(known, end)
                given = 0
                for k in range(hi - 1, lo - 1, -1):
                    if k not in dropped:
                        yield (known[k], path, index[k], k)
                        given += 1
                        if given == n:
                            break
                continue
            # newest first: lines are mostly in time order, so few replace a chosen one
            for k in range(len(times) - 1, -1, -1):
                t = times[k]
                if k in dropped or (ranged and not _in(t, start, end)):
                    continue
                yield (t or OLDEST, path, index[k], k)

    def _line(self, key: Key) -> Line | None:
        t, path, index, k = key
        lines = self._cache[path]
        record = lines.record(k)
        if record is None:
            self.bad_lines += 1
            return None
        return Line(lines.raw[k], record, None if t is OLDEST else t, path, index)

    def _get(self, info: ObjectInfo) -> bytes:
        try:
            return self.storage.get(info.path)
        except ModeltapError as exc:
            log.warning("modeltap: skipped %s: could not be read: %s", info.path, exc)
            return b""
