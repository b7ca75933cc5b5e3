"""Shutdown of a scoring worker: the source platform's SDK is drained within a bound, and
what it could not deliver is counted and reported (issue 16, item 0)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from modeltap.serving.shutdown import Budget, drain_seconds

SCRIPT = """
import json, sys, time
import pandas as pd
import modeltap
from azureml.ai.monitoring import Collector
from modeltap.serving.shutdown import drain_platform_sdk, watch_platform_sdk

modeltap.configure(workspace=sys.argv[3], endpoint="ep", deployment="d", collections=[])
inputs = Collector(name="model_inputs")
watch_platform_sdk()  # as serve does after init()
for i in range(int(sys.argv[1])):
    inputs.collect(pd.DataFrame({"a": [i]}))
started = time.monotonic()
lost = drain_platform_sdk(float(sys.argv[2]))
took = time.monotonic() - started
print(json.dumps({"lost": lost, "took": took, "dropped": modeltap.stats()["dropped"]}))
"""


def run_sdk(tmp_path: Path, port: int, records: int, timeout: float) -> tuple[dict, str]:
    config = tmp_path / "mdc.json"
    config.write_text(json.dumps({"collections": {"model_inputs": {"enabled": True}}}))
    (tmp_path / "sdk.py").write_text(textwrap.dedent(SCRIPT))
    env = {
        **os.environ,
        "AZUREML_MDC_CONFIG_PATH": str(config),
        "AZUREML_MDC_HOST": "127.0.0.1",
        "AZUREML_MDC_PORT": str(port),
    }
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "sdk.py"), str(records), str(timeout), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def test_posts_that_fail_are_counted_and_reported(tmp_path):
    with socket.socket() as s:  # a port nothing listens on: every post is refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result, log = run_sdk(tmp_path, port, 20, 10)
    assert result["dropped"] == 20  # every failed post, before and during the drain
    assert log.count("records of the azureml.ai.monitoring SDK not delivered: a post") == 20


def test_an_agent_that_never_answers_costs_only_the_timeout(tmp_path):
    with socket.socket() as listener:  # takes connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        started = time.monotonic()
        result, log = run_sdk(tmp_path, listener.getsockname()[1], 20, 1.5)
        assert time.monotonic() - started < 15
    assert 1.4 < result["took"] < 3
    assert result["lost"] == result["dropped"] == 20  # 19 queued, one in flight
    assert "20 records of the azureml.ai.monitoring SDK were not delivered" in log


def test_without_the_sdk_there_is_nothing_to_drain():
    from modeltap.serving.shutdown import drain_platform_sdk

    assert drain_platform_sdk(1) == 0


@pytest.mark.parametrize("total", [3, 9, 30, 600])
def test_the_budget_adds_up(total):
    b = Budget.of(total)
    assert b.graceful <= 10 and b.graceful + b.drain + b.sidecar == pytest.approx(total)
    assert min(b.graceful, b.drain, b.sidecar) > 0
    alone = Budget.of(total, sidecar=False)
    assert alone.sidecar == 0 and alone.graceful + alone.drain == pytest.approx(total)


def test_drain_seconds_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("MODELTAP_DRAIN_SECONDS", "4.5")
    assert drain_seconds() == 4.5
    for bad in ("", "x", "-1", "1e300"):
        monkeypatch.setenv("MODELTAP_DRAIN_SECONDS", bad)
        assert drain_seconds() == 20  # the default: 30 s, 10 of them for requests in flight
