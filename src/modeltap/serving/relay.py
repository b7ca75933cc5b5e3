"""The payload relay: serve workers hand logged calls to the sidecar process.

Why: recording a call on the worker (two Records, two encoded lines, the writer thread
taking the interpreter lock from the event loop) cost a trivial score.py about half its
throughput. With the relay a worker packs each call into a frame (a one-line JSON header,
then the raw bodies), gathers the frames of about `FLUSH_DELAY` into one datagram and
sends it over a Unix socket to the sidecar, which makes the same Records there and writes
them through its own pipeline, on the other core.

Nothing is lost on the way: a call too big for a datagram, or a batch the socket does
not take at once (the sidecar is busy, stopped or gone), is recorded by the worker itself.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

__all__ = [
    "ENV_RELAY_SOCKET",
    "MAX_DATAGRAM",
    "Call",
    "RelayReceiver",
    "RelaySender",
    "decode",
    "encode",
]

log = logging.getLogger(__name__)

ENV_RELAY_SOCKET = "MODELTAP_RELAY_SOCKET"
# Unix datagrams must fit the sender's socket buffer (208 KB by default): keep well under.
MAX_DATAGRAM = 64 * 1024
FLUSH_DELAY = 0.0005  # s a frame waits for others; 0, 2 and 20 ms measured worse (p99, req/s)
_RETRY_AFTER = 1.0  # seconds without relaying after the socket failed (not just busy)


@dataclass(slots=True)
class Call:
    """One logged HTTP call: what both the request and the response record are made of."""

    request_id: str
    time: float  # unix seconds when the call ended
    path: str  # with the query string
    method: str
    request_type: str  # content-type headers as sent
    status: int | None  # None: the app never started a response
    response_type: str
    latency_ms: float
    error: str | None
    request_body: bytes
    response_body: bytes
    refused: str | None = None  # why the request body was not accepted (over the limit)


def encode(call: Call) -> bytes:
    """A frame: the fields as one JSON line (orjson never writes a raw line break), then
    the request and response bodies, whose sizes the header gives."""
    header = orjson.dumps(
        (
            call.request_id,
            call.time,
            call.path,
            call.method,
            call.request_type,
            call.status,
            call.response_type,
            call.latency_ms,
            call.error,
            call.refused,
            len(call.request_body),
            len(call.response_body),
        )
    )
    return b"".join((header, b"\n", call.request_body, call.response_body))


def decode(data: bytes) -> Iterator[Call]:
    """The calls in a datagram of frames; ValueError when it is not one."""
    view = memoryview(data)
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        if end < 0:
            raise ValueError(f"relay frame at byte {pos} has no header line")
        try:
            (rid, at, path, method, rtype, status, stype, latency, error, refused, nreq, nresp) = (
                orjson.loads(view[pos:end])
            )
        except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
            raise ValueError(f"relay frame at byte {pos} has a bad header: {exc}") from None
        start = end + 1
        if start + nreq + nresp > len(data):
            raise ValueError(f"relay frame at byte {pos} is cut short")
        pos = start + nreq + nresp
        yield Call(
            rid,
            at,
            path,
            method,
            rtype,
            status,
            stype,
            latency,
            error,
            bytes(view[start : start + nreq]),
            bytes(view[start + nreq : pos]),
            refused,
        )


class RelaySender:
    """Worker side; used from the event loop's thread only.

    `fallback` records a call in this process: it gets every call the relay could not take.
    """

    def __init__(self, path: str, fallback: Callable[[Call], None]):
        self.path = path
        self.fallback = fallback
        self._socket: socket.socket | None = None
        self._frames: list[bytes] = []
        self._calls: list[Call] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._down_until = 0.0
        self.relayed = 0  # calls the sidecar took
        self.kept = 0  # calls recorded here instead

    def add(self, call: Call) -> None:
        frame = encode(call)
        if len(frame) > MAX_DATAGRAM or time.monotonic() < self._down_until:
            self.kept += 1
            self.fallback(call)
            return
        if self._size + len(frame) > MAX_DATAGRAM:
            self.flush()
        self._frames.append(frame)
        self._calls.append(call)
        self._size += len(frame)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_DELAY, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._frames:
            return
        data = b"".join(self._frames)
        calls = self._calls
        self._frames, self._calls, self._size = [], [], 0
        try:
            self._send(data)
        except BlockingIOError:  # the sidecar is behind: this batch is recorded here
            self._keep(calls)
        except OSError as exc:
            log.warning(
                "modeltap: payload relay to %s failed (%s); recording in this worker for %.0f s",
                self.path,
                exc,
                _RETRY_AFTER,
            )
            self._close_socket()
            self._down_until = time.monotonic() + _RETRY_AFTER
            self._keep(calls)
        else:
            self.relayed += len(calls)

    def close(self) -> None:
        self.flush()
        self._close_socket()

    def _send(self, data: bytes) -> None:
        if self._socket is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                sock.connect(self.path)
            except OSError:
                sock.close()
                raise
            sock.setblocking(False)  # never hold up the event loop: fall back instead
            self._socket = sock
        self._socket.send(data)

    def _keep(self, calls: list[Call]) -> None:
        self.kept += len(calls)
        for call in calls:
            self.fallback(call)

    def _close_socket(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


class RelayReceiver:
    """Sidecar side: a thread receiving datagrams on `path` and handing each call to
    `handle`. A datagram that is not frames is logged and skipped; serving goes on."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        handle: Callable[[Call], None],
        on_lost: Callable[[BaseException], None] | None = None,
    ):
        """on_lost(error): a call that `handle` could not record (to count its records)."""
        self.path = Path(path)
        self.handle = handle
        self.on_lost = on_lost
        self.path.unlink(missing_ok=True)  # a socket left by a killed sidecar
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self._socket.bind(str(self.path))
        self._socket.settimeout(0.2)  # how often the thread looks for close()
        self._stop = threading.Event()
        self.received = 0  # calls
        self._thread = threading.Thread(target=self._run, name="modeltap-relay", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        buffer = bytearray(MAX_DATAGRAM + 1)
        while True:
            try:
                size = self._socket.recv_into(buffer)
            except TimeoutError:
                if self._stop.is_set():
                    return
                continue
            except OSError:
                return  # closed
            self._take(bytes(buffer[:size]))

    def _take(self, data: bytes) -> None:
        try:
            calls = list(decode(data))
        except ValueError as exc:
            log.error("modeltap: payload relay datagram skipped: %s", exc)
            return
        for call in calls:
            self.received += 1
            try:
                self.handle(call)
            except Exception as exc:  # one call must not stop the relay; counted
                log.exception("modeltap: relayed call %s not recorded", call.request_id)
                if self.on_lost is not None:
                    self.on_lost(exc)

    def close(self, timeout: float = 10.0) -> None:
        """Take what is queued, then stop (the workers stopped sending before)."""
        self._stop.set()
        self._thread.join(timeout)
        self._socket.setblocking(False)
        while True:  # anything still queued after the thread's last look
            try:
                data = self._socket.recv(MAX_DATAGRAM + 1)
            except OSError:
                break
            self._take(data)
        self._socket.close()
        self.path.unlink(missing_ok=True)
