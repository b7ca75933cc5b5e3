"""`modeltap proxy` in front of a real second server process (R3.3)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from modeltap.serving.proxy import HEALTH_PATH, ProxyApp
from tests.conftest import read_lines, store_root
from tests.servers import Process, free_port, start_cli
from tests.serving import upstream_app

DEPLOYMENT = """
name: blue
endpoint_name: px
data_collector:
  collections:
    request: {enabled: true}
    response: {enabled: true}
"""


@pytest.fixture
def upstream(tmp_path) -> Iterator[str]:
    port = free_port()
    server = Process(
        [
            "-m",
            "uvicorn",
            "tests.serving.upstream_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        tmp_path / "up.log",
        f"http://127.0.0.1:{port}/",
    )
    yield f"http://127.0.0.1:{port}"
    server.stop()


def start_proxy(tmp_path, upstream: str, *extra: str) -> tuple[Process, str]:
    (tmp_path / "deployment.yml").write_text(DEPLOYMENT)
    return start_cli(
        "proxy",
        tmp_path / "deployment.yml",
        tmp_path / "ws",
        tmp_path / "proxy.log",
        "--upstream",
        upstream,
        *extra,
        health="/-/modeltap/health",
    )


@pytest.mark.slow
def test_proxy_logs_only_scoring_calls_by_default(tmp_path, upstream):
    """In front of the platform's own server a `GET /swagger.json` landed in the request
    and response collections beside the scoring calls."""
    proxy, base = start_proxy(tmp_path, upstream)
    for path in ("/score", "/v2/models/iris/infer", "/v1/models/iris:predict", "/invocations"):
        assert httpx.post(base + path, json={"a": 1}, headers={"x-request-id": path}).is_success
    for path in ("/swagger.json", "/", "/v2/models/iris", "/metrics"):
        assert httpx.get(base + path, headers={"x-request-id": path}).is_success
    assert proxy.stop() == 0
    logged = {line["path"] for line in read_lines(store_root(tmp_path / "ws"), "request")}
    assert logged == {"/score", "/v2/models/iris/infer", "/v1/models/iris:predict", "/invocations"}


@pytest.mark.slow
def test_proxy_forwards_and_logs(tmp_path, upstream):
    paths = ("/v2/models/*/infer", "/teapot", "/big")
    proxy, base = start_proxy(tmp_path, upstream, *(f"--log-path={p}" for p in paths))
    r = httpx.post(
        base + "/v2/models/iris/infer?x=1", json={"inputs": [1, 2]}, headers={"x-request-id": "p1"}
    )
    assert r.status_code == 200
    assert r.json() == {"got": len(r.request.content), "path": "/v2/models/iris/infer"}
    assert r.headers["x-model"] == "m1" and r.headers["x-request-id"] == "p1"
    assert httpx.get(base + "/teapot").status_code == 418  # status codes pass through
    big = b"z" * (3 * 1024 * 1024)
    r = httpx.post(base + "/big", content=big, headers={"content-type": "text/plain"}, timeout=60)
    assert r.json()["got"] == len(big)  # bodies stream through whole
    assert proxy.stop() == 0
    root = store_root(tmp_path / "ws")
    requests = {line["correlationid"]: line for line in read_lines(root, "request")}
    responses = {line["correlationid"]: line for line in read_lines(root, "response")}
    assert requests["p1"]["data"] == {"inputs": [1, 2]}
    assert requests["p1"]["path"] == "/v2/models/iris/infer?x=1"
    assert responses["p1"]["statuscode"] == 200
    assert sorted(line["statuscode"] for line in responses.values()) == [200, 200, 418]
    assert len(requests) == 3


def test_the_upstream_answer_passes_back_as_it_came_and_health_stays_here():
    """In process: the proxy's client reaches the stand-in upstream app directly."""
    proxy = ProxyApp("http://upstream")
    proxy.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=upstream_app.app))

    async def drive() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=proxy)
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
            cookies = await client.post("/cookies?x=1", content=b"abc")
            health = await client.get(HEALTH_PATH)
        assert proxy.client is not None
        await proxy.client.aclose()
        return cookies, health

    cookies, health = asyncio.run(drive())
    assert cookies.status_code == 200
    assert cookies.json() == {"got": 3, "path": "/cookies"}
    assert cookies.headers.get_list("set-cookie") == ["a=1", "b=2"]  # both, in order
    assert cookies.headers["x-model"] == "m1"
    assert (health.status_code, health.text) == (200, "Healthy")


@pytest.mark.slow
def test_upstream_down_is_a_clear_502(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    proxy, base = start_proxy(tmp_path, dead)
    r = httpx.post(base + "/score", json={"a": 1}, headers={"x-request-id": "down"})
    assert r.status_code == 502
    assert dead in r.json()["error"]
    assert proxy.stop() == 0
    [line] = read_lines(store_root(tmp_path / "ws"), "response")
    assert line["statuscode"] == 502


def test_proxy_refuses_a_deployment_without_payload_collections(tmp_path):
    import subprocess
    import sys

    (tmp_path / "d.yml").write_text("name: b\nendpoint_name: e\n")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "modeltap.cli",
            "proxy",
            "--upstream",
            "http://127.0.0.1:9",
            "-f",
            str(tmp_path / "d.yml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "enable the request and/or response collections" in out.stderr
    assert "Traceback" not in out.stderr
