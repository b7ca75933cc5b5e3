"""Where records go: partition folders, object names, and safe names.

    {root}/{endpoint}/{deployment}/{collection}/{partition}/{instance_id}.jsonl

The partition comes from the record's UTC time and the rolling rate.
"""

from __future__ import annotations

import functools
import os
import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum

from modeltap.errors import ConfigError

__all__ = [
    "DEFAULT_ROOT",
    "RollingRate",
    "WriterId",
    "collection_prefix",
    "partition",
    "validate_name",
]

DEFAULT_ROOT = "modelDataCollector"


class RollingRate(StrEnum):
    MINUTE = "Minute"
    HOUR = "Hour"
    DAY = "Day"
    MONTH = "Month"
    YEAR = "Year"

    @classmethod
    def parse(cls, value: str) -> RollingRate:
        for rate in cls:
            if rate.value.lower() == str(value).lower():
                return rate
        allowed = ", ".join(r.value for r in cls)
        raise ConfigError(
            f"unknown rolling rate {value!r}; allowed: {allowed}",
            field="data_collector.rolling_rate",
        )


_FORMATS = {
    RollingRate.YEAR: "%Y",
    RollingRate.MONTH: "%Y/%m",
    RollingRate.DAY: "%Y/%m/%d",
    RollingRate.HOUR: "%Y/%m/%d/%H",
    RollingRate.MINUTE: "%Y/%m/%d/%H/%M",
}


def partition(rate: RollingRate, epoch_seconds: float) -> str:
    """The partition folder of a record made at this time (UTC)."""
    return _partition(rate, int(epoch_seconds // 1))


@functools.lru_cache(maxsize=256)
def _partition(rate: RollingRate, second: int) -> str:
    # Cached per second: the writer asks for every record, and strftime is not free.
    return datetime.fromtimestamp(second, UTC).strftime(_FORMATS[rate])


# Names become path segments: letters, digits, and - _ . only, not starting with a dot.
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,254}$")


def validate_name(value: str, field: str) -> str:
    """Return value if it is safe as one path segment, else raise ConfigError naming field."""
    if not isinstance(value, str) or not _NAME.fullmatch(value) or ".." in value:
        raise ConfigError(
            f"{value!r} is not a valid name: use 1-255 letters, digits, '-', '_' or '.', "
            "not starting with '.' and without '..' or '/'",
            field=field,
        )
    return value


def collection_prefix(root: str, endpoint: str, deployment: str, collection: str) -> str:
    parts = [p for p in root.strip("/").split("/") if p]
    return "/".join([*parts, endpoint, deployment, collection])


class WriterId:
    """Instance ids of one writer: a random writer id plus a flush sequence number.

    Every flush commits new objects, so each gets its own instance id; replicas and
    worker processes never pick the same one (R4.6). Ids sort in flush order.
    """

    def __init__(self) -> None:
        self.writer = f"{uuid.uuid4().hex[:12]}-{os.getpid()}"
        self._seq = 0

    def next(self) -> str:
        self._seq += 1
        return f"{self.writer}-{self._seq:08d}"
