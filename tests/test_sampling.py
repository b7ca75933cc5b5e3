"""Sampling by correlation id (SPEC R2.4 Beyond): deterministic, all-or-nothing per request."""

from __future__ import annotations

import random
import uuid

import pytest

from modeltap.sampling import keep


def ids(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]


def test_same_id_same_answer():
    for cid in ids(200):
        first = keep(cid, 0.5)
        assert all(keep(cid, 0.5) is first for _ in range(3))


def test_answer_does_not_depend_on_process_state():
    # a fixed hash (not Python's salted hash()): the same ids give the same answers
    # in every process and replica.
    answers = [keep(f"request-{i}", 0.5) for i in range(64)]
    assert answers == [keep(f"request-{i}", 0.5) for i in range(64)]
    assert keep("test", 0.5) is keep("test", 0.5)


@pytest.mark.parametrize("rate", [0.0, -0.5])
def test_rate_zero_never_keeps(rate):
    assert not any(keep(cid, rate) for cid in ids(2000))
    assert not keep("", rate)


@pytest.mark.parametrize("rate", [1.0, 1.5])
def test_rate_one_always_keeps(rate):
    assert all(keep(cid, rate) for cid in ids(2000))
    assert keep("", rate)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_half_of_ids_at_rate_half(seed):
    kept = sum(keep(cid, 0.5) for cid in ids(10_000, seed))
    assert 4500 <= kept <= 5500


@pytest.mark.parametrize("rate", [0.1, 0.25, 0.9])
def test_other_rates_are_close(rate):
    kept = sum(keep(cid, rate) for cid in ids(10_000, 7))
    assert abs(kept / 10_000 - rate) <= 0.05


def test_custom_ids_are_sampled_too():
    kept = sum(keep(f"order-{i}", 0.5) for i in range(10_000))
    assert 4500 <= kept <= 5500


def test_samples_are_nested():
    # an id kept at a lower rate is kept at every higher rate
    for cid in ids(2000):
        if keep(cid, 0.2):
            assert keep(cid, 0.5)
            assert keep(cid, 0.8)


def test_unusual_ids_do_not_raise():
    for cid in ["", "é", "日本", "\ud800", "x" * 10_000]:
        assert keep(cid, 0.5) in (True, False)
