"""The docs' examples run, so the docs never rot."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modeltap.config import load_deployment, load_workspace
from modeltap.errors import ConfigError
from tests.servers import free_port, wait_until_answering

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks(page: Path, lang: str) -> list[str]:
    return [body for kind, body in FENCE.findall(page.read_text()) if kind == lang]


PAGES = sorted((ROOT / "docs").glob("*.md"))

# How many ```python blocks test_python_examples_run runs from each page: a lost block, or
# one fenced as another language, fails instead of leaving the page silently unchecked.
PYTHON_BLOCKS = {
    "collecting.md": 3,
    "datastores.md": 2,
    "durability.md": 1,
    "inspecting.md": 3,
    "metrics.md": 1,
    "monitoring.md": 3,
    "pipeline.md": 2,
    "privacy.md": 2,
    "reading.md": 12,
    "scale.md": 3,
    "ui.md": 3,
}
# The other pages: (their ```python blocks, why this test runs none of them).
NOT_RUN_HERE = {
    "agent.md": (1, "a score.py for the source SDK: served by tests/serving/test_sdk_serve.py"),
    "kubernetes.md": (0, "no Python: its manifest runs in tests/test_kubernetes.py"),
    "payload-logging.md": (0, "no Python: its deployment file loads below"),
    "serving.md": (0, "score.py files (```py): served by tests/serving/test_serving_docs.py"),
}
# How many workspace files (`datastores:`) and deployment files (`endpoint_name`) each
# page shows in ```yaml blocks; a page left out shows none.
WORKSPACE_YAML = {"datastores.md": 2, "serving.md": 1}
DEPLOYMENT_YAML = {"durability.md": 1, "payload-logging.md": 1, "privacy.md": 1, "serving.md": 2}


def test_every_page_is_run_or_says_why_not():
    assert not PYTHON_BLOCKS.keys() & NOT_RUN_HERE.keys()
    assert {p.name for p in PAGES} == PYTHON_BLOCKS.keys() | NOT_RUN_HERE.keys()
    for name, (count, _why) in NOT_RUN_HERE.items():
        assert len(blocks(ROOT / "docs" / name, "python")) == count, name


@pytest.mark.parametrize("name", sorted(PYTHON_BLOCKS))
def test_python_examples_run(name, tmp_path, monkeypatch, request):
    page = ROOT / "docs" / name
    code = blocks(page, "python")
    assert len(code) == PYTHON_BLOCKS[name]
    monkeypatch.chdir(tmp_path)
    if name == "datastores.md":
        use_emulators(page, tmp_path, monkeypatch, request)
    if name == "monitoring.md":  # its examples run the monitor file the page shows
        [monitor] = [b for b in blocks(page, "yaml") if "create_monitor:" in b]
        (tmp_path / "monitor.yml").write_text(monitor)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for body in code:
        exec(compile(body, str(page), "exec"), namespace)


def use_emulators(page: Path, tmp_path: Path, monkeypatch, request) -> None:
    """datastores.md's worked example, against the test suite's Azurite and moto: its
    workspace file (with moto's port), container, bucket and credentials."""
    azurite, moto = request.getfixturevalue("azurite"), request.getfixturevalue("moto_s3")
    for key, value in {**azurite.env, **moto.env}.items():
        monkeypatch.setenv(key, value)
    azurite.create_container("collected")
    moto.create_bucket("collected")
    [yml] = [b for b in blocks(page, "yaml") if "connection_string_env: AZURE" in b]
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "workspace.yml").write_text(
        yml.replace("http://127.0.0.1:5000", moto.endpoint)
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_workspace_yaml_examples_load(page, tmp_path):
    shown = [text for text in blocks(page, "yaml") if "datastores:" in text]
    assert len(shown) == WORKSPACE_YAML.get(page.name, 0)
    for text in shown:
        (tmp_path / "workspace.yml").write_text(text)
        assert set(yaml.safe_load(text)["datastores"]) <= set(load_workspace(tmp_path).datastores)


def test_serving_page_yaml_is_accepted(tmp_path):
    page = ROOT / "docs" / "serving.md"
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "score.py").write_text("def run(data):\n    return data\n")
    [deployment_yaml] = [b for b in blocks(page, "yaml") if "code_configuration" in b]
    [workspace_yaml] = [b for b in blocks(page, "yaml") if "datastores:" in b]
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "workspace.yml").write_text(workspace_yaml)
    ws = load_workspace(tmp_path / "ws")
    assert set(ws.datastores) == {"workspaceblobstore", "archive"}
    (tmp_path / "deployment.yml").write_text(deployment_yaml)
    settings = load_deployment(tmp_path / "deployment.yml", ws)
    assert settings.collections["model_inputs"].asset_name == "my_inputs"
    assert settings.pipeline.flush_interval == 5
    # The error shown on the page is the error the loader gives.
    [shown] = blocks(page, "text")
    bad = deployment_yaml.replace("rolling_rate: Hour", "rolling_rate: Weekly")
    (tmp_path / "deployment.yml").write_text(bad)
    with pytest.raises(ConfigError) as err:
        load_deployment(tmp_path / "deployment.yml", ws)
    assert shown.strip().endswith(str(err.value).split("deployment.yml: ", 1)[1])


def test_pipeline_page_line_is_consistent():
    [example] = blocks(ROOT / "docs" / "pipeline.md", "json")
    line = json.loads(example)
    n = len(json.dumps(line["data"], separators=(",", ":"), ensure_ascii=False).encode())
    assert line["contentrange"] == f"bytes 0-{n - 1}/{n}"


@pytest.mark.slow
def test_readme_usage_serves_and_collects(tmp_path, monkeypatch):
    readme = ROOT / "README.md"
    score = next(b for b in blocks(readme, "python") if "def run" in b)
    deployment = next(b for b in blocks(readme, "yaml") if "endpoint_name" in b)
    commands = next(b for b in blocks(readme, "bash") if "modeltap serve" in b)
    serve_line, curl_line = commands.strip().splitlines()
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "score.py").write_text(score)
    (tmp_path / "deployment.yml").write_text(deployment)
    port = free_port()
    args = shlex.split(serve_line)[1:]
    args[args.index("--port") + 1] = str(port)
    with (tmp_path / "stderr").open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "modeltap.cli", *args],
            cwd=tmp_path,
            env={**os.environ, "MODELTAP_WORKSPACE": ""},
            stderr=log,
        )
    try:
        wait_until_answering(
            f"http://127.0.0.1:{port}/",
            server,
            healthy=lambda status: status == 200,
            log=tmp_path / "stderr",
            interval=0.2,
        )
        out = subprocess.run(
            curl_line.replace("localhost:5001", f"127.0.0.1:{port}"),
            shell=True,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert json.loads(out.stdout) == [{"score": 4}, {"score": 6}]
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(30)
        assert code == 0, (tmp_path / "stderr").read_text()
    lines = [
        json.loads(line)
        for f in (tmp_path / "modeltap-workspace").rglob("*.jsonl")
        for line in f.read_text().splitlines()
    ]
    assert sorted(line["type"] for line in lines) == [
        "azureml.inference.model_inputs",
        "azureml.inference.model_outputs",
    ]
    assert {line["correlationid"] for line in lines} == {"r1"}
    # The README's read-back, with the top-level modeltap.load / modeltap.join.
    reading = next(b for b in blocks(readme, "python") if "modeltap.load" in b)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MODELTAP_WORKSPACE", raising=False)
    namespace: dict[str, object] = {}
    exec(compile(reading, str(readme), "exec"), namespace)
    table = namespace["table"]
    assert table[["a", "b", "score"]].to_dict("list") == {"a": [1, 2], "b": [3, 4], "score": [4, 6]}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_deployment_yaml_examples_load(page, tmp_path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "score.py").write_text("def run(data):\n    return data\n")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "MLmodel").write_text("flavors: {}\n")  # for `type: mlflow_model`
    shown = [text for text in blocks(page, "yaml") if "endpoint_name" in text]
    assert len(shown) == DEPLOYMENT_YAML.get(page.name, 0)
    for text in shown:
        (tmp_path / "d.yml").write_text(text)
        settings = load_deployment(tmp_path / "d.yml")
        shown_names = yaml.safe_load(text)
        assert settings.endpoint == shown_names["endpoint_name"]
        assert settings.deployment == shown_names["name"]
