"""Every datastore type keeps the one Storage contract (storage/base.py), against real
servers: a local folder, Azure Blob Storage (Azurite) and S3 (moto). Plus collection
end to end into each cloud datastore."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import modeltap
from modeltap.config import DatastoreSettings, load_workspace
from modeltap.errors import ConfigError, ObjectExistsError, StorageError
from modeltap.storage import LocalStorage, ObjectInfo, Storage, open_datastore
from tests.emulators import Azurite, MotoS3, unique_name

BACKENDS = ["local", "azure_blob", "s3"]
CONN_ENV = "MODELTAP_TEST_AZURE_CONNECTION"


def cloud_settings(
    kind: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    name: str | None = None,
    **options: object,
) -> DatastoreSettings:
    """Settings of a datastore on the emulator, its credentials in the environment, in a
    new container or bucket (or the one named, which is not created)."""
    if kind == "azure_blob":
        azurite: Azurite = request.getfixturevalue("azurite")
        monkeypatch.setenv(CONN_ENV, azurite.connection_string)
        container = name or azurite.create_container(unique_name())
        base = {"container": container, "connection_string_env": CONN_ENV}
    else:
        moto: MotoS3 = request.getfixturevalue("moto_s3")
        for key, value in moto.env.items():
            monkeypatch.setenv(key, value)
        bucket = name or moto.create_bucket(unique_name())
        base = {"bucket": bucket, "region": moto.region, "endpoint_url": moto.endpoint}
    return DatastoreSettings(kind, options={**base, **options})


@pytest.fixture(params=BACKENDS)
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Storage]:
    if request.param == "local":
        opened: Storage = LocalStorage(tmp_path / "store", name="local")
    else:
        settings = cloud_settings(request.param, request, monkeypatch)
        opened = open_datastore("lake", settings, tmp_path)
    yield opened
    opened.close()


@pytest.fixture(params=["azure_blob", "s3"])
def cloud(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_round_trip(store):
    store.put("a/b/c.jsonl", b'{"x":1}\n')
    assert store.get("a/b/c.jsonl") == b'{"x":1}\n'
    assert list(store.list()) == [ObjectInfo("a/b/c.jsonl", 8)]


def test_overwrite_replaces(store):
    store.put("p/o.jsonl", b"first")
    store.put("p/o.jsonl", b"second, longer")
    assert store.get("p/o.jsonl") == b"second, longer"
    assert list(store.list("p")) == [ObjectInfo("p/o.jsonl", 14)]


def test_create_only_put(store):
    store.put("p/o.jsonl", b"first", overwrite=False)
    with pytest.raises(ObjectExistsError) as err:
        store.put("p/o.jsonl", b"second", overwrite=False)
    assert "p/o.jsonl" in str(err.value)
    assert store.get("p/o.jsonl") == b"first"
    assert [info.path for info in store.list()] == ["p/o.jsonl"]


def test_an_object_put_in_parts_is_their_join(store):
    parts = [b'{"x":1}\n', b"", b'{"y":"\xc3\xa9"}\n' * 1000]
    store.put_parts("p/parts.jsonl", parts, overwrite=False)
    assert store.get("p/parts.jsonl") == b"".join(parts)
    with pytest.raises(ObjectExistsError):  # create-only, as put()
        store.put_parts("p/parts.jsonl", [b"other"], overwrite=False)
    assert store.get("p/parts.jsonl") == b"".join(parts)


PATHS = [
    "a/b/2.jsonl",
    "b/1.jsonl",
    "a/bc/1.jsonl",
    "a/b/10.jsonl",
    "a/b.jsonl",
    "a/b/c/1.jsonl",
    "a/b-x/1.jsonl",
    "a/b/%20 é.jsonl",
]


def test_list_order_and_folder_prefixes(store):
    for i, path in enumerate(PATHS):
        store.put(path, b"x" * i)
    everything = list(store.list())
    assert [info.path for info in everything] == sorted(PATHS)
    assert {info.path: info.size for info in everything} == {p: i for i, p in enumerate(PATHS)}
    assert list(store.list("")) == everything
    under_ab = ["a/b/%20 é.jsonl", "a/b/10.jsonl", "a/b/2.jsonl", "a/b/c/1.jsonl"]
    # A prefix is a folder: "a/b" holds a/b/..., not a/bc/..., a/b-x/... or the object a/b.jsonl
    for prefix in ("a/b", "a/b/", "/a/b", "a//b"):
        assert [info.path for info in store.list(prefix)] == under_ab, prefix
    assert [info.path for info in store.list("a/b/c")] == ["a/b/c/1.jsonl"]
    assert [info.path for info in store.list("a")] == sorted(p for p in PATHS if p[0] == "a")
    assert list(store.list("a/b.jsonl")) == []  # an object is not a folder
    assert list(store.list("nothing/here")) == []


def test_delete_removes_only_that_object(store):
    for path in ("p/1/a.jsonl", "p/1/b.jsonl", "p/2/a.jsonl"):
        store.put(path, b"x")
    store.delete("p/1/a.jsonl")
    assert [info.path for info in store.list()] == ["p/1/b.jsonl", "p/2/a.jsonl"]
    with pytest.raises(StorageError):
        store.get("p/1/a.jsonl")
    store.delete("p/1/a.jsonl")  # gone already: not an error (a clean-up can run again)
    store.delete("never/there.jsonl")
    store.put("p/1/a.jsonl", b"new", overwrite=False)  # the name can be used again
    assert store.get("p/1/a.jsonl") == b"new"


def test_delete_many_and_emptied_folders(store):
    paths = [f"q/{i // 10}/{i}.jsonl" for i in range(30)]
    for path in paths:
        store.put(path, b"x")
    store.delete_many([*paths[:25], "q/9/missing.jsonl"])  # one missing among them
    assert [info.path for info in store.list("q")] == sorted(paths[25:])
    store.delete_many([])
    assert list(store.list("q/0")) == []
    if isinstance(store, LocalStorage):  # folders emptied by deletes go too, not the root
        assert not (store.root / "q" / "0").exists() and (store.root / "q" / "2").is_dir()
        store.delete_many(paths[25:])
        assert not (store.root / "q").exists() and store.root.is_dir()


def test_empty_store_lists_nothing(store):
    assert list(store.list()) == []
    assert list(store.list("a")) == []


def test_missing_object_names_the_path(store):
    with pytest.raises(StorageError) as err:
        store.get("no/such/object.jsonl")
    assert not isinstance(err.value, ObjectExistsError)
    assert "no/such/object.jsonl" in str(err.value)


def test_binary_payload(store):
    data = bytes(range(256)) * 16 + b"\x00\r\n\xff"
    store.put("bin/blob", data)
    assert store.get("bin/blob") == data


def test_ten_megabytes(store):
    data = os.urandom(10 * 1024 * 1024)
    store.put("big/one", data)
    store.put("big/two", data, overwrite=False)
    assert store.get("big/one") == data
    assert store.get("big/two") == data
    assert [info.size for info in store.list("big")] == [len(data), len(data)]


def test_concurrent_create_only_puts_have_one_winner(store):
    barrier = threading.Barrier(8)
    won: list[int] = []
    lost: list[int] = []
    failed: list[BaseException] = []

    def write(i: int) -> None:
        barrier.wait()
        try:
            store.put("race/one.jsonl", f"writer {i}\n".encode() * 100, overwrite=False)
            won.append(i)
        except ObjectExistsError:
            lost.append(i)
        except BaseException as exc:
            failed.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failed
    assert len(won) == 1 and len(lost) == 7
    assert store.get("race/one.jsonl") == f"writer {won[0]}\n".encode() * 100


@pytest.mark.parametrize("bad", ["../x", "a/../../x", "a/./b", "a\\..\\b/c"])
def test_paths_cannot_escape(store, bad):
    with pytest.raises(StorageError):
        store.put(bad, b"x")
    with pytest.raises(StorageError):
        store.get(bad)
    with pytest.raises(StorageError):
        list(store.list(bad))
    with pytest.raises(StorageError):
        store.delete(bad)


def test_url_names_the_object(store):
    url = store.url("a/b/c.jsonl")
    assert url.endswith("a/b/c.jsonl")
    if isinstance(store, LocalStorage):
        assert url == str(store.root / "a" / "b" / "c.jsonl")
    else:
        assert url.startswith(("http://127.0.0.1:", "s3://"))


def test_local_path_is_the_file_get_reads(store, request):
    """The capability readers use instead of asking for the backend's class: a local
    folder gives the file (and folder) holding what get() and list() give; an object
    store gives None."""
    store.put("a/b/c.jsonl", b'{"x":1}\n')
    found = store.local_path("a/b/c.jsonl")
    if request.node.callspec.params["store"] != "local":
        assert found is None
        assert store.local_path("a") is None
        return
    assert found is not None and found.read_bytes() == store.get("a/b/c.jsonl")
    folder = store.local_path("a")
    assert folder is not None and folder.is_dir()
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.jsonl")) == [
        "b/c.jsonl"
    ]
    with pytest.raises(StorageError):
        store.local_path("../outside")


# --- cloud specifics -------------------------------------------------------------------


def test_prefix_is_a_folder_of_the_container(cloud, request, monkeypatch, tmp_path):
    settings = cloud_settings(cloud, request, monkeypatch)
    whole = open_datastore("whole", settings, tmp_path)
    inner_settings = DatastoreSettings(cloud, options={**settings.options, "prefix": "some/folder"})
    inner = open_datastore("inner", inner_settings, tmp_path)
    inner.put("x/1.jsonl", b"1")
    whole.put("some/folderish/2.jsonl", b"2")
    assert [i.path for i in inner.list()] == ["x/1.jsonl"]
    assert [i.path for i in inner.list("x")] == ["x/1.jsonl"]
    assert [i.path for i in whole.list()] == ["some/folder/x/1.jsonl", "some/folderish/2.jsonl"]
    assert inner.get("x/1.jsonl") == b"1"
    assert inner.url("x/1.jsonl") == whole.url("some/folder/x/1.jsonl")


def test_azurite_restart_keeps_objects(azurite, request, monkeypatch, tmp_path):
    store = open_datastore("lake", cloud_settings("azure_blob", request, monkeypatch), tmp_path)
    store.put("kept/1.jsonl", b"before the restart")
    azurite.stop()
    try:
        assert not azurite.running
        with pytest.raises(StorageError):
            store.get("kept/1.jsonl")
    finally:
        azurite.start()
    assert azurite.running
    assert store.get("kept/1.jsonl") == b"before the restart"  # same client, same port
    with pytest.raises(ObjectExistsError):
        store.put("kept/1.jsonl", b"again", overwrite=False)


def test_missing_container_or_bucket(cloud, request, monkeypatch, tmp_path):
    name = unique_name("missing")
    missing = open_datastore("gone", cloud_settings(cloud, request, monkeypatch, name), tmp_path)
    with pytest.raises(StorageError, match="not found") as err:
        missing.put("a/b.jsonl", b"x")
    assert f"{name}/a/b.jsonl" in str(err.value)
    with pytest.raises(StorageError):
        list(missing.list())


def test_errors_never_show_the_account_key(azurite, monkeypatch, tmp_path):
    # A wrong key: the service refuses, and neither key appears in the error.
    wrong_key = "QUJD" * 22
    monkeypatch.setenv(CONN_ENV, azurite.connection_string.replace(azurite.key, wrong_key))
    container = azurite.create_container(unique_name())
    settings = DatastoreSettings(
        "azure_blob", options={"container": container, "connection_string_env": CONN_ENV}
    )
    store = open_datastore("lake", settings, tmp_path)
    with pytest.raises(StorageError) as err:
        store.put("a.jsonl", b"x")
    assert wrong_key not in str(err.value) and azurite.key not in str(err.value)
    assert "a.jsonl" in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__
    # Nothing listening: a connection error, again without the key.
    dead = azurite.connection_string.replace(f":{azurite.port}/", ":9/")
    monkeypatch.setenv(CONN_ENV, dead)
    store = open_datastore("lake", settings, tmp_path)
    with pytest.raises(StorageError) as err:
        store.get("a.jsonl")
    assert azurite.key not in str(err.value) and "a.jsonl" in str(err.value)


def test_s3_errors_never_show_the_secret_key(moto_s3, monkeypatch, tmp_path):
    for key, value in moto_s3.env.items():
        monkeypatch.setenv(key, value)
    settings = DatastoreSettings(
        "s3",
        options={
            "bucket": "nobody-listens",
            "endpoint_url": "http://127.0.0.1:9",
            "max_retries": 0,
        },
    )
    store = open_datastore("s3lake", settings, tmp_path)
    with pytest.raises(StorageError) as err:
        store.put("a.jsonl", b"x")
    assert moto_s3.env["AWS_SECRET_ACCESS_KEY"] not in str(err.value)
    assert "s3://nobody-listens/a.jsonl" in str(err.value)


def test_missing_obstore_gives_the_install_hint(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "obstore", None)  # import obstore -> ImportError
    monkeypatch.delitem(sys.modules, "modeltap.storage.objectstore", raising=False)
    monkeypatch.delattr(modeltap.storage, "objectstore", raising=False)
    for kind, extra, options in [
        ("azure_blob", "azure", {"container": "abc", "account_url": "https://a.blob.x"}),
        ("s3", "s3", {"bucket": "abc"}),
    ]:
        with pytest.raises(ConfigError) as err:
            open_datastore("d", DatastoreSettings(kind, options=options), tmp_path)
        assert f"pip install 'modeltap[{extra}]'" in str(err.value)
        assert err.value.field == "datastores.d.type"


# --- collection end to end -------------------------------------------------------------

WORKSPACE = {
    "azure_blob": """\
datastores:
  lake:
    type: azure_blob
    container: {container}
    connection_string_env: {env}
""",
    "s3": """\
datastores:
  lake:
    type: s3
    bucket: {container}
    region: us-east-1
    endpoint_url: {endpoint}
    prefix: tenant/one
""",
}

DEPLOYMENT = """\
name: blue
endpoint_name: my_endpoint
data_collector:
  rolling_rate: Day
  collections:
    model_inputs:
      enabled: 'True'
      data:
        path: azureml://datastores/lake/paths/some/folder
"""


def test_collect_lands_in_the_cloud_datastore(cloud, request, monkeypatch, tmp_path):
    if cloud == "azure_blob":
        server: Azurite | MotoS3 = request.getfixturevalue("azurite")
        assert isinstance(server, Azurite)
        container = server.create_container(unique_name())
        monkeypatch.setenv(CONN_ENV, server.connection_string)
        endpoint = ""
    else:
        server = request.getfixturevalue("moto_s3")
        assert isinstance(server, MotoS3)
        container = server.create_bucket(unique_name())
        for key, value in server.env.items():
            monkeypatch.setenv(key, value)
        endpoint = server.endpoint
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "workspace.yml").write_text(
        WORKSPACE[cloud].format(container=container, env=CONN_ENV, endpoint=endpoint)
    )
    (tmp_path / "deployment.yml").write_text(DEPLOYMENT)
    modeltap.configure(deployment_file=tmp_path / "deployment.yml", workspace=ws)
    inputs = modeltap.Collector(name="model_inputs")
    inputs.collect(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}))
    assert modeltap.flush(30)
    assert modeltap.stats()["written"] == 1
    modeltap.shutdown()

    store = open_datastore("lake", load_workspace(ws).datastores["lake"], ws)
    [info] = store.list("some/folder")
    assert info.path.startswith("some/folder/") and info.path.endswith(".jsonl")
    assert len(info.path.split("/")) == 2 + 3 + 1  # some/folder/yyyy/MM/dd/<instance>.jsonl
    [line] = store.get(info.path).decode().splitlines()
    record = json.loads(line)
    assert record["data"] == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    assert record["type"] == "azureml.inference.model_inputs"
    if cloud == "s3":  # the workspace prefix is a folder of the bucket
        assert store.url(info.path) == f"s3://{container}/tenant/one/{info.path}"
