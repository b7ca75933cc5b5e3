"""examples/mlflow-credit: train with MLflow, serve with no score.py, send requests, read back."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import modeltap

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mlflow-credit"


@pytest.mark.slow
def test_mlflow_credit_demo_runs_end_to_end(tmp_path):
    # A copy, so the model trained here is not left in the source tree.
    example = tmp_path / "mlflow-credit"
    shutil.copytree(EXAMPLE, example, ignore=shutil.ignore_patterns("model", "__pycache__"))
    workspace = tmp_path / "ws"
    done = subprocess.run(
        [
            sys.executable,
            str(example / "demo.py"),
            "--workspace",
            str(workspace),
            "--requests",
            "6",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    out = done.stdout
    assert "demo: trained the credit model" in out
    assert (example / "model" / "MLmodel").is_file()
    answers = [line for line in out.splitlines() if line.startswith("demo: POST /score")]
    assert len(answers) == 7
    assert "input_data -> 200 [" in answers[0]  # the platform's answer: the bare predictions
    assert any("dataframe_split -> 200 {'predictions': [" in a for a in answers)
    assert "-> 400" in answers[-1] and "debt_ratio" in answers[-1]
    assert "demo: collected" in out

    inputs = modeltap.load("credit-blue-model_inputs", workspace=workspace)
    outputs = modeltap.load("credit-blue-model_outputs", workspace=workspace)
    assert sorted(set(inputs["correlationid"])) == [f"credit-{i:04d}" for i in range(6)]
    assert {"age", "income", "debt_ratio", "region"} <= set(inputs.columns)
    assert len(modeltap.join(inputs, outputs)) == len(inputs) == len(outputs)
    assert set(outputs["0"]) <= {0, 1}
