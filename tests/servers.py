"""Start real server processes on 127.0.0.1 for tests, and stop them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from modeltap.serving.sidecar import free_port

__all__ = ["Process", "free_port", "start_cli", "wait_until_answering"]


def wait_until_answering(
    url: str,
    proc: subprocess.Popen[bytes],
    *,
    healthy: Callable[[int], bool] = lambda status: True,
    timeout: float = 60,
    what: str = "server",
    log: Path | None = None,
    interval: float = 0.1,
) -> None:
    """Poll url until it answers with a status `healthy` accepts (by default any HTTP
    answer). AssertionError, with the log's text, if proc exits first or timeout passes;
    proc is left as it is (the caller stops it)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if healthy(httpx.get(url, timeout=1).status_code):
                return
        except httpx.TransportError:
            pass
        code = proc.poll()
        if code is not None or time.monotonic() > deadline:
            why = (
                f"exited with {code} before answering"
                if code is not None
                else f"did not answer within {timeout:g} s"
            )
            text = log.read_text(errors="replace") if log is not None else ""
            raise AssertionError(f"{what} {why} at {url}:\n{text}")
        time.sleep(interval)


class Process:
    """A `modeltap ...` (or any python -m) process, its stderr in a log file."""

    def __init__(
        self,
        args: list[str],
        log: Path,
        health_url: str,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ):
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, *args], stderr=self._log, stdout=self._log, cwd=cwd, env=env
        )
        try:
            wait_until_answering(
                health_url, self.proc, healthy=lambda status: status < 500, what=str(args), log=log
            )
        except BaseException:
            self.stop()
            raise

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._log.close()
        return code


def start_cli(
    command: str, deployment: Path, workspace: Path, log: Path, *extra: str, health: str = "/"
) -> tuple[Process, str]:
    """`python -m modeltap.cli COMMAND -f DEPLOYMENT --port P --workspace W [extra...]` on a
    free port, started once base + health answers; (the process, its base URL)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ["-f", str(deployment), "--port", str(port), "--workspace", str(workspace), *extra]
    return Process(["-m", "modeltap.cli", command, *args], log, base + health), base
