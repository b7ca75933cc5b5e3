"""`modeltap monitor run` on collected data: results, exit codes, signals, bad input."""

from __future__ import annotations

import json
import math
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from modeltap.errors import ConfigError
from modeltap.monitor import history, spec, store
from modeltap.monitor.run import run_monitor
from modeltap.monitor.signals import AUTO_CHUNKS
from tests.monitor.conftest import ISSUE_MONITOR


def test_issue_example_runs_and_flags_the_drifted_features(drifted):
    done = drifted.cli("run", "monitor.yml", "--workspace", "ws", "--at", drifted.at)
    assert done.returncode == 1, done.stderr
    assert "note: create_monitor.compute: no local meaning" in done.stderr
    # no SMTP server is configured: the e-mail alert fails, is reported, results are kept
    assert "warning: alert by email failed" in done.stderr and "MODELTAP_SMTP_HOST" in done.stderr
    assert "Traceback" not in done.stderr
    lines = {line.split()[1]: line for line in done.stdout.splitlines()[1:]}
    assert "BREACH" in lines["LIMIT_BAL"] and "BREACH" in lines["SEX"]
    assert "BREACH" not in lines["AGE"]

    [run] = history.runs("credit_default_monitor", drifted.ws)
    assert run.breached and run.report_path is not None and run.details_path is not None
    df = history.results("credit_default_monitor", drifted.ws)
    assert list(df.columns) == list(store.COLUMNS)
    got = {(r.feature, r.metric): r for r in df.itertuples()}
    assert set(got) == {
        ("LIMIT_BAL", "normalized_wasserstein_distance"),
        ("AGE", "normalized_wasserstein_distance"),
        ("SEX", "jensen_shannon_distance"),
    }
    lb = got["LIMIT_BAL", "normalized_wasserstein_distance"]
    want = stats.wasserstein_distance(
        drifted.training["LIMIT_BAL"], drifted.inputs["LIMIT_BAL"]
    ) / np.std(drifted.training["LIMIT_BAL"], ddof=1)
    assert math.isclose(lb.value, want, rel_tol=1e-9)
    assert lb.breached and lb.threshold == 0.1 and lb.signal_type == "data_drift"
    assert lb.production_rows == 1000 and lb.reference_rows == 3000
    assert lb.window_end - lb.window_start == pd.Timedelta(days=7)
    assert got["SEX", "jensen_shannon_distance"].feature_type == "categorical"
    details = history.details("credit_default_monitor", run.run_id, drifted.ws)
    sex = next(f for f in details["features"] if f["feature"] == "SEX")
    assert sorted(sex["production"]["categories"]) == ["F", "M"]
    assert sum(sex["production"]["counts"]) == 1000


def test_no_drift_exits_0_and_json_prints_one_object_per_result(steady):
    done = steady.cli("run", "monitor.yml", "--workspace", "ws", "--at", steady.at, "--json")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(rows) == 3 and not any(r["breached"] for r in rows)
    assert set(rows[0]) == set(store.COLUMNS)
    assert rows[0]["monitor"] == "credit_default_monitor" and rows[0]["run_time"].endswith("Z")


def test_every_run_is_kept_and_show_prints_latest_and_history(drifted):
    for _ in range(2):
        done = drifted.cli("run", "monitor.yml", "--workspace", "ws", "--at", drifted.at)
        assert done.returncode == 1, done.stderr  # a breach, not an error
    assert len(history.runs("credit_default_monitor", drifted.ws)) == 2
    shown = drifted.cli("show", "credit_default_monitor", "--workspace", "ws")
    assert shown.returncode == 0, shown.stderr
    assert "history (2 run(s)" in shown.stdout and "LIMIT_BAL" in shown.stdout
    data = json.loads(
        drifted.cli("show", "credit_default_monitor", "--workspace", "ws", "--json").stdout
    )
    newest, first = (r["run_id"] for r in data["runs"])
    assert newest == first + "-2"  # the same --at: the second run's id gets -2
    assert len(data["latest"]["results"]) == 3 and data["latest"]["breached"]
    missing = drifted.cli("show", "nope", "--workspace", "ws")
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        "modeltap: error: monitor 'nope' has no runs; monitors with runs: credit_default_monitor"
    )


BAD = [
    ("metric_threshold:", "metric_threshold:", "drift_inputs.metric_threshold: unknown key"),
    (
        "numerical: {normalized_wasserstein_distance: 0.1}",
        "numerical: {wasserstein: 0.1}",
        "drift_inputs.metric_thresholds.numerical.wasserstein: unknown metric",
    ),
    (
        "model_inputs:1",
        "model_input:1",
        "production_data.input_data.path: no data asset 'my_endpoint-blue-model_input'",
    ),
    (
        "lookback_window_offset: P0D",
        "lookback_window_offset: P30D",
        "drift_inputs.production_data.data_window: no rows in",
    ),
    (
        "type: data_drift",
        "type: feature_attribution_drift",
        "drift_inputs.type: 'feature_attribution_drift' is not a signal type",
    ),
    (
        "features: [LIMIT_BAL, AGE, SEX]",
        "features: [LIMIT_BAL, INCOME]",
        "drift_inputs.features: no column 'INCOME' in my_endpoint-blue-model_inputs:1",
    ),
    ("P7D", "7 days", "lookback_window_size: '7 days' is not a duration"),
    ("./training.parquet", "./missing.parquet", "drift_inputs.reference_data.input_data.path: '"),
]


@pytest.mark.parametrize(("old", "new", "message"), BAD, ids=[b[2][:30] for b in BAD])
def test_bad_input_is_one_line_naming_the_field_exit_2(drifted, old, new, message):
    text = (
        ISSUE_MONITOR.replace(old, new)
        if old != "metric_threshold:"
        else ISSUE_MONITOR.replace(
            "      metric_thresholds:", "      metric_threshold: {}\n      metric_thresholds:"
        )
    )
    drifted.write(text, "bad.yml")
    done = drifted.cli("run", "bad.yml", "--workspace", "ws", "--at", drifted.at)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("modeltap: error:")]
    assert len(errors) == 1 and message in errors[0], done.stderr
    assert "Traceback" not in done.stderr
    assert history.runs("credit_default_monitor", drifted.ws) == []  # nothing half-written


def test_bad_at_time_is_exit_2(drifted):
    done = drifted.cli("run", "monitor.yml", "--workspace", "ws", "--at", "yesterday-ish")
    assert done.returncode == 2 and "--at: 'yesterday-ish' is not an ISO 8601 time" in done.stderr


def monitor(signals: str, alert: str = "") -> str:
    return (
        "name: m\ncreate_monitor:\n  monitoring_target: {ml_task: classification}\n"
        "  monitoring_signals:\n" + signals + alert
    )


PROD = """\
      production_data:
        input_data: {{path: azureml:my_endpoint-blue-{coll}:1, type: uri_folder}}
        data_context: {coll}
        data_window: {{lookback_window_size: P1D}}
"""


def test_data_quality_rates(drifted, tmp_path):
    # a reference with a narrower range and fewer categories than production
    ref = drifted.inputs.copy()
    ref["AGE"] = ref["AGE"].clip(30, 60)
    ref.loc[ref["EDUCATION"] == "school", "EDUCATION"] = "uni"
    ref.to_csv(drifted.root / "quality_ref.csv", index=False)
    spec = monitor(
        "    quality:\n      type: data_quality\n"
        + PROD.format(coll="model_inputs")
        + "      reference_data:\n        input_data: {path: ./quality_ref.csv}\n"
        + "      features: [AGE, EDUCATION]\n"
    )
    outcome = run_monitor(drifted.write(spec, "q.yml"), drifted.ws, drifted.at, notify=False)
    got = {(r.feature, r.metric): r.value for r in outcome.rows}
    age, edu = drifted.inputs["AGE"], drifted.inputs["EDUCATION"]
    assert got["AGE", "out_of_bounds_rate"] == ((age < 30) | (age > 60)).mean()
    assert got["EDUCATION", "out_of_bounds_rate"] == (edu == "school").mean()
    assert got["AGE", "null_value_rate"] == 0.0 and got["AGE", "data_type_error_rate"] == 0.0
    assert outcome.exit_code == 1
    assert {r.threshold for r in outcome.rows} == {0.0}


def test_data_quality_counts_nulls_and_type_errors(tmp_path):
    from tests.monitor.conftest import collect

    ws = tmp_path / "ws"
    inputs = pd.DataFrame({"x": [1.0, None, 3.0, 4.0] * 25, "s": ["a", "b", None, "a"] * 25})
    inputs = inputs.astype(object)
    inputs.loc[[0, 2], "x"] = ["oops", "12"]  # text in a numerical feature
    inputs.loc[[0, 1, 2], "s"] = [5, True, 2.5]  # read back as text '5', 'true', '2.5'

    collect(ws, inputs, pd.DataFrame({"p": [1] * 100}))
    pd.DataFrame({"x": np.linspace(0, 10, 50), "s": ["a", "b"] * 25}).to_parquet(
        tmp_path / "ref.parquet"
    )
    (tmp_path / "m.yml").write_text(
        monitor(
            "    q:\n      type: data_quality\n"
            + PROD.format(coll="model_inputs")
            + "      reference_data:\n        input_data: {path: ./ref.parquet}\n"
        )
    )
    at = pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=1)
    outcome = run_monitor(tmp_path / "m.yml", ws, at.to_pydatetime(), notify=False)
    got = {(r.feature, r.metric): r.value for r in outcome.rows}
    assert got["x", "null_value_rate"] == 0.25
    # 'oops' is a type error; the text '12' reads back as a number, above the reference's 10
    assert got["x", "data_type_error_rate"] == 0.01
    assert got["x", "out_of_bounds_rate"] == 0.01
    assert got["s", "null_value_rate"] == 0.25 - 0.01  # row 2's None became 2.5
    # JSON values of other types come back as their text: unseen categories, not type errors
    assert got["s", "data_type_error_rate"] == 0.0
    assert got["s", "out_of_bounds_rate"] == 0.03


def test_prediction_drift_and_model_performance(drifted):
    spec = monitor(
        "    preds:\n      type: prediction_drift\n"
        + PROD.format(coll="model_outputs")
        + "      reference_data:\n        input_data: {path: ./training.parquet}\n"
        + "      features: [prediction]\n"
        + "      feature_type_override: {categorical: [prediction]}\n"
        + "    perf:\n      type: model_performance\n"
        + PROD.format(coll="model_outputs")
        + "      reference_data:\n        input_data: {path: ./truth.csv}\n"
        + "        data_context: ground_truth\n"
        + "        data_column_names: {actual: label, correlation_id: correlationid}\n"
        + "      metric_thresholds:\n        classification: {accuracy: 0.9, recall: 0.2}\n"
    )
    # the training file's "prediction" is its label: a reference for prediction drift
    drifted.training.rename(columns={"label": "prediction"}).to_parquet(
        drifted.root / "training.parquet"
    )
    outcome = run_monitor(drifted.write(spec, "p.yml"), drifted.ws, drifted.at, notify=False)
    got = {(r.signal, r.metric): r for r in outcome.rows}
    t, p = drifted.truth["label"].to_numpy(), drifted.outputs["prediction"].to_numpy()
    assert math.isclose(got["perf", "accuracy"].value, float(np.mean(t == p)), rel_tol=1e-12)
    assert math.isclose(
        got["perf", "recall"].value,
        float(np.sum((t == 1) & (p == 1)) / np.sum(t == 1)),
        rel_tol=1e-12,
    )
    assert got["perf", "accuracy"].breached  # random predictions: ~50%
    assert not got["perf", "recall"].breached
    assert got["perf", "accuracy"].production_rows == 1000
    assert got["preds", "jensen_shannon_distance"].feature_type == "categorical"


@pytest.mark.parametrize(("data", "breach"), [("steady", False), ("drifted", True)])
def test_auto_threshold_is_mean_plus_3_std_of_reference_chunks(request, data, breach):
    setup = request.getfixturevalue(data)
    spec = ISSUE_MONITOR.replace(
        "numerical: {normalized_wasserstein_distance: 0.1}",
        "numerical: {normalized_wasserstein_distance: auto}",
    )
    outcome = run_monitor(setup.write(spec, "auto.yml"), setup.ws, setup.at, notify=False)
    row = next(r for r in outcome.rows if r.feature == "LIMIT_BAL")
    ref = setup.training["LIMIT_BAL"].to_numpy()
    chunks = np.array_split(ref, AUTO_CHUNKS)
    values = [stats.wasserstein_distance(ref, c) / np.std(ref, ddof=1) for c in chunks]
    assert math.isclose(row.threshold, np.mean(values) + 3 * np.std(values), rel_tol=1e-9)
    assert row.breached is breach


def test_reference_as_a_window_of_the_production_asset(steady):
    asset = "input_data: {path: azureml:my_endpoint-blue-model_inputs:1, type: uri_folder}"
    past = ISSUE_MONITOR.replace(
        "input_data: {path: ./training.parquet, type: uri_file}",
        asset + "\n        data_window: {lookback_window_size: P14D, lookback_window_offset: P7D}",
    )
    with pytest.raises(ConfigError, match=r"reference_data\.data_window: no rows in"):
        run_monitor(steady.write(past, "past.yml"), steady.ws, steady.at, notify=False)
    start = (pd.Timestamp(steady.at) - pd.Timedelta(hours=2)).isoformat()
    same = ISSUE_MONITOR.replace(
        "input_data: {path: ./training.parquet, type: uri_file}",
        asset + f"\n        data_window: {{window_start: '{start}', window_end: '{steady.at}'}}",
    )
    outcome = run_monitor(steady.write(same, "same.yml"), steady.ws, steady.at, notify=False)
    assert [r.value for r in outcome.rows] == [0.0, 0.0, 0.0]  # the same rows on both sides
    assert {r.reference_rows for r in outcome.rows} == {1000}


def test_only_partitions_in_the_window_are_read(drifted, monkeypatch):
    import shutil

    import modeltap.read._source as read_source
    from tests.helpers import CountingStorage

    coll = drifted.ws / "datastores/workspaceblobstore/modelDataCollector/my_endpoint/blue"
    [hour] = {f.parent for f in (coll / "model_inputs").rglob("*.jsonl")}
    old = coll / "model_inputs/2020/01/01/00"
    old.mkdir(parents=True)
    for f in hour.glob("*.jsonl"):
        shutil.copy(f, old / f.name)
    store_ = CountingStorage(drifted.ws / "datastores/workspaceblobstore")
    monkeypatch.setattr(read_source, "open_datastore", lambda name, settings, ws: store_)
    run_monitor(drifted.root / "monitor.yml", drifted.ws, drifted.at, notify=False)
    assert store_.got and not any("/2020/" in path for path in store_.got)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P7D", timedelta(days=7)),
        ("PT12H", timedelta(hours=12)),
        ("P1.5D", timedelta(hours=36)),
        ("p1dt6h", timedelta(days=1, hours=6)),
        ("P0D", timedelta(0)),
    ],
)
def test_window_durations_are_read_as_iso_8601(text, expected):
    assert spec._duration(text, "data_window.lookback_window_size") == expected


@pytest.mark.parametrize("text", ["P1M", "P1Y", "7 days", "P", "PT", ""])
def test_window_durations_without_a_fixed_length_are_refused(text):
    # pandas reads "P1M" as one minute: a month must not become a minute-long window
    with pytest.raises(ConfigError, match="is not a duration"):
        spec._duration(text, "data_window.lookback_window_size")
