"""Durability "memory": encoded lines waiting to be committed, one object per partition.

The writer adds the lines of each batch to the pending object of their collection and
partition; every `flush_interval` (sooner at `object_bytes`, on flush() or close()) each
pending object is written whole, create-only, under a new instance id. A failed commit
goes to the spool when there is room (memory stays bounded in an outage) and is retried
from there; otherwise it waits here, and the writer takes no more records until it lands.
"""

from __future__ import annotations

import logging
import time

from modeltap.errors import ObjectExistsError
from modeltap.pipeline.spooler import Spooler
from modeltap.pipeline.state import Route, State

__all__ = ["Commits", "Pending"]

log = logging.getLogger(__name__)


class Pending:
    """The lines of one future object."""

    __slots__ = ("attempts", "chunks", "nbytes", "path", "records")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.nbytes = 0
        self.records = 0
        self.path = ""  # named at the first commit attempt and kept for retries
        self.attempts = 0


class Commits:
    """Pending objects by (collection, partition), and their commits (the writer's)."""

    def __init__(self, state: State, spooler: Spooler | None):
        self._state = state
        self._spooler = spooler
        self._pending: dict[tuple[str, str], Pending] = {}
        self._last_commit = time.monotonic()

    def __bool__(self) -> bool:
        return bool(self._pending)

    def add(self, key: tuple[str, str], lines: list[bytes], records: int) -> None:
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = Pending()
        pending.chunks.extend(lines)
        pending.nbytes += sum(map(len, lines))
        pending.records += records

    def records(self) -> int:
        return sum(p.records for p in self._pending.values())

    def stalled(self) -> bool:
        """A failed commit waits in memory (no spool room)."""
        return any(p.attempts for p in self._pending.values())

    def ready(self, queue_empty: bool) -> bool:
        """Whether a commit is due now (not while backing off)."""
        if not self._pending:
            return False
        now = time.monotonic()
        if not self._state.backoff.ready(now):
            return False
        return (
            # a flush commits once what was queued is encoded: one object, not one per batch
            (bool(self._state.flush_requested) and queue_empty)
            or self._state.closed
            or now - self._last_commit >= self._state.settings.flush_interval
            or any(p.nbytes >= self._state.settings.object_bytes for p in self._pending.values())
        )

    def due(self) -> float | None:
        """When a commit is due next, back-off aside (None: nothing pending)."""
        if not self._pending:
            return None
        if self._state.flush_requested:
            return time.monotonic()
        return self._last_commit + self._state.settings.flush_interval

    def take_all(self) -> dict[tuple[str, str], Pending]:
        """Every pending object, for close() to take over from a stuck writer (under the lock)."""
        pending, self._pending = self._pending, {}
        return pending

    def commit(self) -> None:
        """Commit every pending object; stops at a failure that could not go to the spool."""
        state = self._state
        instance = None
        for key, pending in list(self._pending.items()):
            collection, part = key
            route = self._state.routes[collection]
            with state.cond:  # named under the lock: close() may take it over
                if state.abandoned:
                    return
                if not pending.path:
                    instance = instance or self._state.writer_id.next()
                    pending.path = f"{route.prefix}/{part}/{instance}.jsonl"
            started = time.monotonic()
            pending.attempts += 1
            try:
                # Create-only: a retry after an ambiguous failure (a timeout after the
                # store took the object) finds it there instead of writing it twice.
                route.storage.put_parts(pending.path, pending.chunks, overwrite=False)
            except ObjectExistsError:
                if pending.attempts == 1:  # a name clash, not a retry: take a new name
                    pending.path = ""
                    return
            except Exception as exc:
                delay = state.storage_failed()
                spooled = self._to_spool(route, pending, b"".join(pending.chunks))
                log.warning(
                    "modeltap: commit of %s failed (%s); %sretrying in %.1fs",
                    pending.path,
                    exc,
                    "spooled, " if spooled else "",
                    delay,
                )
                if not spooled:
                    return  # it waits in memory: stalled() holds the writer back
                self._pending.pop(key, None)
                continue
            state.backoff.succeeded()
            took = time.monotonic() - started
            log.debug(
                "committed %s: %d records in %.1f ms", pending.path, pending.records, took * 1000
            )
            self._pending.pop(key, None)
            state.count_written(
                took, pending.nbytes, pending.records, len(pending.chunks), own=True
            )
        self._last_commit = time.monotonic()

    def _to_spool(self, route: Route, pending: Pending, data: bytes) -> bool:
        """Move a failed commit to the spool (memory stays bounded during an outage)."""
        if self._spooler is None or self._state.abandoned:
            return False
        return self._spooler.put_whole(route.storage.name, pending.path, data, pending.records)
