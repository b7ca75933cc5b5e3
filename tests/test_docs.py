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

from modeltap.config import load_deployment, load_workspace
from modeltap.errors import ConfigError
from tests.servers import free_port, wait_until_answering

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks(page: Path, lang: str) -> list[str]:
    return [body for kind, body in FENCE.findall(page.read_text()) if kind == lang]


@pytest.mark.parametrize("page", sorted((ROOT / "docs").glob("*.md")), ids=lambda p: p.name)
def test_python_examples_run(page, tmp_path, monkeypatch, request):
    if page.name == "agent.md":  # a score.py for the source SDK: run by tests/test_agent.py
        return
    monkeypatch.chdir(tmp_path)
    if page.name == "datastores.md":
        use_emulators(page, tmp_path, monkeypatch, request)
    if page.name == "monitoring.md":  # its examples run the monitor file the page shows
        [monitor] = [b for b in blocks(page, "yaml") if "create_monitor:" in b]
        (tmp_path / "monitor.yml").write_text(monitor)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for code in blocks(page, "python"):
        exec(compile(code, str(page), "exec"), namespace)


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


@pytest.mark.parametrize("page", sorted((ROOT / "docs").glob("*.md")), ids=lambda p: p.name)
def test_workspace_yaml_examples_load(page, tmp_path):
    for text in blocks(page, "yaml"):
        if "datastores:" in text:
            (tmp_path / "workspace.yml").write_text(text)
            assert load_workspace(tmp_path).datastores


def test_serving_page_yaml_is_accepted(tmp_path):
    page = ROOT / "docs" / "serving.md"
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "score.py").write_text("def run(data):\n    return data\n")
    deployment_yaml, workspace_yaml = blocks(page, "yaml")
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
def test_readme_usage_serves_and_collects(tmp_path):
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


@pytest.mark.parametrize("page", sorted((ROOT / "docs").glob("*.md")), ids=lambda p: p.name)
def test_deployment_yaml_examples_load(page, tmp_path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "score.py").write_text("def run(data):\n    return data\n")
    for text in blocks(page, "yaml"):
        if "endpoint_name" not in text:
            continue
        (tmp_path / "d.yml").write_text(text)
        settings = load_deployment(tmp_path / "d.yml")
        assert settings.endpoint and settings.deployment
