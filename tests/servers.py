"""Start real server processes on 127.0.0.1 for tests, and stop them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from modeltap.serving.sidecar import free_port

__all__ = ["Process", "free_port"]


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
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(health_url, timeout=1).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"{args} did not start:\n{log.read_text()}")
            time.sleep(0.1)

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
