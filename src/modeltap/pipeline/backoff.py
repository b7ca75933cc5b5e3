"""When to try storage again after a failure: one policy for commits, uploads and payloads.

It only says when; nobody sleeps on it. The writer keeps going (taking records, sealing
segments, answering flush()) and attempts the storage call again once `ready()`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Backoff"]


class Backoff:
    """Capped back-off: each failure in a row waits longer, up to the last delay; a success
    starts over from the first."""

    DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)

    def __init__(
        self,
        delays: tuple[float, ...] = DELAYS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._delays = delays
        self._clock = clock
        self._failures = 0  # in a row
        self.retry_at = 0.0  # clock time of the next attempt

    def failed(self) -> float:
        """Schedule the next attempt after a failure; returns the delay chosen."""
        delay = self._delays[min(self._failures, len(self._delays) - 1)]
        self._failures += 1
        self.retry_at = self._clock() + delay
        return delay

    def succeeded(self) -> None:
        self._failures = 0

    def ready(self, now: float | None = None) -> bool:
        """Whether the next attempt is due."""
        return (self._clock() if now is None else now) >= self.retry_at
