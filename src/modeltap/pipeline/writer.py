"""The background writer thread: takes batches, encodes them, commits and uploads.

Its loop never sleeps on a storage failure: a failed commit, upload or payload is
scheduled on the pipeline's one `Backoff`, and the loop keeps taking, sealing and
answering flush() meanwhile. Each pass: take a batch from the buffer (after a short
batching window), encode it into the pending objects, retry payloads that wait, commit
what is due, then seal and upload spool segments that are due.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from modeltap.context import new_id
from modeltap.errors import ModeltapError, ObjectExistsError
from modeltap.layout import RollingRate, partition
from modeltap.pipeline.blobs import discard_payload, read_payload, refer_to_blob
from modeltap.pipeline.commits import Commits
from modeltap.pipeline.encoder import Encoder
from modeltap.pipeline.intake import Buffer
from modeltap.pipeline.spooler import Spooler
from modeltap.pipeline.state import Route, State
from modeltap.record import BLOB, Record, encode_lines

__all__ = ["HeldPayload", "Writer", "encode_group", "group_by_object"]

log = logging.getLogger(__name__)


class HeldPayload:
    """A BLOB record whose payload storage refused and the spool had no room for; its line
    is made once the payload lands."""

    __slots__ = ("part", "path", "payload", "record", "route")

    def __init__(self, route: Route, part: str, record: Record, payload: bytes):
        self.route, self.part, self.record, self.payload = route, part, record, payload
        self.path = f"{route.prefix}/{part}/{record.id}"


class Writer:
    def __init__(self, state: State, buffer: Buffer, commits: Commits, spooler: Spooler | None):
        self._state = state
        self._buffer = buffer
        self._commits = commits
        self._spooler = spooler
        self.held: deque[HeldPayload] = deque()  # changed under the state's lock
        self.encoder = Encoder(state.settings.encoder)  # large frames, partly in a helper
        self.thread = threading.Thread(target=self._run, name="modeltap-writer", daemon=True)

    def _run(self) -> None:
        state, commits, spooler = self._state, self._commits, self._spooler
        if spooler is not None:
            spooler.adopt()
        while not state.abandoned:
            batch = self._take()
            if batch is None:
                break
            ready = self.encoder.encode(batch)  # the large frames, partly in a helper
            if ready:
                self._encode(ready)
            if self.held and state.backoff.ready():
                self._retry_held()
            if commits.ready(not len(self._buffer)):
                commits.commit()
            if spooler is not None and spooler.ready():
                spooler.upload()
        if not state.abandoned:  # else close() took over: no waiting for the helper
            self._encode(self.encoder.finish())
        self.encoder.close()
        self._finish()

    def _finish(self) -> None:
        """Shutdown: commit and upload what is left, retrying until the shutdown deadline;
        what is still in memory then is counted dropped."""
        state, commits, spooler = self._state, self._commits, self._spooler
        while not state.abandoned:
            if self.held and state.backoff.ready():
                self._retry_held()
            if commits:
                commits.commit()
            if spooler is not None:
                with state.cond:
                    spooler.seal(everything=True)
                if spooler.has_uploads():
                    spooler.upload()
            if not (self.held or commits or (spooler and spooler.has_uploads())):
                break
            now = time.monotonic()
            if now >= state.shutdown_deadline:
                break
            with state.cond:  # until the next attempt is due, or close() takes over
                wait = min(0.5, max(0.0, state.backoff.retry_at - now))
                state.cond.wait_for(lambda: state.abandoned or state.backoff.ready(), wait)
        if state.abandoned:
            return  # close() took over what was left
        lost = commits.records() + len(self.held)
        if lost:
            with state.cond:
                commits.take_all()
                self.held.clear()
            state.settle_dropped(
                lost,
                ModeltapError(
                    f"{lost} records could not be written before shutdown (storage unavailable)"
                ),
            )
        if spooler is not None:
            with state.cond:
                spooler.close()

    # -- waiting for work ----------------------------------------------------------------

    def _take(self) -> list[Record] | None:
        """The next batch; [] when only commits or uploads are due; None once closed."""
        state, buffer = self._state, self._buffer
        with state.cond:
            while not len(buffer) or self._stalled():
                if state.closed:
                    return None
                if self._work_ready():
                    return []
                state.writer_idle = True
                state.cond.wait(self._wait_time())
                state.writer_idle = False
            if not state.closed and not state.flush_requested and not buffer.has_batch():
                # A short window gathers a batch: records of one request merge, and pandas'
                # per-call cost is paid once per batch.
                state.cond.wait(self._state.settings.batch_window)
            return buffer.take()

    def _stalled(self) -> bool:
        """What storage refused waits in memory (no spool room): take no more until it
        lands, so the buffer fills and the overflow policy applies; memory stays bounded."""
        return bool(self.held) or self._commits.stalled()

    def _work_ready(self) -> bool:
        return (
            (bool(self.held) and self._state.backoff.ready())
            or self._commits.ready(not len(self._buffer))
            or (self._spooler is not None and self._spooler.ready())
            or self.encoder.in_flight
        )

    def _wait_time(self) -> float | None:
        retry_at = self._state.backoff.retry_at
        maybe = [self._commits.due(), self._spooler.due() if self._spooler else None]
        dues = [due for due in maybe if due is not None]
        if self.held:
            dues.append(retry_at)
        if not dues:
            return None
        return max(0.01, max(min(dues), retry_at) - time.monotonic())

    # -- encoding ------------------------------------------------------------------------

    def _encode(self, records: list[Record]) -> None:
        state = self._state
        for (collection, part), members in group_by_object(state.rolling_rate, records).items():
            route = state.routes.get(collection)
            if route is None:
                state.settle_dropped(
                    len(members), ModeltapError(f"no route for collection {collection!r}")
                )
                continue
            self._add(route, (collection, part), self._store_payloads(route, part, members))

    def _add(self, route: Route, key: tuple[str, str], members: list[Record]) -> None:
        lines, count = encode_group(self._state, route, members)
        if lines and not self._state.abandoned:
            self._commits.add(key, lines, count)

    def _store_payloads(self, route: Route, part: str, members: list[Record]) -> list[Record]:
        """Write each BLOB record's payload as its own object, named by the record id, in
        the partition folder (R4.3, R4.4); its line then carries the location. The records
        whose line can be made now: all but payloads dropped or held for a retry."""
        if not any(r.kind == BLOB for r in members):
            return members
        kept = []
        for r in members:
            if r.kind != BLOB:
                kept.append(r)
                continue
            r.id = r.id or new_id()
            try:
                payload = read_payload(r.data)
            except Exception as exc:
                log.exception("modeltap: could not read the payload of %r", r)
                self._state.settle_dropped(1, exc)
                continue
            finally:
                discard_payload(r.data)
            if self._put(HeldPayload(route, part, r, payload), retry=False):
                kept.append(r)
        return kept

    def _retry_held(self) -> None:
        """Put the held payloads again, oldest first, until one fails."""
        while self.held and self._state.backoff.ready():
            held = self.held[0]
            if not self._put(held, retry=True):
                return
            with self._state.cond:
                if self._state.abandoned:
                    return
                self.held.popleft()
            self._add(held.route, (held.record.collection, held.part), [held.record])

    def _put(self, held: HeldPayload, *, retry: bool) -> bool:
        """Store one payload; True when it landed or went to the spool, and the record now
        refers to it. A failure is retried on the back-off: from the spool when it has room,
        else from `self.held` (a first failure is added there)."""
        state, storage = self._state, held.route.storage
        landed = True
        try:
            storage.put(held.path, held.payload, overwrite=False)
        except ObjectExistsError as exc:
            if not retry:  # a name clash; on a retry it is an earlier attempt that landed
                log.error("modeltap: could not store payload %s: %s", held.path, exc)
                state.settle_dropped(1, exc)
                return False
        except Exception as exc:
            landed = False
            delay = state.storage_failed()
            spooled = (
                self._spooler is not None
                and not state.abandoned
                and self._spooler.put_whole(storage.name, held.path, held.payload, 0)
            )
            log.warning(
                "modeltap: payload %s could not be stored (%s); %sretrying in %.1fs",
                held.path,
                exc,
                "spooled, " if spooled else "",
                delay,
            )
            if not spooled:
                if not retry:
                    with state.cond:
                        self.held.append(held)
                return False
        if landed:  # a spooled payload is counted when it is uploaded
            state.backoff.succeeded()
            state.counters.bytes_written += len(held.payload)
        refer_to_blob(held.record, storage.url(held.path), held.path, len(held.payload))
        return True


def group_by_object(
    rolling_rate: RollingRate, records: list[Record]
) -> dict[tuple[str, str], list[Record]]:
    """Records by the object they go to: (collection, partition)."""
    groups: dict[tuple[str, str], list[Record]] = {}
    for r in records:
        groups.setdefault((r.collection, partition(rolling_rate, r.time)), []).append(r)
    return groups


def encode_group(state: State, route: Route, members: list[Record]) -> tuple[list[bytes], int]:
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
                state.settle_dropped(1, exc)
        return lines, kept
