"""Real cloud storage emulators for the tests: Azurite (Azure Blob) and moto (S3).

Session fixtures `azurite` and `moto_s3` start one server each on a free 127.0.0.1 port,
the first time a test asks for it, and stop it when the session ends. Azurite is
installed into .emulators/ by scripts/test.sh; moto comes with the `dev` extra.

A test that stops Azurite (`azurite.stop()`) must start it again (`azurite.start()`):
same port, same data folder, so every object written before is still there.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import free_port, wait_until_answering

__all__ = ["Azurite", "MotoS3", "azurite", "moto_s3", "unique_name"]

ROOT = Path(__file__).resolve().parents[1]
AZURITE_VERSION = "3.35.0"  # newer releases need Node >= 22
AZURITE_MAIN = ROOT / ".emulators/node_modules/azurite/dist/src/blob/main.js"
_HOST = "127.0.0.1"


def unique_name(stem: str = "t") -> str:
    """A fresh container or bucket name (3-63 lowercase letters, digits, hyphens)."""
    return f"{stem}-{uuid.uuid4().hex[:16]}"


def _wait(url: str, proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    try:
        wait_until_answering(url, proc, what=what, log=log)  # any HTTP answer: it is serving
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raise


def _stop(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float = 20) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Azurite:
    """An Azurite blob service on 127.0.0.1.

    Attributes: port, location (its data folder), account, key, blob_endpoint,
    connection_string, env ({"AZURE_STORAGE_CONNECTION_STRING": ...}), log (its output).
    """

    def __init__(self, location: Path, port: int | None = None):
        # the emulator's well-known development account
        from modeltap.storage.objectstore import AZURITE_ACCOUNT, AZURITE_KEY

        if not AZURITE_MAIN.is_file():
            raise AssertionError(
                f"Azurite is not installed ({AZURITE_MAIN} is missing). Install it with\n"
                "  bash scripts/test.sh   (npm ci of tests/azurite/package-lock.json into\n"
                f"  .emulators/; Azurite {AZURITE_VERSION})"
            )
        self.port = port or free_port()
        self.location = location
        self.log = location / "azurite.log"
        self.account = AZURITE_ACCOUNT
        self.key = AZURITE_KEY
        self.blob_endpoint = f"http://{_HOST}:{self.port}/{self.account}"
        self.connection_string = (
            f"DefaultEndpointsProtocol=http;AccountName={self.account};"
            f"AccountKey={self.key};BlobEndpoint={self.blob_endpoint};"
        )
        self.env = {"AZURE_STORAGE_CONNECTION_STRING": self.connection_string}
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server (again), on the same port and data folder; wait until it serves."""
        if self.running:
            return
        self.location.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    "node",
                    str(AZURITE_MAIN),
                    "--blobHost",
                    _HOST,
                    "--blobPort",
                    str(self.port),
                    "--location",
                    str(self.location),
                    "--silent",
                    "--skipApiVersionCheck",
                    "--disableTelemetry",
                ],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        _wait(f"{self.blob_endpoint}?comp=list", self._proc, self.log, "Azurite")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server (SIGTERM: it saves its index first). No-op when stopped."""
        _stop(self._proc, sig)
        self._proc = None

    def pause(self, paused: bool = True) -> None:
        """Freeze (SIGSTOP) or thaw (SIGCONT) the server: frozen, it takes connections (the
        kernel queues them) and never answers, like a storage account that hangs."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP if paused else signal.SIGCONT)

    def create_container(self, name: str) -> str:
        """Create a container (Shared Key signed REST call); an existing one is fine."""
        date = email.utils.formatdate(usegmt=True)
        headers = {"x-ms-date": date, "x-ms-version": "2021-08-06"}
        canonical = "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()))
        resource = f"/{self.account}/{self.account}/{name}\nrestype:container"
        to_sign = "PUT\n" + "\n" * 11 + canonical + resource
        digest = hmac.new(base64.b64decode(self.key), to_sign.encode(), hashlib.sha256).digest()
        headers["Authorization"] = f"SharedKey {self.account}:{base64.b64encode(digest).decode()}"
        response = httpx.put(
            f"{self.blob_endpoint}/{name}",
            params={"restype": "container"},
            headers=headers,
            timeout=10,
        )
        assert response.status_code in (201, 409), response.text
        return name


class MotoS3:
    """A moto S3 server on 127.0.0.1 (it accepts any credentials).

    Attributes: port, endpoint, region, env (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    AWS_REGION), log.
    """

    def __init__(self, folder: Path, port: int | None = None):
        self.port = port or free_port()
        self.endpoint = f"http://{_HOST}:{self.port}"
        self.region = "us-east-1"
        self.env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
            "AWS_REGION": self.region,
        }
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / "moto.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", _HOST, "-p", str(self.port)],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
            )
        _wait(f"{self.endpoint}/moto-api/", self._proc, self.log, "moto")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        _stop(self._proc, sig)
        self._proc = None

    def create_bucket(self, name: str) -> str:
        """Create a bucket (moto does not check signatures); an existing one is fine."""
        response = httpx.put(f"{self.endpoint}/{name}", timeout=10)
        assert response.status_code == 200, response.text
        return name


def _running(server: Azurite | MotoS3) -> Iterator[Any]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    yield from _running(Azurite(tmp_path_factory.mktemp("azurite")))


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    yield from _running(MotoS3(tmp_path_factory.mktemp("moto")))
