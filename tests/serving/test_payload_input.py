"""Odd and hostile requests to `modeltap serve` (real sockets): non-ASCII request ids, deep
JSON, text ranges, bodies over the limit, clients that leave mid-body. Nothing accepted is
lost, every id joins, and the log gets one line, not a traceback."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import store_root
from tests.serving.server import Served

pytestmark = pytest.mark.slow

SCORE = """
import json
from modeltap import Collector
import pandas as pd

def init():
    global inputs
    inputs = Collector(name="model_inputs")

def run(data):
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):  # text, or deeper than Python's json goes
        return {"text": len(data)}
    if isinstance(body, dict) and "a" in body:
        inputs.collect(pd.DataFrame({"a": [body["a"]]}))
    return {"ok": True}
"""


def deployment(tmp_path: Path, payload: bool = True) -> Path:
    (tmp_path / "scripts").mkdir(exist_ok=True)
    (tmp_path / "scripts" / "score.py").write_text(SCORE)
    collections = "    model_inputs: {enabled: 'True'}\n"
    if payload:
        collections += "    request: {enabled: 'True'}\n    response: {enabled: 'True'}\n"
    file = tmp_path / "deployment.yml"
    file.write_text(
        "name: blue\nendpoint_name: ep\n"
        "code_configuration: {code: scripts, scoring_script: score.py}\n"
        f"data_collector:\n  collections:\n{collections}"
    )
    return file


def lines(workspace: Path, collection: str) -> list[dict[str, Any]]:
    folder = store_root(workspace) / "modelDataCollector" / "ep" / "blue" / collection
    return [
        orjson.loads(raw)  # modeltap's readers use orjson (1024 levels)
        for file in sorted(folder.rglob("*.jsonl"))
        for raw in file.read_bytes().splitlines()
    ]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    servers: list[Served] = []

    def start(*extra: str, payload: bool = True) -> Served:
        server = Served(deployment(tmp_path, payload), tmp_path / "ws", tmp_path, extra)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill()


IDS = ["ascii-1", "café", "日本語-42", "مرحبا", "Ελληνικά", "🙂 ok", "naïve façade"]


@pytest.mark.parametrize("payload", [True, False], ids=["payload-logging", "collect-only"])
def test_non_ascii_request_ids_are_echoed_and_stored_as_sent(serve, tmp_path, payload):
    """`café` was stored as `cafÃ©` and CJK ids replaced by a UUID: joins on the caller's
    id missed. Each id is echoed with the caller's bytes and stored as the same text."""
    server = serve(payload=payload)
    with httpx.Client(base_url=server.base, timeout=10) as client:
        for i, rid in enumerate(IDS):
            r = client.post("/score", json={"a": i}, headers={"x-request-id": rid.encode()})
            assert r.status_code == 200, r.text
            assert dict(r.headers.raw)[b"x-request-id"] == rid.encode()  # the bytes sent
        # An ISO-8859-1 id (not UTF-8) is read as such and echoed as UTF-8.
        r = client.post("/score", json={"a": 99}, headers={"x-request-id": b"caf\xe9-latin"})
        assert dict(r.headers.raw)[b"x-request-id"] == "café-latin".encode()
    assert server.stop()[0] == 0
    wanted = [*IDS, "café-latin"]
    assert [line["correlationid"] for line in lines(server.workspace, "model_inputs")] == wanted
    if payload:
        for collection in ("request", "response"):
            found = [line["correlationid"] for line in lines(server.workspace, collection)]
            assert found == wanted
            assert all(
                line["xrequestid"] == line["correlationid"]
                for line in lines(server.workspace, collection)
            )


def test_deep_json_with_a_line_break_is_recorded_and_counted(serve):
    """Re-encoding such a body used to fail: the call's records were lost and not counted."""
    server = serve()
    bodies = {
        "deep-300": b"[" * 300 + b"\n1" + b"]" * 300,
        "deep-1024": b"[" * 1024 + b"\n1" + b"]" * 1024,  # a line cannot hold it: as text
        "pretty": b'{\n  "a": 1,\r\n  "b": "two"\n}',
    }
    with httpx.Client(base_url=server.base, timeout=10) as client:
        for rid, body in bodies.items():
            r = client.post(
                "/score",
                content=body,
                headers={"x-request-id": rid, "content-type": "application/json"},
            )
            assert r.status_code == 200
    assert server.stop()[0] == 0
    assert "payload logging failed" not in server.stderr()
    requests = {line["correlationid"]: line for line in lines(server.workspace, "request")}
    assert set(requests) == set(bodies)
    assert {line["correlationid"] for line in lines(server.workspace, "response")} == set(bodies)
    assert requests["pretty"]["data"] == {"a": 1, "b": "two"}
    assert requests["deep-1024"]["data"] == bodies["deep-1024"].decode()
    for rid, body in bodies.items():
        assert requests[rid]["contentrange"] == f"bytes 0-{len(body) - 1}/{len(body)}"


def test_text_body_range_is_its_bytes_not_its_escaped_length(serve):
    server = serve()
    text = 'say "hi"\\ to \u00e9l\u00e8ve\n\ttab'.encode()
    r = httpx.post(
        server.base + "/score",
        content=text,
        headers={"content-type": "text/plain; charset=utf-8", "x-request-id": "t"},
    )
    assert r.status_code == 200
    assert server.stop()[0] == 0
    [line] = lines(server.workspace, "request")
    assert line["data"] == text.decode()
    assert line["contentrange"] == f"bytes 0-{len(text) - 1}/{len(text)}"


def raw_request(port: int, head: bytes, chunks: list[bytes], close: bool = False) -> bytes:
    """Send a request by hand; the answer (b"" when the server sent none)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            s.sendall(head)
            for chunk in chunks:
                s.sendall(chunk)
                time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the whole body: read the answer
        if close:
            return b""
        answer = b""
        try:
            while data := s.recv(65536):
                answer += data
                if b"\r\n\r\n" in answer and answer.endswith(b"}"):
                    break
        except (ConnectionResetError, TimeoutError):
            pass
        return answer


def test_bodies_over_max_body_get_413_and_the_attempt_is_logged(serve):
    server = serve("--max-body", "1000")
    with httpx.Client(base_url=server.base, timeout=10) as client:
        r = client.post("/score", content=b"x" * 2000, headers={"x-request-id": "declared"})
        assert r.status_code == 413
        assert "over the limit of 1000 bytes" in r.json()["error"]
        assert client.post("/score", json={"a": 1}, headers={"x-request-id": "ok"}).is_success
    # chunked: no content-length, the limit applies as the body streams in
    head = (
        b"POST /score HTTP/1.1\r\nhost: x\r\nx-request-id: streamed\r\n"
        b"content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    chunks = [b"190\r\n" + b"y" * 400 + b"\r\n"] * 4 + [b"0\r\n\r\n"]
    answer = raw_request(server.port, head, chunks)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert server.stop()[0] == 0
    requests = {line["correlationid"]: line for line in lines(server.workspace, "request")}
    responses = {line["correlationid"]: line for line in lines(server.workspace, "response")}
    assert set(requests) == set(responses) == {"declared", "ok", "streamed"}
    for rid in ("declared", "streamed"):
        assert requests[rid]["data"] is None  # the body is not stored, the attempt is
        assert "over the limit of 1000 bytes" in requests[rid]["error"]
        assert responses[rid]["statuscode"] == 413
    assert "Traceback" not in server.stderr()


def test_a_client_leaving_mid_body_is_one_log_line_and_an_honest_record(serve):
    server = serve("--log-level", "info")
    head = (
        b"POST /score HTTP/1.1\r\nhost: x\r\nx-request-id: left\r\n"
        b"content-type: application/json\r\ncontent-length: 1000\r\n\r\n"
    )
    raw_request(server.port, head, [b'{"a": ' + b" " * 50], close=True)
    time.sleep(0.5)
    assert httpx.post(server.base + "/score", json={"a": 2}, timeout=10).is_success
    assert server.stop()[0] == 0
    log = server.stderr()
    assert "Traceback" not in log and "Exception in ASGI application" not in log
    assert log.count("the client disconnected before its body was complete") == 1
    [response] = [r for r in lines(server.workspace, "response") if r["correlationid"] == "left"]
    assert response["statuscode"] is None  # no answer was sent: not a 500
    assert response["error"] == "client disconnected before the request body was complete"
