"""Reading collections back (SPEC R6.2, R6.3): sources, time ranges, rows, payloads, joins.

Data is made by the real pipeline; records at chosen times are Records submitted to it.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import modeltap
import modeltap.read._duck as read_duck
import modeltap.read._load as read_load
import modeltap.read._source as read_source
from modeltap import BasicCorrelationContext, Collector, read, runtime
from modeltap.errors import ConfigError, ModeltapError
from modeltap.read import NotFoundError
from modeltap.read._range import period, plan_prefixes, to_utc
from modeltap.record import BLOB, FRAME, JSON, Record
from modeltap.storage.local import LocalStorage
from modeltap.tabular import PANDAS_TYPE
from tests.conftest import read_lines, store_root
from tests.helpers import MemoryStorage, flush, setup

ASSET = "ep-blue-model_inputs"
PREFIX = "modelDataCollector/ep/blue/model_inputs"
T0 = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)


def submit(rows: list[dict[str, Any]], at: datetime, cid: str, collection: str = "model_inputs"):
    record = Record(
        collection,
        pd.DataFrame(rows),
        kind=FRAME,
        correlation_id=cid,
        time_=at.timestamp(),
        collect_data_type=PANDAS_TYPE,
    )
    runtime.current().pipeline.submit(record)


@pytest.fixture(autouse=True, params=["duckdb", "pyarrow"])
def reader(request, monkeypatch) -> str:
    """Every test runs with both readers: DuckDB (made to read even the smallest
    collections) and pyarrow's line reader (what runs without duckdb, or exact=True)."""
    if request.param == "duckdb":
        pytest.importorskip("duckdb")
        monkeypatch.setattr(read_load, "DUCKDB_FROM_BYTES", 0)
    else:
        monkeypatch.setattr(read_duck, "module", lambda: None)
    return str(request.param)


# -- rows ---------------------------------------------------------------------------------


def test_round_trip_values_and_dtypes(workspace):
    setup(workspace)
    frame = pd.DataFrame(
        {
            "age": [34, 51, 29],
            "income": [52000.5, np.nan, 61000.0],
            "city": ["Paris", None, "Oslo"],
            "member": [True, False, True],
            "visits": pd.array([3, None, 1], dtype="Int64"),
            "seen": pd.to_datetime(["2024-01-02T03:04:05", "2024-05-06T07:08:09", None], utc=True),
        }
    )
    before = datetime.now(UTC).replace(microsecond=0)
    ctx = Collector(name="model_inputs").collect(frame, BasicCorrelationContext(id="req-1"))
    flush()
    df = read.load(ASSET, workspace=workspace)

    assert list(df.columns) == [*frame.columns, "correlationid", "time", "record_id"]
    assert df["age"].tolist() == [34, 51, 29] and df["age"].dtype == "int64"
    assert df["income"].dtype == "float64" and np.isnan(df["income"][1])
    assert df["city"].tolist()[::2] == ["Paris", "Oslo"] and pd.isna(df["city"][1])
    assert df["member"].tolist() == [True, False, True] and df["member"].dtype == "bool"
    assert str(df["visits"].dtype) == "Int64"
    assert df["visits"].isna().tolist() == [False, True, False]
    # Datetimes were written as ISO 8601 text and come back as that text.
    assert df["seen"].tolist()[:2] == ["2024-01-02T03:04:05+00:00", "2024-05-06T07:08:09+00:00"]
    assert pd.isna(df["seen"][2])
    assert (df["correlationid"] == ctx.get_id()).all()
    assert str(df["time"].dtype) == "datetime64[us, UTC]"
    assert (df["time"] >= before).all() and (df["time"] <= datetime.now(UTC)).all()
    [line] = read_lines(workspace, "model_inputs")
    assert (df["record_id"] == line["id"]).all()
    assert df.attrs[read.SKIPPED] == {"lines": 0, "files": [], "partial_files": [], "blobs": []}


def test_merged_lines_expand_with_alignment(workspace):
    setup(workspace)
    submit([{"x": 1}, {"x": 2}], T0, "a")
    submit([{"x": 3}, {"x": 4}, {"x": 5}], T0, "a")  # same id, same batch: one line
    submit([{"x": 6}], T0, "b")
    flush()
    lines = read_lines(workspace, "model_inputs")
    assert [len(line["data"]) for line in lines] == [5, 1]
    df = read.load(ASSET, workspace=workspace)
    assert df["x"].tolist() == [1, 2, 3, 4, 5, 6]
    assert df["correlationid"].tolist() == ["a"] * 5 + ["b"]
    assert df["record_id"].tolist() == [lines[0]["id"]] * 5 + [lines[1]["id"]]


def test_dates_and_ids_that_look_like_dates_stay_text(workspace):
    setup(workspace)
    submit([{"day": "2026-01-02", "when": "2026-01-02T10:00:00Z", "n": 1}], T0, "2026-01-02")
    flush()
    df = read.load(ASSET, workspace=workspace)
    assert df[["day", "when", "correlationid"]].iloc[0].tolist() == [
        "2026-01-02",
        "2026-01-02T10:00:00Z",
        "2026-01-02",
    ]


def test_user_columns_named_like_the_envelope_are_kept(workspace):
    setup(workspace)
    submit([{"time": "my time", "record_id": 7, "v": 1.5}], T0, "c")
    flush()
    df = read.load(ASSET, workspace=workspace)
    assert df["data.time"].tolist() == ["my time"] and df["data.record_id"].tolist() == [7]
    assert df["time"].tolist() == [pd.Timestamp(T0)]


def test_types_that_change_between_files(workspace, tmp_path):
    folder = tmp_path / "coll"
    (folder / "2026").mkdir(parents=True)
    line = (
        '{{"id":"{i}","time":"2026-03-01T00:00:00Z","correlationid":"c",'
        '"data":[{{"x":{x},"y":{y}}}]}}\n'
    )
    (folder / "2026" / "a.jsonl").write_text(line.format(i=1, x=1, y=1))
    (folder / "2026" / "b.jsonl").write_text(line.format(i=2, x='"two"', y=2.5))
    # Within one file too: the line-by-line reader takes over.
    (folder / "2026" / "c.jsonl").write_text(
        line.format(i=3, x=3, y=3) + line.format(i=4, x='{"k":[1]}', y=4)
    )
    df = read.load(folder)
    assert df["x"].tolist() == ["1", "two", "3", '{"k":[1]}']
    assert df["y"].tolist() == [1.0, 2.5, 3.0, 4.0] and df["y"].dtype == "float64"
    assert df.attrs[read.SKIPPED]["lines"] == 0


def test_a_line_longer_than_a_parse_block(workspace):
    setup(workspace)
    rows = [{"i": i, "text": "x" * 40} for i in range(40_000)]  # one line of ~2 MB
    submit(rows, T0, "big")
    flush()
    df = read.load(ASSET, workspace=workspace)
    assert len(df) == 40_000 and df["i"].iloc[-1] == 39_999


def test_columns_selects_data_and_envelope_fields(workspace):
    setup(workspace)
    submit([{"a": 1, "b": "x"}], T0, "c")
    flush()
    df = read.load(ASSET, workspace=workspace, columns=["b", "modelversion"])
    assert list(df.columns) == ["b", "modelversion", "correlationid", "time", "record_id"]
    assert df.iloc[0][["b", "modelversion"]].tolist() == ["x", "default"]
    with pytest.raises(NotFoundError, match=r"no column 'aa'.*did you mean 'a'"):
        read.load(ASSET, workspace=workspace, columns=["aa"])
    with pytest.raises(TypeError, match="list of column names"):
        read.load(ASSET, workspace=workspace, columns="a")


# -- sources ------------------------------------------------------------------------------


def test_every_kind_of_source_reads_the_same_rows(workspace, monkeypatch):
    setup(workspace)
    submit([{"x": 1}, {"x": 2}], T0, "a")
    flush()
    folder = store_root(workspace) / PREFIX
    uri = f"azureml://datastores/workspaceblobstore/paths/{PREFIX}"
    long_uri = (
        "azureml://subscriptions/s/resourcegroups/g/workspaces/w/datastores/workspaceblobstore"
        f"/paths/{PREFIX}/"
    )
    expected = read.load(ASSET, workspace=workspace)
    assert expected["x"].tolist() == [1, 2]
    for source in (f"{ASSET}:1", uri, long_uri, str(folder), folder):
        pd.testing.assert_frame_equal(read.load(source, workspace=workspace), expected)
    # The default workspace is the runtime's: $MODELTAP_WORKSPACE, else ./modeltap-workspace.
    monkeypatch.setenv(runtime.ENV_WORKSPACE, str(workspace))
    pd.testing.assert_frame_equal(read.load(ASSET), expected)


def test_named_versions_and_other_datastores(workspace, tmp_path):
    workspace.mkdir(parents=True)
    archive = tmp_path / "archive"
    (workspace / "workspace.yml").write_text(
        f"datastores:\n  archive:\n    type: local\n    path: {archive}\n"
    )
    data = {"name": "my_inputs", "version": 3, "path": "azureml://datastores/archive/paths/in"}
    setup(workspace, collections={"model_inputs": {"enabled": True, "data": data}})
    submit([{"x": 1}], T0, "a")
    flush()
    assert (archive / "in" / "2026" / "03" / "01" / "08").is_dir()
    assert read.load("my_inputs:3", workspace=workspace)["x"].tolist() == [1]
    assert read.load("my_inputs", workspace=workspace)["x"].tolist() == [1]  # the latest
    uri = "azureml://datastores/archive/paths/in"
    assert read.load(uri, workspace=workspace)["x"].tolist() == [1]
    with pytest.raises(NotFoundError, match="has no version '2'; versions: 3"):
        read.load("my_inputs:2", workspace=workspace)
    with pytest.raises(ConfigError, match=r"unknown datastore 'archiv'.*did you mean 'archive'"):
        read.load("azureml://datastores/archiv/paths/in", workspace=workspace)


def test_unknown_asset_suggests_the_closest_names(workspace):
    setup(workspace)
    with pytest.raises(NotFoundError) as err:
        read.load("ep-blue-model_input", workspace=workspace)
    assert isinstance(err.value, ModeltapError)
    assert "no data asset 'ep-blue-model_input'" in str(err.value)
    assert "did you mean 'ep-blue-model_inputs'" in str(err.value)
    with pytest.raises(NotFoundError, match="has no assets"):
        read.load("anything", workspace=workspace.parent / "empty")
    with pytest.raises(NotFoundError, match="does not exist"):
        read.load("./no/such/folder")
    with pytest.raises(ConfigError, match="not a datastore URI"):
        read.load("azureml://nonsense", workspace=workspace)


# -- time ranges --------------------------------------------------------------------------


def test_time_range_reads_only_the_partitions_it_needs(workspace, counting):
    setup(workspace)
    for minutes in (0, 40, 75, 135, 150, 210):  # 08:30 09:10 09:45 10:45 11:00 12:00
        submit([{"m": minutes}], T0 + timedelta(minutes=minutes), f"c{minutes}")
    flush()

    df = read.load(ASSET, "2026-03-01T09:00", "2026-03-01T11:00", workspace=workspace)
    assert df["m"].tolist() == [40, 75, 135]
    # Listing and reading run in threads: compare as sets of prefixes.
    assert sorted(counting.listed) == [f"{PREFIX}/2026/03/01/09", f"{PREFIX}/2026/03/01/10"]
    assert sorted(p.rsplit("/", 2)[-2] for p in counting.got) == ["09", "10"]

    # Rows are filtered by their own time inside a partition: [09:00, 09:30) of hour 09.
    counting.listed.clear()
    df = read.load(ASSET, datetime(2026, 3, 1, 9), datetime(2026, 3, 1, 9, 30), workspace=workspace)
    assert df["m"].tolist() == [40]
    assert counting.listed == [f"{PREFIX}/2026/03/01/09"]

    # Aware times in another zone are converted; naive ones are UTC.
    cet = timezone(timedelta(hours=1))
    df = read.load(
        ASSET, datetime(2026, 3, 1, 11, 30, tzinfo=cet), "2026-03-01T12:00:00Z", workspace=workspace
    )
    assert df["m"].tolist() == [135, 150]

    # No start: everything is listed (the first partition is unknown), files after end are
    # not read.
    counting.listed.clear()
    counting.got.clear()
    df = read.load(ASSET, end="2026-03-01T09:00:00+00:00", workspace=workspace)
    assert df["m"].tolist() == [0]
    assert counting.listed == [PREFIX]
    assert len(counting.got) == 1

    # No end: up to now.
    assert read.load(ASSET, "2026-03-01T11:00", workspace=workspace)["m"].tolist() == [150, 210]


def test_minute_partitions_over_a_long_range_are_listed_by_hour(workspace, counting):
    setup(workspace, rate="Minute")
    submit([{"v": 1}], T0, "a")
    submit([{"v": 2}], T0 + timedelta(hours=30), "b")
    flush()
    assert {p.name for p in (store_root(workspace) / PREFIX / "2026/03/01/08").iterdir()} == {"30"}
    df = read.load(ASSET, T0 - timedelta(minutes=5), T0 + timedelta(minutes=5), workspace=workspace)
    assert df["v"].tolist() == [1]
    assert sorted(counting.listed) == [f"{PREFIX}/2026/03/01/08/{m:02d}" for m in range(25, 35)]
    counting.listed.clear()
    df = read.load(ASSET, "2026-03-01", "2026-03-03", workspace=workspace)  # 2880 minutes
    assert df["v"].tolist() == [1, 2]
    assert len(counting.listed) == 48
    assert min(counting.listed) == f"{PREFIX}/2026/03/01/00"
    assert max(counting.listed) == f"{PREFIX}/2026/03/02/23"


def test_any_storage_backend_is_read_through_the_interface(workspace, monkeypatch):
    setup(workspace, rate="Day")
    for day in range(5):
        submit([{"day": day}], T0 + timedelta(days=day), f"c{day}")
    flush()
    root = store_root(workspace)
    memory = MemoryStorage(
        {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    )
    monkeypatch.setattr(read_source, "open_datastore", lambda name, settings, ws: memory)
    df = read.load(ASSET, "2026-03-02", "2026-03-04", workspace=workspace)
    assert df["day"].tolist() == [1, 2]
    # One lazy look at the collection to learn the depth (stopped at the first file), then
    # only the two days of the range (besides a look for a compacted table beside it).
    listed = [p for p in memory.listed if p != f"{PREFIX}-delta/_delta_log"]
    assert listed[0] == PREFIX
    assert sorted(listed[1:]) == [f"{PREFIX}/2026/03/02", f"{PREFIX}/2026/03/03"]
    assert memory.yielded == 1 + 2
    assert read.load(ASSET, workspace=workspace)["day"].tolist() == [0, 1, 2, 3, 4]


def test_empty_range_gives_the_standard_columns(workspace, caplog):
    setup(workspace)
    submit([{"x": 1}], T0, "a")
    flush()
    with caplog.at_level(logging.INFO, logger="modeltap.read"):
        df = read.load(ASSET, "2020-01-01", "2020-01-02", workspace=workspace)
    assert df.empty
    assert list(df.columns) == ["correlationid", "time", "record_id"]
    assert str(df["time"].dtype) == "datetime64[us, UTC]"
    assert "no rows in ep-blue-model_inputs:1 between 2020-01-01" in caplog.text
    assert read.load(ASSET, T0, T0, workspace=workspace).empty  # [t, t) holds nothing


def test_bad_time_arguments(workspace):
    """Bad arguments are ConfigErrors naming the argument (and still ValueErrors, as
    they were before they joined modeltap's error tree)."""
    setup(workspace)
    with pytest.raises(ConfigError, match="start='yesterday' is not an ISO 8601 time"):
        read.load(ASSET, "yesterday", workspace=workspace)
    with pytest.raises(ConfigError, match=r"start \(2026-03-02T00:00:00\+00:00\) is after end"):
        read.load(ASSET, "2026-03-02", "2026-03-01", workspace=workspace)
    with pytest.raises(ValueError, match="is after end"):
        read.load(ASSET, "2026-03-02", "2026-03-01", workspace=workspace)
    with pytest.raises(TypeError, match="start must be a datetime"):
        read.load(ASSET, 12345, workspace=workspace)  # type: ignore[call-overload]
    with pytest.raises(ConfigError, match="engine='polars'; allowed: pandas, arrow, duckdb"):
        read.load(ASSET, workspace=workspace, engine="polars")  # type: ignore[call-overload]
    frame = pd.DataFrame({"correlationid": ["a"]})
    with pytest.raises(ConfigError, match="how='sideways'; allowed: left, inner"):
        read.join(frame, frame, how="sideways")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"suffixes=\('_x',\): give 2 or 3 strings"):
        read.join(frame, frame, suffixes=("_x",))


def test_partition_arithmetic():
    assert period(["2026"]) == (datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert period(["2026", "12"])[1] == datetime(2027, 1, 1, tzinfo=UTC)  # type: ignore[index]
    assert period(["2026", "13"]) is None and period(["26"]) is None and period([]) is None
    day = to_utc("2026-12-31T23:30", "start")
    assert plan_prefixes(day, to_utc("2027-01-01T00:30", "end"), 4) == [
        "2026/12/31/23",
        "2027/01/01/00",
    ]
    assert plan_prefixes(day, to_utc("2027-03-01", "end"), 2) == ["2026/12", "2027/01", "2027/02"]
    assert plan_prefixes(None, day, 5) is None
    years = plan_prefixes(to_utc("1500-01-01", "s"), to_utc("2100-01-01", "e"), 1, limit=500)
    assert years is None  # more than 500 years: list everything


# -- damaged data -------------------------------------------------------------------------


def test_corrupt_files_and_cut_lines_are_skipped_and_counted(workspace, caplog):
    setup(workspace)
    submit([{"x": 1}], T0, "a")
    flush()
    folder = store_root(workspace) / PREFIX / "2026/03/01/08"
    good = '{"id":"r%d","time":"2026-03-01T08:31:00Z","correlationid":"c%d","data":[{"x":%d}]}\n'
    (folder / "cut.jsonl").write_text(good % (2, 2, 2) + good % (3, 3, 3) + good[:30])
    (folder / "bad-middle.jsonl").write_text(good % (4, 4, 4) + "not json\n" + good % (5, 5, 5))
    (folder / "garbage.jsonl").write_bytes(bytes(range(256)) * 4)
    (folder / "empty.jsonl").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="modeltap.read"):
        df = read.load(ASSET, workspace=workspace)
    assert sorted(df["x"].tolist()) == [1, 2, 3, 4, 5]
    skipped = df.attrs[read.SKIPPED]
    assert skipped["lines"] == 2
    assert [Path(p).name for p in skipped["files"]] == ["garbage.jsonl"]
    assert sorted(Path(p).name for p in skipped["partial_files"]) == [
        "bad-middle.jsonl",
        "cut.jsonl",
    ]
    assert "garbage.jsonl" in caplog.text and "cut.jsonl" in caplog.text
    table = read.load(ASSET, workspace=workspace, engine="arrow")
    assert json.loads(table.schema.metadata[b"modeltap_skipped"])["lines"] == 2


def test_an_unreadable_object_is_skipped_not_fatal(workspace, counting, monkeypatch):
    setup(workspace)
    submit([{"x": 1}], T0, "a")
    submit([{"x": 2}], T0 + timedelta(hours=1), "b")
    flush()

    def flaky_get(path: str) -> bytes:
        if "/09/" in path:
            raise modeltap.StorageError("read failed: injected", path=path)
        return LocalStorage.get(counting, path)

    monkeypatch.setattr(counting, "get", flaky_get)
    df = read.load(ASSET, workspace=workspace)
    assert df["x"].tolist() == [1]
    assert len(df.attrs[read.SKIPPED]["files"]) == 1


# -- payloads -----------------------------------------------------------------------------


def test_payload_collections_and_blobs(workspace):
    setup(workspace)
    pipe = runtime.current().pipeline
    common = {"path": "/score", "method": "POST"}
    at = T0.timestamp()
    bodies = [
        (JSON, b'{"data": [[1, 2]]}', "application/json"),
        (JSON, b'"plain text"', "text/plain"),
        (BLOB, b"\x00\x01binary", "application/octet-stream"),
        (JSON, b'[{"a": 1}]', "application/json"),  # a body that looks like rows
    ]
    for i, (kind, body, media) in enumerate(bodies):
        pipe.submit(
            Record(
                "request",
                body,
                kind=kind,
                correlation_id=f"r{i}",
                time_=at + i,
                content_type=media,
                extra=dict(common),
            )
        )
    flush()
    df = read.load("ep-blue-request", workspace=workspace)
    assert df["data"].tolist()[:2] == [{"data": [[1, 2]]}, "plain text"]
    assert df["data"][3] == [{"a": 1}]
    assert df["datainblob"].tolist()[2] == "true" and df["data"][2].endswith(df["record_id"][2])
    assert df["method"].tolist() == ["POST"] * 4
    assert df["correlationid"].tolist() == ["r0", "r1", "r2", "r3"]
    assert str(df["time"].dtype) == "datetime64[us, UTC]"
    assert df.columns[0] == "data" and list(df.columns)[-3:] == [
        "correlationid",
        "time",
        "record_id",
    ]

    resolved = read.load("ep-blue-request", workspace=workspace, resolve_blobs=True)
    assert resolved["data"][2] == b"\x00\x01binary"
    assert resolved["data"][0] == {"data": [[1, 2]]}

    table = read.load("ep-blue-request", workspace=workspace, engine="arrow")
    assert table.column("data").to_pylist()[:2] == ['{"data":[[1,2]]}', "plain text"]
    raw = read.load("ep-blue-request", workspace=workspace, engine="arrow", resolve_blobs=True)
    assert raw.column("data").to_pylist()[2] == b"\x00\x01binary"

    in_range = read.load(
        "ep-blue-request",
        T0 + timedelta(seconds=1),
        T0 + timedelta(seconds=3),
        workspace=workspace,
        columns=["data"],
    )
    assert list(in_range.columns) == ["data", "correlationid", "time", "record_id"]
    assert in_range["correlationid"].tolist() == ["r1", "r2"]


def test_rows_and_payloads_in_one_collection(workspace):
    setup(workspace)
    submit([{"x": 1}], T0, "a")
    runtime.current().pipeline.submit(
        Record(
            "model_inputs",
            b'"a,b\\n1,2"',
            kind=JSON,
            correlation_id="b",
            time_=T0.timestamp() + 1,
            content_type="text/plain",
        )
    )
    flush()
    df = read.load(ASSET, workspace=workspace)
    assert df["correlationid"].tolist() == ["a", "b"]
    assert df["x"].tolist()[0] == 1 and df["data"].tolist()[1] == "a,b\n1,2"


# -- engines ------------------------------------------------------------------------------


def test_arrow_and_duckdb_engines(workspace):
    setup(workspace)
    submit([{"x": 1, "s": "a"}, {"x": 2, "s": "b"}], T0, "a")
    submit([{"x": 3, "s": "c"}], T0 + timedelta(hours=1), "b")
    flush()
    table = read.load(ASSET, workspace=workspace, engine="arrow")
    assert isinstance(table, pa.Table)
    assert table.column_names == ["x", "s", "correlationid", "time", "record_id"]
    assert table.schema.field("time").type == pa.timestamp("us", tz="UTC")
    relation = read.load(ASSET, "2026-03-01", "2026-03-02", workspace=workspace, engine="duckdb")
    assert relation.aggregate("sum(x) AS total, count(*) AS n").fetchall() == [(6, 3)]
    assert relation.df()["s"].tolist() == ["a", "b", "c"]


def test_progress_bar_runs(workspace, capsys, monkeypatch):
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich draws as on a terminal
    setup(workspace)
    for hour in range(3):
        submit([{"x": hour}], T0 + timedelta(hours=hour), f"c{hour}")
    flush()
    assert read.load(ASSET, workspace=workspace, progress=True)["x"].tolist() == [0, 1, 2]
    assert "%" in capsys.readouterr().err  # rich drew the bar (a terminal, see above)


# -- join ---------------------------------------------------------------------------------


def collect_requests(workspace: Path) -> None:
    setup(workspace)
    inputs, outputs = Collector(name="model_inputs"), Collector(name="model_outputs")
    requests = {"r1": [10, 20, 30], "r2": [40]}
    for cid, ages in requests.items():
        ins = pd.DataFrame({"order_id": [f"{cid}-{i}" for i in range(len(ages))], "age": ages})
        ctx = inputs.collect(ins, BasicCorrelationContext(id=cid))
        outputs.collect(pd.DataFrame({"score": [a / 100 for a in ages]}), ctx)
    inputs.collect(
        pd.DataFrame({"order_id": ["r3-0"], "age": [50]}), BasicCorrelationContext(id="r3")
    )  # no output for r3
    flush()


def test_join_inputs_outputs_and_ground_truth(workspace):
    collect_requests(workspace)
    ins = read.load(ASSET, workspace=workspace)
    outs = read.load("ep-blue-model_outputs", workspace=workspace)

    both = read.join(ins, outs)
    assert both["age"].tolist() == [10, 20, 30, 40, 50]
    assert both["score"].tolist()[:4] == [0.1, 0.2, 0.3, 0.4] and np.isnan(both["score"][4])
    assert {"time_input", "time_output", "record_id_input", "record_id_output"} <= set(both)
    assert read.join(ins, outs, how="inner")["order_id"].tolist() == [
        "r1-0",
        "r1-1",
        "r1-2",
        "r2-0",
    ]

    # Labels per request row, keyed by correlation id: the n-th label goes with the n-th row.
    truth = pd.DataFrame({"correlationid": ["r2", "r1", "r1", "r1"], "label": [1, 0, 1, 0]})
    joined = read.join(ins, outs, truth)
    assert joined["label"].tolist()[:4] == [0, 1, 0, 1] and np.isnan(joined["label"][4])

    # Labels keyed by the user's own id column.
    truth = pd.DataFrame({"order_id": ["r1-2", "r2-0", "r3-0"], "label": [7, 8, 9]})
    joined = read.join(ins, outs, truth, on="order_id")
    assert joined["order_id"].tolist() == ["r1-0", "r1-1", "r1-2", "r2-0", "r3-0"]
    assert joined["label"].tolist()[2:] == [7, 8, 9]
    assert joined["label"].isna().tolist() == [True, True, False, False, False]
    assert len(joined) == len(ins)


def test_join_errors_name_the_missing_column(workspace):
    collect_requests(workspace)
    ins = read.load(ASSET, workspace=workspace)
    outs = read.load("ep-blue-model_outputs", workspace=workspace)
    with pytest.raises(NotFoundError, match=r"ground_truth has no column 'order_id'.*'orderid'"):
        read.join(ins, outs, pd.DataFrame({"orderid": ["r1-0"], "y": [1]}), on="order_id")
    with pytest.raises(NotFoundError, match="neither inputs nor outputs have a column 'ticket'"):
        read.join(ins, outs, pd.DataFrame({"ticket": ["t"], "y": [1]}), on="ticket")
    with pytest.raises(NotFoundError, match="outputs has no column 'correlationid'"):
        read.join(ins, outs.drop(columns="correlationid"))
    with pytest.raises(TypeError, match="must be a pandas DataFrame"):
        read.join(ins, [1, 2])


def test_join_accepts_arrow_tables(workspace):
    collect_requests(workspace)
    ins = read.load(ASSET, workspace=workspace, engine="arrow")
    outs = read.load("ep-blue-model_outputs", workspace=workspace, engine="arrow")
    assert read.join(ins, outs, how="inner")["score"].tolist() == [0.1, 0.2, 0.3, 0.4]


def test_ids_are_record_ids(workspace):
    setup(workspace)
    submit([{"x": 1}], T0, "a")
    flush()
    rid = read.load(ASSET, workspace=workspace)["record_id"][0]
    assert str(uuid.UUID(rid)) == rid
