"""The README quick start: examples/iris/demo.py serves the iris model and sends it traffic."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import read_lines, store_root

DEMO = Path(__file__).resolve().parents[1] / "examples" / "iris" / "demo.py"


@pytest.mark.slow
def test_iris_demo_runs_end_to_end(tmp_path):
    workspace = tmp_path / "ws"
    done = subprocess.run(
        [sys.executable, str(DEMO), "--workspace", str(workspace), "--requests", "5"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"

    out = done.stdout
    assert "demo: sent 5 requests" in out
    for collection in ("model_inputs", "model_outputs"):
        assert f"last line of {collection}:" in out
        printed = out.split(f"last line of {collection}:\n", 1)[1].splitlines()[0]
        line = json.loads(printed)
        assert line["type"] == f"azureml.inference.{collection}"
        assert line["correlationid"].startswith("demo-")

    root = store_root(workspace)
    assert list((root / "modelDataCollector" / "my_endpoint" / "blue").rglob("*.jsonl"))
    expected = [f"demo-{i:04d}" for i in range(5)]
    ins, outs = read_lines(root, "model_inputs"), read_lines(root, "model_outputs")
    assert sorted(line["correlationid"] for line in ins) == expected
    assert sorted(line["correlationid"] for line in outs) == expected
    features = {"sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"}
    assert all(set(row) == features for line in ins for row in line["data"])
    labels = {"setosa", "versicolor", "virginica"}
    assert all(row["prediction"] in labels for line in outs for row in line["data"])
    # Each request's outputs have as many rows as its inputs.
    rows_in = {line["correlationid"]: len(line["data"]) for line in ins}
    assert rows_in == {line["correlationid"]: len(line["data"]) for line in outs}
