"""Redaction under a real `modeltap serve` (SPEC R13.1): a score.py written for the source
platform's SDK (its records reach modeltap's agent sidecar) and payload logging (the
workers relay calls to the sidecar, or record and spool them themselves). Afterwards no
file under the test's folder (data, spool, the server's log) holds a raw value."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import httpx
import pytest

from modeltap.redact import hash_value
from tests.conftest import read_lines, store_root
from tests.privacy.common import (
    ADDRESS,
    CUSTOMER,
    EMAIL,
    KEY,
    KEY_ENV,
    NOTE_PHONE,
    SSN,
    leaks,
    record,
    rules_yaml,
)
from tests.servers import start_cli

pytestmark = pytest.mark.slow

# The source SDK's collectors, fed with what the request holds; the reply repeats the ids.
SCORE = textwrap.dedent("""
    import json

    import pandas as pd
    from azureml.ai.monitoring import Collector

    def init():
        global inputs, outputs
        inputs = Collector(name="model_inputs")
        outputs = Collector(name="model_outputs")

    def run(data):
        body = json.loads(data)
        frame = pd.DataFrame(body["data"])
        context = inputs.collect(frame)
        out = frame[["customer_id", "email"]].assign(score=0.5)
        outputs.collect(out, context)
        return {"results": out.to_dict(orient="records"), "customer": body.get("customer")}
""")

DEPLOYMENT = """\
name: blue
endpoint_name: my_endpoint
code_configuration:
  code: scripts
  scoring_script: score.py
data_collector:
  collections:
    model_inputs: {{enabled: 'True'}}
    model_outputs: {{enabled: 'True'}}
    request: {{enabled: 'True'}}
    response: {{enabled: 'True'}}
  modeltap:
    durability: {durability}
    flush_interval: 0.5
{rules}"""


@pytest.mark.parametrize("durability", ["memory", "spool"])
def test_sdk_agent_and_payload_logging_store_no_raw_value(tmp_path, monkeypatch, durability):
    monkeypatch.setenv(KEY_ENV, KEY)
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "score.py").write_text(SCORE)
    rules = rules_yaml("model_inputs", "model_outputs", "request", "response")
    (tmp_path / "deployment.yml").write_text(DEPLOYMENT.format(durability=durability, rules=rules))
    proc, base = start_cli(
        "serve", tmp_path / "deployment.yml", tmp_path / "ws", tmp_path / "serve.log"
    )
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            body = {"data": [record(0), record(1)], "customer": {"address": ADDRESS, "id": 7}}
            for i in range(3):
                r = client.post(
                    f"/score?email={EMAIL}&ref={i}",
                    json=body,
                    headers={"x-request-id": f"call-{i}"},
                )
                assert r.status_code == 200, r.text
                assert r.json()["results"][0]["email"] == EMAIL  # the caller gets its answer
            # text, and a binary body the rules drop by content type
            r = client.post(
                "/score",
                content=f"call {NOTE_PHONE}".encode(),
                headers={"content-type": "text/plain", "x-request-id": "text"},
            )
            assert r.status_code == 500
            r = client.post(
                "/score",
                content=b"\x89PNG" + SSN.encode(),
                headers={"content-type": "image/png", "x-request-id": "png"},
            )
            assert r.status_code == 400
        # The SDK posts from its own thread: let its records land before the shutdown
        # (what a shutdown does with records still in the SDK's queue is not tested here).
        root = store_root(tmp_path / "ws")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            len(read_lines(root, "model_inputs")) == len(read_lines(root, "model_outputs")) == 3
        ):
            time.sleep(0.2)
    finally:
        code = proc.stop()
    assert code == 0, proc.log_path.read_text()

    h = lambda value: hash_value(value, KEY.encode())  # noqa: E731
    ins, outs = read_lines(root, "model_inputs"), read_lines(root, "model_outputs")
    assert len(ins) == len(outs) == 3
    assert all(line["agent"] == "azureml-ai-monitoring/1.0.0" for line in ins)
    row = ins[0]["data"][0]
    assert row["customer_id"] == h(CUSTOMER) and row["email"] == h(EMAIL)
    assert "ssn" not in row and row["card_number"] == "************1111"
    assert row["profile"] == {"tier": "gold"}
    assert "[redacted:phone]" in row["notes"]
    assert outs[0]["data"][0] == {"customer_id": h(CUSTOMER), "email": h(EMAIL), "score": 0.5}

    requests = {line["correlationid"]: line for line in read_lines(root, "request")}
    responses = {line["correlationid"]: line for line in read_lines(root, "response")}
    assert set(requests) == set(responses) == {"call-0", "call-1", "call-2", "text", "png"}
    call = requests["call-0"]
    assert call["path"] == f"/score?email={h(EMAIL)}&ref=0"
    assert call["data"]["customer"] == {"id": 7}  # $.customer.address dropped
    assert call["data"]["data"][1]["email"] == h(EMAIL)
    assert responses["call-0"]["data"]["results"][0]["customer_id"] == h(CUSTOMER)
    assert requests["text"]["data"] == "call [redacted:phone]"
    assert requests["png"]["data"] is None and requests["png"]["redacted"] == "body"
    # hashes join the SDK's records with the logged calls
    assert {r["customer_id"] for line in outs for r in line["data"]} == {
        r["customer_id"]
        for line in responses.values()
        if isinstance(line["data"], dict)
        for r in line["data"].get("results", [])
    }

    found = leaks(tmp_path)
    assert found == [], (found, json.dumps(ins[0])[:500])


def test_serve_without_the_key_stops_with_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "score.py").write_text(SCORE)
    rules = rules_yaml("model_inputs")
    (tmp_path / "deployment.yml").write_text(DEPLOYMENT.format(durability="memory", rules=rules))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "modeltap.cli",
            "serve",
            "-f",
            str(tmp_path / "deployment.yml"),
            "--workspace",
            str(tmp_path / "ws"),
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "modeltap: error: data_collector.modeltap.redact.hash_key_env: environment variable "
        f"{KEY_ENV} is not set; it must hold the key of the hash rules (the same on every "
        "replica, e.g. made once with `openssl rand -hex 32`)"
    )
