"""The pipeline's side of the local spool: what goes on it, and its uploads.

Durability "spool": `submit` encodes a record on the caller's thread and appends its line
to the open segment of its partition before returning; the writer seals a segment every
`flush_interval` (or at `object_bytes`) and uploads sealed segments, oldest first.
With either durability, `put_whole` takes an object storage refused (a failed commit or
payload), and the upload retries it on the pipeline's back-off. At start the writer adopts
what dead processes left (`adopt`); at close what is not uploaded stays for the next one.
"""

from __future__ import annotations

import contextlib
import logging
import time

from modeltap.context import new_id
from modeltap.errors import (
    BufferFullError,
    CollectionDisabledError,
    ModeltapError,
    ObjectExistsError,
)
from modeltap.layout import partition
from modeltap.pipeline.blobs import discard_payload, read_payload, refer_to_blob
from modeltap.pipeline.state import State
from modeltap.record import BLOB, Record, encode_lines
from modeltap.spool import Segment, Spool

__all__ = ["Spooler"]

log = logging.getLogger(__name__)


class Spooler:
    """Puts records and objects on a Spool and uploads its sealed segments."""

    def __init__(self, state: State, spool: Spool):
        self._state = state
        self.spool = spool
        self._stores = {route.storage.name: route.storage for route in state.routes.values()}
        self._open: dict[tuple[str, str], Segment] = {}  # (collection, partition) -> segment
        self._overloaded = False  # a "block" wait ended in a drop; no waiting until room
        self.records = 0  # own records on the spool, not uploaded yet

    # -- callers (durability "spool") ----------------------------------------------------

    def submit(self, record: Record, size: int = 0) -> None:
        """Encode here, on the caller's thread, and append the line to the spool before
        returning (the writer uploads sealed segments later). `size` is unused: the
        spool's room is counted in encoded bytes."""
        state = self._state
        route = state.routes.get(record.collection)
        if route is None:
            raise CollectionDisabledError(f"no route for collection {record.collection!r}")
        part = partition(state.rolling_rate, record.time)
        if record.kind == BLOB:
            payload = read_payload(record.data)
            discard_payload(record.data)
            blob_path = f"{route.prefix}/{part}/{record.id or new_id()}"
            with state.cond:
                self._reserve(record, len(payload))
                self.spool.add(route.storage.name, blob_path, payload, 0)
            refer_to_blob(record, route.storage.url(blob_path), blob_path, len(payload))
        data = b"".join(encode_lines([record], route.source))
        with state.cond:
            self._reserve(record, len(data))
            key = (record.collection, part)
            segment = self._open.get(key)
            news = segment is None  # the writer has a new segment to seal in time
            if segment is None:
                path = f"{route.prefix}/{part}/{state.writer_id.next()}.jsonl"
            else:
                path = segment.path
            segment = self._open[key] = self.spool.append(route.storage.name, path, data, 1)
            if segment.nbytes >= state.settings.object_bytes:
                self.spool.seal(self._open.pop(key).path)
                news = True  # and one to upload
            state.submitted += 1
            state.counters.accepted += 1
            self.records += 1
            state.counters.spooled += 1
            # Woken only with news: it already waits for the open segments' seal times.
            if news and state.writer_idle:
                state.cond.notify_all()

    def _reserve(self, record: Record, size: int) -> None:
        """Wait (under the lock) for room in the spool as the overflow policy says."""
        state = self._state
        if state.closed:
            raise CollectionDisabledError("collection is shut down; record not accepted")
        if self.spool.has_room(size):
            return
        s = state.settings
        wait = s.block_timeout if s.overflow == "block" and not self._overloaded else 0
        deadline = time.monotonic() + wait
        while not self.spool.has_room(size):
            left = deadline - time.monotonic()
            if left <= 0 or state.closed:
                self._overloaded = self._overloaded or wait > 0
                state.counters.dropped += 1
                raise BufferFullError(
                    f"spool full ({self.spool.nbytes} of {self.spool.cap_bytes} bytes at "
                    f"{self.spool.root}): record of {record.collection!r} dropped (overflow "
                    f"policy {s.overflow!r}); storage is slower than collection or unreachable"
                )
            state.cond.notify_all()
            state.cond.wait(min(left, 0.1))

    # -- objects storage refused ---------------------------------------------------------

    def put_whole(self, datastore: str, path: str, data: bytes, records: int) -> bool:
        """Put one whole object on the spool (sealed); False when there is no room."""
        with self._state.cond:
            if not self.spool.has_room(len(data)):
                return False
            try:
                self.spool.add(datastore, path, data, records)
            except (OSError, ModeltapError):
                log.exception("modeltap: could not spool %s", path)
                return False
            self.records += records
            self._state.counters.spooled += records
            return True

    # -- the writer ----------------------------------------------------------------------

    def adopt(self) -> None:
        """Take over what processes that died left in the spool folder."""
        with self._state.cond:
            try:
                self.spool.adopt()
            except OSError:
                log.exception("modeltap: could not read the spool at %s", self.spool.root)

    def ready(self) -> bool:
        """Whether there is a segment to seal or upload now (not while backing off)."""
        if not self._state.backoff.ready():
            return False
        if self.spool.has_sealed():
            return True
        return any(self._seal_due(segment) for segment in self._open.values())

    def due(self) -> float | None:
        """When there is work next, back-off aside (None: nothing waits)."""
        dues = []
        if self.spool.has_sealed():
            dues.append(self._state.backoff.retry_at)
        if self._open:
            if self._state.flush_requested:
                dues.append(time.monotonic())
            else:
                oldest = min(segment.opened for segment in self._open.values())
                dues.append(oldest + self._state.settings.flush_interval)
        return min(dues) if dues else None

    def has_uploads(self) -> bool:
        return self.spool.has_sealed()

    def seal(self, everything: bool = False) -> None:
        """Seal the open segments that are due (all of them with everything); under the lock."""
        for key, segment in list(self._open.items()):
            if everything or self._seal_due(segment):
                self.spool.seal(self._open.pop(key).path)

    def _seal_due(self, segment: Segment) -> bool:
        return (
            bool(self._state.flush_requested)
            or self._state.closed
            or time.monotonic() - segment.opened >= self._state.settings.flush_interval
        )

    def upload(self) -> None:
        """Seal the segments that are due, then upload sealed segments, oldest first, until
        one fails (the rest wait for the back-off)."""
        state = self._state
        with state.cond:
            self.seal()
        while state.backoff.ready():
            with state.cond:
                segment = self.spool.take_sealed()
            if segment is None:
                return
            if not self._upload(segment):
                return

    def _upload(self, segment: Segment) -> bool:
        """Upload one sealed segment; False when storage failed (it is put back)."""
        state = self._state
        storage = self._stores.get(segment.datastore)
        if storage is None:
            log.error(
                "modeltap: spooled %s names datastore %r, which this deployment does not "
                "use; left in the spool",
                segment.file,
                segment.datastore,
            )
            return True
        started = time.monotonic()
        try:
            data = self.spool.read(segment)
            # Already there: uploaded before a crash or an ambiguous failure; once is enough.
            with contextlib.suppress(ObjectExistsError):
                storage.put(segment.path, data, overwrite=False)
        except Exception as exc:
            delay = state.storage_failed()
            with state.cond:
                self.spool.put_back(segment)
            log.warning(
                "modeltap: upload of %s failed (%s); retrying in %.1fs", segment.path, exc, delay
            )
            return False
        state.backoff.succeeded()
        with state.cond:
            if state.abandoned:
                return False
            self.spool.remove(segment)
            if segment.own:
                self.records -= segment.records
            self._overloaded = False
            state.cond.notify_all()  # room in the spool for blocked submitters
        lines = data.count(b"\n") if segment.path.endswith(".jsonl") else 0
        # an adopted segment's records were not counted as they came: one per line
        records = segment.records if segment.own else lines
        state.count_written(time.monotonic() - started, len(data), records, lines, own=segment.own)
        return True

    def close(self) -> None:
        """Seal what is open and let go of the spool folder (under the lock); segments not
        uploaded stay on disk for the next process."""
        self._open.clear()
        self.spool.close()

    @property
    def nbytes(self) -> int:
        return self.spool.nbytes
