"""Asset summaries and tails (modeltap.summary, .tail): what `assets` and `data tail` show.

Data is made by the real pipeline; records at chosen times are Records submitted to it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import modeltap
import modeltap.read._source as read_source
from modeltap import Collector, runtime, summary
from modeltap import tail as tails
from modeltap.assets import Catalog
from modeltap.errors import ConfigError
from modeltap.read import NotFoundError
from modeltap.record import BLOB, FRAME, Record
from modeltap.tabular import PANDAS_TYPE
from tests.conftest import store_root
from tests.helpers import MemoryStorage, flush, setup

INPUTS = "ep-blue-model_inputs"
PREFIX = "modelDataCollector/ep/blue/model_inputs"
T0 = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)


def submit(at: datetime, cid: str, rows: int = 1, collection: str = "model_inputs") -> None:
    frame = pd.DataFrame({"i": range(rows), "cid": [cid] * rows})
    record = Record(
        collection,
        frame,
        kind=FRAME,
        correlation_id=cid,
        time_=at.timestamp(),
        collect_data_type=PANDAS_TYPE,
    )
    runtime.current().pipeline.submit(record)


def series(start: datetime, count: int, step: timedelta, flush_every: int = 4) -> list[str]:
    """count records, one line each (distinct correlation ids), step apart; several flushes
    make several files per partition. Returns the ids in time order."""
    ids = []
    for k in range(count):
        cid = f"c{k:03d}"
        submit(start + k * step, cid)
        ids.append(cid)
        if k % flush_every == flush_every - 1:
            flush()
    flush()
    return ids


def jsonl_files(workspace: Path, prefix: str = PREFIX) -> list[Path]:
    return sorted((store_root(workspace) / prefix).rglob("*.jsonl"))


# -- summaries ------------------------------------------------------------------------------


def test_list_assets_counts_lines_times_files_and_partitions(workspace):
    setup(workspace)
    series(T0, 10, timedelta(minutes=25))  # 08:30 ... 12:15, five hour partitions
    Collector(name="model_outputs")  # declared, never written

    summaries = {s.asset.name: s for s in summary.list_assets(workspace)}

    assert sorted(summaries) == [INPUTS, "ep-blue-model_outputs", "ep-blue-request"]
    s = summaries[INPUTS]
    files = jsonl_files(workspace)
    assert s.records == 10
    assert s.files == len(files) > 5  # several flushes: several files per partition
    assert s.blobs == 0
    assert s.bytes == sum(f.stat().st_size for f in files)
    assert s.first == T0 and s.last == T0 + 9 * timedelta(minutes=25)
    assert s.partitions == summary.Partitions(5, "2026/03/01/08", "2026/03/01/12", "Hour")
    assert s.url == str(store_root(workspace) / PREFIX)
    assert s.error is None
    d = s.as_dict()
    assert d["uri"] == f"azureml://datastores/workspaceblobstore/paths/{PREFIX}"
    assert (d["first"], d["last"]) == ("2026-03-01T08:30:00Z", "2026-03-01T12:15:00Z")
    assert d["partitions"] == {"count": 5, "first": "2026/03/01/08", "last": "2026/03/01/12"}
    assert d["rolling_rate"] == "Hour"
    assert json.loads(json.dumps(d)) == d

    empty = summaries["ep-blue-model_outputs"]
    assert (empty.records, empty.files, empty.bytes, empty.first, empty.last) == (
        0,
        0,
        0,
        None,
        None,
    )
    assert empty.partitions == summary.Partitions(0, None, None, None)


def test_times_come_from_the_first_and_last_partitions_only(workspace, monkeypatch):
    setup(workspace)
    series(T0, 12, timedelta(minutes=30))  # 08:30 ... 14:00: two lines in most hours
    scanned: list[bytes] = []
    real = summary.time_range

    def spy(data: bytes) -> Any:
        scanned.extend(data.splitlines())
        return real(data)

    monkeypatch.setattr(summary, "time_range", spy)
    s = summary.show_asset(INPUTS, workspace)
    assert s.records == 12 and (s.first, s.last) == (T0, T0 + 11 * timedelta(minutes=30))
    # 08:30 and 14:00 are alone in their hours: two lines' times read, not twelve
    assert sorted(json.loads(raw)["correlationid"] for raw in scanned) == ["c000", "c011"]


def test_lines_without_a_final_newline_blobs_and_loose_files(workspace):
    setup(workspace)
    series(T0, 3, timedelta(minutes=1))
    runtime.current().pipeline.submit(
        Record("request", b"\x00\x01\x02", kind=BLOB, correlation_id="b", time_=T0.timestamp())
    )
    flush()
    folder = store_root(workspace) / PREFIX
    last = json.dumps({"time": "2026-03-02T00:00:00Z", "correlationid": "x", "data": []})
    (folder / "2026/03/01/08" / "cut.jsonl").write_text(f"{last}\n{last}")  # no final newline
    loose = json.dumps({"time": "2026-02-01T00:00:00Z", "correlationid": "l", "data": []})
    (folder / "loose.jsonl").write_text(loose + "\n")  # outside partition folders
    (folder / ".hidden.jsonl").write_text("ignored\n")

    s = summary.show_asset(INPUTS, workspace)
    assert s.records == 3 + 2 + 1
    assert s.first == datetime(2026, 2, 1, tzinfo=UTC)  # loose files count for both ends
    assert s.last == datetime(2026, 3, 2, tzinfo=UTC)
    assert s.partitions.count == 1

    request = summary.show_asset("ep-blue-request", workspace)
    assert (request.records, request.files, request.blobs) == (1, 1, 1)
    on_disk = [p for p in (store_root(workspace) / "modelDataCollector/ep/blue/request").rglob("*")]
    assert request.bytes == sum(p.stat().st_size for p in on_disk if p.is_file())


def test_a_changed_rolling_rate(workspace):
    setup(workspace, rate="Day")
    submit(T0, "day-1")
    submit(T0 + timedelta(hours=10), "day-2")  # 18:30, in the Day partition 2026/03/01
    flush()
    setup(workspace, rate="Hour")
    submit(T0 + timedelta(hours=2), "hour-1")  # 10:30, in 2026/03/01/10
    submit(T0 + timedelta(days=1), "hour-2")
    flush()

    s = summary.show_asset(INPUTS, workspace)
    assert (s.records, s.first, s.last) == (4, T0, T0 + timedelta(days=1))
    assert s.partitions == summary.Partitions(3, "2026/03/01", "2026/03/02/08", "Hour")
    # the newest two by time: a Day partition line is newer than an Hour partition's
    assert [
        line.correlationid for line in tails.tail("ep/blue/model_inputs", 2, workspace=workspace)
    ] == ["day-2", "hour-2"]
    cids = [
        line.correlationid for line in tails.tail("ep/blue/model_inputs", 3, workspace=workspace)
    ]
    assert cids == ["hour-1", "day-2", "hour-2"]


def test_an_asset_that_cannot_be_listed_is_kept_with_its_error(workspace):
    setup(workspace)
    series(T0, 2, timedelta(minutes=1))
    Catalog(workspace).register(
        Catalog.make("archived", "1", "ep", "blue", "model_inputs", "archive", "old/inputs")
    )
    summaries = {s.asset.name: s for s in summary.list_assets(workspace)}
    assert summaries[INPUTS].records == 2
    broken = summaries["archived"]
    assert "unknown datastore 'archive'" in (broken.error or "")
    assert broken.as_dict()["records"] == 0
    with pytest.raises(ConfigError, match="unknown datastore 'archive'"):
        summary.show_asset("archived", workspace)


def test_show_picks_versions_and_suggests_names(workspace):
    with pytest.raises(NotFoundError, match="has no assets"):
        summary.show_asset(INPUTS, workspace)
    setup(workspace)
    Catalog(workspace).register(
        Catalog.make(INPUTS, "2", "ep", "blue", "model_inputs", "workspaceblobstore", "v2/in")
    )
    assert summary.show_asset(INPUTS, workspace).asset.version == "2"
    assert summary.show_asset(f"{INPUTS}:1", workspace).asset.path == PREFIX
    with pytest.raises(NotFoundError, match="has no version '7'; versions: 1, 2"):
        summary.show_asset(f"{INPUTS}:7", workspace)
    with pytest.raises(NotFoundError) as err:
        summary.show_asset("ep-blue-model_input", workspace)
    assert "did you mean 'ep-blue-model_inputs'" in str(err.value)
    assert "\n" not in str(err.value)


def test_progress_bar_runs(workspace, capsys, monkeypatch):
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich draws as on a terminal
    setup(workspace)
    series(T0, 8, timedelta(minutes=1), flush_every=1)
    [s] = [s for s in summary.list_assets(workspace, progress=True) if s.asset.name == INPUTS]
    assert s.records == 8
    assert summary.show_asset(INPUTS, workspace, progress=False).records == 8
    assert "%" in capsys.readouterr().err  # rich drew the bar (a terminal, see above)


# -- tail -----------------------------------------------------------------------------------


def test_tail_gives_the_newest_n_in_order_reading_only_the_newest_partitions(workspace, counting):
    setup(workspace)
    ids = series(T0, 30, timedelta(minutes=10))  # 08:30 ... 13:20, six hour partitions
    counting.got.clear()

    lines = tails.tail("ep/blue/model_inputs", 7, workspace=workspace)

    assert [line.correlationid for line in lines] == ids[-7:]
    assert [line.time for line in lines] == [T0 + k * timedelta(minutes=10) for k in range(23, 30)]
    assert lines[-1].record["type"] == "azureml.inference.model_inputs"
    assert lines[-1].data == [{"i": 0, "cid": "c029"}]
    assert json.loads(lines[0].raw) == lines[0].record
    # 12:20 ... 13:20 lie in the 12 and 13 partitions: older ones are never read
    assert counting.got and all(
        "/2026/03/01/12/" in p or "/2026/03/01/13/" in p for p in counting.got
    )
    everything = tails.tail("ep/blue/model_inputs", 100, workspace=workspace)
    assert [line.correlationid for line in everything] == ids


def test_tail_of_recent_data_lists_only_recent_partitions(workspace, counting):
    setup(workspace)
    series(T0, 5, timedelta(hours=30))  # old data, over several days
    now = datetime.now(UTC).replace(microsecond=0)
    recent = series(now - timedelta(minutes=40), 5, timedelta(minutes=5))
    counting.listed.clear()

    lines = tails.tail("ep/blue/model_inputs", 3, workspace=workspace)

    assert [line.correlationid for line in lines] == recent[-3:]
    assert PREFIX not in counting.listed  # the whole collection was never listed
    assert all(p.startswith(f"{PREFIX}/{now.year:04d}/") for p in counting.listed)
    # asking for more than the recent partitions hold lists further back
    assert len(tails.tail("ep/blue/model_inputs", 8, workspace=workspace)) == 8


def test_tail_zero_and_empty_collections(workspace):
    setup(workspace)
    assert tails.tail("ep/blue/model_outputs", 5, workspace=workspace) == []
    series(T0, 2, timedelta(minutes=1))
    assert tails.tail("ep/blue/model_inputs", 0, workspace=workspace) == []


def test_tail_skips_lines_that_are_not_json_objects(workspace):
    setup(workspace)
    series(T0, 2, timedelta(minutes=1))
    folder = store_root(workspace) / PREFIX / "2026/03/01/09"
    folder.mkdir(parents=True)
    good = json.dumps({"time": "2026-03-01T09:00:00Z", "correlationid": "late", "data": [1]})
    (folder / "odd.jsonl").write_text(f"not json\n[1, 2]\n\n{good}\n{{cut")
    with tails.open_tail("ep/blue/model_inputs", workspace) as t:
        lines = t.last(5)
    assert [line.correlationid for line in lines] == ["c000", "c001", "late"]
    assert t.bad_lines == 3


def test_poll_returns_the_lines_of_new_objects_only(workspace):
    setup(workspace)
    inputs = Collector(name="model_inputs")
    inputs.collect(pd.DataFrame({"x": [1]}), modeltap.BasicCorrelationContext(id="before"))
    flush()
    with tails.open_tail("ep/blue/model_inputs", workspace) as t:
        assert [line.correlationid for line in t.last(5)] == ["before"]
        assert t.poll() == []
        for cid in ("after-1", "after-2"):
            inputs.collect(pd.DataFrame({"x": [2]}), modeltap.BasicCorrelationContext(id=cid))
        flush()
        assert [line.correlationid for line in t.poll()] == ["after-1", "after-2"]
        assert t.poll() == []
        # without last(), the first poll only notes what is there
    with tails.open_tail("ep/blue/model_inputs", workspace) as fresh:
        assert fresh.poll() == []
        inputs.collect(pd.DataFrame({"x": [3]}), modeltap.BasicCorrelationContext(id="third"))
        flush()
        assert [line.correlationid for line in fresh.poll()] == ["third"]


def test_a_collection_is_found_through_the_catalog_or_the_default_path(workspace):
    setup(
        workspace,
        collections={
            "model_inputs": {
                "enabled": True,
                "data": {
                    "name": "my_inputs",
                    "path": "azureml://datastores/workspaceblobstore/paths/custom/inputs",
                },
            },
            "model_outputs": {"enabled": True},
        },
    )
    submit(T0, "custom")
    submit(T0, "default", collection="model_outputs")
    flush()
    src = tails.resolve_collection("ep", "blue", "model_inputs", workspace)
    assert src.prefix == "custom/inputs" and src.label == "ep/blue/model_inputs"
    [line] = tails.tail("ep/blue/model_inputs", 5, workspace=workspace)
    assert line.correlationid == "custom"
    # no catalog at all: the default folder in workspaceblobstore
    (workspace / "catalog.sqlite").unlink()
    [line] = tails.tail("ep/blue/model_outputs", 5, workspace=workspace)
    assert line.correlationid == "default"


def test_bad_and_unknown_collections(workspace):
    with pytest.raises(ConfigError, match="not ENDPOINT/DEPLOYMENT/COLLECTION"):
        tails.parse_collection("ep/blue")
    with pytest.raises(ConfigError, match=r"deployment: '\.\.' is not a valid name"):
        tails.parse_collection("ep/../model_inputs")
    with pytest.raises(ConfigError, match="endpoint: ' ep' is not a valid name"):
        tails.resolve_collection(" ep", "blue", "x", workspace)
    setup(workspace)
    with pytest.raises(NotFoundError) as err:
        tails.tail("ep/blue/model_input", workspace=workspace)
    assert "did you mean 'ep/blue/model_inputs'" in str(err.value)


def test_any_storage_backend_is_read_through_the_interface(workspace, monkeypatch):
    def line(t: datetime, cid: str) -> bytes:
        stamp = t.strftime("%Y-%m-%dT%H:%M:%SZ")
        return json.dumps({"time": stamp, "correlationid": cid, "data": [{"v": 1}]}).encode()

    objects = {}
    for k in range(6):
        t = T0 + k * timedelta(hours=1)
        objects[f"{PREFIX}/{t:%Y/%m/%d/%H}/w-{k}.jsonl"] = line(t, f"m{k}") + b"\n"
    objects[f"{PREFIX}/{T0:%Y/%m/%d/%H}/blob-id"] = b"\x00" * 10
    store = MemoryStorage(objects)
    monkeypatch.setattr(read_source, "open_datastore", lambda name, settings, ws: store)
    Catalog(workspace).register(
        Catalog.make(INPUTS, "1", "ep", "blue", "model_inputs", "workspaceblobstore", PREFIX)
    )
    s = summary.show_asset(INPUTS, workspace)
    assert (s.records, s.files, s.blobs, s.partitions.count) == (6, 6, 1, 6)
    assert (s.first, s.last) == (T0, T0 + timedelta(hours=5))
    lines = tails.tail("ep/blue/model_inputs", 2, workspace=workspace)
    assert [line.correlationid for line in lines] == ["m4", "m5"]
    # found on the default path without a catalog entry, through list()
    (workspace / "catalog.sqlite").unlink()
    assert [
        x.correlationid for x in tails.tail("ep/blue/model_inputs", 1, workspace=workspace)
    ] == ["m5"]
