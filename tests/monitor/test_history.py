"""The results layout (the monitor contract): writer in store.py, reader in history.py."""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime

import pandas as pd
import pytest

from modeltap.errors import StorageError
from modeltap.monitor import history, store

T0 = datetime(2026, 11, 25, 3, 15, tzinfo=UTC)
W0, W1 = datetime(2026, 11, 18, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC)


def row(feature: str, value: float, breached: bool, metric: str = "jensen_shannon_distance"):
    return store.ResultRow(
        signal="drift_inputs",
        signal_type="data_drift",
        feature=feature,
        feature_type="categorical",
        metric=metric,
        value=value,
        threshold=0.1,
        breached=breached,
        window_start=W0,
        window_end=W1,
        production_rows=100,
        reference_rows=200,
    )


def write_run(ws, name, when, rows, details=True, report=False):
    with store.reserve_run_id(ws, name, when) as run_id:
        if details:
            store.write_details(ws, name, run_id, {"monitor": name, "run_id": run_id})
        store.write_rows(ws, name, run_id, when, rows)
        if report:
            store.write_report(ws, name, run_id, "<html></html>")
    return run_id


def test_runs_results_and_details_round_trip(tmp_path):
    ws = tmp_path / "ws"
    assert history.monitors(ws) == [] and history.runs("m", ws) == []
    first = write_run(ws, "m", T0, [row("SEX", 0.01, False)], report=True)
    second = write_run(ws, "m", T0, [row("SEX", 0.3, True), row("AGE", math.nan, False)])
    third = write_run(ws, "m", T0.replace(day=26), [row("SEX", 0.02, False)])
    write_run(ws, "other", T0, [row("X", 0.5, True)])
    assert (first, second) == ("20261125T031500Z", "20261125T031500Z-2")
    assert history.monitors(ws) == ["m", "other"]

    infos = history.runs("m", ws)
    assert [i.run_id for i in infos] == [third, second, first]  # newest first
    assert [i.breached for i in infos] == [False, True, False]
    assert infos[2].report_path == ws / "monitoring/m/reports" / f"{first}.html"
    assert infos[0].report_path is None
    assert infos[0].results_path == ws / "monitoring/m/runs" / f"{third}.parquet"
    assert infos[0].run_time == T0.replace(day=26)

    df = history.results("m", ws)
    assert list(df.columns) == list(store.COLUMNS)
    assert df["run_id"].tolist() == [first, second, second, third]
    assert str(df["run_time"].dtype) == "datetime64[us, UTC]"
    assert df["value"].dtype == "float64" and math.isnan(df["value"][2])
    assert df["breached"].tolist() == [False, True, False, False]
    assert df["window_start"][0] == pd.Timestamp(W0)
    assert df["production_rows"].dtype == "int64"
    assert history.results("m", ws, last=1)["run_id"].tolist() == [third]
    assert set(history.results(None, ws)["monitor"]) == {"m", "other"}
    assert history.results("none", ws).empty

    assert history.details("m", first, ws) == {"monitor": "m", "run_id": first}
    with pytest.raises(StorageError, match="no such run"):
        history.details("m", "20000101T000000Z", ws)


def test_default_workspace_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELTAP_WORKSPACE", str(tmp_path / "env-ws"))
    write_run(tmp_path / "env-ws", "m", T0, [row("SEX", 0.3, True)])
    assert history.monitors() == ["m"]
    assert history.runs("m")[0].breached


def test_concurrent_runs_in_one_second_get_distinct_ids(tmp_path):
    ids: list[str] = []
    lock = threading.Lock()

    def one():
        run_id = write_run(tmp_path, "m", T0, [row("SEX", 0.1, False)])
        with lock:
            ids.append(run_id)

    threads = [threading.Thread(target=one) for _ in range(11)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 11
    infos = history.runs("m", tmp_path)
    assert [i.run_id for i in infos][:3] == [f"{ids[0][:16]}-{n}" for n in (11, 10, 9)]
    # -10 comes after -9 in the table too (not in text order)
    assert history.results("m", tmp_path)["run_id"].tolist() == [i.run_id for i in infos[::-1]]
    assert not list((tmp_path / "monitoring/m/runs").glob(".*"))  # no locks or temp files left
