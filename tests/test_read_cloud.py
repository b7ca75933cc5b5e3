"""Reading back works the same on Azure Blob (Azurite) and S3 (moto) as on a local folder
(R6): load by asset name, a time range, join, and a corrupt object skipped and counted."""

from __future__ import annotations

import pandas as pd
import pytest

import modeltap
from modeltap import BasicCorrelationContext, Collector, read
from modeltap.config import load_workspace
from modeltap.storage import open_datastore
from tests.emulators import unique_name

pytestmark = pytest.mark.slow

CONN_ENV = "MODELTAP_TEST_AZURE_CONNECTION"


@pytest.fixture(params=["azure_blob", "s3"])
def cloud_workspace(request, tmp_path, monkeypatch):
    ws = tmp_path / "ws"
    ws.mkdir()
    if request.param == "azure_blob":
        azurite = request.getfixturevalue("azurite")
        monkeypatch.setenv(CONN_ENV, azurite.connection_string)
        container = azurite.create_container(unique_name())
        spec = f"type: azure_blob\n    container: {container}\n"
        spec += f"    connection_string_env: {CONN_ENV}"
    else:
        moto = request.getfixturevalue("moto_s3")
        for key, value in moto.env.items():
            monkeypatch.setenv(key, value)
        bucket = moto.create_bucket(unique_name())
        spec = f"type: s3\n    bucket: {bucket}\n    region: {moto.region}\n"
        spec += f"    endpoint_url: {moto.endpoint}"
    (ws / "workspace.yml").write_text(f"datastores:\n  lake:\n    {spec}\n")
    return ws


def test_load_and_join_from_a_cloud_datastore(cloud_workspace, caplog):
    ws = cloud_workspace
    lake = "azureml://datastores/lake/paths/collected/{}"
    modeltap.configure(
        workspace=ws,
        endpoint="my_endpoint",
        deployment="blue",
        collections={
            name: {"enabled": True, "data": {"path": lake.format(name)}}
            for name in ("model_inputs", "model_outputs")
        },
    )
    inputs, outputs = Collector(name="model_inputs"), Collector(name="model_outputs")
    for order in ("order-1", "order-2", "order-3"):
        ctx = inputs.collect(
            pd.DataFrame({"age": [30, 40], "city": ["a", "b"]}), BasicCorrelationContext(id=order)
        )
        outputs.collect(pd.DataFrame({"approved": [True, False]}), ctx)
    assert modeltap.flush(30)
    modeltap.shutdown()

    df = read.load("my_endpoint-blue-model_inputs", workspace=ws)
    assert len(df) == 6
    orders = ("order-1", "order-2", "order-3")
    assert df["correlationid"].tolist() == [o for o in orders for _ in "ab"]
    assert df["age"].tolist() == [30, 40] * 3
    assert str(df["time"].dtype) == "datetime64[us, UTC]"

    now = pd.Timestamp.now(tz="UTC")
    hour_ago, days_ago = now - pd.Timedelta("1h"), now - pd.Timedelta("2D")
    assert len(read.load("my_endpoint-blue-model_inputs", workspace=ws, start=hour_ago)) == 6
    old = read.load("my_endpoint-blue-model_inputs", workspace=ws, end=days_ago)
    assert len(old) == 0 and {"correlationid", "time", "record_id"} <= set(old.columns)

    joined = read.join(
        read.load("my_endpoint-blue-model_inputs", workspace=ws),
        read.load("my_endpoint-blue-model_outputs", workspace=ws),
    )
    assert len(joined) == 6
    assert joined["approved"].tolist() == [True, False] * 3

    # A corrupt object in the collection's folder is skipped and reported, not a crash.
    store = open_datastore("lake", load_workspace(ws).datastores["lake"], ws)
    [first] = list(store.list("collected/model_inputs"))
    folder = first.path.rsplit("/", 1)[0]
    store.put(f"{folder}/zz-corrupt.jsonl", b"\x00\x01 this is not json\n")
    store.close()
    again = read.load("my_endpoint-blue-model_inputs", workspace=ws)
    assert len(again) == 6
    skipped = again.attrs["modeltap_skipped"]
    # no line of it is JSON: skipped whole (its lines are not counted one by one)
    assert skipped == {
        "lines": 0,
        "files": [f"{folder}/zz-corrupt.jsonl"],
        "partial_files": [],
        "blobs": [],
    }
    assert "zz-corrupt" in caplog.text
