from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import modeltap
import modeltap.read._source as read_source
from modeltap import collector, runtime
from tests.emulators import azurite, moto_s3  # noqa: F401 (session fixtures)
from tests.helpers import CountingStorage

# The source document's example deployment file, verbatim in content (SPEC R2.1).
SOURCE_DEPLOYMENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: my_endpoint
model: azureml:iris_mlflow_model@latest
environment:
  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04
  conda_file: model/conda.yaml
code_configuration:
  code: scripts
  scoring_script: score.py
instance_type: Standard_F2s_v2
instance_count: 1
data_collector:
  collections:
    model_inputs:
      enabled: 'True'
    model_outputs:
      enabled: 'True'
"""

# Its data_collector section: model_inputs and model_outputs collected.
SOURCE_DATA_COLLECTOR = SOURCE_DEPLOYMENT[SOURCE_DEPLOYMENT.index("data_collector:\n") :]


@pytest.fixture(autouse=True)
def fresh_runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts unconfigured, with no collectors declared."""
    monkeypatch.delenv(runtime.ENV_DEPLOYMENT, raising=False)
    monkeypatch.delenv(runtime.ENV_WORKSPACE, raising=False)
    modeltap.shutdown()
    collector._reset_for_tests()
    yield
    modeltap.shutdown()
    collector._reset_for_tests()


@pytest.fixture(autouse=True)
def fresh_read_caches() -> None:
    """Each test reads its objects itself (summary and tail keep what they scanned)."""
    from modeltap import summary
    from modeltap.read import _lines

    summary._SCANS.clear()
    _lines.SCANNED.clear()


def read_lines(root: Path, collection: str | None = None) -> list[dict[str, Any]]:
    """Every JSON line under root (optionally only one collection's), in path order."""
    lines = []
    for f in sorted(root.rglob("*.jsonl")):
        if collection is None or f"/{collection}/" in f.as_posix():
            lines.extend(json.loads(line) for line in f.read_text().splitlines())
    return lines


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return tmp_path / "ws"


def store_root(workspace: Path) -> Path:
    return workspace / "datastores" / "workspaceblobstore"


@pytest.fixture
def counting(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> CountingStorage:
    """The workspace blob store as a CountingStorage, for every datastore name read opens."""
    store = CountingStorage(store_root(workspace))
    monkeypatch.setattr(read_source, "open_datastore", lambda name, settings, ws: store)
    return store
