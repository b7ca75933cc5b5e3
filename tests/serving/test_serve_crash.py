"""`kill -9` of `modeltap serve` under load, then a restart: with durability "spool", every
record of an acknowledged request lands, once (R5.2)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import read_lines
from tests.serving.server import Served
from tests.serving.test_serve_cli import collection_dir, make_deployment

pytestmark = pytest.mark.slow

# Segments seal every second: at the kill some have landed and the newest second of
# acknowledged requests is still in the spool only, even on a busy machine.
SPOOL = "  modeltap:\n    durability: spool\n    flush_interval: 1.0\n"


def landed(workspace: Path) -> Counter[str]:
    lines = read_lines(collection_dir(workspace, "model_inputs"))
    return Counter(line["correlationid"] for line in lines)


@pytest.mark.parametrize("workers", [1, 2])
def test_kill_9_mid_load_restart_lands_every_acknowledged_record_once(tmp_path, workers):
    deployment = make_deployment(tmp_path)
    text = deployment.read_text().replace("  collections:", SPOOL + "  collections:")
    deployment.write_text(text)
    workspace = tmp_path / "ws"
    server = Served(deployment, workspace, tmp_path, ("--workers", str(workers)))
    acknowledged: list[str] = []
    stop = threading.Event()

    def load(n: int) -> None:
        with httpx.Client(base_url=server.base, timeout=5) as client:
            i = 0
            while not stop.is_set() and i < 5000:
                rid = f"req-{n}-{i}"
                try:
                    response = client.post(
                        "/score", json={"data": {"a": [i], "b": [n]}}, headers={"x-request-id": rid}
                    )
                except httpx.TransportError:
                    return  # the server is gone
                if response.status_code == 200:
                    acknowledged.append(rid)
                i += 1

    clients = [threading.Thread(target=load, args=(n,)) for n in range(4)]
    for c in clients:
        c.start()
    # kill once enough traffic is acknowledged (a busy machine answers fewer per second)
    started = time.monotonic()
    while (len(acknowledged) < 150 or time.monotonic() - started < 2.5) and (
        time.monotonic() - started < 30
    ):
        time.sleep(0.1)
    os.killpg(server.proc.pid, signal.SIGKILL)  # serve, its workers and sidecar, at once
    server.proc.wait(10)
    stop.set()
    for c in clients:
        c.join(10)
    server.kill()
    assert len(acknowledged) > 100
    assert sum(landed(workspace).values()) < len(acknowledged)  # some were only in the spool

    restarted = Served(deployment, workspace, tmp_path, ("--workers", str(workers)))
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            counts = landed(workspace)
            if set(acknowledged) <= set(counts):
                break
            time.sleep(0.2)
        missing = set(acknowledged) - set(counts)
        assert not missing, f"{len(missing)} acknowledged missing, e.g. {sorted(missing)[:3]}"
        assert max(counts.values()) == 1  # none twice
    finally:
        restarted.kill()


TRIVIAL = """
def init():
    pass

def run(data):
    return {"got": len(data)}
"""

PAYLOAD_SPOOL = """\
name: blue
endpoint_name: my_endpoint
code_configuration: {code: scripts, scoring_script: score.py}
data_collector:
  collections:
    request: {enabled: 'True'}
    response: {enabled: 'True'}
  modeltap: {durability: spool, flush_interval: 0.5}
"""


def payload_ids(workspace: Path, collection: str) -> Counter[str]:
    folder = collection_dir(workspace, collection)
    counts: Counter[str] = Counter()
    for file in sorted(folder.rglob("*.jsonl")) if folder.exists() else ():
        for raw in file.read_bytes().splitlines():
            counts[orjson.loads(raw)["correlationid"]] += 1
    return counts


@pytest.mark.parametrize("workers", [1, 2])
def test_kill_9_after_a_200_keeps_its_request_and_response_records(tmp_path, workers):
    """durability spool with payload logging: a 200 means both records are on the spool
    (the response's before its last chunk is released). Large (2 MB) and small bodies."""
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "score.py").write_text(TRIVIAL)
    deployment = tmp_path / "deployment.yml"
    deployment.write_text(PAYLOAD_SPOOL)
    workspace = tmp_path / "ws"
    server = Served(deployment, workspace, tmp_path, ("--workers", str(workers)))
    acknowledged: list[str] = []
    stop = threading.Event()
    large = orjson.dumps({"data": "x" * (2 * 1024 * 1024)})

    def load(n: int) -> None:
        body = large if n < 2 else orjson.dumps({"data": [n]})
        with httpx.Client(base_url=server.base, timeout=10) as client:
            i = 0
            while not stop.is_set() and i < 5000:
                rid = f"req-{n}-{i}"
                try:
                    response = client.post(
                        "/score",
                        content=body,
                        headers={"x-request-id": rid, "content-type": "application/json"},
                    )
                except httpx.TransportError:
                    return  # the server is gone
                if response.status_code == 200:
                    acknowledged.append(rid)
                i += 1

    clients = [threading.Thread(target=load, args=(n,)) for n in range(4)]
    for c in clients:
        c.start()
    time.sleep(3)
    os.killpg(server.proc.pid, signal.SIGKILL)  # the whole process tree at once
    server.proc.wait(10)
    stop.set()
    for c in clients:
        c.join(10)
    server.kill()
    large_ones = [rid for rid in acknowledged if rid.startswith(("req-0-", "req-1-"))]
    assert len(large_ones) > 5 and len(acknowledged) - len(large_ones) > 50

    restarted = Served(deployment, workspace, tmp_path, ("--workers", str(workers)))
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            requests, responses = (payload_ids(workspace, c) for c in ("request", "response"))
            if set(acknowledged) <= set(requests) & set(responses):
                break
            time.sleep(0.3)
    finally:
        restarted.kill()
    for collection, counts in (("request", requests), ("response", responses)):
        missing = set(acknowledged) - set(counts)
        assert not missing, (
            f"{collection}: {len(missing)} acknowledged missing: {sorted(missing)[:3]}"
        )
        assert max(counts.values()) == 1  # none twice


def test_a_killed_serve_leaves_no_sidecar_folder_behind_for_long(tmp_path, monkeypatch):
    """kill -9 leaves serve's folder in the temporary directory (relay socket, SDK config);
    the next serve removes it, and never the folder of a serve that still runs."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    deployment = make_deployment(tmp_path)
    first = Served(deployment, tmp_path / "ws", tmp_path)
    (folder,) = tmp.glob("modeltap-agent-*")
    os.killpg(first.proc.pid, signal.SIGKILL)
    first.proc.wait(10)
    first.kill()
    assert folder.is_dir()
    old = time.time() - 60
    os.utime(folder, (old, old))
    second = Served(deployment, tmp_path / "ws2", tmp_path)
    try:
        (live,) = tmp.glob("modeltap-agent-*")
        assert live != folder and not folder.exists()
        os.utime(live, (old, old))  # old, but its serve holds the lock
        third = Served(deployment, tmp_path / "ws3", tmp_path)
        assert live.is_dir() and len(list(tmp.glob("modeltap-agent-*"))) == 2
        third.stop()
    finally:
        second.kill()
    assert not live.exists()  # removed by its serve at exit
