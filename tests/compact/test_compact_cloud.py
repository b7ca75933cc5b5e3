"""Compaction on Azure Blob (Azurite) and S3 (moto): the table written with the
datastore's credentials as the workspace file resolves them, read back by load, rerun a
no-op, and a second table in another datastore chosen with --to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from deltalake import DeltaTable

import modeltap
from modeltap import compact, read, runtime
from modeltap.config import load_workspace
from modeltap.read import _delta
from modeltap.record import FRAME, Record
from modeltap.tabular import PANDAS_TYPE
from tests.compact.helpers import canonical
from tests.emulators import unique_name

pytestmark = pytest.mark.slow

CONN_ENV = "MODELTAP_TEST_AZURE_CONNECTION"
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
ASSET = "my_endpoint-blue-model_inputs"


@pytest.fixture(params=["azure_blob", "s3"])
def cloud_workspace(request, tmp_path, monkeypatch):
    ws = tmp_path / "ws"
    ws.mkdir()
    if request.param == "azure_blob":
        azurite = request.getfixturevalue("azurite")
        monkeypatch.setenv(CONN_ENV, azurite.connection_string)
        container = azurite.create_container(unique_name())
        spec = f"type: azure_blob\n    container: {container}\n"
        spec += f"    connection_string_env: {CONN_ENV}\n    prefix: some/folder"
    else:
        moto = request.getfixturevalue("moto_s3")
        for key, value in moto.env.items():
            monkeypatch.setenv(key, value)
        bucket = moto.create_bucket(unique_name())
        spec = f"type: s3\n    bucket: {bucket}\n    region: {moto.region}\n"
        spec += f"    endpoint_url: {moto.endpoint}"
    (ws / "workspace.yml").write_text(f"datastores:\n  lake:\n    {spec}\n")
    return ws


def test_compact_and_load_on_a_cloud_datastore(cloud_workspace, tmp_path):
    ws = cloud_workspace
    modeltap.configure(
        workspace=ws,
        endpoint="my_endpoint",
        deployment="blue",
        collections={
            "model_inputs": {
                "enabled": True,
                "data": {"path": "azureml://datastores/lake/paths/collected/inputs"},
            }
        },
    )
    for h in range(3):
        for i in range(2):
            frame = pd.DataFrame({"age": [h, i], "city": ["a", None]})
            at = (T0 + timedelta(hours=h, minutes=i)).timestamp()
            record = Record(
                "model_inputs",
                frame,
                kind=FRAME,
                correlation_id=f"c{h}{i}",
                time_=at,
                collect_data_type=PANDAS_TYPE,
            )
            runtime.current().pipeline.submit(record)
        assert modeltap.flush(30)
    modeltap.shutdown()

    first = compact.compact(ASSET, workspace=ws, until=T0 + timedelta(hours=2))
    assert (first.objects, first.rows, first.version) == (2, 8, 0)
    rest = compact.compact(ASSET, workspace=ws)
    assert (rest.objects, rest.version) == (1, 1)
    assert compact.compact(ASSET, workspace=ws).commits == 0

    where = _delta.location(load_workspace(ws), "lake", "collected/inputs-delta")
    table = DeltaTable(where.uri, storage_options=where.storage_options)
    assert len(table.to_pyarrow_table()) == 12
    assert any(i.path.endswith(".json") for i in where.storage.list("collected/inputs-delta"))

    both = read.load(ASSET, workspace=ws)
    alone = read.load(ASSET, workspace=ws, delta=False)
    pd.testing.assert_frame_equal(canonical(both), canonical(alone))
    assert len(both) == 12
    part = read.load(ASSET, T0 + timedelta(hours=1), T0 + timedelta(hours=2), workspace=ws)
    assert sorted(part["age"].tolist()) == [0, 1, 1, 1]

    # --to another place: a local folder holds a second table of the same collection.
    local = compact.compact(ASSET, to=str(tmp_path / "copy"), workspace=ws)
    assert local.objects == 3
    assert len(DeltaTable(str(tmp_path / "copy")).to_pandas()) == 12
