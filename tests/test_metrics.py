"""Prometheus metrics: `/metrics` on serve and the agent, `/-/modeltap/metrics` on the proxy.

The end-to-end tests scrape real server processes over sockets on 127.0.0.1 and parse
the page the way Prometheus would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

import modeltap
from modeltap import metrics, runtime, sampling
from modeltap.pipeline import Counters
from tests.servers import Process, free_port, start_cli
from tests.serving.server import Served

SCORE = """
import json
import pandas as pd
from modeltap import Collector

def init():
    global inputs, outputs
    inputs, outputs = Collector(name="model_inputs"), Collector(name="model_outputs")

def run(raw):
    df = pd.DataFrame(json.loads(raw)["data"])
    context = inputs.collect(df)
    outputs.collect(df.sum(axis=1).to_frame("total"), context)
    return {"ok": True}
"""

SERVE_DEPLOYMENT = """\
name: blue
endpoint_name: my_endpoint
code_configuration:
  code: scripts
  scoring_script: score.py
data_collector:
  sampling_rate: 0.5
  collections:
    model_inputs: {enabled: 'True'}
    model_outputs: {enabled: 'True'}
  modeltap:
    flush_interval: 0.2
"""

AGENT_DEPLOYMENT = """\
name: green
endpoint_name: agent_endpoint
data_collector:
  collections:
    model_inputs: {enabled: 'True'}
  modeltap:
    flush_interval: 0.2
    buffer_bytes: 1000
    overflow: drop
"""

PROXY_DEPLOYMENT = """\
name: blue
endpoint_name: px
data_collector:
  collections:
    request: {enabled: true}
    response: {enabled: true}
  modeltap:
    flush_interval: 0.2
"""

Samples = dict[str, float]


def parse(text: str, endpoint: str, deployment: str) -> Samples:
    """Every sample of the page by name; every one is labelled with this deployment."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.endswith("_bucket"):
                continue
            assert s.labels["endpoint"] == endpoint, s
            assert s.labels["deployment"] == deployment, s
            assert s.labels["pid"].isdigit(), s
            assert s.name not in out, f"{s.name}: one series per process expected"
            out[s.name] = s.value
    return out


def scrape(url: str, endpoint: str, deployment: str) -> Samples:
    r = httpx.get(url, timeout=5)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return parse(r.text, endpoint, deployment)


def scrape_until(url: str, endpoint: str, deployment: str, written: int) -> Samples:
    """Scrape until `written` records have landed (the flush interval is 0.2 s)."""
    deadline = time.monotonic() + 10
    while True:
        samples = scrape(url, endpoint, deployment)
        if samples.get("modeltap_records_written_total") == written:
            return samples
        assert time.monotonic() < deadline, f"never {written} written: {samples}"
        time.sleep(0.1)


def committed(workspace: Path) -> tuple[int, int]:
    """(objects, bytes) of the JSON-lines objects written under the workspace."""
    files = list(workspace.rglob("*.jsonl"))
    return len(files), sum(f.stat().st_size for f in files)


def deployment_file(tmp_path: Path, text: str) -> Path:
    file = tmp_path / "deployment.yml"
    file.write_text(text)
    return file


# -- in process ---------------------------------------------------------------------------


def page() -> dict[str, list[tuple[dict[str, str], float]]]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def test_no_counts_before_collection_is_configured(monkeypatch):
    monkeypatch.setattr(runtime, "_last", None)  # no earlier test's runtime either
    assert not [name for name in page() if not name.startswith("modeltap_commit_seconds")]


def commits() -> dict[str, float]:
    """modeltap_commit_seconds_count of endpoint "ep" by deployment. The histogram lives as
    long as the process: earlier tests' runtimes with the same labels count in it too."""
    series = page().get("modeltap_commit_seconds_count", [])
    return {labels["deployment"]: n for labels, n in series if labels["endpoint"] == "ep"}


def test_every_runtime_configured_is_timed(tmp_path):
    for deployment in ("blue", "green"):
        before = commits().get(deployment, 0)
        modeltap.configure(
            workspace=tmp_path / "ws",
            endpoint="ep",
            deployment=deployment,
            collections=["model_inputs"],
        )
        modeltap.Collector(name="model_inputs").collect(pd.DataFrame({"a": [1, 2]}))
        assert modeltap.flush(10)
        samples = page()
        [(labels, accepted)] = samples["modeltap_records_accepted_total"]
        assert labels["deployment"] == deployment and accepted == 1
        assert commits()[deployment] == before + 1  # one record, one commit
    # A runtime is watched once, however often it is seen.
    metrics.watch(runtime.current())
    modeltap.Collector(name="model_inputs").collect(pd.DataFrame({"a": [3]}))
    before = commits()["green"]
    assert modeltap.flush(10)
    assert commits()["green"] == before + 1


def test_new_counters_and_gauges_show_up_by_their_key(tmp_path, monkeypatch):
    modeltap.configure(
        workspace=tmp_path / "ws", endpoint="ep", deployment="blue", collections=["model_inputs"]
    )
    # A counter the pipeline may grow, and a gauge that stats() may add.
    monkeypatch.setattr(Counters, "FIELDS", (*Counters.FIELDS, "retried"))
    monkeypatch.setattr(Counters, "retried", 4, raising=False)
    stats = runtime.stats
    monkeypatch.setattr(runtime, "stats", lambda: {**stats(), "spool_segments": 3})
    families = {f.name: f for f in text_string_to_metric_families(metrics.render()[0].decode())}
    assert families["modeltap_retried"].type == "counter"
    assert families["modeltap_retried"].samples[0].name == "modeltap_retried_total"
    assert families["modeltap_retried"].samples[0].value == 4
    assert families["modeltap_spool_segments"].type == "gauge"
    assert families["modeltap_spool_segments"].samples[0].value == 3
    assert families["modeltap_buffer_records"].type == "gauge"
    for name, _ in metrics.COUNTERS.values():
        assert families[name.removesuffix("_total")].type == "counter"


# -- real servers -------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "score.py").write_text(SCORE)
    server = Served(
        deployment_file(tmp_path, SERVE_DEPLOYMENT), tmp_path / "ws", tmp_path, ("--no-agent",)
    )
    yield server
    server.kill()


@pytest.mark.slow
def test_serve_counts_what_it_collects_writes_and_samples_out(served):
    ids = [f"req-{i}" for i in range(12)]
    kept = [i for i in ids if sampling.keep(i, 0.5)]
    assert 0 < len(kept) < len(ids)  # both kinds present at sampling_rate 0.5
    with httpx.Client(base_url=served.base, timeout=10) as client:
        for request_id in ids:
            r = client.post(
                "/score", json={"data": {"a": [1, 2]}}, headers={"x-request-id": request_id}
            )
            assert r.status_code == 200, r.text
    n = 2 * len(kept)  # inputs and outputs of every request kept
    samples = scrape_until(served.base + "/metrics", "my_endpoint", "blue", written=n)
    assert samples["modeltap_records_accepted_total"] == n
    assert samples["modeltap_records_sampled_out_total"] == 2 * (len(ids) - len(kept))
    assert samples["modeltap_records_dropped_total"] == 0
    assert samples["modeltap_storage_errors_total"] == 0
    assert samples["modeltap_buffer_records"] == 0
    objects, nbytes = committed(served.workspace)
    assert objects >= 2  # one per collection at least; more when a flush split them
    assert samples["modeltap_objects_written_total"] == objects
    assert samples["modeltap_bytes_written_total"] == nbytes
    assert samples["modeltap_commit_seconds_count"] == objects
    assert samples["modeltap_commit_seconds_sum"] > 0
    assert httpx.head(served.base + "/metrics").status_code == 200
    assert httpx.post(served.base + "/metrics").status_code == 405
    code, _ = served.stop()
    assert code == 0, served.stderr()


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[str]:
    """The agent's base URL; it writes to tmp_path / "ws"."""
    proc, base = start_cli(
        "agent",
        deployment_file(tmp_path, AGENT_DEPLOYMENT),
        tmp_path / "ws",
        tmp_path / "agent.log",
    )
    yield base
    assert proc.stop() == 0, proc.log_path.read_text()


@pytest.mark.slow
def test_agent_counts_a_record_dropped_on_a_full_buffer(agent, tmp_path):
    headers = {"content-type": "application/json", "ce-type": "azureml.inference.model_inputs"}
    small = httpx.post(agent + "/modeldata/log", content=b'[{"a": 1}]', headers=headers)
    assert small.status_code == 200, small.text
    # Larger than the whole buffer (buffer_bytes: 1000): dropped at once under "drop".
    big = httpx.post(agent + "/modeldata/log", content=b'["' + b"x" * 2000 + b'"]', headers=headers)
    assert big.status_code == 503, big.text
    samples = scrape_until(agent + "/metrics", "agent_endpoint", "green", written=1)
    assert samples["modeltap_records_accepted_total"] == 1
    assert samples["modeltap_records_dropped_total"] == 1
    assert committed(tmp_path / "ws") == (1, samples["modeltap_bytes_written_total"])
    assert samples["modeltap_objects_written_total"] == 1
    assert samples["modeltap_commit_seconds_count"] == 1
    assert httpx.post(agent + "/metrics").status_code == 405


@pytest.mark.slow
def test_proxy_answers_its_own_metrics_path_and_forwards_metrics(tmp_path):
    up_port = free_port()
    upstream = Process(
        ["-m", "uvicorn", "tests.serving.upstream_app:app", "--port", str(up_port)],
        tmp_path / "up.log",
        f"http://127.0.0.1:{up_port}/",
    )
    try:
        proxy, base = start_cli(
            "proxy",
            deployment_file(tmp_path, PROXY_DEPLOYMENT),
            tmp_path / "ws",
            tmp_path / "proxy.log",
            "--upstream",
            f"http://127.0.0.1:{up_port}",
            health="/-/modeltap/health",
        )
        try:
            for i in range(3):
                assert httpx.post(base + "/score", json={"i": i}).status_code == 200
            # /metrics belongs to the model server behind the proxy (not a scoring call:
            # forwarded, not logged).
            forwarded = httpx.get(base + "/metrics")
            assert forwarded.json() == {"got": 0, "path": "/metrics"}
            own = base + metrics.PROXY_METRICS_PATH
            samples = scrape_until(own, "px", "blue", written=6)  # 3 requests, 3 responses
            # Scrapes are neither forwarded nor logged.
            assert scrape(own, "px", "blue")["modeltap_records_accepted_total"] == 6
            objects, nbytes = committed(tmp_path / "ws")
            assert samples["modeltap_objects_written_total"] == objects
            assert samples["modeltap_commit_seconds_count"] == objects
            assert samples["modeltap_bytes_written_total"] == nbytes
        finally:
            assert proxy.stop() == 0, proxy.log_path.read_text()
    finally:
        upstream.stop()
