"""Pipeline counters published into the workspace by running servers (modeltap.status)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest

import modeltap
from modeltap import BasicCorrelationContext, Collector, runtime, status
from tests.helpers import flush, setup
from tests.serving.server import Served
from tests.serving.test_serve_cli import make_deployment


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch):
    """A publisher of its own for the test, ticking by hand."""
    monkeypatch.setattr(status, "_publisher", None)
    yield
    if status._publisher is not None:
        status._publisher.close()


def wait_for(check, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_a_published_runtime_writes_its_counters_and_removes_them_at_shutdown(workspace, fast):
    rt = setup(workspace)
    status.publish(rt)
    [published] = status.read(workspace)
    assert (published.endpoint, published.deployment, published.pid) == ("ep", "blue", os.getpid())
    assert published.counters["accepted"] == 0
    assert published.collections == ("model_inputs", "model_outputs", "request")
    assert published.path.parent == workspace / "status" / "ep" / "blue"

    inputs = Collector(name="model_inputs")
    for k in range(3):
        inputs.collect(pd.DataFrame({"x": [k]}), BasicCorrelationContext(id=f"r{k}"))
    flush()
    assert status._publisher is not None
    status._publisher.tick()
    [published] = status.read(workspace)
    assert published.counters["accepted"] == published.counters["written"] == 3
    assert published.counters["dropped"] == 0 and "spool_bytes" in published.counters

    modeltap.shutdown()  # removes the file at once (a worker process may end right after)
    assert status.read(workspace) == [] and not published.path.exists()


def test_files_of_killed_processes_of_this_host_are_removed(workspace, fast):
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    rt = setup(workspace)
    status.publish(rt)
    [mine] = status.read(workspace)
    dead = mine.path.with_name(f"{mine.host}-{gone.stdout.strip()}.json")
    alive = mine.path.with_name(f"{mine.host}-{os.getppid()}.json")
    elsewhere = mine.path.with_name(f"other-host-{gone.stdout.strip()}.json")
    for file in (dead, alive, elsewhere):
        file.write_bytes(mine.path.read_bytes())
    status.publish(rt)
    assert not dead.exists() and alive.exists() and elsewhere.exists()


def test_read_leaves_out_stale_and_broken_files_and_totals_add_up(workspace, fast):
    folder = workspace / "status" / "ep" / "blue"
    folder.mkdir(parents=True)
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)

    def write(name: str, updated: datetime, dropped: int) -> None:
        body = {
            "endpoint": "ep",
            "deployment": "blue",
            "host": "h",
            "pid": int(name),
            "updated": updated.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "interval": 5.0,
            "counters": {"dropped": dropped, "spooled": 1},
        }
        (folder / f"h-{name}.json").write_text(json.dumps(body))

    write("1", now - timedelta(seconds=4), 2)
    write("2", now - timedelta(seconds=14), 3)
    write("3", now - timedelta(seconds=16), 100)  # past 3 intervals: gone
    (folder / "h-4.json").write_text("{not json")
    (folder / "h-5.json").write_text(json.dumps({"endpoint": "ep"}))
    found = status.read(workspace, now=now)
    assert [s.pid for s in found] == [1, 2]
    assert status.totals(found) == {"dropped": 5, "spooled": 2}


def test_only_runtimes_configured_for_a_server_are_published(workspace, fast, monkeypatch):
    setup(workspace)
    assert status.read(workspace) == []  # a script's configure() publishes nothing
    file = workspace / "deployment.yml"
    file.write_text(
        "name: blue\nendpoint_name: ep\ndata_collector:\n  collections:\n"
        "    model_inputs:\n      enabled: 'True'\n"
    )
    monkeypatch.setenv(runtime.ENV_DEPLOYMENT, str(file))
    monkeypatch.setenv(runtime.ENV_WORKSPACE, str(workspace))
    modeltap.shutdown()
    runtime.current()  # configured from the environment, as a server's worker is
    assert [s.collections for s in status.read(workspace)] == [("model_inputs",)]


@pytest.mark.slow
def test_serve_workers_and_sidecar_publish_while_running(tmp_path, monkeypatch, fast):
    monkeypatch.setenv(status.ENV_INTERVAL, "0.2")
    deployment = make_deployment(tmp_path)
    workspace = tmp_path / "ws"
    server = Served(deployment, workspace, tmp_path, ("--workers", "2"))
    try:
        with httpx.Client(base_url=server.base, timeout=10) as client:
            for k in range(6):
                body = {"data": {"a": [k], "b": [1]}}
                response = client.post("/score", json=body, headers={"x-request-id": f"q{k}"})
                assert response.status_code == 200

        def published() -> list[status.ProcessStatus]:
            found = status.read(workspace)
            written = status.totals(found).get("written", 0)
            return found if len(found) == 3 and written == 12 else []

        found = wait_for(published)
        assert found, [s.counters for s in status.read(workspace)]
        pids = {s.pid for s in found}
        assert len(pids) == 3 and server.proc.pid not in pids  # two workers and the sidecar
        assert {s.endpoint for s in found} == {"my_endpoint"}
    finally:
        code, _ = server.stop(signal.SIGTERM)
    assert code == 0
    assert list(Path(workspace, "status").rglob("*.json")) == []
