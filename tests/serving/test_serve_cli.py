"""`modeltap serve` end to end: a real server process, real sockets, files on disk (R1, R2, R4, R5).

The score.py and deployment.yml are written the way the source platform's documents write
them; only the import line names modeltap.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import SOURCE_DEPLOYMENT, read_lines, store_root
from tests.serving.server import Served

pytestmark = pytest.mark.slow

SCORE = """
import json
import os

import pandas as pd
from modeltap import Collector, BasicCorrelationContext


def init():
    global inputs_collector, outputs_collector
    # instantiate collectors with appropriate names, make sure align with deployment spec
    inputs_collector = Collector(name='model_inputs')
    outputs_collector = Collector(name='model_outputs')


def run(data):
    # json data: { "data" : { "col1": [1,2,3], "col2": [2,3,4] } }
    json_data = json.loads(data)
    if json_data.get("ping"):  # which worker process answered; nothing collected
        return {"pid": os.getpid()}
    if json_data.get("fail"):
        raise ValueError("scoring failed on purpose")
    input_df = pd.DataFrame(json_data["data"])
    # collect inputs data, store correlation_context
    context = inputs_collector.collect(input_df)
    output_df = input_df.sum(axis=1).to_frame("total")
    # pass the context so inputs and outputs can be correlated later
    outputs_collector.collect(output_df, context)
    return {
        "total": output_df["total"].tolist(),
        "model_dir": os.environ.get("AZUREML_MODEL_DIR"),
        "pid": os.getpid(),
    }
"""

# The source's second example: a custom unique id for the correlation context.
SCORE_CUSTOM_ID = SCORE.replace(
    "    context = inputs_collector.collect(input_df)",
    "    artificial_context = BasicCorrelationContext(id='custom')\n"
    "    context = inputs_collector.collect(input_df, artificial_context)",
)

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
INSTANCE = re.compile(r"^(?P<writer>.+)-(?P<seq>\d{8})\.jsonl$")


def make_deployment(
    tmp_path: Path,
    score: str = SCORE,
    *,
    model: str = "azureml:iris_mlflow_model@latest",
    rolling_rate: str | None = None,
) -> Path:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "score.py").write_text(score)
    text = SOURCE_DEPLOYMENT.replace(
        "model: azureml:iris_mlflow_model@latest\n", f"model: {model}\n"
    )
    if rolling_rate:
        rolling = f"data_collector:\n  rolling_rate: {rolling_rate}\n"
        text = text.replace("data_collector:\n", rolling)
    file = tmp_path / "deployment.yml"
    file.write_text(text)
    return file


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    """start(deployment, *extra) -> a healthy server; every one is killed at teardown."""
    servers: list[Served] = []

    def _start(deployment: Path, *extra: str) -> Served:
        server = Served(deployment, tmp_path / "ws", tmp_path, extra)
        servers.append(server)
        return server

    yield _start
    for server in servers:
        server.kill()


def post(client: httpx.Client, body: Any, request_id: str | None = None) -> httpx.Response:
    headers = {"x-request-id": request_id} if request_id is not None else {}
    return client.post("/score", json=body, headers=headers)


def collection_dir(workspace: Path, collection: str) -> Path:
    return store_root(workspace) / "modelDataCollector" / "my_endpoint" / "blue" / collection


def writers(workspace: Path, collection: str) -> set[str]:
    names = [f.name for f in collection_dir(workspace, collection).rglob("*.jsonl")]
    matches = [INSTANCE.match(name) for name in names]
    assert all(matches), names
    return {m["writer"] for m in matches if m}


def ids(lines: list[dict[str, Any]]) -> Counter[str]:
    return Counter(line["correlationid"] for line in lines)


@pytest.mark.parametrize(
    ("sig", "rolling_rate", "levels"),
    [(signal.SIGTERM, None, 4), (signal.SIGINT, "Minute", 5)],
    ids=["SIGTERM-hour", "SIGINT-minute"],
)
def test_serve_scores_correlates_and_flushes_everything_on_signal(
    tmp_path, start, sig, rolling_rate, levels
):
    deployment = make_deployment(tmp_path, rolling_rate=rolling_rate)
    server = start(deployment)
    ws = server.workspace
    root = store_root(ws)
    with httpx.Client(base_url=server.base, timeout=10) as client:
        health = client.get("/")
        assert health.status_code == 200

        # The caller's x-request-id is echoed and becomes the correlation id.
        given = post(client, {"data": {"col1": [1, 2], "col2": [3, 4]}}, "abc")
        assert given.status_code == 200, given.text
        assert given.headers["content-type"] == "application/json"
        assert given.json()["total"] == [4, 6]
        assert given.json()["model_dir"] is None  # `model: azureml:...` leaves it unset
        assert given.headers["x-request-id"] == "abc"

        # Without the header a UUID is made, returned, and used.
        made = post(client, {"data": {"col1": [5], "col2": [5]}})
        assert made.status_code == 200, made.text
        generated = made.headers["x-request-id"]
        assert UUID.match(generated), generated

        # run() raising: 500 with the error, and the server keeps serving.
        failed = post(client, {"fail": True, "data": {"col1": [1]}}, "boom")
        assert failed.status_code == 500
        assert failed.headers["x-request-id"] == "boom"
        assert "scoring failed on purpose" in failed.json()["error"]
        assert "ValueError" in failed.json()["error"]

        # Load the buffer: acknowledged now, written later (flush_interval is 5 s).
        acked = ["abc", generated]
        for i in range(200):
            r = post(client, {"data": {"col1": [i], "col2": [1]}}, f"req-{i:03d}")
            assert r.status_code == 200, r.text
            assert r.json()["total"] == [i + 1]
            acked.append(f"req-{i:03d}")
    on_disk_before = len(read_lines(root, "model_inputs"))

    code, took = server.stop(sig, timeout=15)
    assert code == 0, server.stderr()
    assert took < 15
    assert on_disk_before < len(acked), "everything landed before the signal: flush untested"

    # Every acknowledged request: exactly one input line and one output line, joined by id.
    ins, outs = read_lines(root, "model_inputs"), read_lines(root, "model_outputs")
    assert ids(ins) == Counter(acked), "inputs lost or duplicated"
    assert ids(outs) == Counter(acked), "outputs lost or duplicated"
    for line in ins + outs:
        assert line["xrequestid"] == line["correlationid"]
    by_id = {line["correlationid"]: line for line in ins}
    assert by_id["abc"]["data"] == [{"col1": 1, "col2": 3}, {"col1": 2, "col2": 4}]
    assert {line["correlationid"]: line for line in outs}["abc"]["data"] == [
        {"total": 4},
        {"total": 6},
    ]
    assert by_id["req-199"]["data"] == [{"col1": 199, "col2": 1}]
    assert "boom" not in by_id  # run() raised before collecting
    assert all(line["type"] == "azureml.inference.model_inputs" for line in ins)
    assert all(line["source"] == "/endpoints/my_endpoint/deployments/blue" for line in ins)

    # {root}/{endpoint}/{deployment}/{collection}/{partition}/{instance}.jsonl
    for collection in ("model_inputs", "model_outputs"):
        base = collection_dir(ws, collection)
        files = list(base.rglob("*.jsonl"))
        assert files
        for f in files:
            parts = f.relative_to(base).parts
            assert len(parts) == levels + 1, parts
            assert re.fullmatch(r"\d{4}", parts[0]) and INSTANCE.match(parts[-1])
            assert all(re.fullmatch(r"\d{2}", p) for p in parts[1:-1]), parts
            # The partition is the record's own UTC time at the rolling rate.
            for line in map(json.loads, f.read_text().splitlines()):
                stamp = re.split(r"[-T:]", line["time"].rstrip("Z"))
                assert tuple(stamp[:levels]) == parts[:-1], (line["time"], parts)
        assert len(writers(ws, collection)) == 1

    # The deployment's cloud-only fields are accepted, each with a note on stderr.
    err = server.stderr()
    notes = [line for line in err.splitlines() if line.startswith("modeltap: note:")]
    for field in ("environment", "instance_type", "instance_count", "model"):
        assert any(f"note: {field}:" in note for note in notes), (field, err)
    assert "run() failed for request boom" in err or "scoring failed on purpose" in err


def score_on_new_connection(port: int, body: Any, request_id: str | None = None) -> Any:
    """POST /score on a connection of its own (so the kernel may hand it to any worker)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"content-type": "application/json"}
    if request_id is not None:
        headers["x-request-id"] = request_id
    try:
        conn.request("POST", "/score", json.dumps(body), headers)
        response = conn.getresponse()
        payload = response.read()
        assert response.status == 200, payload
        if request_id is not None:
            assert response.getheader("x-request-id") == request_id
        return json.loads(payload)
    finally:
        conn.close()


def test_two_workers_write_everything_once_with_two_writers(tmp_path, start):
    server = start(make_deployment(tmp_path), "--workers", "2", "--log-level", "warning")
    # Health answers once one worker is up: wait until both answer (nothing collected).
    seen: set[int] = set()
    deadline = time.monotonic() + 30
    while len(seen) < 2:
        assert time.monotonic() < deadline, f"only worker(s) {seen} answered:\n{server.stderr()}"
        with ThreadPoolExecutor(4) as pool:
            seen.update(
                pool.map(
                    lambda _: score_on_new_connection(server.port, {"ping": 1})["pid"], range(8)
                )
            )

    def one(i: int) -> int:
        answer = score_on_new_connection(
            server.port, {"data": {"col1": [i], "col2": [i]}}, f"w-{i:03d}"
        )
        assert answer["total"] == [2 * i]
        return int(answer["pid"])

    with ThreadPoolExecutor(4) as pool:
        pids = Counter(pool.map(one, range(200)))
    assert len(pids) == 2, pids

    code, _ = server.stop(signal.SIGTERM, timeout=15)
    assert code == 0, server.stderr()
    root = store_root(server.workspace)
    ins, outs = read_lines(root, "model_inputs"), read_lines(root, "model_outputs")
    expected = Counter(f"w-{i:03d}" for i in range(200))
    assert ids(ins) == expected
    assert ids(outs) == expected
    # No crosstalk between concurrent requests: each id carries its own rows.
    for line in ins:
        i = int(line["correlationid"][2:])
        assert line["data"] == [{"col1": i, "col2": i}]
    # Two writers, each wrote what its worker acknowledged, in its own files.
    assert len(writers(server.workspace, "model_inputs")) == 2
    assert writers(server.workspace, "model_outputs") == writers(server.workspace, "model_inputs")
    for collection in ("model_inputs", "model_outputs"):
        per_writer: Counter[str] = Counter()
        for f in collection_dir(server.workspace, collection).rglob("*.jsonl"):
            match = INSTANCE.match(f.name)
            assert match
            per_writer[match["writer"]] += len(f.read_text().splitlines())
        assert sorted(per_writer.values()) == sorted(pids.values()), (per_writer, pids)


def test_model_dir_and_custom_correlation_id(tmp_path, start):
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.txt").write_text("42")
    server = start(make_deployment(tmp_path, SCORE_CUSTOM_ID, model="./model"))
    r = httpx.post(
        server.base + "/score",
        json={"data": {"col1": [1], "col2": [2]}},
        headers={"x-request-id": "from-caller"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert r.json()["total"] == [3]
    # As on the platform, AZUREML_MODEL_DIR holds the model under its own name.
    model_dir = Path(r.json()["model_dir"])
    assert (model_dir / "model" / "weights.txt").read_text() == "42"
    assert sorted(p.name for p in model_dir.iterdir()) == ["model"]
    assert r.headers["x-request-id"] == "from-caller"
    code, _ = server.stop(signal.SIGTERM)
    assert code == 0, server.stderr()
    root = store_root(server.workspace)
    ins, outs = read_lines(root, "model_inputs"), read_lines(root, "model_outputs")
    assert [line["correlationid"] for line in ins] == ["custom"]
    assert [line["correlationid"] for line in outs] == ["custom"]
    assert "note: model:" not in server.stderr()  # a local model folder needs no note


def test_serve_without_scoring_script_is_one_clear_error(tmp_path):
    make_deployment(tmp_path)
    file = tmp_path / "deployment.yml"
    file.write_text(file.read_text().replace("  scoring_script: score.py\n", ""))
    command = ["serve", "-f", str(file), "--port", "0", "--workspace", str(tmp_path / "ws")]
    done = subprocess.run(
        [sys.executable, "-m", "modeltap.cli", *command],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "code_configuration" in done.stderr
    assert "Traceback" not in done.stderr
