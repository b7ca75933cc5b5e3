"""Where records go: partition folders, object names, and safe names.

    {root}/{endpoint}/{deployment}/{collection}/{partition}/{instance_id}.jsonl

The partition comes from the record's UTC time and the rolling rate.
"""

from __future__ import annotations

import functools
import os
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum

from modeltap.errors import ConfigError

__all__ = [
    "DEFAULT_ROOT",
    "RollingRate",
    "WriterId",
    "collection_prefix",
    "original_name",
    "partition",
    "replacement_name",
    "superseded",
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


# An erasure rewrites a line file as a new object beside it, then deletes the old one
# (SPEC R13.2): {instance}.jsonl -> {instance}.erased-1.jsonl -> {instance}.erased-2.jsonl.
# Until the old one is deleted both exist; readers read only the newest of them.
_ERASED = re.compile(r"^(?P<base>.+?)\.erased-(?P<generation>[0-9]+)\.jsonl$")


def replacement_name(path: str) -> str:
    """The name of the copy of a line file that an erasure writes."""
    match = _ERASED.match(path)
    if match:
        return f"{match['base']}.erased-{int(match['generation']) + 1}.jsonl"
    return f"{path.removesuffix('.jsonl')}.erased-1.jsonl"


def original_name(path: str) -> str:
    """The line file an erasure's copy replaces (`a.erased-2.jsonl` -> `a.jsonl`); other
    paths as they are. A compacted table that covers one covers its copies too."""
    match = _ERASED.match(path)
    return f"{match['base']}.jsonl" if match else path


def superseded(paths: Iterable[str]) -> set[str]:
    """The line files among paths that a newer copy made by an erasure replaces."""
    paths = list(paths)
    newest: dict[str, tuple[int, str]] = {}
    for path in paths:
        match = _ERASED.match(path)
        base, generation = (match["base"], int(match["generation"])) if match else (path, 0)
        if match is None:
            base = base.removesuffix(".jsonl")
        if base not in newest or generation > newest[base][0]:
            newest[base] = (generation, path)
    keep = {path for _, path in newest.values()}
    return {path for path in paths if path not in keep}
