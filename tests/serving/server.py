"""Run `modeltap serve` as a real process on 127.0.0.1 for end-to-end tests.

stdout and stderr go to separate files, so tests can read what the CLI told people.
Every wait is bounded; `stop()` escalates to SIGKILL, so no server outlives its test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.servers import free_port, wait_until_answering

START_TIMEOUT = 30.0


class Served:
    """`python -m modeltap.cli serve -f FILE --port P --workspace W [extra...]`, started healthy."""

    def __init__(
        self, deployment: Path, workspace: Path, logs: Path, extra: tuple[str, ...] = ()
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.workspace = workspace
        self.stdout_path = logs / f"serve-{self.port}.out"
        self.stderr_path = logs / f"serve-{self.port}.err"
        self.args = [
            sys.executable,
            "-m",
            "modeltap.cli",
            "serve",
            "-f",
            str(deployment),
            "--port",
            str(self.port),
            "--workspace",
            str(workspace),
            *extra,
        ]
        self._out = self.stdout_path.open("wb")
        self._err = self.stderr_path.open("wb")
        # Its own process group: workers and the agent sidecar can be killed with it.
        self.proc = subprocess.Popen(
            self.args, stdout=self._out, stderr=self._err, start_new_session=True
        )
        self.returncode: int | None = None
        try:
            self._wait_healthy()
        except BaseException:
            self.kill()
            raise

    def _wait_healthy(self) -> None:
        wait_until_answering(
            self.base + "/",
            self.proc,
            healthy=lambda status: status == 200,
            timeout=START_TIMEOUT,
            what="serve",
            log=self.stderr_path,
        )

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> tuple[int, float]:
        """Send sig and wait; (exit code, seconds taken). Killed (and failed) past timeout."""
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"serve did not exit within {timeout:.0f} s of signal {sig}:\n{self.stderr()}"
            ) from None
        self.returncode = code
        self._close_logs()
        return code, time.monotonic() - started

    def kill(self) -> None:
        """Teardown: whatever state the test left it in, the process group is gone."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(15)
        with contextlib.suppress(ProcessLookupError):  # leftover workers or sidecar
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(10)
        self._close_logs()

    def _close_logs(self) -> None:
        for f in (self._out, self._err):
            if not f.closed:
                f.close()
