"""The local spool: objects waiting on disk for their upload.

    SPOOL/<owner>/lock                                  held (flock) while the owner lives
    SPOOL/<owner>/<seq>@<datastore>@<object path>.open  a segment still being appended to
    SPOOL/<owner>/<seq>@<datastore>@<object path>.seg   sealed: its content is final

Each segment is one future object; its name fixes the object's path, and uploads are
create-only, so an upload repeated after a crash lands once (the second finds the object
there and counts as done). A process adopts the folders of owners that died (their lock
is free): it seals their segments, cutting a trailing partial line, and uploads them.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
import uuid
from collections import deque
from pathlib import Path
from urllib.parse import quote, unquote

from modeltap.errors import StorageError

__all__ = ["Segment", "Spool"]

log = logging.getLogger(__name__)

_OPEN = ".open"
_SEALED = ".seg"
_LOCK = "lock"


class Segment:
    """One spooled object: appended to while open, then sealed and uploaded whole."""

    __slots__ = ("datastore", "file", "nbytes", "opened", "own", "path", "records")

    def __init__(
        self,
        file: Path,
        datastore: str,
        path: str,
        nbytes: int = 0,
        records: int = 0,
        own: bool = True,
    ):
        self.file = file
        self.own = own  # False: adopted from a process that died
        self.datastore = datastore
        self.path = path  # the object's path in its datastore
        self.nbytes = nbytes
        self.records = records
        self.opened = time.monotonic()

    def __repr__(self) -> str:
        return f"Segment({self.datastore}:{self.path}, {self.records} records)"


class Spool:
    """One process's spool folder, plus the folders it adopted from dead owners.

    Not thread safe: the pipeline calls it under its own lock. Sealed segments wait in a
    queue, oldest first: the uploader takes one (`take_sealed`), and either removes it once
    uploaded (`remove`) or puts it back at the front after a failed upload (`put_back`).
    """

    def __init__(self, root: Path, cap_bytes: int):
        self.root = Path(root)
        self.cap_bytes = cap_bytes
        self.nbytes = 0  # on disk, open and sealed, own and adopted
        self._sealed: deque[Segment] = deque()  # oldest first
        self._open: dict[str, tuple[Segment, int]] = {}  # object path -> (segment, fd)
        self._dir: Path | None = None  # created on first use
        self._lock_fd: int | None = None
        self._adopted: dict[Path, int] = {}  # adopted folder -> its lock, held until emptied
        self._seq = 0

    # -- own segments -----------------------------------------------------------------

    def has_room(self, nbytes: int) -> bool:
        return self.nbytes + nbytes <= self.cap_bytes

    def append(self, datastore: str, path: str, data: bytes, records: int) -> Segment:
        """Append data (whole lines) to the open segment of path, opening it if needed.

        The bytes are in the operating system's hands when this returns: they survive the
        process being killed (a machine crash can lose what was not yet fsynced)."""
        entry = self._open.get(path)
        if entry is None:
            segment = self._new_segment(datastore, path, _OPEN)
            fd = os.open(segment.file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            entry = self._open[path] = (segment, fd)
        segment, fd = entry
        _write_all(fd, data)
        segment.nbytes += len(data)
        segment.records += records
        self.nbytes += len(data)
        return segment

    def add(self, datastore: str, path: str, data: bytes, records: int) -> Segment:
        """Spool a whole object, sealed at once."""
        segment = self._new_segment(datastore, path, _SEALED)
        tmp = segment.file.with_name(segment.file.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, segment.file)
        segment.nbytes, segment.records = len(data), records
        self.nbytes += len(data)
        self._sealed.append(segment)
        return segment

    def seal(self, path: str) -> None:
        """Close the open segment of path: its content is final and it may be uploaded."""
        segment, fd = self._open.pop(path)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        sealed = segment.file.with_name(segment.file.name.removesuffix(_OPEN) + _SEALED)
        os.replace(segment.file, sealed)
        segment.file = sealed
        self._sealed.append(segment)

    def seal_all(self) -> None:
        for path in list(self._open):
            self.seal(path)

    def has_sealed(self) -> bool:
        """Whether a sealed segment waits for its upload."""
        return bool(self._sealed)

    def take_sealed(self) -> Segment | None:
        """The oldest sealed segment, taken out of the queue for its upload (None: none)."""
        return self._sealed.popleft() if self._sealed else None

    def put_back(self, segment: Segment) -> None:
        """Return a segment whose upload failed: it is the first one taken again."""
        self._sealed.appendleft(segment)

    def read(self, segment: Segment) -> bytes:
        return segment.file.read_bytes()

    def remove(self, segment: Segment) -> None:
        """Forget an uploaded segment."""
        with contextlib.suppress(FileNotFoundError):
            segment.file.unlink()
        self.nbytes -= segment.nbytes
        folder = segment.file.parent
        if folder in self._adopted and not any(f.name != _LOCK for f in folder.iterdir()):
            self._release(folder)

    def close(self) -> None:
        """Seal what is open and let go of the folders; segments not uploaded stay on disk
        for the next process to adopt."""
        self.seal_all()
        for folder in list(self._adopted):
            self._release(folder)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        if self._dir is not None and not any(p.name != _LOCK for p in self._dir.iterdir()):
            with contextlib.suppress(OSError):
                (self._dir / _LOCK).unlink(missing_ok=True)
                self._dir.rmdir()
        self._dir = None

    def _new_segment(self, datastore: str, path: str, suffix: str) -> Segment:
        folder = self._own_dir()
        self._seq += 1
        name = f"{self._seq:08d}@{quote(datastore, safe='')}@{quote(path, safe='')}{suffix}"
        if len(name.encode()) > 250:
            raise StorageError(
                "object path too long to spool (keep collection paths under ~150 characters)",
                path=path,
            )
        return Segment(folder / name, datastore, path)

    def _own_dir(self) -> Path:
        if self._dir is None:
            self.root.mkdir(parents=True, exist_ok=True)
            owner = f"{uuid.uuid4().hex[:12]}-{os.getpid()}"
            # Made under a hidden name, locked, then renamed: no one can adopt it meanwhile.
            hidden = self.root / f".{owner}"
            hidden.mkdir()
            fd = os.open(hidden / _LOCK, os.O_WRONLY | os.O_CREAT, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.replace(hidden, self.root / owner)
            self._dir, self._lock_fd = self.root / owner, fd
        return self._dir

    # -- adoption ---------------------------------------------------------------------

    def adopt(self) -> list[Segment]:
        """Take over the segments of owners that are gone; returns them (also queued)."""
        if not self.root.is_dir():
            return []
        adopted: list[Segment] = []
        for folder in sorted(self.root.iterdir()):
            if folder.name.startswith(".") or not folder.is_dir() or folder == self._dir:
                continue
            if folder in self._adopted:
                continue
            fd = _try_lock(folder / _LOCK)
            if fd is None:
                continue  # its owner is alive, or another process adopted it
            # Held until the folder is empty, so no other process uploads these too.
            self._adopted[folder] = fd
            for file in sorted(folder.iterdir()):
                segment = None if file.name == _LOCK else _recover(file)
                if segment is not None:
                    adopted.append(segment)
                    self.nbytes += segment.nbytes
                    self._sealed.append(segment)
            if not any(f.name != _LOCK for f in folder.iterdir()):
                self._release(folder)
        if adopted:
            log.warning(
                "modeltap: adopted %d spooled objects (%d bytes) left by a stopped process",
                len(adopted),
                sum(s.nbytes for s in adopted),
            )
        return adopted

    def _release(self, folder: Path) -> None:
        """Remove an emptied adopted folder (if it is empty) and let go of its lock."""
        fd = self._adopted.pop(folder)
        with contextlib.suppress(OSError):
            if not any(f.name != _LOCK for f in folder.iterdir()):
                (folder / _LOCK).unlink(missing_ok=True)
                folder.rmdir()
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _try_lock(file: Path) -> int | None:
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _recover(file: Path) -> Segment | None:
    """A dead owner's segment, sealed; a trailing partial line (a write cut by the crash,
    whose collect() never returned) is cut off. Temporary files are removed."""
    name = file.name
    if name.endswith(".tmp"):
        file.unlink(missing_ok=True)
        return None
    try:
        if not name.endswith((_OPEN, _SEALED)):
            raise ValueError(name)
        _seq, datastore, path = name.removesuffix(_OPEN).removesuffix(_SEALED).split("@")
    except ValueError:
        log.error("modeltap: unknown file in the spool, left alone: %s", file)
        return None
    datastore, path = unquote(datastore), unquote(path)
    if name.endswith(_OPEN):
        size, end = file.stat().st_size, _end_of_last_line(file)
        if end < size:
            log.warning("modeltap: cut a partial line (%d bytes) from %s", size - end, file)
            with open(file, "r+b") as f:
                f.truncate(end)
        sealed = file.with_name(name.removesuffix(_OPEN) + _SEALED)
        os.replace(file, sealed)
        file = sealed
    nbytes = file.stat().st_size
    if nbytes == 0:
        file.unlink(missing_ok=True)
        return None
    # records: counted when it is uploaded (the file is read then anyway)
    return Segment(file, datastore, path, nbytes, own=False)


def _end_of_last_line(file: Path, chunk: int = 1 << 16) -> int:
    """The offset just past the file's last newline (0 when it has none), read from the end."""
    with open(file, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        while end > 0:
            start = max(0, end - chunk)
            f.seek(start)
            found = f.read(end - start).rfind(b"\n")
            if found >= 0:
                return start + found + 1
            end = start
    return 0
