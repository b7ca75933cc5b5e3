"""BLOB records: a payload stored as its own object, and the line that points at it."""

from __future__ import annotations

from typing import IO, Any

import orjson

from modeltap.record import JSON, Record

__all__ = ["discard_payload", "read_payload", "refer_to_blob"]


def refer_to_blob(record: Record, url: str, path: str, size: int) -> None:
    """Turn a BLOB record into the line that points at its stored payload."""
    record.id = path.rsplit("/", 1)[-1]
    record.kind, record.data = JSON, orjson.dumps(url)
    record.extra = {
        **(record.extra or {}),
        "contentrange": f"bytes 0-{max(size - 1, 0)}/{size}",
        "datainblob": "true",
    }


def read_payload(data: Any) -> bytes:
    """A BLOB's payload: bytes, or a spooled file (large bodies wait on disk, not in memory)."""
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    file: IO[bytes] = data
    file.seek(0)
    return file.read()


def discard_payload(data: Any) -> None:
    close = getattr(data, "close", None)
    if callable(close):
        close()
