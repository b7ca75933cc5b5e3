"""Shared by the tests that read collections back (test_read.py, test_summary_tail.py).

Data is made by the real pipeline: `setup()` configures it for endpoint "ep", deployment
"blue"; tests submit Records and `flush()`. The datastores here stand in for the workspace
blob store: one counts what is listed and read, one is not a local folder at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import modeltap
from modeltap import runtime
from modeltap.storage.base import ObjectInfo, Storage
from modeltap.storage.local import LocalStorage


def setup(workspace: Path, rate: str = "Hour", collections: Any = None) -> runtime.Runtime:
    return modeltap.configure(
        workspace=workspace,
        endpoint="ep",
        deployment="blue",
        collections=collections or ["model_inputs", "model_outputs", "request"],
        rolling_rate=rate,
    )


def flush() -> None:
    assert modeltap.flush(10)


class CountingStorage(LocalStorage):
    """A real local datastore that remembers what was listed and read."""

    def __init__(self, root: Path, name: str = "workspaceblobstore"):
        super().__init__(root, name)
        self.listed: list[str] = []
        self.got: list[str] = []

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        self.listed.append(prefix)
        yield from super().list(prefix)

    def get(self, path: str) -> bytes:
        self.got.append(path)
        return super().get(path)


class MemoryStorage(Storage):
    """A datastore that is not a local folder: objects in a dict, listed lazily, in path
    order, as an object store pages through its listing. Remembers the prefixes listed and
    counts the objects yielded."""

    def __init__(self, objects: dict[str, bytes]):
        self.name = "memory"
        self.objects = dict(objects)
        self.listed: list[str] = []
        self.yielded = 0

    def put(self, path: str, data: bytes) -> None:
        self.objects[path] = data

    def get(self, path: str) -> bytes:
        return self.objects[path]

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        self.listed.append(prefix)
        for path, data in sorted(self.objects.items()):
            if not prefix or path.startswith(prefix.rstrip("/") + "/"):
                self.yielded += 1
                yield ObjectInfo(path, len(data))
