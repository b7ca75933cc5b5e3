"""What `modeltap serve` starts (serving/launch.py): decided from the settings, no server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modeltap.config import load_deployment, load_workspace
from modeltap.errors import ConfigError
from modeltap.serving import launch
from modeltap.serving.app import ENV_MLFLOW_MODEL, ENV_MODEL_DIR, ENV_SCRIPT, ENV_THREADS
from modeltap.serving.limits import ENV_MAX_BODY
from modeltap.serving.shutdown import ENV_DRAIN_SECONDS, Budget

SCRIPT_DEPLOYMENT = """\
name: blue
endpoint_name: shop
code_configuration:
  code: scripts
  scoring_script: score.py
data_collector:
  collections:
{collections}
"""
SDK = "    model_inputs: {enabled: 'True'}\n"
PAYLOAD = "    request: {enabled: 'True'}\n    response: {enabled: 'True'}\n"


def plan(tmp_path: Path, text: str, options: launch.ServeOptions | None = None) -> launch.ServePlan:
    (tmp_path / "scripts").mkdir(exist_ok=True)
    (tmp_path / "scripts" / "score.py").write_text("def run(data):\n    return data\n")
    (tmp_path / "deployment.yml").write_text(text)
    workspace = load_workspace(tmp_path / "ws")
    settings = load_deployment(tmp_path / "deployment.yml", workspace)
    return launch.plan_serve(settings, workspace.root, options or launch.ServeOptions())


def test_sdk_collections_and_payloads_go_through_the_sidecar(tmp_path):
    served = plan(tmp_path, SCRIPT_DEPLOYMENT.format(collections=SDK + PAYLOAD))
    assert served.script == tmp_path / "scripts" / "score.py"
    assert served.sdk_collections == ("model_inputs",)
    assert served.relay  # durability memory: the sidecar writes the payload records
    assert served.sidecar
    assert served.loop == "auto"  # uvicorn's: uvloop when installed
    assert served.budget == Budget.of(30.0, sidecar=True)
    assert served.server_options() == {
        "graceful": served.budget.graceful,
        "workers": 1,
        "loop": "auto",
    }


def test_durable_payloads_are_spooled_by_each_worker_so_no_sidecar(tmp_path):
    text = SCRIPT_DEPLOYMENT.format(collections=PAYLOAD) + "  modeltap: {durability: spool}\n"
    served = plan(tmp_path, text, launch.ServeOptions(shutdown_timeout=12, workers=3))
    assert served.sdk_collections == ()
    assert not served.relay
    assert not served.sidecar
    assert served.budget == Budget.of(12, sidecar=False)
    assert served.server_options()["workers"] == 3


def test_no_agent_means_no_sidecar_even_for_sdk_collections(tmp_path):
    no_agent = launch.ServeOptions(with_agent=False)
    served = plan(tmp_path, SCRIPT_DEPLOYMENT.format(collections=SDK + PAYLOAD), no_agent)
    assert served.sdk_collections == ("model_inputs",)
    assert not served.sidecar
    assert not served.relay  # each worker records its own payloads
    assert served.budget.sidecar == 0


def test_redaction_rules_keep_query_strings_out_of_the_access_log(tmp_path):
    text = SCRIPT_DEPLOYMENT.format(collections=PAYLOAD) + (
        "  modeltap:\n    redact:\n      collections:\n        request: {drop: [ssn]}\n"
    )
    served = plan(tmp_path, text)
    assert "log_config" in served.server_options()


def test_nothing_to_serve_names_the_field(tmp_path):
    text = "name: blue\nendpoint_name: shop\n"
    with pytest.raises(ConfigError, match="needs code and scoring_script") as caught:
        plan(tmp_path, text)
    assert caught.value.field == "code_configuration"


def test_an_mlflow_model_collects_itself_on_asyncio(tmp_path):
    pytest.importorskip("mlflow")
    model = tmp_path / "model"
    model.mkdir()
    (model / "MLmodel").write_text("flavors: {}\n")
    text = (
        "name: blue\nendpoint_name: shop\nmodel: {path: ./model, type: mlflow_model}\n"
        "data_collector:\n  collections:\n" + SDK
    )
    served = plan(tmp_path, text)
    assert served.script is None
    assert served.loop == "asyncio"
    assert served.sdk_collections == ()  # no SDK posting: the model's tables are collected
    assert not served.sidecar
    assert served.server_options()["loop"] == "asyncio"


def test_started_exports_what_the_workers_read_and_cleans_up(tmp_path, monkeypatch):
    for name in (ENV_SCRIPT, ENV_MODEL_DIR, ENV_MLFLOW_MODEL, ENV_THREADS, ENV_MAX_BODY):
        monkeypatch.setenv(name, "stale")
    monkeypatch.delenv(ENV_DRAIN_SECONDS, raising=False)
    model = tmp_path / "model"
    model.mkdir()
    (model / "clf.pkl").write_bytes(b"w")  # beside deployment.yml: a folder of links is made
    text = SCRIPT_DEPLOYMENT.replace("code_configuration:", "model: ./model\ncode_configuration:")
    options = launch.ServeOptions(threads=True, max_body=1234, with_agent=False)
    served = plan(tmp_path, text.format(collections=SDK), options)
    with launch.started(served):
        assert os.environ[ENV_SCRIPT] == str(tmp_path / "scripts" / "score.py")
        assert os.environ[ENV_MLFLOW_MODEL] == ""
        assert os.environ[ENV_THREADS] == "1"
        assert os.environ[ENV_MAX_BODY] == "1234"
        assert float(os.environ[ENV_DRAIN_SECONDS]) == served.budget.drain
        model_dir = Path(os.environ[ENV_MODEL_DIR])
        assert (model_dir / "model" / "clf.pkl").read_bytes() == b"w"
    assert not model_dir.exists()  # the links, not the model
    assert (model / "clf.pkl").exists()


def test_collect_model_data_switches_the_collections_on(tmp_path, monkeypatch):
    monkeypatch.delenv("MODELTAP_COLLECT_MODEL_DATA", raising=False)
    launch.collect_model_data(True)
    try:
        served = plan(tmp_path, SCRIPT_DEPLOYMENT.format(collections=PAYLOAD))
    finally:
        launch.collect_model_data(False)
    assert {"model_inputs", "model_outputs"} <= set(served.settings.collections)
    assert served.sdk_collections == ("model_inputs", "model_outputs")
