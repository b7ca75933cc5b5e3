"""Correlation contexts: the id that ties a request's inputs, outputs and payloads together."""

from __future__ import annotations

import random
import time
from typing import Any

from modeltap.errors import ConfigError

__all__ = ["BasicCorrelationContext", "CorrelationContext", "WrapperContext", "new_id"]


def new_id() -> str:
    """A random (version 4) UUID, without the system call uuid.uuid4() makes.

    On the request path a system call lets the writer thread take the interpreter lock,
    and the caller may then wait up to the switch interval (5 ms) to get it back.
    `random` is seeded from the OS and reseeded in a forked child, so ids stay unique
    across processes; they identify records, they are not secrets.
    """
    h = "%032x" % (random.getrandbits(128) & _VERSION_4 | _VARIANT_4)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"  # what uuid.UUID prints


# uuid.UUID(int=..., version=4)'s bits, set without making the object (~5% of a small
# frame's collect() in a tight loop)
_VERSION_4 = ~((0xC000 << 48) | (0xF000 << 64)) & ((1 << 128) - 1)
_VARIANT_4 = (0x8000 << 48) | (0x4000 << 64)


class CorrelationContext:
    """Base class, same surface as the source platform's SDK."""

    def get_id(self) -> str:
        raise NotImplementedError

    def get_timestamp(self) -> int:
        raise NotImplementedError

    def get_headers(self) -> dict[str, str]:
        return {}


class BasicCorrelationContext(CorrelationContext):
    """A context with a caller-chosen id (or a new UUID when none is given)."""

    __slots__ = ("_headers", "_id", "_timestamp")

    def __init__(
        self,
        id: str | None = None,
        timestamp: int | None = None,
        headers: dict[str, str] | None = None,
    ):
        if id is not None and not isinstance(id, str):
            raise TypeError(f"BasicCorrelationContext id must be a str, got {type(id).__name__}")
        if id == "":
            raise ConfigError("must not be empty", field="BasicCorrelationContext id")
        self._id = id if id is not None else new_id()
        self._timestamp = int(time.time()) if timestamp is None else int(timestamp)
        self._headers = dict(headers) if headers else {}

    def get_id(self) -> str:
        return self._id

    def get_timestamp(self) -> int:
        return self._timestamp

    def get_headers(self) -> dict[str, str]:
        return self._headers

    def __repr__(self) -> str:
        return f"BasicCorrelationContext(id={self._id!r})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, CorrelationContext) and other.get_id() == self._id

    def __hash__(self) -> int:
        return hash(self._id)


class WrapperContext(BasicCorrelationContext):
    """A name the source platform's SDK exports, kept for imports of it. collect() does not
    make these: it returns the context it was given, or a new BasicCorrelationContext."""


# The id of the request being served, set by the scoring server for each call, so a
# collect() without a context joins the request's other records.
import contextvars  # noqa: E402

current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "modeltap_request_id", default=None
)
