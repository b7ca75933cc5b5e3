"""The data asset catalog (SPEC R6.1)."""

from __future__ import annotations

import time

import pytest

from modeltap.assets import Asset, Catalog
from modeltap.errors import StorageError


def asset(
    name="ep-blue-model_inputs",
    version="1",
    path="modelDataCollector/ep/blue/model_inputs",
    datastore="workspaceblobstore",
) -> Asset:
    return Catalog.make(name, version, "ep", "blue", "model_inputs", datastore, path)


def test_make_is_a_uri_folder():
    before = time.time()
    a = asset()
    assert a.type == "uri_folder"
    assert (a.endpoint, a.deployment, a.collection) == ("ep", "blue", "model_inputs")
    assert a.uri == (
        "azureml://datastores/workspaceblobstore/paths/modelDataCollector/ep/blue/model_inputs"
    )
    assert before <= a.created <= time.time()  # Unix time: compared across processes


def test_empty_catalog(tmp_path):
    catalog = Catalog(tmp_path / "ws")
    assert catalog.list() == []
    assert catalog.get("anything") is None
    assert not (tmp_path / "ws" / "catalog.sqlite").exists()  # reading creates nothing


def test_register_and_list(tmp_path):
    catalog = Catalog(tmp_path / "ws")
    inputs = asset()
    outputs = Catalog.make(
        "ep-blue-model_outputs",
        "1",
        "ep",
        "blue",
        "model_outputs",
        "workspaceblobstore",
        "modelDataCollector/ep/blue/model_outputs",
    )
    catalog.register(outputs)
    catalog.register(inputs)
    assert (tmp_path / "ws" / "catalog.sqlite").is_file()
    assert catalog.list() == [inputs, outputs]  # by name
    # another Catalog on the same workspace sees the same assets
    assert Catalog(tmp_path / "ws").list() == [inputs, outputs]


def test_get_by_version_and_latest(tmp_path):
    catalog = Catalog(tmp_path)
    for version in ["1", "10", "2", "9"]:
        catalog.register(asset(version=version, path=f"p/v{version}"))
    catalog.register(asset(name="other", version="99"))
    latest = catalog.get("ep-blue-model_inputs")
    assert latest is not None
    assert latest.version == "10"  # numeric, not string, order
    assert latest.path == "p/v10"
    two = catalog.get("ep-blue-model_inputs", "2")
    assert two is not None and two.path == "p/v2"
    assert catalog.get("ep-blue-model_inputs", "3") is None
    assert catalog.get("missing") is None


def test_numeric_versions_are_later_than_named_ones(tmp_path):
    catalog = Catalog(tmp_path)
    catalog.register(asset(version="beta"))
    catalog.register(asset(version="2"))
    latest = catalog.get("ep-blue-model_inputs")
    assert latest is not None and latest.version == "2"


def test_register_again_updates_the_path(tmp_path):
    catalog = Catalog(tmp_path)
    catalog.register(asset(path="old/path"))
    catalog.register(asset(path="new/path", datastore="mystore"))
    assets = catalog.list()
    assert len(assets) == 1
    assert assets[0].path == "new/path"
    assert assets[0].datastore == "mystore"
    assert assets[0].uri == "azureml://datastores/mystore/paths/new/path"


def test_unusable_catalog_is_a_storage_error(tmp_path):
    (tmp_path / "catalog.sqlite").write_bytes(b"this is not a sqlite database" * 100)
    with pytest.raises(StorageError) as info:
        Catalog(tmp_path).list()
    assert "catalog.sqlite" in str(info.value)
