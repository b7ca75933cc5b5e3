"""A workspace with collected model inputs/outputs (the real pipeline), a training file,
ground truth, and the issue's monitor file."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import modeltap
from modeltap import BasicCorrelationContext, Collector

# The issue's example, as written (the reference path is relative to the file).
ISSUE_MONITOR = """\
name: credit_default_monitor
trigger: {type: recurrence, frequency: day, interval: 1, schedule: {hours: 3, minutes: 15}}
create_monitor:
  compute: {instance_type: standard_e4s_v3, runtime_version: "3.3"}
  monitoring_target: {ml_task: classification, endpoint_deployment_id: azureml:my_endpoint:blue}
  monitoring_signals:
    drift_inputs:
      type: data_drift
      production_data:
        input_data: {path: azureml:my_endpoint-blue-model_inputs:1, type: uri_folder}
        data_context: model_inputs
        data_window: {lookback_window_size: P7D, lookback_window_offset: P0D}
      reference_data:
        input_data: {path: ./training.parquet, type: uri_file}
        data_context: training
        target_column_name: label
      features: [LIMIT_BAL, AGE, SEX]
      metric_thresholds:
        numerical: {normalized_wasserstein_distance: 0.1}
        categorical: {jensen_shannon_distance: 0.1}
      alert_enabled: true
  alert_notification: {emails: [ops@example.com]}
"""


@dataclass
class Setup:
    root: Path  # holds monitor.yml, training.parquet, truth.csv
    ws: Path
    at: str  # a time just after the data was collected
    training: pd.DataFrame
    inputs: pd.DataFrame  # the rows collected as model_inputs
    outputs: pd.DataFrame
    truth: pd.DataFrame

    def write(self, text: str, name: str = "monitor.yml") -> Path:
        path = self.root / name
        path.write_text(text)
        return path

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "modeltap.cli", "monitor", *args],
            capture_output=True,
            text=True,
            cwd=self.root,
            timeout=120,
        )


def training_frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "LIMIT_BAL": rng.normal(50_000, 10_000, n),
            "AGE": rng.integers(21, 70, n),
            "SEX": rng.choice(["M", "F"], n),
            "EDUCATION": rng.choice(["grad", "uni", "school"], n, p=[0.3, 0.5, 0.2]),
            "label": rng.integers(0, 2, n),
        }
    )


def collect(ws: Path, inputs: pd.DataFrame, outputs: pd.DataFrame, batch: int = 50) -> None:
    modeltap.configure(
        workspace=ws,
        endpoint="my_endpoint",
        deployment="blue",
        collections=["model_inputs", "model_outputs"],
    )
    ins, outs = Collector(name="model_inputs"), Collector(name="model_outputs")
    for k, start in enumerate(range(0, len(inputs), batch)):
        ctx = ins.collect(inputs.iloc[start : start + batch], BasicCorrelationContext(id=f"r{k}"))
        outs.collect(outputs.iloc[start : start + batch], ctx)
    assert modeltap.flush(30)
    modeltap.shutdown()


@pytest.fixture
def drifted(tmp_path: Path) -> Setup:
    """Production where LIMIT_BAL and SEX drift, AGE and EDUCATION do not."""
    rng = np.random.default_rng(12)
    training = training_frame(rng, 3000)
    n = 1000
    inputs = pd.DataFrame(
        {
            "LIMIT_BAL": rng.normal(62_000, 10_000, n),
            "AGE": rng.integers(21, 70, n),
            "SEX": rng.choice(["M", "F"], n, p=[0.8, 0.2]),
            "EDUCATION": rng.choice(["grad", "uni", "school"], n, p=[0.3, 0.5, 0.2]),
        }
    )
    return _setup(tmp_path, rng, training, inputs)


@pytest.fixture
def steady(tmp_path: Path) -> Setup:
    """Production drawn from the training distribution."""
    rng = np.random.default_rng(13)
    training = training_frame(rng, 3000)
    inputs = training_frame(rng, 1000).drop(columns="label")
    return _setup(tmp_path, rng, training, inputs)


def _setup(tmp_path: Path, rng, training: pd.DataFrame, inputs: pd.DataFrame) -> Setup:
    root, ws = tmp_path, tmp_path / "ws"
    training.to_parquet(root / "training.parquet")
    outputs = pd.DataFrame({"prediction": rng.integers(0, 2, len(inputs))})
    collect(ws, inputs, outputs)
    at = (datetime.now(UTC) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    # ground truth by correlation id, row order within a request = position
    cids = [f"r{k // 50}" for k in range(len(inputs))]
    truth = pd.DataFrame({"correlationid": cids, "label": rng.integers(0, 2, len(inputs))})
    truth.to_csv(root / "truth.csv", index=False)
    setup = Setup(root, ws, at, training, inputs, outputs, truth)
    setup.write(ISSUE_MONITOR)
    return setup
