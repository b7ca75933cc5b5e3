"""The agent as a sidecar process of `modeltap serve` (R1.8).

A score.py written for the source platform's SDK posts its records to an agent over
HTTP. `serve` runs one agent process beside the scoring workers (as the platform
does, so receiving never competes with scoring for the interpreter lock) and sets
the environment that SDK reads: AZUREML_MDC_CONFIG_PATH, _HOST and _PORT.
With `relay`, the agent also takes the workers' logged calls over a Unix socket and
writes their request/response records (see relay.py).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from modeltap.errors import ModeltapError
from modeltap.serving.shutdown import ENV_DRAIN_SECONDS

__all__ = ["AgentSidecar"]


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
        self._dir = Path(tempfile.mkdtemp(prefix="modeltap-agent-"))
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
        ]
        if self.relay_socket is not None:
            cmd += ["--relay-socket", str(self.relay_socket)]
        # Its pipeline must finish within what stop() waits: leave a second for the exit.
        env = {**os.environ, ENV_DRAIN_SECONDS: str(max(0.5, drain - 1))}
        self.proc = subprocess.Popen(cmd, env=env)
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
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self._dir, ignore_errors=True)
