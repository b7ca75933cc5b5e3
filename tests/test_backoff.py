"""The pipeline's one retry policy: when storage is tried again after a failure."""

from __future__ import annotations

import pytest

from modeltap.pipeline.backoff import Backoff


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_delays_grow_with_failures_in_a_row_and_stop_at_the_cap():
    clock = Clock()
    backoff = Backoff(clock=clock)
    assert backoff.ready()  # nothing failed yet
    assert [backoff.failed() for _ in range(7)] == [0.2, 0.5, 1.0, 2.0, 5.0, 5.0, 5.0]
    assert backoff.retry_at == pytest.approx(105.0)


def test_ready_only_once_the_delay_has_passed():
    clock = Clock()
    backoff = Backoff(clock=clock)
    backoff.failed()
    assert not backoff.ready()
    clock.now += 0.19
    assert not backoff.ready()
    clock.now += 0.01
    assert backoff.ready()
    assert not backoff.ready(now=clock.now - 0.05)


def test_a_success_starts_over_from_the_first_delay():
    backoff = Backoff(clock=Clock())
    backoff.failed()
    backoff.failed()
    backoff.succeeded()
    assert backoff.failed() == 0.2
