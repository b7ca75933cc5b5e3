"""DuckDB as the reader of row collections (modeltap.read._duck): it gives what the exact
line-by-line reader gives, leaves what it cannot read faithfully to that reader, and
reads objects that are not on local disk through Storage.get(), once each.

tests/test_read.py runs every reading test with both readers; these are the cases where
DuckDB's declared-schema reading could go wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pyarrow as pa
import pytest

import modeltap.read._duck as read_duck
import modeltap.read._duck_sample as read_duck_sample
import modeltap.read._gather as read_gather
import modeltap.read._load as read_load
from modeltap import read
from modeltap.config import load_workspace
from modeltap.errors import StorageError
from modeltap.read._source import Source
from modeltap.read._tables import to_pandas
from modeltap.storage import open_datastore
from modeltap.storage.base import ObjectInfo, Storage
from tests.emulators import unique_name

pytest.importorskip("duckdb")

HOUR = "2026/03/01/08"


@pytest.fixture(autouse=True)
def duckdb_for_every_size(monkeypatch):
    monkeypatch.setattr(read_load, "DUCKDB_FROM_BYTES", 0)


@pytest.fixture
def used(monkeypatch) -> list[bool]:
    """One entry per load: whether DuckDB read it (False: it was left to the exact reader)."""
    seen: list[bool] = []
    original = read_duck.read

    def spy(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        seen.append(result is not None)
        return result

    monkeypatch.setattr(read_duck, "read", spy)
    return seen


def line(i: int, rows: list[dict[str, Any]], time: str = "2026-03-01T08:30:00Z") -> bytes:
    return orjson.dumps(
        {"specversion": "1.0", "id": f"r{i}", "time": time, "data": rows, "correlationid": f"c{i}"}
    )


def write(folder: Path, name: str, lines: list[bytes], hour: str = HOUR) -> None:
    path = folder / hour / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(x + b"\n" for x in lines))


def both(folder: Path, **kwargs: Any) -> pd.DataFrame:
    """DuckDB's frame, checked equal to the exact reader's."""
    fast = read.load(folder, **kwargs)
    exact = read.load(folder, exact=True, **kwargs)
    pd.testing.assert_frame_equal(fast, exact)
    assert fast.attrs == exact.attrs
    return fast


def test_values_types_and_names_match_the_exact_reader(tmp_path, used):
    rows = [
        {"n": 1, "x": 1.5, "s": "a", "b": True, "z": None, "when": "2026-01-02T03:04:05Z"},
        {"n": -2, "x": None, "s": None, "b": False, "z": None, "when": None},
    ]
    odd = {"with space": 1, 'quo"te': "q", "ünï": 2.0, "time": "mine", "record_id": 5}
    write(tmp_path, "a.jsonl", [line(1, rows), line(2, [rows[0], rows[1], rows[0]])])
    write(tmp_path, "b.jsonl", [line(3, [odd]), line(4, [])], hour="2026/03/01/09")
    df = both(tmp_path)
    assert used == [True]
    assert df["n"].tolist()[:5] == [1, -2, 1, -2, 1] and str(df["n"].dtype) == "Int64"
    assert df["x"].dtype == "float64" and str(df["b"].dtype) == "boolean"  # bools with nulls
    assert df["when"].tolist()[0] == "2026-01-02T03:04:05Z"  # text stays text
    assert df["z"].isna().all()
    assert df["with space"].tolist()[-1] == 1 and df['quo"te'].tolist()[-1] == "q"
    assert df["data.time"].tolist()[-1] == "mine" and df["data.record_id"].tolist()[-1] == 5
    assert df["record_id"].tolist() == ["r1"] * 2 + ["r2"] * 3 + ["r3"]
    assert str(df["time"].dtype) == "datetime64[us, UTC]"


def test_a_float_after_sampled_integers_keeps_its_decimals(tmp_path, used):
    middle = [line(i, [{"v": i}]) for i in range(1, 4)]
    middle[1] = line(2, [{"v": 2.5}])  # neither the first nor the last line: not sampled
    write(tmp_path, "a.jsonl", middle)
    df = both(tmp_path)
    assert used == [True]
    assert df["v"].tolist() == [1.0, 2.5, 3.0] and df["v"].dtype == "float64"


def test_a_string_in_a_number_column_sends_its_file_to_the_exact_reader(tmp_path, used, caplog):
    write(tmp_path, "a.jsonl", [line(1, [{"v": 1.5}]), line(2, [{"v": 2.5}])])
    write(
        tmp_path,
        "b.jsonl",
        [line(3, [{"v": 3.5}]), line(4, [{"v": "four"}]), line(5, [{"v": 5.5}])],
    )
    with caplog.at_level(logging.WARNING, logger="modeltap.read"):
        df = both(tmp_path)
    assert used == [True]
    assert df["v"].tolist() == ["1.5", "2.5", "3.5", "four", "5.5"]  # the JSON text of each
    assert df.attrs[read.SKIPPED]["lines"] == 0 and "skipped" not in caplog.text


def test_integers_beyond_double_precision_are_kept_exact(tmp_path, used):
    big = 2**60 + 1
    write(tmp_path, "a.jsonl", [line(1, [{"v": 1}]), line(2, [{"v": big}]), line(3, [{"v": 3}])])
    df = both(tmp_path)
    assert used == [False]  # found after the read: read again, line by line
    assert df["v"].tolist() == [1, big, 3]
    write(tmp_path, "b.jsonl", [line(4, [{"v": big}])], hour="2026/03/01/09")  # in the sample
    df = both(tmp_path)
    assert used[-1] is True and df["v"].tolist() == [1, big, 3, big]


def test_a_column_null_in_the_sample_is_decoded_afterwards(tmp_path, used):
    lines = [line(i, [{"k": i, "opt": None}]) for i in range(4)]
    lines[1] = line(1, [{"k": 1, "opt": 7}])
    lines[2] = line(2, [{"k": 2, "opt": 8}])
    write(tmp_path, "a.jsonl", lines)
    df = both(tmp_path)
    assert used == [True]
    assert df["opt"].tolist()[1:3] == [7, 8] and str(df["opt"].dtype) == "Int64"


def test_a_column_found_only_in_the_middle_of_files_needs_exact(tmp_path, used):
    lines = [line(i, [{"k": i}]) for i in range(3)]
    lines[1] = line(1, [{"k": 1, "late": "x"}])
    write(tmp_path, "a.jsonl", lines)
    fast = read.load(tmp_path)
    assert used == [True] and "late" not in fast.columns  # the documented limit
    exact = read.load(tmp_path, exact=True)
    assert exact["late"].tolist()[1] == "x"
    # Named with columns=, it is read wherever it is.
    assert read.load(tmp_path, columns=["late"])["late"].tolist()[1] == "x"


def test_many_damaged_files(tmp_path, used, caplog):
    good = [line(i, [{"v": i}]) for i in range(3)]
    for n in range(6):
        write(tmp_path, f"good-{n}.jsonl", good)
    for n in range(3):
        path = tmp_path / HOUR / f"cut-{n}.jsonl"
        path.write_bytes(b"".join(x + b"\n" for x in good) + good[0][:25])
    (tmp_path / HOUR / "garbage.jsonl").write_bytes(bytes(range(256)) * 3)
    with caplog.at_level(logging.WARNING, logger="modeltap.read"):
        df = both(tmp_path)
    assert used == [True]
    assert len(df) == 9 * 3
    skipped = df.attrs[read.SKIPPED]
    assert skipped["lines"] == 3
    assert [Path(p).name for p in skipped["files"]] == ["garbage.jsonl"]
    assert sorted(Path(p).name for p in skipped["partial_files"]) == [
        f"cut-{n}.jsonl" for n in range(3)
    ]
    assert df["time"].is_monotonic_increasing


def test_payload_and_nested_collections_are_read_line_by_line(tmp_path, used):
    write(tmp_path, "a.jsonl", [line(1, [{"emb": [0.1, 0.2], "m": {"k": 1}}])])
    assert list(both(tmp_path)["emb"][0]) == [0.1, 0.2]
    payload = orjson.dumps(
        {
            "id": "p",
            "time": "2026-03-01T08:30:00Z",
            "correlationid": "c",
            "method": "POST",
            "data": [{"a": 1}],
        }
    )
    write(tmp_path / "p", "a.jsonl", [payload])
    assert both(tmp_path / "p")["data"].tolist() == [[{"a": 1}]]
    assert used == [False, False]


def test_times_are_utc_and_filtered_in_the_query(tmp_path, used):
    write(
        tmp_path,
        "a.jsonl",
        [
            line(1, [{"v": 1}], "2026-03-01T08:10:00Z"),
            line(2, [{"v": 2}], "2026-03-01T09:20:00+01:00"),  # 08:20 UTC
            line(3, [{"v": 3}], "2026-03-01T08:30:00"),  # naive: UTC
            line(4, [{"v": 4}], "not a time"),
        ],
    )
    df = both(tmp_path)
    assert df["time"].tolist()[:3] == [
        pd.Timestamp("2026-03-01T08:10Z"),
        pd.Timestamp("2026-03-01T08:20Z"),
        pd.Timestamp("2026-03-01T08:30Z"),
    ]
    assert pd.isna(df["time"].tolist()[3])
    assert both(tmp_path, start="2026-03-01T08:15Z", end="2026-03-01T08:30Z")["v"].tolist() == [2]
    assert all(used)


def test_names_that_differ_only_in_case_are_read_line_by_line(tmp_path, used):
    write(tmp_path, "a.jsonl", [line(1, [{"A": 1, "a": 2}])])
    df = both(tmp_path)
    assert used == [False] and df[["A", "a"]].iloc[0].tolist() == [1, 2]


class MemoryStorage(Storage):
    """Objects in a dict: not on local disk, so read through get()."""

    def __init__(self, objects: dict[str, bytes], broken: tuple[str, ...] = ()):
        self.name = "memory"
        self.objects = dict(sorted(objects.items()))
        self.broken = broken
        self.got: list[str] = []

    def put(self, path: str, data: bytes, *, overwrite: bool = True) -> None:
        self.objects[path] = data

    def get(self, path: str) -> bytes:
        self.got.append(path)
        if path in self.broken:
            raise StorageError("read failed: injected", path=path)
        return self.objects[path]

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for path, data in self.objects.items():
            if not prefix or path.startswith(prefix.rstrip("/") + "/"):
                yield ObjectInfo(path, len(data))


def from_memory(monkeypatch, storage: MemoryStorage) -> None:
    monkeypatch.setattr(read_load, "resolve", lambda source, ws: Source(storage, "coll", "mem"))


def test_objects_not_on_local_disk_are_fetched_once(tmp_path, monkeypatch, used):
    objects = {
        f"coll/2026/03/01/{h:02d}/w.jsonl": b"\n".join(
            line(h * 10 + i, [{"h": h, "i": i}], f"2026-03-01T{h:02d}:0{i}:00Z") for i in range(3)
        )
        + b"\n"
        for h in range(4)
    }
    objects["coll/2026/03/01/02/x.jsonl"] = line(99, [{"h": 2, "i": 9}])[:20]  # cut
    memory = MemoryStorage(objects, broken=("coll/2026/03/01/03/w.jsonl",))
    from_memory(monkeypatch, memory)
    df = read.load("mem")
    assert used == [True]
    assert df["h"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert sorted(memory.got) == sorted(objects)  # each object once, the cut one included
    skipped = df.attrs[read.SKIPPED]
    assert skipped["files"] == ["coll/2026/03/01/03/w.jsonl", "coll/2026/03/01/02/x.jsonl"]
    memory.got.clear()
    df = read.load("mem", "2026-03-01T01:00", "2026-03-01T02:00")
    assert df["h"].tolist() == [1, 1, 1] and memory.got == ["coll/2026/03/01/01/w.jsonl"]


def test_payloads_not_on_local_disk_are_fetched_once(monkeypatch, used):
    payload = orjson.dumps(
        {
            "id": "p",
            "time": "2026-03-01T08:30:00Z",
            "correlationid": "c",
            "method": "POST",
            "data": {"q": 1},
        }
    )
    memory = MemoryStorage({"coll/2026/03/01/08/a.jsonl": payload + b"\n"})
    from_memory(monkeypatch, memory)
    assert read.load("mem")["data"].tolist() == [{"q": 1}]
    assert used == [False] and memory.got == ["coll/2026/03/01/08/a.jsonl"]


def test_small_reads_and_exact_use_pyarrow(tmp_path, monkeypatch, used):
    write(tmp_path, "a.jsonl", [line(1, [{"v": 1}])])
    assert read.load(tmp_path, exact=True)["v"].tolist() == [1]
    monkeypatch.setattr(read_load, "DUCKDB_FROM_BYTES", 1 << 20)
    assert read.load(tmp_path)["v"].tolist() == [1]
    assert used == []


def test_progress_bar_with_duckdb(tmp_path, used):
    for n in range(read_load.PROGRESS_FILES):
        write(tmp_path, f"{n:02d}.jsonl", [line(n, [{"v": n}])])
    assert read.load(tmp_path, progress=True)["v"].tolist() == list(range(read_load.PROGRESS_FILES))
    assert used == [True]


@pytest.mark.slow
def test_a_cloud_datastore_is_read_by_duckdb_from_a_local_copy(
    tmp_path, monkeypatch, used, moto_s3
):
    ws = tmp_path / "ws"
    ws.mkdir()
    for key, value in moto_s3.env.items():
        monkeypatch.setenv(key, value)
    bucket = moto_s3.create_bucket(unique_name())
    (ws / "workspace.yml").write_text(
        f"datastores:\n  lake:\n    type: s3\n    bucket: {bucket}\n"
        f"    region: {moto_s3.region}\n    endpoint_url: {moto_s3.endpoint}\n"
    )
    store = open_datastore("lake", load_workspace(ws).datastores["lake"], ws)
    for h in range(3):
        rows = [
            line(h * 10 + i, [{"h": h, "i": i}], f"2026-03-01T{h:02d}:0{i}:00Z") for i in range(3)
        ]
        store.put(f"coll/2026/03/01/{h:02d}/w.jsonl", b"\n".join(rows) + b"\n")
    store.put("coll/2026/03/01/01/zz.jsonl", line(99, [{"h": 1, "i": 9}]) + b"\n" + b'{"cut')
    store.close()
    uri = "azureml://datastores/lake/paths/coll"
    df = read.load(uri, workspace=ws)
    assert used == [True]
    pd.testing.assert_frame_equal(df, read.load(uri, workspace=ws, exact=True))
    assert df["h"].tolist() == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
    assert df.attrs[read.SKIPPED]["partial_files"] == ["coll/2026/03/01/01/zz.jsonl"]
    hour = read.load(uri, "2026-03-01T02:00", "2026-03-01T03:00", workspace=ws)
    assert hour["i"].tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"id":"1","data":[{"a":"x},{y","b":[{"c":1},{"d":2}]},{"a":"}],\\"correlationid\\":\\"",'
        b'"b":[]}],"correlationid":"c","x":"y"}',
        b'{"id":"1","data":[{"a":[{"q":1}],"correlationid":"n"},{"a":[2],"correlationid":"m"}],'
        b'"correlationid":"c"}',
        b'{"id":"1","data":[{"a":1},{"a":2}],"correlationid":"c","more":[{"z":1}],"y":"q"}',
        b'{"id":"1","data":[{"a":1}],"correlationid":"c","method":"POST"}',
        b'{"correlationid":"c","data":[{"a":1},{"b":2}],"id":"1"}',
        b'{"id":"1","data":[{"a":1},{"a":2}],"correlationid":"c"',
    ],
)
def test_the_sample_reads_first_and_last_rows_from_slices(raw):
    """The sample parses only the first and last rows of long lines; whatever the bytes
    in the rows, it gets what a full parse gets, or nothing (the line is parsed whole)."""
    sliced = read_duck_sample._sliced(raw)
    try:
        full = orjson.loads(raw)
    except orjson.JSONDecodeError:
        assert sliced is None
        return
    if "method" in full or sliced is None:
        assert sliced is None
        return
    assert sliced == (full["data"][0], full["data"][-1])


def test_gathered_rows_give_what_arrow_gives(monkeypatch):
    """Rows gathered column by column (numbers into growing numpy arrays) convert to the
    same frame as the same rows through an Arrow table."""
    monkeypatch.setattr(read_gather, "_FIRST", 4)  # grow several times
    schema = pa.schema(
        [
            ("f", pa.float64()),
            ("i", pa.int64()),
            ("n", pa.int64()),
            ("b", pa.bool_()),
            ("s", pa.large_string()),
            ("time", pa.timestamp("us", tz="UTC")),
        ]
    )

    def batch(k: int, nulls: bool) -> pa.RecordBatch:
        return pa.record_batch(
            [
                pa.array([None if nulls and j % 3 == 0 else j / 2 for j in range(k)]),
                pa.array(list(range(k)), pa.int64()),
                pa.array([None if nulls and j % 2 else j for j in range(k)], pa.int64()),
                pa.array([None if nulls and j == 1 else j % 2 == 0 for j in range(k)]),
                pa.array([f"v{j}" for j in range(k)], pa.large_string()),
                pa.array([j * 1_000_000 for j in range(k)], pa.timestamp("us", tz="UTC")),
            ],
            schema=schema,
        )

    batches = [batch(3, False), batch(5, True), batch(0, False), batch(9, False)]
    gathered = read_gather.Gathered(schema)
    gathered.add(batches[:2])
    gathered.add(batches[2:])
    gathered.done()
    expected = to_pandas(pa.Table.from_batches(batches, schema=schema))
    assert gathered.num_rows == 17
    assert gathered.table().equals(pa.Table.from_batches(batches, schema=schema))
    frame = gathered.frame()
    pd.testing.assert_frame_equal(frame, expected)
    assert str(frame["n"].dtype) == "Int64" and str(frame["b"].dtype) == "boolean"
    frame.loc[0, "f"] = 7.0  # the frame owns its numbers: they can be written
    assert frame["f"][0] == 7.0


def test_no_room_for_the_local_copy_reads_line_by_line(monkeypatch, caplog):
    memory = MemoryStorage({"coll/2026/03/01/08/a.jsonl": line(1, [{"v": 1}]) + b"\n"})
    from_memory(monkeypatch, memory)

    def full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(read_load.tempfile, "TemporaryDirectory", full)
    with caplog.at_level(logging.WARNING, logger="modeltap.read"):
        assert read.load("mem")["v"].tolist() == [1]
    assert "No space left on device" in caplog.text


def test_a_user_column_named_like_a_renamed_one(tmp_path, used):
    write(tmp_path, "a.jsonl", [line(1, [{"time": "mine", "data.time": "also mine"}])])
    df = both(tmp_path)
    assert used == [False]  # two columns would be "data.time": read line by line
    assert df.iloc[0, :2].tolist() == ["mine", "also mine"]
