"""Keep or drop a record from its correlation id alone.

Every record of one request (inputs, outputs, request, response) carries the same
correlation id, so hashing the id gives the same answer for all of them: they are
kept or dropped together and the input/output join never loses half a pair.

The hash is BLAKE2b of the id's UTF-8 bytes, not Python's salted hash(): every process,
replica and modeltap version decides alike (tests/test_sampling.py pins known answers).
"""

from __future__ import annotations

import hashlib

__all__ = ["keep"]

_SCALE = float(1 << 64)


def keep(correlation_id: str, rate: float) -> bool:
    """True when the record with this correlation id is inside the sample."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    digest = hashlib.blake2b(correlation_id.encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "big") / _SCALE < rate
