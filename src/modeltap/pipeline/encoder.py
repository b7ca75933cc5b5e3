"""The writer's large frames, encoded in a helper process beside the writer's own thread.

Why: JSON for a 1000-row frame costs milliseconds of interpreter time, and the writer
thread shares the interpreter lock with the caller's scoring code. A helper process
(started on the first large frame, `encoder: process`, the default) encodes a share of
each batch on another core while the writer thread encodes the rest, makes the lines and
commits; the writer takes that share back, encoded, with the next batch. The share grows
while the helper keeps up and shrinks when the writer has to wait for it. Nothing about
durability changes: the records stay in the writer's hands, and a frame the helper does
not return (it failed, hung past its deadline or is gone) is encoded by the writer
itself, as before. A helper that fails is stopped and started again a minute later.

The helper (modeltap.encode_helper) reads pickled frames on stdin and writes pickled JSON
on stdout; it exits when stdin closes, so it never outlives the process that started it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import select
import subprocess
import sys
import time

from modeltap import tabular
from modeltap.encode_helper import READY
from modeltap.record import FRAME, Record

__all__ = ["OFFLOAD_CELLS", "Encoder"]

log = logging.getLogger(__name__)

OFFLOAD_CELLS = 5000  # frames smaller than this cost less to encode than to hand over
# The helper's answer is due within this, plus a little per frame; else it is stopped.
_DEADLINE_BASE = 10.0
_DEADLINE_PER_FRAME = 0.2
_RETRY_AFTER = 60.0  # seconds before a failed helper is started again
_START_TIMEOUT = 60.0  # seconds the helper may take to import pandas and say it is ready


class Encoder:
    """Encodes the large pandas frames of the writer's batches: part on the writer thread,
    part in the helper process, whose share is returned, encoded, by the next call."""

    def __init__(self, mode: str = "process"):
        self._enabled = mode == "process"
        self._proc: subprocess.Popen[bytes] | None = None
        self._ready = False
        self._started_at = 0.0
        self._retry_at = 0.0
        self._share = 0.5  # of a batch's large frames, for the helper; follows its pace
        # the frames the helper is encoding, and when its answer is due
        self._in_flight: tuple[list[Record], float] | None = None
        self.frames_remote = 0  # frames the helper encoded (tests and stats)

    @property
    def in_flight(self) -> bool:
        return self._in_flight is not None

    def encode(self, records: list[Record]) -> list[Record]:
        """The records ready for their lines: those the helper encoded since the last call,
        then this batch's, its large frames encoded here, but for the share just handed
        to the helper (returned by the next call). A frame neither encoded keeps its
        snapshot, which the writer encodes as before."""
        ready = self._collect()
        big = [r for r in records if r.kind == FRAME and tabular.is_large(r.data, OFFLOAD_CELLS)]
        if not big or not self._enabled or not self._helper_ready():
            return ready + records
        remote = big[: max(1, int(len(big) * self._share + 0.5))]
        if self._hand_over(remote):
            handed = {id(r) for r in remote}
            records = [r for r in records if id(r) not in handed]
            big = big[len(remote) :]
        if big:
            self._encode_here(big)
        return ready + records

    def finish(self) -> list[Record]:
        """The records the helper still holds, encoded (or as snapshots if it failed)."""
        return self._collect()

    def close(self) -> None:
        proc, self._proc, self._ready = self._proc, None, False
        if proc is None:
            return
        with contextlib.suppress(OSError):
            proc.stdin.close()  # type: ignore[union-attr]
        try:
            proc.wait(2.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with contextlib.suppress(OSError):
            proc.stdout.close()  # type: ignore[union-attr]

    def _hand_over(self, remote: list[Record]) -> bool:
        try:
            request = pickle.dumps([r.data for r in remote], protocol=5)
        except Exception:  # an unpicklable value: this batch stays here
            return False
        deadline = time.monotonic() + _DEADLINE_BASE + _DEADLINE_PER_FRAME * len(remote)
        try:
            _write_all(self._proc, len(request).to_bytes(8, "little") + request, deadline)
        except Exception as exc:
            self._fail(f"could not hand frames over ({exc})")
            return False
        self._in_flight = (remote, deadline)
        return True

    def _collect(self) -> list[Record]:
        if self._in_flight is None:
            return []
        records, deadline = self._in_flight
        self._in_flight = None
        assert self._proc is not None and self._proc.stdout is not None
        waited = not select.select([self._proc.stdout], [], [], 0)[0]
        try:
            results = pickle.loads(_read_message(self._proc, deadline))
        except Exception as exc:
            self._fail(f"no answer ({exc})")
            return records  # their snapshots: the writer encodes them
        for record, data in zip(records, results, strict=True):
            if data is not None:  # None: the helper could not encode it; the writer tries
                record.data = data
                self.frames_remote += 1
        # The helper should be done by the time the writer has done its own part and
        # the lines, commits and next take: give it less when the writer had to wait.
        self._share = max(0.1, self._share - 0.05) if waited else min(0.95, self._share + 0.05)
        return records

    def _encode_here(self, records: list[Record]) -> None:
        try:
            datas = tabular.encode_frames([r.data for r in records])
        except Exception:  # the writer encodes them one by one and reports the bad one
            return
        for record, data in zip(records, datas, strict=True):
            record.data = data

    # -- the helper -------------------------------------------------------------------

    def _helper_ready(self) -> bool:
        if self._ready:
            return True
        now = time.monotonic()
        if self._proc is None:
            if now < self._retry_at:
                return False
            self._start()
            return False  # it imports pandas first; this batch is encoded here
        if now - self._started_at > _START_TIMEOUT:
            self._fail("it did not start in time")
            return False
        out = self._proc.stdout
        assert out is not None
        if select.select([out], [], [], 0)[0]:
            if os.read(out.fileno(), 1) == READY:
                self._ready = True
                log.info("modeltap: encoder process %d ready", self._proc.pid)
            else:
                self._fail("it exited at start")
        return self._ready

    def _start(self) -> None:
        env = dict(os.environ)
        # the helper imports modeltap as this process does, sys.path edits included
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self._started_at = time.monotonic()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", "from modeltap.encode_helper import serve; serve()"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
            )
        except OSError as exc:
            self._proc = None
            self._retry_at = time.monotonic() + _RETRY_AFTER
            log.warning("modeltap: no encoder process (%s); the writer encodes alone", exc)

    def _fail(self, why: str) -> None:
        pid = self._proc.pid if self._proc else None
        log.warning(
            "modeltap: encoder process %s stopped: %s; the writer encodes alone and starts "
            "another in %.0f s",
            pid,
            why,
            _RETRY_AFTER,
        )
        if self._proc is not None:
            with contextlib.suppress(OSError):
                self._proc.kill()
        self.close()
        self._retry_at = time.monotonic() + _RETRY_AFTER


def _write_all(proc: subprocess.Popen[bytes] | None, data: bytes, deadline: float) -> None:
    assert proc is not None and proc.stdin is not None
    fd = proc.stdin.fileno()
    view = memoryview(data)
    while view:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([], [fd], [], left)[1]:
            raise TimeoutError("the encoder process did not read in time")
        written = os.write(fd, view[: 1 << 16])  # at most a pipe's buffer: never blocks
        view = view[written:]


def _read_message(proc: subprocess.Popen[bytes] | None, deadline: float) -> bytes:
    assert proc is not None and proc.stdout is not None
    fd = proc.stdout.fileno()
    size = int.from_bytes(_read_exact(fd, 8, deadline), "little")
    return _read_exact(fd, size, deadline)


def _read_exact(fd: int, size: int, deadline: float) -> bytes:
    chunks = []
    while size:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError("the encoder process did not answer in time")
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            raise EOFError("the encoder process exited")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)
