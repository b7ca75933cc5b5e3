"""`modeltap serve` while collection cannot keep up: storage down and the spool full, with
`overflow: block` (R5.2). The server keeps answering its health and metrics, and SIGTERM
honours the shutdown bound (issue 16, item 5)."""

from __future__ import annotations

import re
import statistics
import threading
import time

import httpx
import pytest

from tests.serving.server import Served
from tests.serving.test_serve_cli import SCORE

pytestmark = pytest.mark.slow

BLOCKED = """\
name: blue
endpoint_name: my_endpoint
code_configuration: {code: scripts, scoring_script: score.py}
data_collector:
  collections:
    model_inputs: {enabled: 'True'}
    model_outputs: {enabled: 'True'}
    request: {enabled: 'True'}
    response: {enabled: 'True'}
  modeltap:
    overflow: block
    block_timeout: 2
    buffer_records: 20
    spool_bytes: 2000
    flush_interval: 0.2
"""


def probe(url: str) -> float:
    """Seconds GET url took to answer 200 (a long time when it did not)."""
    started = time.monotonic()
    try:
        ok = httpx.get(url, timeout=15).status_code == 200
    except httpx.TransportError:
        ok = False
    return time.monotonic() - started if ok else 99.0


def dropped(metrics: str) -> float:
    found = re.search(r"^modeltap_records_dropped_total\{[^}]*\} (\S+)$", metrics, re.M)
    return float(found[1]) if found else 0.0


@pytest.mark.parametrize("workers", [1, 2])
def test_blocked_collection_keeps_health_answering_and_shutdown_bounded(tmp_path, workers):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "score.py").write_text(SCORE)
    (tmp_path / "deployment.yml").write_text(BLOCKED)
    ws = tmp_path / "ws"
    ws.mkdir()
    # The datastore cannot be written (a folder under a file): every commit fails.
    (ws / "workspace.yml").write_text(
        "datastores:\n  workspaceblobstore: {type: local, path: /dev/null/modeltap}\n"
    )
    shutdown_timeout = 12
    server = Served(
        tmp_path / "deployment.yml",
        ws,
        tmp_path,
        ("--workers", str(workers), "--shutdown-timeout", str(shutdown_timeout)),
    )
    stop = threading.Event()
    answered: list[int] = []

    def load(n: int) -> None:
        with httpx.Client(base_url=server.base, timeout=30) as client:
            for i in range(2000):
                if stop.is_set():
                    return
                body = {"data": {"a": [i], "b": [n]}}
                try:
                    answered.append(client.post("/score", json=body).status_code)
                except httpx.TransportError:
                    return

    loaders = [threading.Thread(target=load, args=(n,)) for n in range(2)]
    try:
        for t in loaders:
            t.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until collection is blocked and dropping
            if dropped(httpx.get(server.base + "/metrics", timeout=15).text) > 0:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("collection never filled up:\n" + server.stderr())
        health = [probe(server.base + "/") for _ in range(10)]
        metrics = [probe(server.base + "/metrics") for _ in range(5)]
        started = time.monotonic()
        code, took = server.stop(timeout=60)
        stop.set()
    finally:
        stop.set()
        server.kill()
        for t in loaders:
            t.join(30)
    # One stall of block_timeout (2 s) is allowed per stall, never one per record.
    print(f"\nworkers={workers} health={sorted(health)} metrics={sorted(metrics)} took={took:.1f}")
    assert max(health + metrics) < 2 + 1.5, (health, metrics)
    assert statistics.median(health) < 0.5, health
    assert len(answered) > 20 and set(answered) == {200}  # requests kept being served
    # SIGTERM: within --shutdown-timeout (it took 71 s with the defaults before).
    assert code == 0, server.stderr()
    assert took < shutdown_timeout + 1.5, (took, server.stderr()[-3000:])
    assert time.monotonic() - started < shutdown_timeout + 2
    log = server.stderr()
    assert "dropped" in log  # the drops were reported, not silent
