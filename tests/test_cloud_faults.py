"""Faults against a real Azure Blob emulator (R5.2, R4.6, R11): Azurite stopped for 20 s
in the middle of a load, and several replica processes writing one container."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

import modeltap
from modeltap.config import load_workspace
from modeltap.storage import open_datastore
from tests.emulators import Azurite, unique_name

pytestmark = pytest.mark.slow

CONN_ENV = "MODELTAP_TEST_AZURE_CONNECTION"
ROOT = Path(__file__).resolve().parents[1]
LAKE = "azureml://datastores/lake/paths/collected"


def azure_workspace(tmp_path: Path, azurite: Azurite) -> Path:
    container = azurite.create_container(unique_name())
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "workspace.yml").write_text(
        "datastores:\n"
        "  lake:\n"
        "    type: azure_blob\n"
        f"    container: {container}\n"
        f"    connection_string_env: {CONN_ENV}\n"
        "    max_retries: 1\n"
        "    retry_timeout: 2\n"
    )
    return ws


def landed_ids(ws: Path) -> Counter[str]:
    store = open_datastore("lake", load_workspace(ws).datastores["lake"], ws)
    found: Counter[str] = Counter()
    for info in store.list("collected"):
        for line in store.get(info.path).splitlines():
            for row in json.loads(line)["data"]:
                found[row["id"]] += 1
    store.close()
    return found


@pytest.mark.parametrize("durability", ["memory", "spool"])
def test_azurite_down_20_s_mid_load_loses_nothing(
    azurite, tmp_path, monkeypatch, durability, caplog
):
    monkeypatch.setenv(CONN_ENV, azurite.connection_string)
    ws = azure_workspace(tmp_path, azurite)
    modeltap.configure(
        workspace=ws,
        endpoint="ep",
        deployment="blue",
        collections={"model_inputs": {"enabled": True, "data": {"path": LAKE}}},
        flush_interval=0.5,
        durability=durability,
    )
    inputs = modeltap.Collector(name="model_inputs")
    sent: list[str] = []
    stop = threading.Event()

    def load() -> None:  # ~100 records/s, bounded
        i = 0
        while not stop.is_set() and i < 6000:
            rid = f"r{i}"
            inputs.collect(pd.DataFrame({"id": [rid], "x": [i]}))
            sent.append(rid)
            i += 1
            time.sleep(0.01)

    loader = threading.Thread(target=load)
    loader.start()
    try:
        time.sleep(2)
        azurite.stop()
        time.sleep(20)
        during = modeltap.stats()
        azurite.start()
        time.sleep(3)
    finally:
        stop.set()
        loader.join(30)
        if not azurite.running:
            azurite.start()
    assert modeltap.flush(60)
    stats = modeltap.stats()
    modeltap.shutdown()

    assert during["storage_errors"] > 0  # the outage was real
    if durability == "memory":
        assert during["spooled"] > 0  # failed commits waited on disk, not in memory
    else:
        assert stats["spooled"] == stats["accepted"]  # every record went through the disk
    assert stats["dropped"] == 0
    found = landed_ids(ws)
    assert len(sent) > 1500
    assert set(found) == set(sent)
    assert max(found.values()) == 1


def test_shutdown_while_azurite_hangs_spools_what_the_writer_held(
    azurite, tmp_path, monkeypatch, caplog
):
    """Memory durability: a storage that takes connections and never answers held the
    writer in a put past shutdown; its records were neither written, spooled nor counted
    (while the log said they waited in the spool). Now shutdown spools them, within its
    time, and the next process uploads them, each once."""
    monkeypatch.setenv(CONN_ENV, azurite.connection_string)
    ws = azure_workspace(tmp_path, azurite)
    settings = {
        "workspace": ws,
        "endpoint": "ep",
        "deployment": "blue",
        "collections": {"model_inputs": {"enabled": True, "data": {"path": LAKE}}},
        "flush_interval": 0.3,
    }
    modeltap.configure(**settings)
    inputs = modeltap.Collector(name="model_inputs")
    for i in range(20):
        inputs.collect(pd.DataFrame({"id": [f"r{i}"], "x": [i]}))
    assert modeltap.flush(20)
    azurite.pause()
    try:
        for i in range(20, 120):
            inputs.collect(pd.DataFrame({"id": [f"r{i}"], "x": [i]}))
            if i == 60:
                time.sleep(1)  # a commit starts and hangs; the rest wait behind it
        started = time.monotonic()
        assert modeltap.shutdown(timeout=3) is False
        took = time.monotonic() - started
        stats = modeltap.stats()
    finally:
        azurite.pause(False)
    assert took < 4.5
    assert stats["dropped"] == 0 and stats["written"] == 20
    assert stats["spooled"] == 100  # all that was not written went to the spool
    assert "100 records were not written before shutdown" in caplog.text
    modeltap.configure(**settings)  # the next process: adopts the spool and uploads it
    deadline = time.monotonic() + 30
    while len(landed_ids(ws)) < 120 and time.monotonic() < deadline:
        time.sleep(0.3)
    modeltap.shutdown(30)
    found = landed_ids(ws)
    assert set(found) == {f"r{i}" for i in range(120)}
    assert max(found.values()) == 1


REPLICA = """
import sys
import pandas as pd
import modeltap

replica, n, ws = sys.argv[1], int(sys.argv[2]), sys.argv[3]
LAKE = "azureml://datastores/lake/paths/collected"
modeltap.configure(
    workspace=ws, endpoint="ep", deployment="blue",
    collections={"model_inputs": {"enabled": True, "data": {"path": LAKE}}},
    flush_interval=0.2,
)
inputs = modeltap.Collector(name="model_inputs")
for i in range(n):
    inputs.collect(pd.DataFrame({"id": [f"{replica}-{i}"], "x": [i]}))
assert modeltap.shutdown(60)
print(modeltap.stats()["written"])
"""


def test_three_replica_processes_write_one_container(azurite, tmp_path, monkeypatch):
    monkeypatch.setenv(CONN_ENV, azurite.connection_string)
    ws = azure_workspace(tmp_path, azurite)
    script = tmp_path / "replica.py"
    script.write_text(textwrap.dedent(REPLICA))
    env = {**os.environ, CONN_ENV: azurite.connection_string, "PYTHONPATH": str(ROOT)}
    n = 400
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), f"replica{k}", str(n), str(ws)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(3)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        assert out.strip() == str(n)
    found = landed_ids(ws)
    assert sum(found.values()) == 3 * n
    assert set(found) == {f"replica{k}-{i}" for k in range(3) for i in range(n)}
