"""score.py files written the way the platform's public examples write them, under a real
`modeltap serve` over HTTP with collection on (R1.7, R1.8, R3).

Each run() form (inference-schema decorated with Numpy, Pandas and Standard types;
@rawhttp answering an image-like binary AMLResponse; request_headers with a GET query)
collects its input and output frames, once with the platform's own SDK
(`azureml.ai.monitoring`, through serve's agent sidecar) and once with modeltap's
Collector; request and response payload logging is on too. Every script finds its
model where the platform puts it: `AZUREML_MODEL_DIR/model/...`.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import read_lines, store_root
from tests.serving.server import Served

pytestmark = pytest.mark.slow

DEPLOYMENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: my_endpoint
model:
  path: ./model
code_configuration:
  code: onlinescoring
  scoring_script: score.py
instance_type: Standard_DS3_v2
instance_count: 1
data_collector:
  collections:
    model_inputs:
      enabled: 'True'
    model_outputs:
      enabled: 'True'
    request:
      enabled: 'True'
    response:
      enabled: 'True'
"""

HEADER = """\
import json
import logging
import os

import numpy as np
import pandas as pd
from azureml.ai.monitoring import Collector


def init():
    global model, inputs_collector, outputs_collector
    # AZUREML_MODEL_DIR is the folder the model was placed in; the model keeps its name.
    model_path = os.path.join(os.getenv("AZUREML_MODEL_DIR"), "model/weights.json")
    with open(model_path) as f:
        model = json.load(f)
    inputs_collector = Collector(name="model_inputs")
    outputs_collector = Collector(name="model_outputs")
    logging.info("Init complete")
"""

SCHEMA_RUN = """
from inference_schema.schema_decorators import input_schema, output_schema
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.parameter_types.standard_py_parameter_type import (
    StandardPythonParameterType,
)

numpy_sample_input = NumpyParameterType(np.array([[1.0, 2.0]], dtype="float64"))
pandas_sample_input = PandasParameterType(pd.DataFrame({"a": [1.0], "b": [2.0]}))
standard_sample_input = StandardPythonParameterType(0.0)
sample_input = StandardPythonParameterType(
    {"input1": numpy_sample_input, "input2": pandas_sample_input, "input3": standard_sample_input}
)
sample_global_parameters = StandardPythonParameterType(1.0)
sample_output = StandardPythonParameterType([1.0, 1.0])


@input_schema("Inputs", sample_input)
@input_schema("GlobalParameters", sample_global_parameters)
@output_schema(sample_output)
def run(Inputs, GlobalParameters):
    frame = Inputs["input2"]
    context = inputs_collector.collect(frame)
    scores = (frame["a"] * model["weight"] + Inputs["input1"].sum(axis=1)) * GlobalParameters
    outputs_collector.collect(scores.to_frame("score"), context)
    return scores.tolist()
"""

RAW_RUN = """
from azureml_inference_server_http.api.aml_request import AMLRequest, rawhttp
from azureml_inference_server_http.api.aml_response import AMLResponse


@rawhttp
def run(request, request_headers):
    if request.method != "POST":
        return AMLResponse("bad request, use POST", 500)
    image = request.get_data(False)
    frame = pd.DataFrame({"size": [len(image)], "agent": [request_headers["User-Agent"]]})
    context = inputs_collector.collect(frame)
    thumbnail = bytes(reversed(image)) * model["weight"]
    outputs_collector.collect(pd.DataFrame({"thumbnail_size": [len(thumbnail)]}), context)
    return AMLResponse(thumbnail, 200, {"Content-Type": "image/jpeg"})
"""

HEADERS_RUN = """
def run(raw_data, request_headers):
    rows = json.loads(raw_data)["data"]
    frame = pd.DataFrame(rows)
    context = inputs_collector.collect(frame)
    out = (frame.sum(axis=1) * model["weight"]).to_frame("score")
    out["caller"] = request_headers.get("X-Caller", "")
    outputs_collector.collect(out, context)
    return out.to_dict(orient="records")
"""

MODELTAP = "from modeltap import Collector"
SDK = "from azureml.ai.monitoring import Collector"
IMAGE = bytes(range(256)) + b"\x89PNG\r\n\x1a\n\x00\xff"


def serve(tmp_path: Path, run_source: str, collector_import: str) -> Served:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.json").write_text('{"weight": 2}')
    (tmp_path / "onlinescoring").mkdir()
    script = HEADER.replace(SDK, collector_import) + run_source
    (tmp_path / "onlinescoring" / "score.py").write_text(script)
    (tmp_path / "deployment.yml").write_text(DEPLOYMENT)
    return Served(
        tmp_path / "deployment.yml", tmp_path / "ws", tmp_path, ("--log-level", "warning")
    )


def call(server: Served, request_id: str, **kwargs: Any) -> httpx.Response:
    kwargs.setdefault("method", "POST")
    headers = {"x-request-id": request_id, **kwargs.pop("headers", {})}
    r = httpx.request(url=server.base + "/score", headers=headers, timeout=30, **kwargs)
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"] == request_id
    return r


def stop_and_read(server: Served) -> dict[str, list[dict[str, Any]]]:
    code, _ = server.stop(signal.SIGTERM)
    assert code == 0, server.stderr()
    root = store_root(server.workspace)
    return {
        c: read_lines(root, c) for c in ("model_inputs", "model_outputs", "request", "response")
    }


def check_pairs(lines: dict[str, list[dict[str, Any]]], ids: list[str], sdk: bool) -> None:
    """model_inputs and model_outputs join by correlation id: the request's with modeltap,
    the SDK's own with the platform's SDK (it makes one per collect() without a context)."""
    ins, outs = lines["model_inputs"], lines["model_outputs"]
    assert len(ins) == len(outs) == len(ids)
    assert {line["correlationid"] for line in ins} == {line["correlationid"] for line in outs}
    if sdk:
        assert all(line["agent"].startswith("azureml-ai-monitoring/") for line in ins + outs)
    else:
        assert sorted(line["correlationid"] for line in ins) == sorted(ids)
    # Payload logging saw every call, keyed by the caller's request id.
    for collection in ("request", "response"):
        assert set(ids) <= {line["correlationid"] for line in lines[collection]}


@pytest.mark.parametrize("collector_import", [MODELTAP, SDK], ids=["modeltap", "sdk"])
def test_schema_decorated_run(tmp_path, collector_import):
    server = serve(tmp_path, SCHEMA_RUN, collector_import)
    try:
        body = {
            "Inputs": {
                "input1": [[1.0, 2.0], [3.0, 4.0]],
                "input2": [{"a": 1.0, "b": 0.0}, {"a": 5.0, "b": 0.0}],
                "input3": 0.0,
            },
            "GlobalParameters": 10.0,
        }
        ids = [f"s{i}" for i in range(3)]
        answers = [call(server, rid, json=body).json() for rid in ids]
        missing = httpx.post(server.base + "/score", json={"Inputs": body["Inputs"]}, timeout=30)
        swagger = httpx.get(server.base + "/swagger.json", timeout=30).json()
    finally:
        lines = stop_and_read(server)
    assert answers == [[50.0, 170.0]] * 3  # (a * weight 2 + row sum) * 10
    assert missing.status_code == 400
    assert "GlobalParameters" in missing.json()["message"]
    assert set(swagger["definitions"]["ServiceInput"]["properties"]) == {
        "Inputs",
        "GlobalParameters",
    }
    check_pairs(lines, ids, collector_import == SDK)
    assert lines["model_inputs"][0]["data"] == [{"a": 1.0, "b": 0.0}, {"a": 5.0, "b": 0.0}]
    assert lines["model_outputs"][0]["data"] == [{"score": 50.0}, {"score": 170.0}]


@pytest.mark.parametrize("collector_import", [MODELTAP, SDK], ids=["modeltap", "sdk"])
def test_rawhttp_image_in_and_out(tmp_path, collector_import):
    server = serve(tmp_path, RAW_RUN, collector_import)
    try:
        ids = ["img0", "img1"]
        answers = [
            call(
                server,
                rid,
                content=IMAGE,
                headers={"content-type": "image/png", "user-agent": "camera/1"},
            )
            for rid in ids
        ]
    finally:
        lines = stop_and_read(server)
    for r in answers:
        assert r.content == bytes(reversed(IMAGE)) * 2
        assert r.headers["content-type"] == "image/jpeg"
    check_pairs(lines, ids, collector_import == SDK)
    assert lines["model_inputs"][0]["data"] == [{"size": len(IMAGE), "agent": "camera/1"}]
    for line in lines["request"]:  # the binary body is logged raw, in its own file
        assert line["datainblob"] == "true"
        assert line["datacontenttype"] == "image/png"
        assert Path(line["data"]).read_bytes() == IMAGE
    for line in lines["response"]:
        assert Path(line["data"]).read_bytes() == bytes(reversed(IMAGE)) * 2


@pytest.mark.parametrize("collector_import", [MODELTAP, SDK], ids=["modeltap", "sdk"])
def test_request_headers_and_get_query(tmp_path, collector_import):
    server = serve(tmp_path, HEADERS_RUN, collector_import)
    rows = [{"x": 1, "y": 2}]
    try:
        posted = call(server, "h0", json={"data": rows}, headers={"x-caller": "tests"})
        got = call(server, "h1", method="GET", params={"data": json.dumps(rows)})
    finally:
        lines = stop_and_read(server)
    assert posted.json() == [{"score": 6, "caller": "tests"}]
    assert got.json() == [{"score": 6, "caller": ""}]  # ?data=[...] parsed as JSON
    check_pairs(lines, ["h0", "h1"], collector_import == SDK)
    assert sorted(line["method"] for line in lines["request"]) == ["GET", "POST"]


LOOP_SCRIPT = """
import asyncio

def run(raw_data):
    return type(asyncio.get_running_loop()).__module__
"""


@pytest.mark.parametrize(("extra", "module"), [((), "uvloop"), (("--loop", "asyncio"), "asyncio")])
def test_event_loop_choice(tmp_path, extra, module):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "score.py").write_text(LOOP_SCRIPT)
    (tmp_path / "d.yml").write_text(
        "name: blue\nendpoint_name: ep\n"
        "code_configuration:\n  code: s\n  scoring_script: score.py\n"
    )
    server = Served(tmp_path / "d.yml", tmp_path / "ws", tmp_path, extra)
    try:
        answer = httpx.post(server.base + "/score", content=b"", timeout=30).json()
    finally:
        assert server.stop()[0] == 0, server.stderr()
    assert answer.startswith(module), answer
