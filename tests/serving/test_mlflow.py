"""MLflow model folders served with no score.py (R9.1): the platform's payloads and
MLflow's, signature checks as 400s naming the column, collection with no user code."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

import modeltap
from modeltap.config import load_deployment
from modeltap.errors import ConfigError
from modeltap.serving import create_app
from modeltap.serving.mlflow_model import MlflowModel
from tests.conftest import read_lines, store_root
from tests.serving.appclient import AppClient
from tests.serving.server import Served

COLUMNS = ["age", "income", "region"]
ROWS = [[30, 40000.0, "north"], [61, 12000.0, "south"]]


def save_table_model(path: Path) -> None:
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    X = pd.DataFrame(
        {
            "age": [25, 40, 33, 51, 62, 29],
            "income": [30000.0, 80000.0, 52000.0, 61000.0, 9000.0, 45000.0],
            "region": ["north", "south", "north", "east", "south", "east"],
        }
    )
    y = [0, 0, 0, 1, 1, 0]
    model = make_pipeline(
        make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore"), ["region"]), remainder="passthrough"
        ),
        LogisticRegression(max_iter=1000),
    ).fit(X, y)
    mlflow.sklearn.save_model(
        model,
        str(path),
        signature=infer_signature(X, model.predict(X)),
        serialization_format="cloudpickle",
    )


def save_tensor_model(path: Path) -> None:
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    X = np.array([[1.0, 2.0], [2.0, 1.0], [3.0, 3.0]])
    model = LinearRegression().fit(X, X.sum(axis=1))
    mlflow.sklearn.save_model(
        model,
        str(path),
        signature=infer_signature(X, model.predict(X)),
        serialization_format="cloudpickle",
    )


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mlflow-models")
    with warnings.catch_warnings():  # MLflow's notes while it infers signatures and saves
        warnings.simplefilter("ignore")
        save_table_model(root / "credit" / "model")
        save_tensor_model(root / "tensor" / "model")
    return {"table": root / "credit" / "model", "tensor": root / "tensor" / "model"}


DEPLOYMENT = """\
name: blue
endpoint_name: credit
model:
  path: ./model
  type: mlflow_model
"""


@pytest.mark.slow
def test_served_with_collect_payloads_and_signature_errors(models, tmp_path):
    (tmp_path / "model").symlink_to(models["table"], target_is_directory=True)
    (tmp_path / "deployment.yml").write_text(DEPLOYMENT)  # no data_collector: --collect
    server = Served(tmp_path / "deployment.yml", tmp_path / "ws", tmp_path, ("--collect",))
    split = {"columns": COLUMNS, "index": [0, 1], "data": ROWS}
    records = [dict(zip(COLUMNS, row, strict=True)) for row in ROWS]
    good = {
        "platform": {"input_data": split},
        "no-index": {"input_data": {"columns": COLUMNS, "data": ROWS}},
        "df-split": {"dataframe_split": {"columns": COLUMNS, "data": ROWS}},
        "df-records": {"dataframe_records": records},
        "inputs": {"inputs": records},
    }
    bad_column = {"input_data": {"columns": ["age", "region"], "data": [[30, "north"]]}}
    bad_type = {"input_data": {"columns": COLUMNS, "data": [["old", 1.0, "north"]]}}
    try:
        with httpx.Client(base_url=server.base, timeout=30) as client:
            answers = {
                rid: client.post("/score", json=body, headers={"x-request-id": rid})
                for rid, body in good.items()
            }
            missing = client.post("/score", json=bad_column, headers={"x-request-id": "bad-1"})
            wrong = client.post("/score", json=bad_type, headers={"x-request-id": "bad-2"})
            no_input = client.post("/score", json={"data": ROWS})
            text = client.post("/score", content=b"{}", headers={"content-type": "text/plain"})
            swagger = client.get("/swagger.json")
    finally:
        code, _ = server.stop()
    assert code == 0, server.stderr()
    # A model's predict() holds the loop for milliseconds: asyncio takes connections in turn.
    assert "(event loop: asyncio)" in server.stderr()
    for rid, r in answers.items():
        assert r.status_code == 200, (rid, r.text)
    predictions = answers["platform"].json()
    assert isinstance(predictions, list) and len(predictions) == 2  # bare, as the platform
    assert answers["no-index"].json() == predictions
    for rid in ("df-split", "df-records", "inputs"):  # MLflow's own answer shape
        assert answers[rid].json() == {"predictions": predictions}
    assert missing.status_code == 400 and "income" in missing.json()["message"]
    assert wrong.status_code == 400 and "column age" in wrong.json()["message"]
    assert no_input.status_code == 400
    assert no_input.json()["message"] == "A value is not provided for the 'input_data' parameter."
    assert text.status_code == 415
    assert (
        swagger.json()["definitions"]["ServiceInput"]["example"]["input_data"]["columns"] == COLUMNS
    )

    # Collected with no code, keyed by the request id; refused requests are not model data.
    ins = modeltap.load("credit-blue-model_inputs", workspace=tmp_path / "ws")
    outs = modeltap.load("credit-blue-model_outputs", workspace=tmp_path / "ws")
    assert sorted(set(ins["correlationid"])) == sorted(good)
    assert list(ins.loc[ins["correlationid"] == "platform", COLUMNS].itertuples(index=False)) == [
        tuple(row) for row in ROWS
    ]
    joined = modeltap.join(ins, outs)
    assert len(joined) == 2 * len(good)
    assert joined.loc[joined["correlationid"] == "platform", "0"].tolist() == predictions
    lines = read_lines(store_root(tmp_path / "ws"), "model_inputs")
    assert {line["source"] for line in lines} == {"/endpoints/credit/deployments/blue"}


@pytest.fixture
def isolated_collectors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZUREML_MODEL_DIR", "placeholder")
    monkeypatch.delenv("AZUREML_MODEL_DIR")
    monkeypatch.delenv("MLFLOW_MODEL_FOLDER", raising=False)


def test_tensor_model_takes_input_data_as_a_list(models, workspace, isolated_collectors):
    modeltap.configure(
        workspace=workspace,
        endpoint="tensors",
        deployment="blue",
        collections=["model_inputs", "model_outputs"],
    )
    scorer = MlflowModel(models["tensor"], models["tensor"].parent)
    with AppClient(create_app(scorer)) as client:
        r = client.post(
            "/score", json={"input_data": [[1.0, 1.0], [2.0, 5.0]]}, headers={"x-request-id": "t"}
        )
        named = client.post("/score", json={"inputs": [[0.5, 0.5]]})
        swagger = client.get("/swagger.json")
    assert r.status_code == 200, r.text
    assert np.allclose(r.json(), [2.0, 7.0])
    assert np.allclose(named.json()["predictions"], [1.0])
    assert swagger.status_code == 404  # a tensor signature has no table to describe
    root = store_root(workspace)
    [inputs] = [line for line in read_lines(root, "model_inputs") if line["correlationid"] == "t"]
    assert inputs["data"] == [{"0": 1.0, "1": 1.0}, {"0": 2.0, "1": 5.0}]


def test_model_without_mlflow_says_how_to_install_it(models, tmp_path):
    (tmp_path / "model").symlink_to(models["table"], target_is_directory=True)
    (tmp_path / "deployment.yml").write_text(DEPLOYMENT)
    hide_mlflow = textwrap.dedent(
        """
        import sys
        sys.modules["mlflow"] = None  # as if it were not installed
        from modeltap.cli import main
        main(["serve", "-f", sys.argv[1], "--workspace", sys.argv[2]])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", hide_mlflow, str(tmp_path / "deployment.yml"), str(tmp_path / "ws")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    [line] = [line for line in done.stderr.splitlines() if "error" in line]
    assert line.startswith("modeltap: error: ")
    assert "pip install 'modeltap[mlflow]'" in line
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("model", "field", "message"),
    [
        ("{path: ./model, type: mlflow_model}", "model.path", "no MLmodel file"),
        ("{path: ./model, type: onnx}", "model.type", "allowed: custom_model, mlflow_model"),
    ],
)
def test_model_settings_are_checked(tmp_path, model, field, message):
    (tmp_path / "model").mkdir()
    (tmp_path / "d.yml").write_text(f"name: blue\nendpoint_name: ep\nmodel: {model}\n")
    with pytest.raises(ConfigError) as err:
        load_deployment(tmp_path / "d.yml")
    assert err.value.field == field
    assert message in str(err.value)


def test_model_type_and_path_are_read(models, tmp_path):
    (tmp_path / "model").symlink_to(models["table"], target_is_directory=True)
    (tmp_path / "d.yml").write_text(DEPLOYMENT)
    settings: Any = load_deployment(tmp_path / "d.yml")
    assert settings.model_type == "mlflow_model"
    assert settings.model_path == models["table"].resolve()
