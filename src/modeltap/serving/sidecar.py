"""The agent as a sidecar process of `modeltap serve` (R1.8).

A score.py written for the source platform's SDK posts its records to an agent over
HTTP. `serve` runs one agent process beside the scoring workers (as the platform
does, so receiving never competes with scoring for the interpreter lock) and sets
the environment that SDK reads: AZUREML_MDC_CONFIG_PATH, _HOST and _PORT.
With `relay`, the agent also takes the workers' logged calls over a Unix socket and
writes their request/response records (see relay.py).

The sidecar must outlive the workers: at shutdown they hand it their last records. So
it ignores SIGTERM and SIGINT (a Ctrl-C, or a service manager signalling the whole
process group, reaches it together with the workers) and stops when serve closes its
stdin, after the workers have exited, or when serve dies. Its folder in the temporary
directory (SDK config, relay socket) is locked while serve lives; a new serve removes
the folders of dead ones.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from modeltap.errors import ModeltapError
from modeltap.serving.shutdown import ENV_DRAIN_SECONDS

__all__ = ["AgentSidecar", "free_port", "remove_stale_folders", "run_sidecar"]

log = logging.getLogger(__name__)

_PREFIX = "modeltap-agent-"
_LOCK = "lock"
_STALE_AFTER = 10.0  # seconds: a folder this old whose lock is free belongs to a dead serve


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AgentSidecar:
    def __init__(
        self,
        deployment_file: Path | None,
        workspace: Path,
        collections: list[str],
        port: int = 0,
        relay: bool = False,
    ):
        self.deployment_file = deployment_file
        self.workspace = workspace
        self.collections = collections
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        remove_stale_folders()
        self._dir = Path(tempfile.mkdtemp(prefix=_PREFIX))
        self._lock = os.open(self._dir / _LOCK, os.O_WRONLY | os.O_CREAT, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held while serve lives
        self.relay_socket = self._dir / "relay.sock" if relay else None

    def sdk_environment(self) -> dict[str, str]:
        # Sampling is done by the agent from the correlation id, so the SDK keeps 100%.
        config = {
            "collections": {
                name: {"enabled": True, "sampleRatePercentage": 100} for name in self.collections
            }
        }
        path = self._dir / "mdc_config.json"
        path.write_text(json.dumps(config))
        return {
            "AZUREML_MDC_CONFIG_PATH": str(path),
            "AZUREML_MDC_HOST": "127.0.0.1",
            "AZUREML_MDC_PORT": str(self.port),
        }

    def start(self, timeout: float = 30.0, drain: float = 20.0) -> None:
        """Start the agent and wait until it answers; at shutdown it has `drain` seconds
        to write what it received (see stop)."""
        cmd = [
            sys.executable,
            "-m",
            "modeltap.cli",
            "agent",
            "-f",
            str(self.deployment_file),
            "--workspace",
            str(self.workspace),
            "--port",
            str(self.port),
            "--sidecar",
        ]
        if self.relay_socket is not None:
            cmd += ["--relay-socket", str(self.relay_socket)]
        # Its pipeline must finish within what stop() waits: leave a second for the exit.
        env = {**os.environ, ENV_DRAIN_SECONDS: str(max(0.5, drain - 1))}
        # Its stdin is its life line: closed by stop(), or by the kernel when serve dies.
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE)
        url = f"http://127.0.0.1:{self.port}/"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ModeltapError(
                    f"the agent sidecar exited with code {self.proc.returncode} (port {self.port})"
                )
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise ModeltapError(f"the agent sidecar did not answer on {url} within {timeout:.0f} s")

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the scoring workers have exited (they deliver their last records to
        it): the agent writes what it received, then exits; killed past timeout."""
        if self.proc is not None:
            if self.proc.stdin is not None:
                with contextlib.suppress(OSError):
                    self.proc.stdin.close()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.error("modeltap: the agent sidecar did not stop within %.0f s: killed", timeout)
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self._dir, ignore_errors=True)
        os.close(self._lock)


def remove_stale_folders(tmp: str | None = None) -> int:
    """Remove the sidecar folders that serve processes killed with SIGKILL left behind
    (their lock is free); the number removed."""
    removed = 0
    root = Path(tmp or tempfile.gettempdir())
    for folder in root.glob(f"{_PREFIX}*"):
        try:
            if not folder.is_dir() or time.time() - folder.stat().st_mtime < _STALE_AFTER:
                continue  # just made: its serve may not hold the lock yet
            fd = os.open(folder / _LOCK, os.O_WRONLY | os.O_CREAT, 0o600)
        except OSError:
            continue  # another user's, or gone meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # its serve lives
        finally:
            os.close(fd)
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    if removed:
        log.info("modeltap: removed %d sidecar folders left by stopped servers", removed)
    return removed


def run_sidecar(app_factory: str, host: str, port: int, log_level: str, **options: Any) -> None:
    """Run the agent as serve's sidecar: deaf to SIGTERM and SIGINT, it stops (gracefully:
    its pipeline writes what it holds) when its stdin closes."""
    import uvicorn

    logging.basicConfig(level=log_level.upper(), format="%(levelname)s: %(name)s: %(message)s")
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)

    class DeafServer(uvicorn.Server):
        """uvicorn's server without its SIGTERM/SIGINT handlers."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    config = uvicorn.Config(
        app_factory,
        factory=True,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=1,  # the workers, its only clients, have exited
        **options,
    )
    server = DeafServer(config)

    def stop_at_end_of_input() -> None:
        with contextlib.suppress(OSError, ValueError):
            sys.stdin.buffer.read()  # returns when serve closes the pipe, or dies
        server.should_exit = True

    threading.Thread(target=stop_at_end_of_input, name="modeltap-lifeline", daemon=True).start()
    server.run()
    if not server.started:
        sys.exit(3)
