"""Sampling by correlation id (SPEC R2.4 Beyond): deterministic, all-or-nothing per request."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from modeltap.sampling import keep

ROOT = Path(__file__).resolve().parents[1]


def ids(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]


def test_same_id_same_answer():
    for cid in ids(200):
        first = keep(cid, 0.5)
        assert all(keep(cid, 0.5) is first for _ in range(3))


# Pinned answers: the decision is part of what a deployment promises (every process and
# replica, and every modeltap version, keeps the same requests), so it is fixed here rather
# than compared with itself. Changing the hash fails these.
KEPT_AT_HALF = "10000010000011000000010110010111"  # request-0 .. request-31 at rate 0.5

# (id, a rate just below its hash fraction: dropped, just above: kept); unusual ids too:
# empty, non-ASCII, a lone surrogate (hashed as its UTF-8 bytes, never replaced), long.
BOUNDARIES = [
    ("request-0", 0.126, 0.127),
    ("request-1", 0.978, 0.979),
    ("3f2504e0-4f89-41d3-9a0c-0305e82c3301", 0.645, 0.646),
    ("order-42", 0.580, 0.581),
    ("é", 0.793, 0.794),
    ("", 0.893, 0.894),
    ("日本", 0.907, 0.908),
    ("\ud800", 0.257, 0.258),
    ("x" * 10_000, 0.632, 0.633),
]


def answers_at_half() -> str:
    return "".join("1" if keep(f"request-{i}", 0.5) else "0" for i in range(32))


def test_known_answers_for_fixed_ids():
    assert answers_at_half() == KEPT_AT_HALF


@pytest.mark.parametrize(("cid", "below", "above"), BOUNDARIES)
def test_known_threshold_for_fixed_ids(cid, below, above):
    assert not keep(cid, below)
    assert keep(cid, above)


@pytest.mark.parametrize("hashseed", ["1", "4242"])
def test_answer_does_not_depend_on_the_process(hashseed):
    # a fixed hash (not Python's salted hash()): another interpreter with another
    # PYTHONHASHSEED gives the same answers.
    code = "from tests.test_sampling import answers_at_half; print(answers_at_half())"
    env = {**os.environ, "PYTHONHASHSEED": hashseed}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == answers_at_half()


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
