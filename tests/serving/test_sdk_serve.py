"""The source document's own score.py examples, unchanged, under `modeltap serve` (R1.8)."""

from __future__ import annotations

import os
import re
import signal
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.conftest import SOURCE_DEPLOYMENT, read_lines, store_root
from tests.servers import Process, start_cli
from tests.serving.server import Served

ROOT = Path(__file__).resolve().parents[2]

# The seed document's first example (auto correlation id), with its elided predict() filled in.
AUTO_ID = """
import pandas as pd
import json
from azureml.ai.monitoring import Collector

def init():
    global inputs_collector, outputs_collector, inputs_outputs_collector
    # instantiate collectors with appropriate names, make sure align with deployment spec
    inputs_collector = Collector(name='model_inputs')
    outputs_collector = Collector(name='model_outputs')

def run(data):
    # json data: { "data" : { "col1": [1,2,3], "col2": [2,3,4] } }
    pdf_data = preprocess(json.loads(data))
    # tabular data: { "col1": [1,2,3], "col2": [2,3,4] }
    input_df = pd.DataFrame(pdf_data)
    # collect inputs data, store correlation_context
    context = inputs_collector.collect(input_df)
    # perform scoring with pandas Dataframe, return value is also pandas Dataframe
    output_df = predict(input_df)
    # collect outputs data, pass in correlation_context so inputs and outputs data can be
    # correlated later
    outputs_collector.collect(output_df, context)
    return output_df.to_dict()

def preprocess(json_data):
    # preprocess the payload to ensure it can be converted to pandas DataFrame
    return json_data["data"]

def predict(input_df):
    # process input and return with outputs
    output_df = input_df.sum(axis=1).to_frame("total")
    return output_df
"""

# The second example: a custom unique id.
CUSTOM_ID = AUTO_ID.replace(
    "from azureml.ai.monitoring import Collector",
    "from azureml.ai.monitoring import Collector\n"
    "from azureml.ai.monitoring.context import BasicCorrelationContext",
).replace(
    "    context = inputs_collector.collect(input_df)",
    "    artificial_context = BasicCorrelationContext(id='test')\n"
    "    context = inputs_collector.collect(input_df, artificial_context)",
)

DEPLOYMENT = SOURCE_DEPLOYMENT


def serve(tmp_path: Path, score: str) -> tuple[Process, str]:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "score.py").write_text(score)
    (tmp_path / "deployment.yml").write_text(DEPLOYMENT)
    return start_cli(
        "serve",
        tmp_path / "deployment.yml",
        tmp_path / "ws",
        tmp_path / "serve.log",
        "--log-level",
        "warning",
    )


def score_requests(base: str, n: int) -> None:
    for i in range(n):
        r = httpx.post(base + "/score", json={"data": {"col1": [i, 2], "col2": [3, 4]}}, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json() == {"total": {"0": i + 3, "1": 6}}


@pytest.mark.slow
@pytest.mark.parametrize("score", [AUTO_ID, CUSTOM_ID], ids=["auto-id", "custom-id"])
def test_source_score_py_runs_unchanged(tmp_path, score):
    proc, base = serve(tmp_path, score)
    try:
        score_requests(base, 10)
    finally:
        code = proc.stop()
    assert code == 0, proc.log_path.read_text()
    root = store_root(tmp_path / "ws")
    ins, outs = read_lines(root, "model_inputs"), read_lines(root, "model_outputs")
    assert len(ins) == 10 and len(outs) == 10
    assert all(line["agent"] == "azureml-ai-monitoring/1.0.0" for line in ins + outs)
    assert all(line["collectdatatype"] == "pandas.core.frame.DataFrame" for line in ins)
    assert sorted(line["data"][0]["col1"] for line in ins) == list(range(10))
    if score is CUSTOM_ID:
        assert {line["correlationid"] for line in ins + outs} == {"test"}
    else:
        assert {line["correlationid"] for line in ins} == {line["correlationid"] for line in outs}
        assert len({line["correlationid"] for line in ins}) == 10


@pytest.mark.slow
def test_agent_page_example_runs(tmp_path):
    page = (ROOT / "docs" / "agent.md").read_text()
    score = re.search(r"```python\n(.*?)```", page, re.S)[1]  # type: ignore[index]
    proc, base = serve(tmp_path, score)
    try:
        r = httpx.post(base + "/score", content=b'[{"a": 1, "b": 2}]', timeout=30)
        assert r.json() == [{"score": 3}]
    finally:
        assert proc.stop() == 0
    lines = read_lines(store_root(tmp_path / "ws"))
    assert {line["correlationid"] for line in lines} == {"order-1"}
    assert len(lines) == 2


# The SDK queues each collect() in memory and a thread of its own posts it to the sidecar.
KEYED = """
import json

import pandas as pd
from azureml.ai.monitoring import Collector
from azureml.ai.monitoring.context import BasicCorrelationContext

def init():
    global inputs, outputs
    inputs = Collector(name="model_inputs")
    outputs = Collector(name="model_outputs")

def run(data):
    body = json.loads(data)
    frame = pd.DataFrame(body["data"])
    context = inputs.collect(frame, BasicCorrelationContext(id=body["id"]))
    outputs.collect(frame.sum(axis=1).to_frame("total"), context)
    return {"ok": body["id"]}
"""


@pytest.mark.slow
@pytest.mark.parametrize("to", ["serve", "group"])
@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_right_after_a_burst_loses_nothing_the_sdk_still_holds(tmp_path, workers, to):
    """100 requests back to back, then SIGTERM: the SDK's queue in each worker is drained
    into the sidecar before the sidecar stops (it used to lose 14 to 56 of 100). Also when
    the signal reaches the whole process group (Ctrl-C, a service manager)."""
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "score.py").write_text(KEYED)
    (tmp_path / "deployment.yml").write_text(DEPLOYMENT)
    server = Served(
        tmp_path / "deployment.yml", tmp_path / "ws", tmp_path, ("--workers", str(workers))
    )
    acknowledged = []
    try:
        with httpx.Client(base_url=server.base, timeout=30) as client:
            for i in range(100):
                rid = f"burst-{i}"
                body = {"id": rid, "data": {"a": list(range(2000)), "b": list(range(2000))}}
                if client.post("/score", json=body).status_code == 200:
                    acknowledged.append(rid)
        if to == "group":
            os.killpg(server.proc.pid, signal.SIGTERM)
        code, took = server.stop(timeout=40)
    finally:
        server.kill()
    assert code == 0, server.stderr()
    assert took < 30  # the documented bound (--shutdown-timeout)
    assert len(acknowledged) == 100
    root = store_root(tmp_path / "ws")
    for collection in ("model_inputs", "model_outputs"):
        landed = Counter(line["correlationid"] for line in read_lines(root, collection))
        missing = set(acknowledged) - set(landed)
        assert not missing, f"{collection}: {len(missing)} of 100 missing:\n{server.stderr()}"
        assert max(landed.values()) == 1
    assert "not delivered" not in server.stderr()
