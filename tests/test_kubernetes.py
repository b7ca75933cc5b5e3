"""deploy/kubernetes/: the manifest's agent container, run here with its own command line,
ConfigMap files and environment against Azurite, fed by the source platform's SDK with
the model container's environment (R11)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeltap.config import load_deployment, load_workspace
from modeltap.storage import open_datastore
from tests.servers import Process, free_port

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "deploy" / "kubernetes" / "modeltap-sidecar.yaml"


def manifest() -> tuple[dict[str, str], dict[str, Any]]:
    docs = list(yaml.safe_load_all(MANIFEST.read_text()))
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    return config, pod


def container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in pod["containers"] if c["name"] == name)


def test_manifest_files_load_and_the_containers_agree():
    config, pod = manifest()
    agent, model = container(pod, "modeltap-agent"), container(pod, "model")
    command = shlex.split(agent["args"][0].split("exec ", 1)[1])
    port = command[command.index("--port") + 1]
    env = {e["name"]: e.get("value") for e in model["env"]}
    assert env["AZUREML_MDC_HOST"] == "127.0.0.1" == command[command.index("--host") + 1]
    assert env["AZUREML_MDC_PORT"] == port
    mdc = json.loads(config["mdc_config.json"])
    deployment_collections = yaml.safe_load(config["deployment.yml"])["data_collector"]
    assert set(mdc["collections"]) == set(deployment_collections["collections"])
    # The secret comes from a Secret, through the variable the workspace file names.
    workspace = yaml.safe_load(config["workspace.yml"])
    secret_env = workspace["datastores"]["lake"]["connection_string_env"]
    assert secret_env in {e["name"] for e in agent["env"] if "secretKeyRef" in e["valueFrom"]}


@pytest.mark.slow
def test_the_manifests_agent_lands_sdk_records_in_azure(azurite, tmp_path, monkeypatch):
    config, pod = manifest()
    agent = container(pod, "modeltap-agent")
    etc, ws = tmp_path / "etc-modeltap", tmp_path / "workspace"
    etc.mkdir()
    ws.mkdir()
    for name, text in config.items():  # the ConfigMap volume, and its subPath mount
        (etc / name).write_text(text)
    (ws / "workspace.yml").write_text(config["workspace.yml"])
    yaml_ws = yaml.safe_load(config["workspace.yml"])["datastores"]["lake"]
    azurite.create_container(yaml_ws["container"])
    monkeypatch.setenv(yaml_ws["connection_string_env"], azurite.connection_string)
    env = dict(os.environ)
    deployment = load_deployment(etc / "deployment.yml", load_workspace(ws))
    assert deployment.pipeline.durability == "spool"

    # The agent container's own command, with the pod's paths mapped to this test's.
    port = free_port()
    command = agent["args"][0].split("exec ", 1)[1]
    command = command.replace("/etc/modeltap", str(etc)).replace("/workspace", str(ws))
    args = shlex.split(command.replace("--port 50011", f"--port {port}"))
    assert args[0] == "modeltap"
    proc = Process(
        ["-m", "modeltap.cli", *args[1:]],
        tmp_path / "agent.log",
        f"http://127.0.0.1:{port}/",
        env=env,
    )
    sdk = textwrap.dedent("""
        import pandas as pd
        from azureml.ai.monitoring import Collector
        from azureml.ai.monitoring.init import teardown

        inputs, outputs = Collector(name="model_inputs"), Collector(name="model_outputs")
        for i in range(25):
            ctx = inputs.collect(pd.DataFrame({"x": [i]}))
            outputs.collect(pd.DataFrame({"y": [i * 2]}), ctx)
        teardown(wait_for_flush=True)
    """)
    model_env = {e["name"]: e["value"] for e in container(pod, "model")["env"]}
    model_env["AZUREML_MDC_CONFIG_PATH"] = str(etc / "mdc_config.json")
    model_env["AZUREML_MDC_PORT"] = str(port)
    subprocess.run(
        [sys.executable, "-c", sdk],
        env={**os.environ, **model_env},
        check=True,
        timeout=120,
        capture_output=True,
    )
    assert proc.stop(signal.SIGTERM) == 0  # uploads what it holds, then exits

    store = open_datastore("lake", load_workspace(ws).datastores["lake"], ws)
    rows: dict[str, list[Any]] = {}
    for collection in ("model_inputs", "model_outputs"):
        prefix = f"modelDataCollector/my_endpoint/blue/{collection}"
        rows[collection] = [
            row
            for info in store.list(prefix)
            for line in store.get(info.path).splitlines()
            for row in json.loads(line)["data"]
        ]
    store.close()
    assert sorted(r["x"] for r in rows["model_inputs"]) == list(range(25))
    assert sorted(r["y"] for r in rows["model_outputs"]) == [i * 2 for i in range(25)]
    assert not list((ws / "spool").rglob("*.seg"))  # nothing left behind
