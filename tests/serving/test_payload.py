"""Payload logging (R3, R4.3, R4.4) through `modeltap serve`, over real sockets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import read_lines, store_root
from tests.servers import start_cli

SCORE = """
import json

def init():
    pass

def run(data):
    d = json.loads(data)
    if d.get("fail"):
        raise ValueError("asked to fail")
    return {"echo": d}
"""

DEPLOYMENT = """
name: blue
endpoint_name: ep
code_configuration: {code: scripts, scoring_script: score.py}
data_collector:
  collections:
    request: {enabled: 'True'}
    response: {enabled: 'True'}
  modeltap: {flush_interval: 60}
"""


class Served:
    def __init__(self, tmp: Path):
        (tmp / "scripts").mkdir()
        (tmp / "scripts" / "score.py").write_text(SCORE)
        (tmp / "deployment.yml").write_text(DEPLOYMENT)
        self.workspace = tmp / "ws"
        self.server, self.base = start_cli(
            "serve",
            tmp / "deployment.yml",
            self.workspace,
            tmp / "serve.log",
            "--log-level",
            "warning",
        )

    def lines(self, collection: str) -> list[dict]:
        assert self.server.stop() == 0
        return read_lines(store_root(self.workspace), collection)


@pytest.fixture
def served(tmp_path) -> Iterator[Served]:
    s = Served(tmp_path)
    yield s
    s.server.stop()


@pytest.mark.slow
def test_json_request_and_response_are_recorded_with_one_id(served):
    r = httpx.post(
        served.base + "/score?v=1", json={"data": [1, 2]}, headers={"x-request-id": "abc"}
    )
    assert r.status_code == 200 and r.headers["x-request-id"] == "abc"
    r2 = httpx.post(served.base + "/score", json={"data": [3]})
    generated = r2.headers["x-request-id"]
    [req, req2] = served.lines("request")
    [resp, resp2] = read_lines(store_root(served.workspace), "response")
    assert req["data"] == {"data": [1, 2]}
    assert req["path"] == "/score?v=1" and req["method"] == "POST"
    assert req["datacontenttype"] == "application/json"
    assert req["correlationid"] == req["xrequestid"] == resp["correlationid"] == "abc"
    n = len(r.request.content)
    assert req["contentrange"] == f"bytes 0-{n - 1}/{n}"
    assert resp["data"] == {"echo": {"data": [1, 2]}}
    assert resp["statuscode"] == 200 and resp["latencyms"] >= 0
    assert req2["correlationid"] == resp2["correlationid"] == generated
    assert req["type"] == "azureml.inference.request"
    assert resp["type"] == "azureml.inference.response"


@pytest.mark.slow
def test_failed_calls_are_captured(served):
    r = httpx.post(served.base + "/score", json={"fail": True}, headers={"x-request-id": "f"})
    assert r.status_code == 500
    [resp] = served.lines("response")
    assert resp["statuscode"] == 500
    assert "asked to fail" in resp["data"]["error"]


@pytest.mark.slow
def test_text_binary_and_large_payloads(served):
    httpx.post(
        served.base + "/score",
        content=b"plain words",
        headers={"content-type": "text/plain", "x-request-id": "text"},
    )
    binary = bytes(range(256)) * 10
    httpx.post(
        served.base + "/score",
        content=binary,
        headers={"content-type": "image/png", "x-request-id": "bin"},
    )
    large = b'{"data": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    r = httpx.post(
        served.base + "/score",
        content=large,
        headers={"content-type": "application/json", "x-request-id": "large"},
        timeout=60,
    )
    assert r.status_code == 200
    lines = {line["correlationid"]: line for line in served.lines("request")}
    assert lines["text"]["data"] == "plain words"
    assert lines["text"]["datacontenttype"] == "text/plain"
    for rid, body, ctype in (("bin", binary, "image/png"), ("large", large, "application/json")):
        line = lines[rid]
        assert line["datainblob"] == "true"
        assert line["datacontenttype"] == ctype
        assert line["contentrange"] == f"bytes 0-{len(body) - 1}/{len(body)}"
        blob = Path(line["data"])
        assert blob.name == line["id"]  # named by the record id, beside the lines
        assert blob.read_bytes() == body
        assert blob.parent == next(store_root(served.workspace).rglob("*.jsonl")).parent
