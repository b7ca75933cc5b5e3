"""A workspace whose datastore `lake` is a local folder, an Azurite container or a moto
bucket: retention and erasure are tested on each."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from modeltap.config import load_workspace
from modeltap.storage.base import Storage
from modeltap.storage.registry import open_datastore
from tests.emulators import Azurite, MotoS3, unique_name

CONN_ENV = "MODELTAP_TEST_AZURE_CONNECTION"


@dataclass
class Lake:
    kind: str
    workspace: Path
    storage: Storage


def _workspace_yaml(kind: str, request: pytest.FixtureRequest, monkeypatch) -> str:
    if kind == "local":
        return "datastores:\n  lake:\n    type: local\n    path: lake\n"
    if kind == "azure_blob":
        azurite: Azurite = request.getfixturevalue("azurite")
        monkeypatch.setenv(CONN_ENV, azurite.connection_string)
        container = azurite.create_container(unique_name())
        return (
            f"datastores:\n  lake:\n    type: azure_blob\n    container: {container}\n"
            f"    connection_string_env: {CONN_ENV}\n"
        )
    moto: MotoS3 = request.getfixturevalue("moto_s3")
    for key, value in moto.env.items():
        monkeypatch.setenv(key, value)
    bucket = moto.create_bucket(unique_name())
    return (
        f"datastores:\n  lake:\n    type: s3\n    bucket: {bucket}\n    region: {moto.region}\n"
        f"    endpoint_url: {moto.endpoint}\n"
    )


@pytest.fixture(params=["local", "azure_blob", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch) -> Iterator[Lake]:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "workspace.yml").write_text(_workspace_yaml(request.param, request, monkeypatch))
    storage = open_datastore("lake", load_workspace(ws).datastores["lake"], ws)
    yield Lake(request.param, ws, storage)
    storage.close()
