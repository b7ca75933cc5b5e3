"""Pipeline: the face the collectors use, and its lifecycle (flush, close, take-over).

It builds the parts and hands each call to the one that owns it: `Buffer` (intake.py)
for durability "memory", `Spooler` (spooler.py) for durability "spool" and for objects
storage refused, `Writer` (writer.py) for the background thread, `Commits` (commits.py)
for memory mode's pending objects. They share one `State` (state.py): a lock, the
counters and the back-off.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from modeltap.config import PipelineSettings
from modeltap.context import new_id
from modeltap.errors import ModeltapError
from modeltap.layout import RollingRate, WriterId
from modeltap.pipeline.blobs import discard_payload, read_payload, refer_to_blob
from modeltap.pipeline.commits import Commits
from modeltap.pipeline.intake import Buffer
from modeltap.pipeline.spooler import Spooler
from modeltap.pipeline.state import Counters, Route, State
from modeltap.pipeline.writer import Writer, encode_group, group_by_object
from modeltap.record import BLOB, Record
from modeltap.spool import Spool

__all__ = ["Pipeline"]

log = logging.getLogger(__name__)


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
        if settings.durability == "spool" and spool_dir is None:
            raise ValueError('durability "spool" needs a spool_dir')
        self._state = state = State(routes, settings, rolling_rate, on_drop)
        self._spooler = None
        if spool_dir is not None:
            self._spooler = Spooler(state, Spool(Path(spool_dir), settings.spool_bytes))
        self._buffer = Buffer(state)
        self._commits = Commits(state, self._spooler)
        self._writer = Writer(state, self._buffer, self._commits, self._spooler)
        # Durability "spool" appends on the caller's thread; "memory" queues for the writer.
        self._put = self._buffer.put
        if settings.durability == "spool" and self._spooler is not None:
            self._put = self._spooler.submit
        self._writer.thread.start()

    # Read from the one shared state (metrics, status and runtime use them).
    @property
    def routes(self) -> dict[str, Route]:
        return self._state.routes

    @property
    def settings(self) -> PipelineSettings:
        return self._state.settings

    @property
    def rolling_rate(self) -> RollingRate:
        return self._state.rolling_rate

    @property
    def writer_id(self) -> WriterId:
        return self._state.writer_id

    @property
    def counters(self) -> Counters:
        return self._state.counters

    # -- request path -------------------------------------------------------------------

    def submit(self, record: Record, size: int = 1024) -> None:
        """Accept a record, or count it dropped and raise BufferFullError when there is no
        room (at once under "drop" and "raise", after `block_timeout` under "block")."""
        self._put(record, size)

    def add_commit_listener(self, listener: Callable[[float, int, int], None]) -> None:
        """Call listener(seconds, bytes, records) after every object committed (metrics)."""
        self._state.commit_listeners.append(listener)

    def count_sampled_out(self) -> None:
        self.counters.sampled_out += 1

    def count_dropped(self, count: int, exc: BaseException) -> None:
        """Count and report records lost before they could be submitted (a payload that
        could not be made into a record, say): every record not stored is counted."""
        with self._state.cond:
            self.counters.dropped += count
        self._state.report_drop(count, exc)

    # -- control ------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Commit everything accepted so far. True when done within timeout."""
        state = self._state
        deadline = None if timeout is None else time.monotonic() + timeout
        with state.cond:
            target = state.submitted
            state.flush_requested += 1
            state.cond.notify_all()
            try:
                while state.settled < target and self._writer.thread.is_alive():
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    state.cond.wait(0.1 if left is None else min(left, 0.1))
            finally:
                state.flush_requested -= 1
            return state.settled >= target

    def close(self, timeout: float = 30.0) -> bool:
        """Stop accepting, commit everything, stop the writer. True when nothing was left.

        With a spool, what storage would not take within the shutdown time stays in the
        spool and is uploaded by the next process that starts with it. Returns within
        about `timeout` even when a storage call hangs: the records the writer still holds
        are then spooled from here (or counted dropped when there is no room)."""
        state = self._state
        started = time.monotonic()
        reserve = min(1.0, timeout / 4)  # to take over from a writer stuck in a storage call
        with state.cond:
            state.closed = True
            # the writer stops retrying a little before close() stops waiting for it
            state.shutdown_deadline = started + max(0.0, timeout - reserve - 0.5)
            state.cond.notify_all()
        self._writer.thread.join(max(0.0, timeout - reserve))
        stuck = self._writer.thread.is_alive()
        if stuck:
            self._take_over()
        with state.cond:
            left = state.submitted - state.settled
        if left:  # only records on the spool are neither written nor settled as dropped
            log.error(
                "modeltap: %d records were not written before shutdown (storage %s); they "
                "wait in the spool at %s for the next process started with it",
                left,
                "did not answer" if stuck else "failed",
                self._spooler.spool.root if self._spooler else "(none)",
            )
        for route in {id(r.storage): r.storage for r in self.routes.values()}.values():
            route.close()
        return left == 0 and not stuck

    def _take_over(self) -> None:
        """close() ran out of time and the writer is still in a storage call: take the
        records it has not committed (queued, encoded lines waiting for a commit, payloads
        waiting for a retry) and put them on the spool, for the next process; count dropped
        what cannot go there, and the batch in the writer's hands. The writer touches
        nothing after this."""
        state = self._state
        with state.cond:
            state.abandoned = True
            state.cond.notify_all()
            queued = self._buffer.drain()
            pending = self._commits.take_all()
            held = list(self._writer.held)
            self._writer.held.clear()
            in_hand = (
                state.submitted
                - state.settled
                - len(queued)
                - sum(p.records for p in pending.values())
                - len(held)
                - (self._spooler.records if self._spooler else 0)
            )
        lost = 0
        for (collection, part), p in pending.items():
            to = self.routes[collection]
            # Its name is kept: should the stuck commit land after all, the upload of this
            # copy finds it there (create-only) and it lands once.
            path = p.path or f"{to.prefix}/{part}/{self.writer_id.next()}.jsonl"
            if not self._spool_whole(to.storage.name, path, b"".join(p.chunks), p.records):
                lost += p.records
        for h in held:
            if self._spool_whole(h.route.storage.name, h.path, h.payload, 0):
                refer_to_blob(h.record, h.route.storage.url(h.path), h.path, len(h.payload))
                queued.append(h.record)  # its line goes with the queued records'
            else:
                lost += 1
        for (collection, part), members in group_by_object(self.rolling_rate, queued).items():
            lost += self._spool_records(collection, part, members)
        if lost:
            state.settle_dropped(
                lost,
                ModeltapError(
                    f"{lost} records dropped at shutdown: storage did not answer and the "
                    + ("spool is full" if self._spooler else "pipeline has no spool")
                ),
            )
        if in_hand > 0:
            state.settle_dropped(
                in_hand,
                ModeltapError(
                    f"{in_hand} records dropped at shutdown: the writer had them in a "
                    "storage call that did not return in time"
                ),
            )
        if self._spooler is not None:
            with state.cond:
                self._spooler.close()  # seals open segments; the next process adopts them

    def _spool_records(self, collection: str, part: str, members: list[Record]) -> int:
        """Spool queued records of one object, payloads first; how many could not go."""
        route = self.routes.get(collection)
        if route is None:
            return len(members)
        lost = 0
        kept = []
        for r in members:
            if r.kind == BLOB:
                r.id = r.id or new_id()
                blob = f"{route.prefix}/{part}/{r.id}"
                payload = read_payload(r.data)
                discard_payload(r.data)
                if not self._spool_whole(route.storage.name, blob, payload, 0):
                    lost += 1
                    continue
                refer_to_blob(r, route.storage.url(blob), blob, len(payload))
            kept.append(r)
        lines, records = encode_group(self._state, route, kept)
        path = f"{route.prefix}/{part}/{self.writer_id.next()}.jsonl"
        if lines and not self._spool_whole(route.storage.name, path, b"".join(lines), records):
            lost += records
        return lost

    def _spool_whole(self, datastore: str, path: str, data: bytes, records: int) -> bool:
        spooler = self._spooler
        return spooler is not None and spooler.put_whole(datastore, path, data, records)

    @property
    def closed(self) -> bool:
        return self._state.closed

    def buffered(self) -> int:
        return len(self._buffer)

    def spooled_bytes(self) -> int:
        return self._spooler.nbytes if self._spooler else 0
