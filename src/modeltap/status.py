"""Pipeline counters of running servers, published in the workspace for the web page.

    WORKSPACE/status/<endpoint>/<deployment>/<host>-<pid>.json

Every process of `modeltap serve` (each worker and the agent sidecar), `modeltap agent`
and `modeltap proxy` publishes the runtime it configures from the environment those
commands set: a background thread rewrites its file every INTERVAL seconds (whole: a
temporary name, then a rename) with `modeltap.stats()`-style counters, and removes it when
the runtime is shut down or the process exits. A process killed outright leaves its file
behind; `read()` returns only files updated within STALE_AFTER intervals, so it drops out.

The file (one JSON object):

    {"endpoint": "my_endpoint", "deployment": "blue", "host": "web-1", "pid": 4242,
     "started": "2026-11-25T10:00:00Z", "updated": "2026-11-25T10:05:00Z", "interval": 5.0,
     "collections": ["model_inputs", "model_outputs"],
     "counters": {"accepted": 120, "written": 118, "dropped": 0, "sampled_out": 0,
                  "spooled": 0, ..., "buffered": 2, "spool_bytes": 0}}
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from modeltap import runtime
from modeltap.config import load_workspace

__all__ = ["ENV_INTERVAL", "INTERVAL", "STALE_AFTER", "ProcessStatus", "publish", "read", "totals"]

log = logging.getLogger(__name__)

ENV_INTERVAL = "MODELTAP_STATUS_INTERVAL"  # seconds between writes (default INTERVAL)
INTERVAL = 5.0
STALE_AFTER = 3  # intervals without an update: the process is taken as gone
FOLDER = "status"


@dataclass(frozen=True)
class ProcessStatus:
    """What one running process last published."""

    endpoint: str
    deployment: str
    host: str
    pid: int
    started: datetime | None
    updated: datetime
    interval: float
    collections: tuple[str, ...]
    counters: dict[str, int]
    path: Path


def read(
    workspace: str | os.PathLike[str] | None = None, *, now: datetime | None = None
) -> list[ProcessStatus]:
    """The processes publishing into the workspace now, by endpoint, deployment, host, pid.
    Files that are stale or cannot be read are left out."""
    root = load_workspace(workspace).root / FOLDER
    now = now or datetime.now(UTC)
    found = []
    for file in sorted(root.glob("*/*/*.json")):
        status = _load(file)
        if status is None:
            continue
        if now - status.updated <= timedelta(seconds=STALE_AFTER * status.interval):
            found.append(status)
    return sorted(found, key=lambda s: (s.endpoint, s.deployment, s.host, s.pid))


def totals(statuses: list[ProcessStatus]) -> dict[str, int]:
    """The counters of several processes added up."""
    out: dict[str, int] = {}
    for status in statuses:
        for key, value in status.counters.items():
            out[key] = out.get(key, 0) + value
    return out


def _load(file: Path) -> ProcessStatus | None:
    try:
        raw = orjson.loads(file.read_bytes())
        counters = {str(k): int(v) for k, v in raw["counters"].items()}
        return ProcessStatus(
            endpoint=str(raw["endpoint"]),
            deployment=str(raw["deployment"]),
            host=str(raw["host"]),
            pid=int(raw["pid"]),
            started=_time(raw.get("started")),
            updated=_time(raw["updated"]) or datetime.min.replace(tzinfo=UTC),
            interval=float(raw.get("interval") or INTERVAL),
            collections=tuple(str(c) for c in raw.get("collections", [])),
            counters=counters,
            path=file,
        )
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        log.debug("modeltap: status file %s skipped", file, exc_info=True)
        return None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    t = datetime.fromisoformat(value)
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- publishing -------------------------------------------------------------------------------


class _Publisher:
    """One thread per process: rewrites the file of every published runtime."""

    def __init__(self, interval: float):
        self.interval = interval
        self.host = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname())[:64] or "host"
        self._lock = threading.Lock()
        self._files: dict[Path, tuple[runtime.Runtime, datetime]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="modeltap-status", daemon=True)
        self._thread.start()

    def add(self, rt: runtime.Runtime) -> None:
        d = rt.deployment
        file = rt.workspace.root / FOLDER / d.endpoint / d.deployment
        file = file / f"{self.host}-{os.getpid()}.json"
        with self._lock:
            self._files[file] = (rt, datetime.now(UTC))
        self._write(file, rt, datetime.now(UTC))
        self._remove_dead(file.parent)

    def _remove_dead(self, folder: Path) -> None:
        """Files that processes of this host left when they were killed."""
        for other in folder.glob(f"{self.host}-*.json"):
            pid = other.stem[len(self.host) + 1 :]
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                with contextlib.suppress(OSError):
                    other.unlink()
            except OSError:  # alive, as another user
                continue

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def tick(self) -> None:
        with self._lock:
            files = list(self._files.items())
        for file, (rt, started) in files:
            if rt.pipeline.closed:
                self._remove(file, rt)
            else:
                self._write(file, rt, started)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            files = list(self._files.items())
        for file, (rt, _) in files:
            self._remove(file, rt)

    def _write(self, file: Path, rt: runtime.Runtime, started: datetime) -> None:
        counters = rt.pipeline.counters.snapshot()
        counters["buffered"] = rt.pipeline.buffered()
        counters["spool_bytes"] = rt.pipeline.spooled_bytes()
        body = {
            "endpoint": rt.deployment.endpoint,
            "deployment": rt.deployment.deployment,
            "host": self.host,
            "pid": os.getpid(),
            "started": _stamp(started),
            "updated": _stamp(datetime.now(UTC)),
            "interval": self.interval,
            "collections": sorted(rt.deployment.collections),
            "counters": counters,
        }
        tmp = file.with_name(f".{file.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(orjson.dumps(body))
            os.replace(tmp, file)
        except OSError as exc:  # the page goes without; collection must not suffer
            log.warning("modeltap: could not write status file %s: %s", file, exc)
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)

    def _remove(self, file: Path, rt: runtime.Runtime) -> None:
        with self._lock:
            if self._files.get(file, (None,))[0] is not rt:
                return  # a newer runtime of this process writes that file now
            del self._files[file]
        with contextlib.suppress(OSError):
            file.unlink(missing_ok=True)


_publisher: _Publisher | None = None
_publisher_lock = threading.Lock()


def publish(rt: runtime.Runtime) -> None:
    """Publish this runtime's counters into its workspace until it is shut down."""
    global _publisher
    with _publisher_lock:
        if _publisher is None:
            _publisher = _Publisher(_interval())
            atexit.register(_publisher.close)
    _publisher.add(rt)


def _interval() -> float:
    text = os.environ.get(ENV_INTERVAL) or ""
    try:
        value = float(text) if text else INTERVAL
    except ValueError:
        value = 0.0
    if not 0.05 <= value <= 3600:
        log.warning(
            "modeltap: %s=%r is not 0.05-3600 seconds; using %s", ENV_INTERVAL, text, INTERVAL
        )
        return INTERVAL
    return value


def _published_by_servers(rt: runtime.Runtime) -> None:
    """The runtimes that serve, agent and proxy configure from the environment they set."""
    if os.environ.get(runtime.ENV_DEPLOYMENT):
        publish(rt)


def _stopped(rt: runtime.Runtime) -> None:
    # Now, not at the next tick: a server's worker process may end right after.
    if _publisher is not None:
        _publisher.tick()


# Servers import this module (modeltap.serving): every runtime configured from then on.
runtime.on_configure.append(_published_by_servers)
runtime.on_shutdown.append(_stopped)
_configured = runtime.active()
if _configured is not None:
    _published_by_servers(_configured)
