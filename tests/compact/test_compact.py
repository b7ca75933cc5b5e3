"""Compaction into a Delta table on a local datastore (SPEC R12.1): closed partitions only,
incremental, exactly once, schema changes merged or reported, and `load` reading the table
where it covers the objects (the result equal to a read of the JSON lines alone)."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable

import modeltap.read._duck as read_duck
import modeltap.read._load as read_load
from modeltap import compact, read
from modeltap.assets import Catalog
from modeltap.read import _delta
from modeltap.storage.local import LocalStorage
from tests.compact.helpers import ASSET, PREFIX, T0, canonical, fill, payloads, stop
from tests.conftest import store_root

NOW = T0 + timedelta(days=2)  # every partition of the helpers' data is closed by then


@pytest.fixture(autouse=True, params=["duckdb", "pyarrow"])
def reader(request, monkeypatch) -> str:
    """Each test runs with both readers of JSON lines (compaction reads with them too)."""
    if request.param == "duckdb":
        monkeypatch.setattr(read_load, "DUCKDB_FROM_BYTES", 0)
    else:
        monkeypatch.setattr(read_duck, "module", lambda: None)
    return str(request.param)


def table_dir(ws: Path) -> Path:
    return store_root(ws) / f"{PREFIX}-delta"


def objects(ws: Path, collection: str = "model_inputs") -> list[Path]:
    return sorted((store_root(ws) / PREFIX.replace("model_inputs", collection)).rglob("*.jsonl"))


def same(ws: Path, start=None, end=None, name: str = ASSET, **kw) -> pd.DataFrame:
    """load() with the table equals load() of the JSON lines alone; returns it."""
    both = read.load(name, start, end, workspace=ws, **kw)
    alone = read.load(name, start, end, workspace=ws, delta=False, **kw)
    pd.testing.assert_frame_equal(canonical(both), canonical(alone))
    return both


def test_compacts_closed_partitions_and_load_reads_the_table(workspace):
    rows = fill(workspace, hours=4)
    stop()
    report = compact.compact(ASSET, workspace=workspace)
    assert (report.objects, report.partitions, report.rows, report.commits) == (8, 4, rows, 1)
    table = DeltaTable(str(table_dir(workspace)))
    assert table.metadata().partition_columns == ["date", "hour"]
    stored = table.to_pandas()
    assert len(stored) == rows
    assert set(stored.columns) == {
        *("age", "income", "city", "member", "visits"),
        *("correlationid", "time", "record_id", "row_index", "date", "hour"),
    }
    assert str(stored["time"].dtype) == "datetime64[us, UTC]"
    assert sorted(stored["hour"].unique()) == [8, 9, 10, 11]
    assert stored.groupby("record_id")["row_index"].apply(sorted).map(list).tolist() == [[0, 1]] * (
        rows // 2
    )

    full = same(workspace)
    assert len(full) == rows
    for start, end in [
        (T0 + timedelta(minutes=30), T0 + timedelta(hours=2, minutes=5)),
        (T0, None),
    ]:
        same(workspace, start, end)
    same(workspace, columns=["city", "age"])

    # The rows come from the table: with the compacted objects gone, load still has them.
    expected = canonical(read.load(ASSET, workspace=workspace, delta=False))
    for path in objects(workspace):
        path.unlink()
    pd.testing.assert_frame_equal(canonical(read.load(ASSET, workspace=workspace)), expected)


def test_only_closed_partitions_then_incremental_runs(workspace):
    fill(workspace, hours=3)
    stop()
    # 10:xx ends at 11:00; with a 10-minute grace it is open until 11:10.
    first = compact.compact(ASSET, workspace=workspace, until=T0 + timedelta(hours=2))
    assert (first.partitions, first.waiting) == (2, 2)
    assert first.version == 0
    same(workspace)
    again = compact.compact(ASSET, workspace=workspace, until=T0 + timedelta(hours=2))
    assert (again.commits, again.objects, again.version) == (0, 0, 0)  # nothing new: no commit
    rest = compact.compact(ASSET, workspace=workspace)
    assert (rest.partitions, rest.objects, rest.version) == (1, 2, 1)
    # An object landing late in a partition already compacted: picked up, nothing twice.
    fill(workspace, hours=1, flushes=1, start=T0 + timedelta(minutes=45))
    stop()
    late = compact.compact(ASSET, workspace=workspace)
    assert (late.objects, late.version) == (1, 2)
    full = same(workspace)
    assert full.duplicated(["record_id", "age"]).sum() == 0
    assert len(DeltaTable(str(table_dir(workspace))).to_pandas()) == len(full)


def test_grace_keeps_recent_partitions_out(workspace):
    fill(workspace, hours=1, start=pd.Timestamp.now(tz="UTC").floor("h").to_pydatetime())
    stop()
    report = compact.compact(ASSET, workspace=workspace)
    assert (report.objects, report.waiting, report.version) == (0, 2, None)
    assert not table_dir(workspace).exists()
    same(workspace)


def test_registered_as_its_own_asset(workspace):
    fill(workspace, hours=2)
    stop()
    compact.compact(ASSET, workspace=workspace)
    asset = Catalog(workspace).get(f"{ASSET}-delta")
    assert asset is not None and asset.type == "delta"
    assert asset.path == f"{PREFIX}-delta" and asset.collection == "model_inputs"
    whole = read.load(f"{ASSET}-delta", workspace=workspace)
    pd.testing.assert_frame_equal(
        canonical(whole), canonical(read.load(ASSET, workspace=workspace, delta=False))
    )
    # The collection's URI finds the table too.
    uri = f"azureml://datastores/workspaceblobstore/paths/{PREFIX}"
    pd.testing.assert_frame_equal(canonical(read.load(uri, workspace=workspace)), canonical(whole))


def test_a_column_that_appears_later_is_merged(workspace):
    fill(workspace, hours=2)
    fill(
        workspace,
        hours=1,
        flushes=1,
        start=T0 + timedelta(hours=2),
        make=lambda h, f, i: pd.DataFrame({"age": [5], "score": [0.25], "date": ["x"]}),
        configure=False,
    )
    stop()
    compact.compact(ASSET, workspace=workspace, until=T0 + timedelta(hours=2))
    compact.compact(ASSET, workspace=workspace)
    schema = DeltaTable(str(table_dir(workspace))).schema().to_arrow()
    names = [f.name for f in schema]
    assert "score" in names and "data.date" in names  # a user column named like a partition
    df = same(workspace)
    assert df["score"].notna().sum() == 2 and df["date"].tolist().count("x") == 2


def test_a_type_that_widens_is_reported_and_read_from_json_lines(workspace):
    fill(workspace, hours=1)
    fill(
        workspace,
        hours=1,
        flushes=1,
        start=T0 + timedelta(hours=1),
        make=lambda h, f, i: pd.DataFrame({"age": [30.5], "city": ["z"]}),
        configure=False,
    )
    stop()
    compact.compact(ASSET, workspace=workspace, until=T0 + timedelta(hours=1))
    report = compact.compact(ASSET, workspace=workspace)
    assert report.objects == 0 and len(report.problems) == 1
    assert "'age'" in report.problems[0] and "decimal" in report.problems[0]
    assert "2026/03/01/09" in report.problems[0]
    df = same(workspace)
    assert 30.5 in df["age"].tolist()  # the decimals are kept, read from the JSON lines
    assert len(DeltaTable(str(table_dir(workspace))).to_pandas()) == 8


def test_values_that_fit_the_table_are_cast_without_loss(workspace):
    fill(workspace, hours=1, make=lambda h, f, i: pd.DataFrame({"x": [1.5], "s": ["a"]}))
    fill(
        workspace,
        hours=1,
        flushes=1,
        start=T0 + timedelta(hours=1),
        make=lambda h, f, i: pd.DataFrame({"x": [2], "s": [7], "n": [None]}),
        configure=False,
    )
    stop()
    compact.compact(ASSET, workspace=workspace, until=T0 + timedelta(hours=1))
    report = compact.compact(ASSET, workspace=workspace)
    assert report.problems == [] and report.objects == 1
    df = read.load(ASSET, workspace=workspace)
    assert sorted(df["x"].tolist()) == [1.5, 1.5, 1.5, 1.5, 2.0, 2.0]
    assert sorted(df["s"].tolist()) == ["7", "7", "a", "a", "a", "a"]  # JSON text, as load


def test_daily_collection_is_partitioned_by_date(workspace):
    rows = fill(workspace, hours=30, flushes=1, rate="Day")
    stop()
    report = compact.compact(ASSET, workspace=workspace)
    assert report.partitions == 2 and report.rows == rows
    assert DeltaTable(str(table_dir(workspace))).metadata().partition_columns == ["date"]
    same(workspace, T0 + timedelta(hours=20), T0 + timedelta(hours=26))


def test_payload_collection(workspace):
    fill(workspace, hours=1, flushes=1)
    payloads(workspace)
    stop()
    report = compact.compact("ep-blue-request", workspace=workspace)
    assert report.rows == 6
    df = same(workspace, name="ep-blue-request")
    assert df["data"].tolist()[:3] == [{"data": [[1, 2]]}, "plain text", [{"a": 1}]]
    assert df["method"].tolist() == ["POST"] * 6
    stored = DeltaTable(str(store_root(workspace) / "modelDataCollector/ep/blue/request-delta"))
    assert stored.to_pandas().sort_values("time")["data"].tolist()[1] == '"plain text"'


def test_coverage_survives_checkpoints_and_log_cleanup(workspace):
    fill(workspace, hours=3)
    stop()
    for hour in (1, 2, 3):
        compact.compact(ASSET, workspace=workspace, until=T0 + timedelta(hours=hour))
    table = DeltaTable(str(table_dir(workspace)))
    table.create_checkpoint()
    for commit in sorted((table_dir(workspace) / "_delta_log").glob("*.json"))[:-1]:
        commit.unlink()  # what log cleanup does once a checkpoint holds the state
    again = compact.compact(ASSET, workspace=workspace)
    assert (again.commits, again.objects) == (0, 0)
    same(workspace)


def test_a_run_that_dies_before_its_commit_counts_for_nothing(workspace, monkeypatch):
    from modeltap.compact import _run

    fill(workspace, hours=2)
    stop()
    compact.compact(ASSET, workspace=workspace, until=T0 + timedelta(hours=1))

    def die(*args, **kwargs):
        raise KeyboardInterrupt  # after the manifests are written, before the commit

    monkeypatch.setattr(_run, "_write", die)
    with pytest.raises(KeyboardInterrupt):
        compact.compact(ASSET, workspace=workspace)
    manifests = list((table_dir(workspace) / _delta.MANIFESTS).rglob("*.json"))
    assert len(manifests) == 2  # one committed, one of the run that died
    same(workspace)  # the dead run's manifest does not hide its objects
    monkeypatch.undo()
    report = compact.compact(ASSET, workspace=workspace)
    assert report.objects == 2
    same(workspace)
    assert len(DeltaTable(str(table_dir(workspace))).to_pandas()) == 16


def test_to_a_folder_and_from_a_folder(workspace, tmp_path):
    fill(workspace, hours=2)
    stop()
    folder = store_root(workspace) / PREFIX
    expected = canonical(read.load(str(folder)))
    report = compact.compact(str(folder), workspace=workspace)
    assert report.objects == 4
    assert (folder.parent / "model_inputs-delta" / "_delta_log").is_dir()
    # not registered (a folder has no asset), but where the asset's reader looks
    assert Catalog(workspace).get(f"{ASSET}-delta") is None
    store = LocalStorage(store_root(workspace), name="workspaceblobstore")
    assert _delta.find(store, PREFIX, workspace)[0].path == f"{PREFIX}-delta"
    elsewhere = tmp_path / "tables" / "inputs"
    compact.compact(ASSET, to=str(elsewhere), workspace=workspace)
    assert len(DeltaTable(str(elsewhere)).to_pandas()) == 16
    # A collection without an asset finds its table in the default place.
    copy = tmp_path / "copy" / "inputs"
    shutil.copytree(folder, copy)
    compact.compact(str(copy), workspace=workspace)
    assert (copy.parent / "inputs-delta" / "_delta_log").is_dir()
    for path in copy.rglob("*.jsonl"):
        path.unlink()
    pd.testing.assert_frame_equal(canonical(read.load(str(copy))), expected)
