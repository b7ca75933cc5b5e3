"""The Spark engine computes what the one-machine engine computes (SPEC R12.2): counts,
histograms and the metrics made from them exactly; W1 and KS's D exactly up to rounding
when a feature has few enough distinct values, within the stated bounds otherwise; and
whole monitor runs (`--engine spark`) give the same result rows."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from modeltap.monitor import metrics
from modeltap.monitor.engine import LocalEngine
from modeltap.monitor.engine_spark import SparkEngine
from modeltap.monitor.run import run_monitor
from tests.monitor.conftest import ISSUE_MONITOR
from tests.sparkutil import spark_session  # noqa: F401 (the session fixture `spark`)

pytestmark = pytest.mark.slow

# Metrics made of counts: equal to the last bit. The others: equal up to float rounding.
COUNT_METRICS = {
    "jensen_shannon_distance",
    "population_stability_index",
    "pearsons_chi_squared_test",
    "null_value_rate",
    "data_type_error_rate",
    "out_of_bounds_rate",
    "accuracy",
    "precision",
    "recall",
}


@pytest.fixture
def frames(tmp_path, spark):
    """(pandas, Spark) versions of a reference and a production table, through Parquet."""
    rng = np.random.default_rng(5)
    n_ref, n_prod = 3000, 2000

    def table(n: int, shift: float) -> pd.DataFrame:
        x = rng.normal(shift, 1.0, n)
        x[:7] = np.nan
        x[7:9] = np.inf
        return pd.DataFrame(
            {
                "x": x,
                "k": rng.integers(0, 1000, n),  # numerical: many distinct integers
                "g": rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1]),
                "flag": rng.random(n) < 0.3 + shift / 10,
                "small": rng.integers(0, 4, n),  # categorical: few distinct integers
                "txt": pd.array(
                    rng.choice(["1.5", "2", "oops", None], n, p=[0.5, 0.3, 0.1, 0.1]),
                    dtype="str",
                ),
                "y": rng.integers(0, 2, n),
                "yhat": rng.integers(0, 2, n),
            }
        )

    out = []
    for name, n, shift in (("ref", n_ref, 0.0), ("prod", n_prod, 0.4)):
        path = tmp_path / f"{name}.parquet"
        table(n, shift).to_parquet(path)
        out.append((pd.read_parquet(path), spark.read.parquet(str(path)).cache()))
    return out


def test_statistics_agree(frames, spark):
    (ref, sref), (prod, sprod) = frames
    local, dist = LocalEngine(), SparkEngine(spark)
    for column in ref.columns:
        assert dist.feature_type(sref, column) == local.feature_type(ref, column), column
    for column in ("x", "k"):
        a = local.numerical(ref, prod, column, w1=True, ks=True)
        b = dist.numerical(sref, sprod, column, w1=True, ks=True)
        assert (a.n_ref, a.n_prod, a.edges, a.ref_hist, a.prod_hist) == (
            b.n_ref,
            b.n_prod,
            b.edges,
            b.ref_hist,
            b.prod_hist,
        )
        assert math.isclose(a.ref_std, b.ref_std, rel_tol=1e-12)
        assert math.isclose(a.w1, b.w1, rel_tol=1e-9)
        assert math.isclose(a.ks_d, b.ks_d, rel_tol=1e-12)
    for column in ("g", "flag", "small"):
        assert local.categorical(ref, prod, column) == dist.categorical(sref, sprod, column)
    for column, kind in (("x", "numerical"), ("g", "categorical"), ("txt", "numerical")):
        assert local.quality(ref, prod, column, kind) == dist.quality(sref, sprod, column, kind)
    assert local.quality(ref, prod, "txt", "numerical").type_errors == (prod["txt"] == "oops").sum()
    for task in ("classification", "regression"):
        a, b = (
            local.performance(prod, "y", "yhat", task),
            dist.performance(sprod, "y", "yhat", task),
        )
        assert a == b
    chunks = dist.chunks(sref, 10)
    assert [c.count() for c in chunks] == [len(c) for c in local.chunks(ref, 10)]
    assert chunks[3].first()["k"] == int(local.chunks(ref, 10)[3]["k"].iloc[0])


def test_many_distinct_values_come_within_the_stated_bound(frames, spark):
    (ref, sref), (prod, sprod) = frames
    exact = LocalEngine().numerical(ref, prod, "x", w1=True, ks=True)
    dist = SparkEngine(spark, exact_distinct=100, fine_bins=1 << 12)
    got = dist.numerical(sref, sprod, "x", w1=True, ks=True)
    w1_bound, d_bound = dist.bounds["x"]
    assert 0 < w1_bound < 0.01 and 0 < d_bound < 0.01
    assert abs(got.w1 - exact.w1) <= w1_bound
    assert got.ks_d <= exact.ks_d + 1e-12 <= got.ks_d + d_bound + 2e-12
    assert got.ref_hist == exact.ref_hist  # the Sturges histogram stays exact
    p_lo = metrics.ks_pvalue(got.ks_d + d_bound, exact.n_ref, exact.n_prod)
    p_hi = metrics.ks_pvalue(got.ks_d, exact.n_ref, exact.n_prod)
    assert p_lo <= metrics.ks_pvalue(exact.ks_d, exact.n_ref, exact.n_prod) <= p_hi


MORE_SIGNALS = """\
    quality:
      type: data_quality
      production_data:
        input_data: {path: azureml:my_endpoint-blue-model_inputs:1, type: uri_folder}
        data_context: model_inputs
        data_window: {lookback_window_size: P7D}
      reference_data:
        input_data: {path: ./training.parquet}
      features: [LIMIT_BAL, AGE, EDUCATION]
      metric_thresholds:
        numerical: {null_value_rate: 0.0, out_of_bounds_rate: 0.0}
        categorical: {out_of_bounds_rate: 0.0}
    drift_all:
      type: data_drift
      production_data:
        input_data: {path: azureml:my_endpoint-blue-model_inputs:1, type: uri_folder}
        data_context: model_inputs
        data_window: {lookback_window_size: P7D}
      reference_data:
        input_data: {path: ./training.parquet}
      metric_thresholds:
        numerical:
          {jensen_shannon_distance: 0.1, population_stability_index: 0.1,
           two_sample_kolmogorov_smirnov_test: 0.05, normalized_wasserstein_distance: 0.1}
        categorical: {pearsons_chi_squared_test: 0.05, population_stability_index: 0.1}
    perf:
      type: model_performance
      production_data:
        input_data: {path: azureml:my_endpoint-blue-model_outputs:1, type: uri_folder}
        data_context: model_outputs
        data_window: {lookback_window_size: P7D}
      reference_data:
        input_data: {path: ./truth.csv}
        data_context: ground_truth
        data_column_names: {actual: label, correlation_id: correlationid}
      metric_thresholds:
        classification: {accuracy: 0.9, precision: 0.5, recall: 0.2}
"""


def test_a_monitor_run_gives_the_same_results(drifted, spark):
    text = ISSUE_MONITOR.replace("  alert_notification:", MORE_SIGNALS + "  alert_notification:")
    path = drifted.write(text, "all.yml")
    local = run_monitor(path, drifted.ws, drifted.at, notify=False, report=False)
    dist = run_monitor(
        path, drifted.ws, drifted.at, notify=False, report=False, engine=SparkEngine(spark)
    )
    a = {(r.signal, r.feature, r.metric): r for r in local.rows}
    b = {(r.signal, r.feature, r.metric): r for r in dist.rows}
    assert set(a) == set(b) and len(a) >= 20
    for key, row in a.items():
        other = b[key]
        assert (row.production_rows, row.reference_rows) == (
            other.production_rows,
            other.reference_rows,
        ), key
        if key[2] in COUNT_METRICS:
            assert row.value == other.value or (math.isnan(row.value) and math.isnan(other.value))
        else:
            assert math.isclose(row.value, other.value, rel_tol=1e-9), key
        assert math.isclose(row.threshold, other.threshold, rel_tol=1e-9), key
        assert row.breached == other.breached, key
    assert a["perf", "", "accuracy"].production_rows == 1000


def test_command_with_engine_spark(drifted, spark, monkeypatch):
    from click.testing import CliRunner

    from modeltap.cli import main

    monkeypatch.chdir(drifted.root)  # the monitor file names ./training.parquet
    args = ["monitor", "run", "monitor.yml", "--workspace", "ws", "--at", drifted.at]
    done = CliRunner().invoke(main, [*args, "--json", "--engine", "spark"])
    assert done.exit_code == 1, done.output  # LIMIT_BAL and SEX drift
    rows = {r["feature"]: r for r in map(json.loads, done.stdout.splitlines())}
    local = run_monitor(drifted.root / "monitor.yml", drifted.ws, drifted.at, notify=False)
    assert set(rows) == {r.feature for r in local.rows}
    for r in local.rows:
        assert math.isclose(rows[r.feature]["value"], r.value, rel_tol=1e-9)
        assert rows[r.feature]["breached"] == r.breached
