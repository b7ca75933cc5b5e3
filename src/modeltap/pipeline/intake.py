"""Durability "memory": the bounded buffer between collect() and the writer.

A caller's `put` only appends (and, for data that is JSON already, makes the line). When
the buffer is full the overflow policy applies: "block" waits up to `block_timeout`, then
drops; "drop" drops at once; "raise" raises too. After a wait ends in a drop, "block"
drops at once until the writer takes records again, so a storage outage holds a caller
(a server's event loop) once per stall, not for every record.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque

from modeltap.errors import BufferFullError, CollectionDisabledError
from modeltap.pipeline.state import State
from modeltap.record import JSON, Record, json_line

__all__ = ["Buffer"]


class Buffer:
    """Records waiting in memory for the writer; every method runs under the state's lock
    except `put`, which takes it."""

    def __init__(self, state: State):
        self._state = state
        self._settings = state.settings
        self._routes = state.routes
        self._queue: deque[tuple[Record, int]] = deque()
        self._bytes = 0  # estimated, as the callers said
        self._overloaded = False  # a "block" wait ended in a drop; no waiting until room

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, record: Record, size: int) -> None:
        """Queue a record, or count it dropped and raise BufferFullError when there is no room
        (at once under "drop" and "raise", after `block_timeout` under "block")."""
        if record.kind == JSON and type(record.data) is bytes:
            # A payload's line is made here, and then the writer holds the interpreter lock
            # only a moment per batch instead of taking turns with serve's event loop. Not
            # a frame's: on a scoring thread that sleeps between calls the line cost ~22 us
            # of a cold-cache collect() (bench/collect_parts.py), and the writer makes it
            # while the caller waits.
            route = self._routes.get(record.collection)
            if route is not None:
                with contextlib.suppress(Exception):  # the writer reports it as before
                    record.line = json_line(record, route.source)
        s = self._settings
        state = self._state
        with state.cond:
            if state.closed:
                raise CollectionDisabledError("collection is shut down; record not accepted")
            full = len(self._queue) >= s.buffer_records or self._bytes + size > s.buffer_bytes
            if full and not self._wait_for_room(size):
                state.counters.dropped += 1
                raise BufferFullError(
                    f"buffer full ({len(self._queue)} records, {self._bytes} bytes): "
                    f"record of {record.collection!r} dropped (overflow policy {s.overflow!r}); "
                    "storage is slower than collection"
                )
            self._queue.append((record, size))
            self._bytes += size
            state.submitted += 1
            state.counters.accepted += 1
            if state.writer_idle:
                state.cond.notify_all()

    def _wait_for_room(self, size: int) -> bool:
        s = self._settings
        if s.overflow != "block" or self._overloaded:
            return False
        deadline = time.monotonic() + s.block_timeout
        while len(self._queue) >= s.buffer_records or self._bytes + size > s.buffer_bytes:
            if self._state.closed:
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                self._overloaded = True  # until the writer makes room: see take()
                return False
            self._state.cond.notify_all()
            self._state.cond.wait(min(left, 0.1))
        return True

    def has_batch(self) -> bool:
        """A whole batch waits (by records or by bytes): no need to wait for more."""
        s = self._settings
        return len(self._queue) >= s.batch_records or self._bytes >= s.batch_bytes

    def take(self) -> list[Record]:
        """The oldest records, at most batch_records and about batch_bytes of them: small
        takes keep commits on time and hand the interpreter lock back often."""
        s = self._settings
        batch: list[Record] = []
        taken = 0
        while self._queue and len(batch) < s.batch_records and taken < s.batch_bytes:
            record, size = self._queue.popleft()
            batch.append(record)
            taken += size
        self._bytes -= taken
        self._overloaded = False
        self._state.cond.notify_all()  # room for blocked submitters
        return batch

    def drain(self) -> list[Record]:
        """Everything waiting, for close() to take over from a stuck writer."""
        records = [record for record, _ in self._queue]
        self._queue.clear()
        self._bytes = 0
        return records
