"""A folder on local disk as a datastore (the embedded default)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modeltap.errors import ConfigError, ObjectExistsError, StorageError
from modeltap.storage.base import ObjectInfo, Storage
from modeltap.storage.datastore_type import DatastoreType

if TYPE_CHECKING:
    from modeltap.config import DatastoreSettings

__all__ = ["LOCAL", "LocalStorage"]


def _check(spec: dict[str, Any], where: str, src: str) -> dict[str, Any]:
    if not isinstance(spec.get("path"), str) or not spec["path"]:
        raise ConfigError(
            "a local datastore needs a folder path", field=f"{where}.path", source=src
        )
    return {"path": spec["path"]}


def _open(name: str, settings: DatastoreSettings, workspace: Path) -> Storage:
    root = Path(settings.path)  # relative: to the workspace folder
    return LocalStorage(root if root.is_absolute() else workspace / root, name=name)


# The datastore table's row (storage/registry.py): `type: local` and a folder `path`.
LOCAL = DatastoreType("local", frozenset({"path"}), _check, _open)


class LocalStorage(Storage):
    def __init__(self, root: str | os.PathLike[str], name: str = "local"):
        self.root = Path(root).resolve()
        self.name = name

    def _path(self, path: str) -> Path:
        parts = [p for p in path.split("/") if p]
        if any(p in (".", "..") or "\\" in p or "\x00" in p for p in parts):
            raise StorageError("path escapes the datastore root", path=path)
        return self.root.joinpath(*parts)

    def put(self, path: str, data: bytes, *, overwrite: bool = True) -> None:
        self.put_parts(path, (data,), overwrite=overwrite)

    def put_parts(self, path: str, parts: Sequence[bytes], *, overwrite: bool = True) -> None:
        target = self._path(path)
        # Temporary name then rename: readers see the whole object or nothing.
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb", buffering=1 << 20) as f:
                f.writelines(parts)  # no join: a commit's lines go to the file as they are
                f.flush()
                os.fsync(f.fileno())
            if overwrite:
                os.replace(tmp, target)
            else:
                # link() fails when the target exists: create-only, atomically.
                try:
                    os.link(tmp, target)
                except FileExistsError:
                    raise ObjectExistsError("already exists", path=str(target)) from None
                finally:
                    tmp.unlink(missing_ok=True)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise StorageError(f"write failed: {exc.strerror or exc}", path=str(target)) from exc

    def get(self, path: str) -> bytes:
        target = self._path(path)
        try:
            return target.read_bytes()
        except OSError as exc:
            raise StorageError(f"read failed: {exc.strerror or exc}", path=str(target)) from exc

    def delete(self, path: str) -> None:
        target = self._path(path)
        try:
            target.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"delete failed: {exc.strerror or exc}", path=str(target)) from exc
        # Folders are not objects: remove the ones this left empty, as an object store would.
        folder = target.parent
        while folder != self.root and self.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:  # not empty (or already gone): stop there
                break
            folder = folder.parent

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        base = self._path(prefix)
        if not base.is_dir():
            return
        found: list[ObjectInfo] = []
        folders = [(str(base), base.relative_to(self.root).as_posix())]
        while folders:  # os.scandir, without a Path per file: listings run per page view
            folder, rel = folders.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError:  # gone or unreadable: skipped, as os.walk does
                continue
            for entry in entries:
                path = f"{rel}/{entry.name}" if rel != "." else entry.name
                try:
                    if entry.is_dir():
                        if not entry.is_symlink():  # as os.walk: links to folders not followed
                            folders.append((entry.path, path))
                    elif not (entry.name.startswith(".") and entry.name.endswith(".tmp")):
                        found.append(ObjectInfo(path, entry.stat().st_size))
                except OSError:  # removed while listing
                    continue
        # Path order, as object stores list: "a/b" sorts by the full string, not per folder.
        yield from sorted(found, key=lambda info: info.path)

    def local_path(self, path: str) -> Path:
        return self._path(path)

    def url(self, path: str) -> str:
        return str(self._path(path))
