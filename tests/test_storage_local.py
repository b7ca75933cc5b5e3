"""A local folder as a datastore (SPEC R7.1): whole objects, atomic replace, safe paths."""

from __future__ import annotations

import threading

import pytest

from modeltap.errors import StorageError
from modeltap.storage import LocalStorage
from modeltap.storage.base import ObjectInfo


@pytest.fixture
def store(tmp_path):
    return LocalStorage(tmp_path / "root", name="workspaceblobstore")


def test_put_get_roundtrip(store, tmp_path):
    store.put("ep/d/c/2024/03/05/18/w-1.jsonl", b'{"a":1}\n')
    assert store.get("ep/d/c/2024/03/05/18/w-1.jsonl") == b'{"a":1}\n'
    on_disk = tmp_path / "root" / "ep" / "d" / "c" / "2024" / "03" / "05" / "18" / "w-1.jsonl"
    assert on_disk.read_bytes() == b'{"a":1}\n'
    assert store.name == "workspaceblobstore"
    assert store.url("ep/x") == str(tmp_path / "root" / "ep" / "x")


def test_binary_and_empty_objects(store):
    blob = bytes(range(256)) * 10
    store.put("bin/blob", blob)
    store.put("bin/empty", b"")
    assert store.get("bin/blob") == blob
    assert store.get("bin/empty") == b""
    assert [(o.path, o.size) for o in store.list("bin")] == [
        ("bin/blob", len(blob)),
        ("bin/empty", 0),
    ]


def test_list_everything_and_a_prefix(store):
    for path in [
        "c/2024/03/05/18/b.jsonl",
        "c/2024/03/05/18/a.jsonl",
        "c/2024/03/05/19/a.jsonl",
        "other/x.jsonl",
    ]:
        store.put(path, path.encode())
    assert [o.path for o in store.list("c")] == [
        "c/2024/03/05/18/a.jsonl",
        "c/2024/03/05/18/b.jsonl",
        "c/2024/03/05/19/a.jsonl",
    ]
    assert [o.path for o in store.list("c/2024/03/05/19/")] == ["c/2024/03/05/19/a.jsonl"]
    everything = list(store.list())
    assert all(isinstance(o, ObjectInfo) for o in everything)
    assert [o.path for o in everything] == sorted(o.path for o in everything)
    assert len(everything) == 4
    assert {o.size for o in everything} == {len(o.path) for o in everything}


def test_list_of_missing_prefix_is_empty(store):
    assert list(store.list("nothing/here")) == []
    assert list(store.list()) == []


def test_list_is_in_path_order_across_depths(store):
    # a file next to folders (e.g. after the rolling rate changed from Hour to Day), and
    # folder names where "-" sorts before "/"
    paths = [
        "c/2024/03/05/x.jsonl",
        "c/2024/03/05/18/y.jsonl",
        "c/a/z.jsonl",
        "c/a-b/z.jsonl",
    ]
    for path in paths:
        store.put(path, b"x")
    assert [o.path for o in store.list("c")] == sorted(paths)


def test_list_skips_objects_being_written(store, tmp_path):
    store.put("c/a.jsonl", b"done")
    folder = tmp_path / "root" / "c"
    (folder / ".a.jsonl.1234abcd.tmp").write_bytes(b"half")
    (folder / ".b.jsonl.deadbeef.tmp").write_bytes(b"half")
    assert [o.path for o in store.list()] == ["c/a.jsonl"]


def test_put_leaves_no_temporary_files(store, tmp_path):
    for i in range(5):
        store.put("c/a.jsonl", str(i).encode())
    files = sorted(p.name for p in (tmp_path / "root" / "c").iterdir())
    assert files == ["a.jsonl"]


def test_put_replaces_an_existing_object(store, tmp_path):
    store.put("c/a.jsonl", b"old content that is longer")
    target = tmp_path / "root" / "c" / "a.jsonl"
    old_inode = target.stat().st_ino
    store.put("c/a.jsonl", b"new")
    assert store.get("c/a.jsonl") == b"new"
    assert target.stat().st_ino != old_inode  # renamed into place, not rewritten in place
    assert [(o.path, o.size) for o in store.list()] == [("c/a.jsonl", 3)]


def test_readers_never_see_a_partial_object(store):
    big_a, big_b = b"a" * 2_000_000, b"b" * 2_000_000
    store.put("c/obj", big_a)
    stop = threading.Event()
    seen: set[bytes] = set()

    def read():
        while not stop.is_set():
            data = store.get("c/obj")
            seen.add(data[:1] + data[-1:] + str(len(data)).encode())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(10):
            store.put("c/obj", big_b if i % 2 == 0 else big_a)
    finally:
        stop.set()
        reader.join()
    assert seen
    assert seen <= {b"aa2000000", b"bb2000000"}


@pytest.mark.parametrize(
    "path",
    ["../escape", "a/../../b", "a/..", "./a", "a/./b", "a\\..\\b", "a\x00b"],
)
def test_paths_that_escape_are_refused(store, tmp_path, path):
    for op in (
        lambda: store.put(path, b"x"),
        lambda: store.get(path),
        lambda: list(store.list(path)),
    ):
        with pytest.raises(StorageError) as info:
            op()
        assert path in str(info.value)
        assert info.value.path == path
        assert "escapes" in str(info.value)
    assert not (tmp_path / "escape").exists()
    assert not (tmp_path / "b").exists()


def test_leading_slash_stays_inside_the_root(store, tmp_path):
    store.put("/abs/x", b"1")
    assert (tmp_path / "root" / "abs" / "x").read_bytes() == b"1"


def test_get_missing_is_a_storage_error(store):
    with pytest.raises(StorageError) as info:
        store.get("c/missing.jsonl")
    assert "missing.jsonl" in str(info.value)
    assert info.value.path is not None and info.value.path.endswith("c/missing.jsonl")
    assert "read failed" in str(info.value)


def test_put_under_a_file_is_a_storage_error(store):
    store.put("c/file", b"x")
    with pytest.raises(StorageError) as info:
        store.put("c/file/child", b"y")
    assert "c/file/child" in str(info.value)
    assert store.get("c/file") == b"x"
