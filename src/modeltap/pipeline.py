"""The one pipeline every record goes through: buffer -> batch -> encode -> commit.

collect() hands a Record to `submit`, which only appends to a bounded buffer. One
background writer thread takes what is waiting (after a short batching window),
encodes it to JSON lines, groups lines by object (collection + partition), and
commits one new object per group every `flush_interval` seconds, or sooner when
a group grows past `object_bytes`, or on flush()/close().

Nothing accepted is lost silently: when the buffer is full the overflow policy
applies ("block" waits up to `block_timeout`, then drops; "drop" drops at once;
"raise" raises BufferFullError) and every drop is counted and reported. A failed
commit keeps its lines and is retried with backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import orjson

from modeltap.config import PipelineSettings
from modeltap.context import new_id
from modeltap.errors import BufferFullError, CollectionDisabledError, ModeltapError
from modeltap.layout import RollingRate, WriterId, partition
from modeltap.record import BLOB, JSON, Record, encode_lines
from modeltap.storage.base import Storage

__all__ = ["Counters", "Pipeline", "Route"]

log = logging.getLogger(__name__)

_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True)
class Route:
    """Where one collection's objects go."""

    storage: Storage
    prefix: str  # folder holding {partition}/{instance_id}.jsonl
    source: str  # the `source` field of its lines


class Counters:
    """Monotonic counts; read them with `snapshot()`."""

    FIELDS = (
        "accepted",
        "written",
        "dropped",
        "sampled_out",
        "bytes_written",
        "objects_written",
        "storage_errors",
        "lines_written",
        "spooled",
    )

    def __init__(self) -> None:
        self.accepted = self.written = self.dropped = self.sampled_out = 0
        self.bytes_written = self.objects_written = self.storage_errors = self.lines_written = 0
        self.spooled = 0  # records put on the local spool (durability or a storage outage)

    def snapshot(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.FIELDS}


class _Pending:
    __slots__ = ("chunks", "nbytes", "records")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.nbytes = 0
        self.records = 0


class Pipeline:
    def __init__(
        self,
        routes: dict[str, Route],
        settings: PipelineSettings,
        rolling_rate: RollingRate,
        on_drop: Callable[[int, BaseException], None] | None = None,
    ):
        self.routes = routes
        self.settings = settings
        self.rolling_rate = rolling_rate
        self.counters = Counters()
        self.writer_id = WriterId()
        self._on_drop = on_drop
        self._commit_listeners: list[Callable[[float, int, int], None]] = []
        self._queue: deque[tuple[Record, int]] = deque()
        self._queued_bytes = 0
        self._cond = threading.Condition(threading.Lock())
        self._writer_idle = False
        self._closed = False
        self._flush_requested = 0  # flush() calls waiting
        self._submitted = 0  # records ever queued
        self._settled = 0  # records written or dropped
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._last_commit = time.monotonic()
        self._retry_at = 0.0
        self._failures = 0
        self._thread = threading.Thread(target=self._run, name="modeltap-writer", daemon=True)
        self._thread.start()

    # -- request path -------------------------------------------------------------------

    def submit(self, record: Record, size: int = 1024) -> None:
        """Queue a record, or count it dropped and raise BufferFullError when there is no room
        (at once under "drop" and "raise", after `block_timeout` under "block")."""
        s = self.settings
        with self._cond:
            if self._closed:
                raise CollectionDisabledError("collection is shut down; record not accepted")
            full = (
                len(self._queue) >= s.buffer_records or self._queued_bytes + size > s.buffer_bytes
            )
            if full and not self._wait_for_room(size):
                self.counters.dropped += 1
                raise BufferFullError(
                    f"buffer full ({len(self._queue)} records, {self._queued_bytes} bytes): "
                    f"record of {record.collection!r} dropped (overflow policy {s.overflow!r}); "
                    "storage is slower than collection"
                )
            self._queue.append((record, size))
            self._queued_bytes += size
            self._submitted += 1
            self.counters.accepted += 1
            if self._writer_idle:
                self._cond.notify_all()

    def _wait_for_room(self, size: int) -> bool:
        s = self.settings
        if s.overflow != "block":
            return False
        deadline = time.monotonic() + s.block_timeout
        while len(self._queue) >= s.buffer_records or self._queued_bytes + size > s.buffer_bytes:
            if self._closed:
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._cond.notify_all()
            self._cond.wait(min(left, 0.1))
        return True

    def add_commit_listener(self, listener: Callable[[float, int, int], None]) -> None:
        """Call listener(seconds, bytes, records) after every object committed (metrics)."""
        self._commit_listeners.append(listener)

    def count_sampled_out(self) -> None:
        self.counters.sampled_out += 1

    def _report_drop(self, count: int, exc: BaseException) -> None:
        log.warning("%s", exc)
        if self._on_drop is not None:
            try:
                self._on_drop(count, exc)
            except Exception:  # a reporting hook must not break the pipeline
                log.exception("on_drop hook failed")

    # -- control ------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Commit everything accepted so far. True when done within timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._submitted
            self._flush_requested += 1
            self._cond.notify_all()
            try:
                while self._settled < target and self._thread.is_alive():
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self._cond.wait(0.1 if left is None else min(left, 0.1))
            finally:
                self._flush_requested -= 1
            return self._settled >= target

    def close(self, timeout: float = 30.0) -> bool:
        """Stop accepting, commit everything, stop the writer. True when nothing was left."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
        with self._cond:
            left = self._submitted - self._settled
        if left:
            log.error("modeltap: %d records were not written before shutdown timed out", left)
        for route in {id(r.storage): r.storage for r in self.routes.values()}.values():
            route.close()
        return left == 0 and not self._thread.is_alive()

    @property
    def closed(self) -> bool:
        return self._closed

    def buffered(self) -> int:
        return len(self._queue)

    # -- writer thread ------------------------------------------------------------------

    def _take(self) -> list[tuple[Record, int]] | None:
        s = self.settings
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                if self._pending and self._commit_ready():
                    return []
                self._writer_idle = True
                self._cond.wait(self._wait_time())
                self._writer_idle = False
            if (
                not self._closed
                and not self._flush_requested
                and len(self._queue) < s.batch_records
            ):
                # A short window gathers a batch: records of one request merge, and pandas'
                # per-call cost is paid once per batch.
                self._cond.wait(s.batch_window)
            # Small takes keep commits on time and hand the GIL back often: at most
            # batch_records records and about batch_bytes of estimated data.
            batch: list[tuple[Record, int]] = []
            taken = 0
            while self._queue and len(batch) < s.batch_records and taken < s.batch_bytes:
                item = self._queue.popleft()
                batch.append(item)
                taken += item[1]
            self._queued_bytes -= taken
            self._cond.notify_all()  # room for blocked submitters
            return batch

    def _wait_time(self) -> float | None:
        if not self._pending:
            return None
        due = self._last_commit + self.settings.flush_interval
        if self._flush_requested:
            due = self._retry_at
        return max(0.01, max(due, self._retry_at) - time.monotonic())

    def _commit_ready(self) -> bool:
        now = time.monotonic()
        if now < self._retry_at:  # backing off after a failed commit
            return False
        return (
            # a flush commits once what was queued is encoded: one object, not one per batch
            (bool(self._flush_requested) and not self._queue)
            or now - self._last_commit >= self.settings.flush_interval
            or any(p.nbytes >= self.settings.object_bytes for p in self._pending.values())
        )

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                break
            if batch:
                self._encode([record for record, _ in batch])
            if self._pending and self._commit_ready():
                self._commit()
        # Shutdown: commit what is left, retrying for a bounded time.
        deadline = time.monotonic() + 20
        while self._pending and time.monotonic() < deadline:
            self._commit()
            if self._pending:
                time.sleep(0.5)
        if self._pending:
            lost = sum(p.records for p in self._pending.values())
            self._settle_dropped(
                lost,
                ModeltapError(
                    f"{lost} records could not be written before shutdown (storage unavailable)"
                ),
            )
            self._pending.clear()

    def _encode(self, records: list[Record]) -> None:
        groups: dict[tuple[str, str], list[Record]] = {}
        for r in records:
            groups.setdefault((r.collection, partition(self.rolling_rate, r.time)), []).append(r)
        for (collection, part), members in groups.items():
            route = self.routes.get(collection)
            if route is None:
                self._settle_dropped(
                    len(members), ModeltapError(f"no route for collection {collection!r}")
                )
                continue
            members = self._store_blobs(route, part, members)
            try:
                lines = encode_lines(members, route.source)
            except Exception:
                # One bad record must not cost its batch: encode one by one, drop only it.
                lines = []
                for r in members:
                    try:
                        lines.extend(encode_lines([r], route.source))
                    except Exception as exc:
                        log.exception("modeltap: could not encode %r", r)
                        self._settle_dropped(1, exc)
                        members = [m for m in members if m is not r]
            if not lines:
                continue
            pending = self._pending.get((collection, part))
            if pending is None:
                pending = self._pending[(collection, part)] = _Pending()
            pending.chunks.extend(lines)
            pending.nbytes += sum(map(len, lines))
            pending.records += len(members)

    def _store_blobs(self, route: Route, part: str, members: list[Record]) -> list[Record]:
        """Write each BLOB record's payload as its own object, named by the record id, in
        the partition folder (R4.3, R4.4); its line then carries the location."""
        if not any(r.kind == BLOB for r in members):
            return members
        kept = []
        for r in members:
            if r.kind != BLOB:
                kept.append(r)
                continue
            r.id = r.id or new_id()
            path = f"{route.prefix}/{part}/{r.id}"
            try:
                payload = _read_payload(r.data)
                for attempt in range(3):
                    try:
                        route.storage.put(path, payload)
                        break
                    except Exception:
                        self.counters.storage_errors += 1
                        if attempt == 2:
                            raise
                        time.sleep(_RETRY_DELAYS[attempt])
            except Exception as exc:
                log.exception("modeltap: could not store payload %s", path)
                self._settle_dropped(1, exc)
                continue
            finally:
                _discard_payload(r.data)
            n = len(payload)
            r.kind, r.data = JSON, orjson.dumps(route.storage.url(path))
            r.extra = {
                **(r.extra or {}),
                "contentrange": f"bytes 0-{max(n - 1, 0)}/{n}",
                "datainblob": "true",
            }
            self.counters.bytes_written += n
            kept.append(r)
        return kept

    def _commit(self) -> None:
        instance = self.writer_id.next()
        for key in list(self._pending):
            collection, part = key
            pending = self._pending[key]
            route = self.routes[collection]
            path = f"{route.prefix}/{part}/{instance}.jsonl"
            data = b"".join(pending.chunks)
            started = time.monotonic()
            try:
                route.storage.put(path, data)
            except Exception as exc:
                self.counters.storage_errors += 1
                delay = _RETRY_DELAYS[min(self._failures, len(_RETRY_DELAYS) - 1)]
                self._failures += 1
                self._retry_at = time.monotonic() + delay
                log.warning(
                    "modeltap: commit of %s failed (%s); retrying in %.1fs", path, exc, delay
                )
                return
            self._failures = 0
            took = time.monotonic() - started
            log.debug("committed %s: %d records in %.1f ms", path, pending.records, took * 1000)
            for listener in self._commit_listeners:
                try:
                    listener(took, len(data), pending.records)
                except Exception:  # a metrics hook must not break the pipeline
                    log.exception("commit listener failed")
            del self._pending[key]
            c = self.counters
            c.bytes_written += len(data)
            c.objects_written += 1
            c.lines_written += len(pending.chunks)
            with self._cond:
                c.written += pending.records
                self._settled += pending.records
                self._cond.notify_all()
        self._last_commit = time.monotonic()

    def _settle_dropped(self, count: int, exc: BaseException) -> None:
        with self._cond:
            self.counters.dropped += count
            self._settled += count
            self._cond.notify_all()
        self._report_drop(count, exc)


def _read_payload(data: Any) -> bytes:
    """A BLOB's payload: bytes, or a spooled file (large bodies wait on disk, not in memory)."""
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    file: IO[bytes] = data
    file.seek(0)
    return file.read()


def _discard_payload(data: Any) -> None:
    close = getattr(data, "close", None)
    if callable(close):
        close()
