"""The one pipeline every record goes through: buffer -> batch -> encode -> commit.

collect() hands a Record to `submit`, which only appends to a bounded buffer. One
background writer thread takes what is waiting (after a short batching window),
encodes it to JSON lines, groups lines by object (collection + partition), and
commits one new object per group every `flush_interval` seconds, or sooner when
a group grows past `object_bytes`, or on flush()/close().

Nothing accepted is lost silently: when the buffer is full the overflow policy
applies ("block" waits up to `block_timeout`, then drops; "drop" drops at once;
"raise" raises BufferFullError) and every drop is counted and reported. After a wait
ends in a drop, "block" drops at once until the writer makes room again: a storage
outage holds a caller (a server's event loop) once, not for every record. A failed
commit keeps its lines and is retried with backoff. At close(), what a writer stuck in
a storage call still holds is put on the spool by the closing thread, or counted dropped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from modeltap.config import PipelineSettings
from modeltap.context import new_id
from modeltap.errors import (
    BufferFullError,
    CollectionDisabledError,
    ModeltapError,
    ObjectExistsError,
)
from modeltap.layout import RollingRate, WriterId, partition
from modeltap.record import BLOB, FRAME, JSON, Record, encode_lines, json_line
from modeltap.spool import Segment, Spool
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
    __slots__ = ("attempts", "chunks", "nbytes", "path", "records")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.nbytes = 0
        self.records = 0
        self.path = ""  # named at the first commit attempt and kept for retries
        self.attempts = 0


class Pipeline:
    def __init__(
        self,
        routes: dict[str, Route],
        settings: PipelineSettings,
        rolling_rate: RollingRate,
        on_drop: Callable[[int, BaseException], None] | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
    ):
        """spool_dir: where objects wait on disk when storage fails, and every record with
        durability "spool" (required then). None: no spool, a failed commit waits in memory."""
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
        self._shutdown_deadline = 0.0
        self._abandoned = False  # close() gave up on a stuck writer and took its records
        self._overloaded = False  # a "block" wait ended in a drop; no waiting until room
        self._in_spool = 0  # own records on the spool, not uploaded yet
        self._retry_at = 0.0
        self._failures = 0
        self._stores = {route.storage.name: route.storage for route in routes.values()}
        self.spool = Spool(Path(spool_dir), settings.spool_bytes) if spool_dir else None
        self._durable = settings.durability == "spool"
        if self._durable and self.spool is None:
            raise ValueError('durability "spool" needs a spool_dir')
        self._open: dict[tuple[str, str], Segment] = {}  # (collection, partition) -> segment
        self._thread = threading.Thread(target=self._run, name="modeltap-writer", daemon=True)
        self._thread.start()

    # -- request path -------------------------------------------------------------------

    def submit(self, record: Record, size: int = 1024) -> None:
        """Queue a record, or count it dropped and raise BufferFullError when there is no room
        (at once under "drop" and "raise", after `block_timeout` under "block")."""
        if self._durable:
            self._submit_to_spool(record)
            return
        if type(record.data) is bytes and record.kind in (JSON, FRAME):
            # Cheap to make the line here, and then the writer holds the interpreter lock
            # only a moment per batch instead of taking turns with the caller's event loop.
            route = self.routes.get(record.collection)
            if route is not None:
                with contextlib.suppress(Exception):  # the writer reports it as before
                    record.line = json_line(record, route.source)
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

    def _submit_to_spool(self, record: Record) -> None:
        """Durability "spool": encode here, on the caller's thread, and append the line to
        the local spool before returning (the writer uploads sealed segments later)."""
        route = self.routes.get(record.collection)
        if route is None:
            raise CollectionDisabledError(f"no route for collection {record.collection!r}")
        part = partition(self.rolling_rate, record.time)
        assert self.spool is not None
        if record.kind == BLOB:
            payload = _read_payload(record.data)
            _discard_payload(record.data)
            blob_path = f"{route.prefix}/{part}/{record.id or new_id()}"
            with self._cond:
                self._reserve_spool(record, len(payload))
                self.spool.add(route.storage.name, blob_path, payload, 0)
            _refer_to_blob(record, route.storage.url(blob_path), blob_path, len(payload))
        data = b"".join(encode_lines([record], route.source))
        with self._cond:
            self._reserve_spool(record, len(data))
            key = (record.collection, part)
            segment = self._open.get(key)
            news = segment is None  # the writer has a new segment to seal in time
            if segment is None:
                path = f"{route.prefix}/{part}/{self.writer_id.next()}.jsonl"
            else:
                path = segment.path
            segment = self._open[key] = self.spool.append(route.storage.name, path, data, 1)
            if segment.nbytes >= self.settings.object_bytes:
                self.spool.seal(self._open.pop(key).path)
                news = True  # and one to upload
            self._submitted += 1
            self._in_spool += 1
            self.counters.accepted += 1
            self.counters.spooled += 1
            # Woken only with news: it already waits for the open segments' seal times.
            if news and self._writer_idle:
                self._cond.notify_all()

    def _reserve_spool(self, record: Record, size: int) -> None:
        """Wait (under the lock) for room in the spool as the overflow policy says."""
        assert self.spool is not None
        if self._closed:
            raise CollectionDisabledError("collection is shut down; record not accepted")
        if self.spool.has_room(size):
            return
        s = self.settings
        wait = s.block_timeout if s.overflow == "block" and not self._overloaded else 0
        deadline = time.monotonic() + wait
        while not self.spool.has_room(size):
            left = deadline - time.monotonic()
            if left <= 0 or self._closed:
                self._overloaded = self._overloaded or wait > 0
                self.counters.dropped += 1
                raise BufferFullError(
                    f"spool full ({self.spool.nbytes} of {self.spool.cap_bytes} bytes at "
                    f"{self.spool.root}): record of {record.collection!r} dropped (overflow "
                    f"policy {s.overflow!r}); storage is slower than collection or unreachable"
                )
            self._cond.notify_all()
            self._cond.wait(min(left, 0.1))

    def _seal(self, everything: bool = False) -> None:
        """Seal the open segments that are due (all of them with everything)."""
        assert self.spool is not None
        for key, segment in list(self._open.items()):
            if everything or self._seal_due(segment):
                self.spool.seal(self._open.pop(key).path)

    def _wait_for_room(self, size: int) -> bool:
        s = self.settings
        if s.overflow != "block" or self._overloaded:
            return False
        deadline = time.monotonic() + s.block_timeout
        while len(self._queue) >= s.buffer_records or self._queued_bytes + size > s.buffer_bytes:
            if self._closed:
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                self._overloaded = True  # until the writer makes room: see _take
                return False
            self._cond.notify_all()
            self._cond.wait(min(left, 0.1))
        return True

    def add_commit_listener(self, listener: Callable[[float, int, int], None]) -> None:
        """Call listener(seconds, bytes, records) after every object committed (metrics)."""
        self._commit_listeners.append(listener)

    def count_sampled_out(self) -> None:
        self.counters.sampled_out += 1

    def count_dropped(self, count: int, exc: BaseException) -> None:
        """Count and report records lost before they could be submitted (a payload that
        could not be made into a record, say): every record not stored is counted."""
        with self._cond:
            self.counters.dropped += count
        self._report_drop(count, exc)

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
        """Stop accepting, commit everything, stop the writer. True when nothing was left.

        With a spool, what storage would not take within the shutdown time stays in the
        spool and is uploaded by the next process that starts with it. Returns within
        about `timeout` even when a storage call hangs: the records the writer still holds
        are then spooled from here (or counted dropped when there is no room)."""
        started = time.monotonic()
        reserve = min(1.0, timeout / 4)  # to take over from a writer stuck in a storage call
        with self._cond:
            self._closed = True
            # the writer stops retrying a little before close() stops waiting for it
            self._shutdown_deadline = started + max(0.0, timeout - reserve - 0.5)
            self._cond.notify_all()
        self._thread.join(max(0.0, timeout - reserve))
        stuck = self._thread.is_alive()
        if stuck:
            self._rescue()
        with self._cond:
            left = self._submitted - self._settled
        if left:  # only records on the spool are neither written nor settled as dropped
            log.error(
                "modeltap: %d records were not written before shutdown (storage %s); they "
                "wait in the spool at %s for the next process started with it",
                left,
                "did not answer" if stuck else "failed",
                self.spool.root if self.spool else "(none)",
            )
        for route in {id(r.storage): r.storage for r in self.routes.values()}.values():
            route.close()
        return left == 0 and not stuck

    def _rescue(self) -> None:
        """close() ran out of time and the writer is still in a storage call: take the
        records it has not committed (queued, and encoded lines waiting for a commit) and
        put them on the spool, for the next process; count dropped what cannot go there,
        and the batch in the writer's hands. The writer touches nothing after this."""
        with self._cond:
            self._abandoned = True
            queued = [record for record, _ in self._queue]
            self._queue.clear()
            self._queued_bytes = 0
            pending, self._pending = self._pending, {}
            in_hand = (
                self._submitted
                - self._settled
                - len(queued)
                - sum(p.records for p in pending.values())
                - self._in_spool
            )
        lost = 0
        for (collection, part), p in pending.items():
            to = self.routes[collection]
            # Its name is kept: should the stuck commit land after all, the upload of this
            # copy finds it there (create-only) and it lands once.
            path = p.path or f"{to.prefix}/{part}/{self.writer_id.next()}.jsonl"
            if not self._spool_whole(to.storage.name, path, b"".join(p.chunks), p.records):
                lost += p.records
        groups: dict[tuple[str, str], list[Record]] = {}
        for r in queued:
            groups.setdefault((r.collection, partition(self.rolling_rate, r.time)), []).append(r)
        for (collection, part), members in groups.items():
            route = self.routes.get(collection)
            if route is None:
                lost += len(members)
                continue
            kept = []
            for r in members:
                if r.kind == BLOB:
                    r.id = r.id or new_id()
                    blob = f"{route.prefix}/{part}/{r.id}"
                    payload = _read_payload(r.data)
                    _discard_payload(r.data)
                    if not self._spool_whole(route.storage.name, blob, payload, 0):
                        lost += 1
                        continue
                    _refer_to_blob(r, route.storage.url(blob), blob, len(payload))
                kept.append(r)
            lines, records = self._encode_group(route, kept)
            path = f"{route.prefix}/{part}/{self.writer_id.next()}.jsonl"
            if lines and not self._spool_whole(route.storage.name, path, b"".join(lines), records):
                lost += records
        if lost:
            self._settle_dropped(
                lost,
                ModeltapError(
                    f"{lost} records dropped at shutdown: storage did not answer and the "
                    + ("spool is full" if self.spool else "pipeline has no spool")
                ),
            )
        if in_hand > 0:
            self._settle_dropped(
                in_hand,
                ModeltapError(
                    f"{in_hand} records dropped at shutdown: the writer had them in a "
                    "storage call that did not return in time"
                ),
            )
        if self.spool is not None:
            with self._cond:
                self._open.clear()
                self.spool.close()  # seals open segments; the next process adopts them

    def _spool_whole(self, datastore: str, path: str, data: bytes, records: int) -> bool:
        """Put one whole object on the spool (sealed); False when there is no room."""
        if self.spool is None:
            return False
        with self._cond:
            if not self.spool.has_room(len(data)):
                return False
            try:
                self.spool.add(datastore, path, data, records)
            except (OSError, ModeltapError):
                log.exception("modeltap: could not spool %s", path)
                return False
            self._in_spool += records
            self.counters.spooled += records
            return True

    @property
    def closed(self) -> bool:
        return self._closed

    def buffered(self) -> int:
        return len(self._queue)

    def spooled_bytes(self) -> int:
        return self.spool.nbytes if self.spool else 0

    # -- writer thread ------------------------------------------------------------------

    def _take(self) -> list[tuple[Record, int]] | None:
        s = self.settings
        with self._cond:
            while not self._queue or self._stalled():
                if self._closed:
                    return None
                if self._work_ready():
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
            self._overloaded = False
            self._cond.notify_all()  # room for blocked submitters
            return batch

    def _stalled(self) -> bool:
        """A failed commit waits in memory (no spool room): take no more until it lands, so
        the buffer fills and the overflow policy applies; memory stays bounded."""
        return any(p.attempts for p in self._pending.values())

    def _work_ready(self) -> bool:
        return bool(self._pending and self._commit_ready()) or self._spool_ready()

    def _wait_time(self) -> float | None:
        dues = []
        if self._pending:
            dues.append(self._last_commit + self.settings.flush_interval)
            if self._flush_requested:
                dues.append(self._retry_at)
        if self.spool is not None:
            if self.spool.sealed:
                dues.append(self._retry_at)
            opened = [segment.opened for segment in self._open.values()]
            if opened:
                due = min(opened) + self.settings.flush_interval
                dues.append(time.monotonic() if self._flush_requested else due)
        if not dues:
            return None
        return max(0.01, max(min(dues), self._retry_at) - time.monotonic())

    def _commit_ready(self) -> bool:
        now = time.monotonic()
        if now < self._retry_at:  # backing off after a failed commit
            return False
        return (
            # a flush commits once what was queued is encoded: one object, not one per batch
            (bool(self._flush_requested) and not self._queue)
            or self._closed
            or now - self._last_commit >= self.settings.flush_interval
            or any(p.nbytes >= self.settings.object_bytes for p in self._pending.values())
        )

    def _spool_ready(self) -> bool:
        if self.spool is None or time.monotonic() < self._retry_at:
            return False
        if self.spool.sealed:
            return True
        return any(self._seal_due(segment) for segment in self._open.values())

    def _seal_due(self, segment: Segment) -> bool:
        return (
            bool(self._flush_requested)
            or self._closed
            or time.monotonic() - segment.opened >= self.settings.flush_interval
        )

    def _run(self) -> None:
        if self.spool is not None:
            with self._cond:
                try:
                    self.spool.adopt()
                except OSError:
                    log.exception("modeltap: could not read the spool at %s", self.spool.root)
        while not self._abandoned:
            batch = self._take()
            if batch is None:
                break
            if batch:
                self._encode([record for record, _ in batch])
            if self._pending and self._commit_ready():
                self._commit()
            if self._spool_ready():
                self._upload_spool()
        # Shutdown: commit and upload what is left, retrying for a bounded time.
        while not self._abandoned:
            if self._pending:
                self._commit()
            if self.spool is not None:
                with self._cond:
                    self._seal(everything=True)
                if self.spool.sealed:
                    self._upload_spool()
            if not self._pending and not (self.spool and self.spool.sealed):
                break
            if time.monotonic() >= self._shutdown_deadline:
                break
            time.sleep(min(0.5, max(0.0, self._retry_at - time.monotonic())))
        if self._abandoned:
            return  # close() took over what was left
        if self._pending:
            lost = sum(p.records for p in self._pending.values())
            self._settle_dropped(
                lost,
                ModeltapError(
                    f"{lost} records could not be written before shutdown (storage unavailable)"
                ),
            )
            self._pending.clear()
        if self.spool is not None:
            with self._cond:
                self.spool.close()

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
            lines, count = self._encode_group(route, members)
            if not lines or self._abandoned:
                continue
            pending = self._pending.get((collection, part))
            if pending is None:
                pending = self._pending[(collection, part)] = _Pending()
            pending.chunks.extend(lines)
            pending.nbytes += sum(map(len, lines))
            pending.records += count

    def _encode_group(self, route: Route, members: list[Record]) -> tuple[list[bytes], int]:
        """The lines of one collection's records, and how many records they hold; a record
        that cannot be encoded is dropped (counted) without costing the others."""
        try:
            return encode_lines(members, route.source), len(members)
        except Exception:
            lines = []
            kept = 0
            for r in members:
                try:
                    lines.extend(encode_lines([r], route.source))
                    kept += 1
                except Exception as exc:
                    log.exception("modeltap: could not encode %r", r)
                    self._settle_dropped(1, exc)
            return lines, kept

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
                self._put_blob(route.storage, path, payload)
            except Exception as exc:
                log.exception("modeltap: could not store payload %s", path)
                self._settle_dropped(1, exc)
                continue
            finally:
                _discard_payload(r.data)
            _refer_to_blob(r, route.storage.url(path), path, len(payload))
            self.counters.bytes_written += len(payload)
            kept.append(r)
        return kept

    def _put_blob(self, storage: Storage, path: str, payload: bytes) -> None:
        for attempt in range(3):
            try:
                storage.put(path, payload, overwrite=False)
                return
            except ObjectExistsError:
                if attempt:
                    return  # an earlier attempt landed after all
                raise
            except Exception:
                self.counters.storage_errors += 1
                if attempt == 2:
                    if self.spool is not None:
                        with self._cond:
                            if self.spool.has_room(len(payload)) and not self._abandoned:
                                self.spool.add(storage.name, path, payload, 0)
                                return
                    raise
                time.sleep(_RETRY_DELAYS[attempt])

    def _commit(self) -> None:
        instance = None
        for key, pending in list(self._pending.items()):
            collection, part = key
            route = self.routes[collection]
            with self._cond:  # named under the lock: close() may take it over (_rescue)
                if self._abandoned:
                    return
                if not pending.path:
                    instance = instance or self.writer_id.next()
                    pending.path = f"{route.prefix}/{part}/{instance}.jsonl"
            data = b"".join(pending.chunks)
            started = time.monotonic()
            pending.attempts += 1
            try:
                # Create-only: a retry after an ambiguous failure (a timeout after the
                # store took the object) finds it there instead of writing it twice.
                route.storage.put(pending.path, data, overwrite=False)
            except ObjectExistsError:
                if pending.attempts == 1:  # a name clash, not a retry: take a new name
                    pending.path = ""
                    return
            except Exception as exc:
                delay = self._back_off()
                spooled = self._spool_object(route.storage.name, pending, data)
                log.warning(
                    "modeltap: commit of %s failed (%s); %sretrying in %.1fs",
                    pending.path,
                    exc,
                    "spooled, " if spooled else "",
                    delay,
                )
                if not spooled:
                    return  # it waits in memory: _stalled() holds the writer back
                self._pending.pop(key, None)
                continue
            self._failures = 0
            took = time.monotonic() - started
            log.debug(
                "committed %s: %d records in %.1f ms", pending.path, pending.records, took * 1000
            )
            self._pending.pop(key, None)
            self._count_written(took, len(data), pending.records, len(pending.chunks), own=True)
        self._last_commit = time.monotonic()

    def _back_off(self) -> float:
        """Count a storage failure and schedule the next attempt; the delay chosen."""
        self.counters.storage_errors += 1
        delay = _RETRY_DELAYS[min(self._failures, len(_RETRY_DELAYS) - 1)]
        self._failures += 1
        self._retry_at = time.monotonic() + delay
        return delay

    def _spool_object(self, datastore: str, pending: _Pending, data: bytes) -> bool:
        """Move a failed commit to the spool (memory stays bounded during an outage)."""
        if self._abandoned:
            return False
        return self._spool_whole(datastore, pending.path, data, pending.records)

    def _upload_spool(self) -> None:
        """Seal segments that are due, then upload sealed segments, oldest first."""
        assert self.spool is not None
        spool = self.spool
        with self._cond:
            self._seal()
        while spool.sealed and time.monotonic() >= self._retry_at:
            with self._cond:
                segment = spool.sealed.popleft()
            storage = self._stores.get(segment.datastore)
            if storage is None:
                log.error(
                    "modeltap: spooled %s names datastore %r, which this deployment does not "
                    "use; left in the spool",
                    segment.file,
                    segment.datastore,
                )
                continue
            started = time.monotonic()
            try:
                data = spool.read(segment)
                # Already there: uploaded before a crash or an ambiguous failure; once is enough.
                with contextlib.suppress(ObjectExistsError):
                    storage.put(segment.path, data, overwrite=False)
            except Exception as exc:
                delay = self._back_off()
                with self._cond:
                    spool.sealed.appendleft(segment)
                log.warning(
                    "modeltap: upload of %s failed (%s); retrying in %.1fs",
                    segment.path,
                    exc,
                    delay,
                )
                return
            self._failures = 0
            with self._cond:
                if self._abandoned:
                    return
                spool.remove(segment)
                if segment.own:
                    self._in_spool -= segment.records
                self._overloaded = False
                self._cond.notify_all()  # room in the spool for blocked submitters
            lines = data.count(b"\n") if segment.path.endswith(".jsonl") else 0
            # an adopted segment's records were not counted as they came: one per line
            records = segment.records if segment.own else lines
            self._count_written(
                time.monotonic() - started, len(data), records, lines, own=segment.own
            )

    def _count_written(
        self, took: float, nbytes: int, records: int, lines: int, *, own: bool
    ) -> None:
        c = self.counters
        c.bytes_written += nbytes
        c.objects_written += 1
        c.lines_written += lines
        with self._cond:
            c.written += records
            if own:  # records adopted from a dead process were never submitted here
                self._settled += records
            self._cond.notify_all()
        for listener in self._commit_listeners:
            try:
                listener(took, nbytes, records)
            except Exception:  # a metrics hook must not break the pipeline
                log.exception("commit listener failed")

    def _settle_dropped(self, count: int, exc: BaseException) -> None:
        with self._cond:
            self.counters.dropped += count
            self._settled += count
            self._cond.notify_all()
        self._report_drop(count, exc)


def _refer_to_blob(record: Record, url: str, path: str, size: int) -> None:
    """Turn a BLOB record into the line that points at its stored payload."""
    record.id = path.rsplit("/", 1)[-1]
    record.kind, record.data = JSON, orjson.dumps(url)
    record.extra = {
        **(record.extra or {}),
        "contentrange": f"bytes 0-{max(size - 1, 0)}/{size}",
        "datainblob": "true",
    }


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
