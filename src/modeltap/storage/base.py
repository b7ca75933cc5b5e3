"""The storage contract: whole objects in, whole objects out.

Objects are written whole and become visible only when complete, so a reader never
sees half a line and a local folder behaves like an object store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from modeltap.errors import StorageError

__all__ = ["ObjectInfo", "Storage"]


@dataclass(frozen=True)
class ObjectInfo:
    path: str  # relative to the datastore root, "/"-separated
    size: int


class Storage(ABC):
    """One datastore. Paths are relative, "/"-separated, and never contain "..".

    Errors are raised as modeltap.errors.StorageError naming the path.
    """

    name: str

    @abstractmethod
    def put(self, path: str, data: bytes, *, overwrite: bool = True) -> None:
        """Write the whole object at path; it is visible only once complete.

        With overwrite=False the write is create-only: when an object is already at path,
        nothing is written and ObjectExistsError is raised (atomically, so two writers of
        one path never both succeed)."""

    def put_parts(self, path: str, parts: Sequence[bytes], *, overwrite: bool = True) -> None:
        """put() of the parts joined; a backend that can write them without the join (a
        copy of the whole object) does so."""
        self.put(path, b"".join(parts), overwrite=overwrite)

    @abstractmethod
    def get(self, path: str) -> bytes:
        """The whole object at path."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose path starts with prefix (a folder, "" for all), in path order."""

    def delete(self, path: str) -> None:
        """Remove the object at path. No object there is no error: a clean-up that was
        interrupted can simply run again (retention, erasure). Every backend of modeltap
        implements it (tests/test_storage_conformance.py)."""
        raise StorageError(f"{type(self).__name__} cannot delete objects", path=path)

    def delete_many(self, paths: Iterable[str]) -> None:
        """Remove these objects (a backend may do it in bulk requests)."""
        for path in paths:
            self.delete(path)

    def local_path(self, path: str) -> Path | None:
        """Where the object or folder at path is on this machine's disk, for readers that do
        better with files than with get() and list() (DuckDB, pyarrow, a walk down one
        folder); None when the datastore is not a local folder, as for every object store."""
        return None

    def url(self, path: str) -> str:
        """A location for path that a person or another tool can use."""
        return path

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
