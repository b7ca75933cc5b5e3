"""What the pipeline's parts share: routes, counters, and one lock with its books.

Every part (the buffer, the commits, the spool side, the writer, close()) works under the
one condition of `State`, so a flush() can wait for "everything accepted so far is settled"
in one place: a record is settled when it is written or counted dropped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from modeltap.config import PipelineSettings
from modeltap.layout import RollingRate, WriterId
from modeltap.pipeline.backoff import Backoff
from modeltap.storage.base import Storage

__all__ = ["Counters", "Route", "State"]

log = logging.getLogger(__name__)


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


class State:
    """The routes and settings, the lock and condition callers and the writer wait on, the
    lifecycle flags, the counts of records accepted and settled, and the one back-off of
    storage calls."""

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
        self.writer_id = WriterId()  # names the objects this process commits
        self.cond = threading.Condition(threading.Lock())
        self.counters = Counters()
        self.backoff = Backoff()
        self.on_drop = on_drop
        self.commit_listeners: list[Callable[[float, int, int], None]] = []
        self.closed = False
        self.abandoned = False  # close() gave up on a stuck writer and took its records
        self.shutdown_deadline = 0.0  # the writer stops retrying then
        self.flush_requested = 0  # flush() calls waiting
        self.writer_idle = False
        self.submitted = 0  # records ever accepted (counted by the buffer or the spooler)
        self.settled = 0  # records written or dropped

    def storage_failed(self) -> float:
        """Count a failed storage call and schedule the next attempt; the delay chosen."""
        self.counters.storage_errors += 1
        return self.backoff.failed()

    def count_written(
        self, took: float, nbytes: int, records: int, lines: int, *, own: bool
    ) -> None:
        c = self.counters
        c.bytes_written += nbytes
        c.objects_written += 1
        c.lines_written += lines
        with self.cond:
            c.written += records
            if own:  # records adopted from a dead process were never submitted here
                self.settled += records
            self.cond.notify_all()
        for listener in self.commit_listeners:
            try:
                listener(took, nbytes, records)
            except Exception:  # a metrics hook must not break the pipeline
                log.exception("commit listener failed")

    def settle_dropped(self, count: int, exc: BaseException) -> None:
        """Count accepted records dropped (they are settled) and report them."""
        with self.cond:
            self.counters.dropped += count
            self.settled += count
            self.cond.notify_all()
        self.report_drop(count, exc)

    def report_drop(self, count: int, exc: BaseException) -> None:
        log.warning("%s", exc)
        if self.on_drop is not None:
            try:
                self.on_drop(count, exc)
            except Exception:  # a reporting hook must not break the pipeline
                log.exception("on_drop hook failed")
