"""Deployment YAML and workspace file (SPEC R2, R7.1): accepted shapes and one-line errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from modeltap.config import (
    DEFAULT_DATASTORE,
    PipelineSettings,
    load_deployment,
    load_workspace,
    parse_datastore_uri,
)
from modeltap.errors import ConfigError
from modeltap.layout import RollingRate
from tests.conftest import SOURCE_DEPLOYMENT

SOURCE_EXAMPLE = SOURCE_DEPLOYMENT

HEAD = """\
name: blue
endpoint_name: my_endpoint
"""


def write(tmp_path: Path, text: str, name: str = "deployment.yml") -> Path:
    (tmp_path / "scripts").mkdir(exist_ok=True)
    (tmp_path / "scripts" / "score.py").write_text("def init():\n    pass\n")
    path = tmp_path / name
    path.write_text(text)
    return path


def deployment(tmp_path: Path, data_collector: str, workspace=None):
    """Load a file with the standard head and this data_collector block (YAML, indented 2)."""
    body = HEAD + "data_collector:\n" + textwrap.indent(textwrap.dedent(data_collector), "  ")
    return load_deployment(write(tmp_path, body), workspace)


def one_collection(extra: str = "", name: str = "model_inputs", enabled: str = "'True'") -> str:
    text = f"collections:\n  {name}:\n    enabled: {enabled}\n"
    if extra:
        text += textwrap.indent(textwrap.dedent(extra), "    ")
    return text


def config_error(tmp_path: Path, data_collector: str, workspace=None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        deployment(tmp_path, data_collector, workspace)
    return info.value


# --- the source's example --------------------------------------------------------------


def test_source_example_is_accepted_as_is(tmp_path):
    settings = load_deployment(write(tmp_path, SOURCE_EXAMPLE))
    assert settings.endpoint == "my_endpoint"
    assert settings.deployment == "blue"
    assert settings.rolling_rate is RollingRate.HOUR  # default
    assert settings.sampling_rate == 1.0  # default
    assert settings.source == "/endpoints/my_endpoint/deployments/blue"
    assert settings.model_version == "default"
    assert settings.code_dir == (tmp_path / "scripts").resolve()
    assert settings.scoring_script == "score.py"
    assert settings.model_path is None  # azureml: model reference has no local folder
    assert settings.file == (tmp_path / "deployment.yml").resolve()
    assert settings.pipeline == PipelineSettings()

    assert sorted(settings.collections) == ["model_inputs", "model_outputs"]
    for name in ("model_inputs", "model_outputs"):
        c = settings.collections[name]
        assert c.name == name
        assert c.datastore == DEFAULT_DATASTORE == "workspaceblobstore"
        assert c.path == f"modelDataCollector/my_endpoint/blue/{name}"
        assert c.asset_name == f"my_endpoint-blue-{name}"
        assert c.asset_version == "1"
        assert c.is_payload is False


def test_source_example_notes_list_the_ignored_fields(tmp_path):
    notes = load_deployment(write(tmp_path, SOURCE_EXAMPLE)).notes
    text = "\n".join(notes)
    for ignored in ("environment", "instance_type", "instance_count"):
        assert any(n.startswith(f"{ignored}:") and "ignored" in n for n in notes), text
    assert any(n.startswith("model:") and "iris_mlflow_model" in n for n in notes), text
    # fields that are used are not reported as ignored
    for used in ("name:", "endpoint_name:", "data_collector:", "code_configuration:"):
        assert not any(n.startswith(used) for n in notes), text


def test_unknown_top_level_field_is_a_note_with_suggestion(tmp_path):
    settings = load_deployment(write(tmp_path, HEAD + "instance_typ: x\n"))
    assert any(
        n.startswith("instance_typ:") and "did you mean 'instance_type'" in n
        for n in settings.notes
    ), settings.notes


def test_payload_collections_are_marked(tmp_path):
    settings = deployment(
        tmp_path,
        """\
        collections:
          request: {enabled: 'True'}
          response: {enabled: 'True'}
          model_inputs: {enabled: 'True'}
        """,
    )
    assert settings.collections["request"].is_payload
    assert settings.collections["response"].is_payload
    assert not settings.collections["model_inputs"].is_payload


# --- enabled (R2.2) ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["'True'", "'true'", "true", "True", "'TRUE'"])
def test_enabled_values_that_mean_on(tmp_path, value):
    settings = deployment(tmp_path, one_collection(enabled=value))
    assert list(settings.collections) == ["model_inputs"]


@pytest.mark.parametrize("value", ["'False'", "false", "'false'"])
def test_enabled_values_that_mean_off(tmp_path, value):
    settings = deployment(tmp_path, one_collection(enabled=value))
    assert settings.collections == {}


@pytest.mark.parametrize("value", ["'yes'", "1", "'on'", "null"])
def test_enabled_must_be_a_boolean(tmp_path, value):
    err = config_error(tmp_path, one_collection(enabled=value))
    assert err.field == "data_collector.collections.model_inputs.enabled"
    assert "data_collector.collections.model_inputs.enabled" in str(err)
    assert "true" in str(err) and "false" in str(err)


# --- rolling_rate (R2.3) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "rate"),
    [
        ("Minute", RollingRate.MINUTE),
        ("Hour", RollingRate.HOUR),
        ("Day", RollingRate.DAY),
        ("Month", RollingRate.MONTH),
        ("Year", RollingRate.YEAR),
        ("minute", RollingRate.MINUTE),
        ("DAY", RollingRate.DAY),
        ("yEaR", RollingRate.YEAR),
    ],
)
def test_rolling_rates(tmp_path, value, rate):
    assert deployment(tmp_path, f"rolling_rate: {value}\n").rolling_rate is rate


@pytest.mark.parametrize("value", ["Weekly", "Hours", "5", "''"])
def test_bad_rolling_rate_names_field_and_allowed_values(tmp_path, value):
    err = config_error(tmp_path, f"rolling_rate: {value}\n")
    message = str(err)
    assert err.field == "data_collector.rolling_rate"
    assert "data_collector.rolling_rate" in message
    for allowed in ("Minute", "Hour", "Day", "Month", "Year"):
        assert allowed in message
    assert "deployment.yml" in message  # the file is named too


# --- sampling_rate (R2.4) ---------------------------------------------------------------


@pytest.mark.parametrize(("value", "rate"), [("0", 0.0), ("0.5", 0.5), ("1", 1.0), ("1.0", 1.0)])
def test_sampling_rates(tmp_path, value, rate):
    assert deployment(tmp_path, f"sampling_rate: {value}\n").sampling_rate == rate


@pytest.mark.parametrize("value", ["-0.1", "1.5", "abc", "true", ".nan", "null", "[0.5]"])
def test_bad_sampling_rate_names_field(tmp_path, value):
    err = config_error(tmp_path, f"sampling_rate: {value}\n")
    assert err.field == "data_collector.sampling_rate"
    assert "data_collector.sampling_rate" in str(err)
    assert "0.0 to 1.0" in str(err)


# --- data.name / path / version (R2.5, R6.1) -------------------------------------------


def test_short_datastore_uri(tmp_path):
    settings = deployment(
        tmp_path,
        one_collection("data: {path: 'azureml://datastores/workspaceblobstore/paths/a/b'}\n"),
    )
    c = settings.collections["model_inputs"]
    assert (c.datastore, c.path) == ("workspaceblobstore", "a/b")
    assert c.asset_name == "my_endpoint-blue-model_inputs"
    assert c.asset_version == "1"


def test_long_datastore_uri_ignores_workspace_part(tmp_path):
    uri = (
        "azureml://subscriptions/x/resourcegroups/y/workspaces/z/"
        "datastores/workspaceblobstore/paths/a/b"
    )
    settings = deployment(tmp_path, one_collection(f"data: {{path: '{uri}'}}\n"))
    c = settings.collections["model_inputs"]
    assert (c.datastore, c.path) == ("workspaceblobstore", "a/b")


def test_parse_datastore_uri_forms():
    assert parse_datastore_uri("azureml://datastores/ds/paths/p/q/") == ("ds", "p/q")
    assert parse_datastore_uri(
        "azureml://subscriptions/s/resourceGroups/r/providers/"
        "Microsoft.MachineLearningServices/workspaces/w/datastores/ds/paths/p"
    ) == ("ds", "p")
    for bad in ("azureml://datastores/ds/paths/a/../b", "azureml://datastores/ds/paths/"):
        with pytest.raises(ConfigError, match="segment"):
            parse_datastore_uri(bad)


@pytest.mark.parametrize(
    "path",
    ["/tmp/data", "https://acct.blob.core.windows.net/c/p", "azureml://datastores/ds", "12"],
)
def test_data_path_must_be_a_datastore_uri(tmp_path, path):
    err = config_error(tmp_path, one_collection(f"data: {{path: '{path}'}}\n"))
    assert err.field == "data_collector.collections.model_inputs.data.path"
    assert "is not a datastore URI" in str(err)
    assert "azureml://datastores/<datastore>/paths/<path>" in str(err)


def test_unknown_datastore_is_named_with_suggestion(tmp_path):
    err = config_error(
        tmp_path,
        one_collection("data: {path: 'azureml://datastores/workspaceblobstor/paths/x'}\n"),
    )
    assert err.field == "data_collector.collections.model_inputs.data.path"
    assert "unknown datastore 'workspaceblobstor'" in str(err)
    assert "did you mean 'workspaceblobstore'" in str(err)


def test_workspace_datastore_makes_it_known(tmp_path):
    ws_root = tmp_path / "ws"
    ws_root.mkdir()
    (ws_root / "workspace.yml").write_text(
        "datastores:\n  mystore:\n    type: local\n    path: /tmp/mystore\n"
    )
    ws = load_workspace(ws_root)
    assert set(ws.datastores) == {"workspaceblobstore", "mystore"}
    assert ws.datastores["mystore"].type == "local"
    assert ws.datastores["mystore"].path == "/tmp/mystore"
    block = one_collection("data: {path: 'azureml://datastores/mystore/paths/p/q'}\n")
    settings = deployment(tmp_path, block, ws)
    c = settings.collections["model_inputs"]
    assert (c.datastore, c.path) == ("mystore", "p/q")
    # without the workspace, the same file names an unknown datastore
    with pytest.raises(ConfigError, match="unknown datastore 'mystore'"):
        deployment(tmp_path, block)


def test_data_name_and_version_are_used_for_the_asset(tmp_path):
    settings = deployment(
        tmp_path,
        one_collection(
            """\
            data:
              name: my_inputs_asset
              path: azureml://datastores/workspaceblobstore/paths/custom/inputs
              version: 3
            """
        ),
    )
    c = settings.collections["model_inputs"]
    assert (c.asset_name, c.asset_version) == ("my_inputs_asset", "3")
    assert c.path == "custom/inputs"


def test_unknown_data_key_is_an_error(tmp_path):
    err = config_error(tmp_path, one_collection("data: {nmae: x}\n"))
    assert err.field == "data_collector.collections.model_inputs.data.nmae"
    assert "did you mean 'name'" in str(err)


# --- keys and names -------------------------------------------------------------------


def test_misspelled_collection_key_suggests_the_right_one(tmp_path):
    err = config_error(tmp_path, "collections:\n  model_inputs:\n    enable: 'True'\n")
    assert err.field == "data_collector.collections.model_inputs.enable"
    assert "did you mean 'enabled'" in str(err)


def test_misspelled_data_collector_key(tmp_path):
    err = config_error(tmp_path, "rolling_rat: Hour\n")
    assert err.field == "data_collector.rolling_rat"
    assert "did you mean 'rolling_rate'" in str(err)


@pytest.mark.parametrize("missing", ["name", "endpoint_name"])
def test_missing_name_or_endpoint_is_an_error(tmp_path, missing):
    text = "\n".join(line for line in HEAD.splitlines() if not line.startswith(f"{missing}:"))
    with pytest.raises(ConfigError) as info:
        load_deployment(write(tmp_path, text + "\n"))
    assert info.value.field == missing
    assert "is required" in str(info.value)


@pytest.mark.parametrize(
    ("missing", "text"),
    [
        ("name", "name:\nendpoint_name: my_endpoint\n"),
        ("endpoint_name", "name: blue\nendpoint_name:\n"),
    ],
    ids=["name", "endpoint_name"],
)
def test_empty_name_or_endpoint_is_an_error(tmp_path, missing, text):
    # `name:` with no value is YAML null: it must not become a deployment called "None".
    with pytest.raises(ConfigError) as info:
        load_deployment(write(tmp_path, text))
    assert info.value.field == missing


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "a/b"),
        ("name", ".."),
        ("endpoint_name", "../up"),
        ("endpoint_name", "x/../y"),
        ("name", ".hidden"),
    ],
)
def test_bad_names_are_rejected(tmp_path, field, value):
    head = {"name": "blue", "endpoint_name": "my_endpoint", field: value}
    text = "".join(f"{k}: '{v}'\n" for k, v in head.items())
    with pytest.raises(ConfigError) as info:
        load_deployment(write(tmp_path, text))
    assert info.value.field == field
    assert "not a valid name" in str(info.value)


@pytest.mark.parametrize("name", ["'../x'", "'a/b'", "'..'"])
def test_bad_collection_names_are_rejected(tmp_path, name):
    err = config_error(tmp_path, one_collection(name=name))
    assert "not a valid name" in str(err)
    assert err.field is not None and err.field.startswith("data_collector.collections.")


def test_bad_asset_name_is_rejected(tmp_path):
    err = config_error(tmp_path, one_collection("data: {name: 'a/b'}\n"))
    assert err.field == "data_collector.collections.model_inputs.data.name"


# --- files ----------------------------------------------------------------------------


def test_bad_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "name: blue\nendpoint_name: my_endpoint\ndata_collector: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_deployment(path)
    message = str(info.value)
    assert "not valid YAML" in message
    assert "line 4" in message or "line 3" in message
    assert str(path) in message


def test_bad_yaml_line_number_is_exact(tmp_path):
    path = write(tmp_path, "name: blue\nendpoint_name: my_endpoint\nkey: value: other\n")
    with pytest.raises(ConfigError, match=r"at line 3, column \d+"):
        load_deployment(path)


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_deployment(tmp_path / "nope.yml")
    assert "not found" in str(info.value)
    assert "nope.yml" in str(info.value)


def test_file_must_be_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_deployment(write(tmp_path, "- a\n- b\n"))


def test_missing_scoring_script_is_an_error(tmp_path):
    text = SOURCE_EXAMPLE.replace("scoring_script: score.py", "scoring_script: missing.py")
    with pytest.raises(ConfigError) as info:
        load_deployment(write(tmp_path, text))
    assert info.value.field == "code_configuration.scoring_script"


def test_missing_code_folder_is_an_error(tmp_path):
    text = SOURCE_EXAMPLE.replace("code: scripts", "code: nowhere")
    with pytest.raises(ConfigError) as info:
        load_deployment(write(tmp_path, text))
    assert info.value.field == "code_configuration.code"


# --- pipeline block -------------------------------------------------------------------


def test_pipeline_block_is_parsed(tmp_path):
    settings = deployment(tmp_path, "modeltap: {flush_interval: 2, overflow: drop}\n")
    assert settings.pipeline.flush_interval == 2.0
    assert isinstance(settings.pipeline.flush_interval, float)
    assert settings.pipeline.overflow == "drop"
    assert settings.pipeline.batch_records == PipelineSettings().batch_records


def test_pipeline_block_model_version_and_source(tmp_path):
    settings = deployment(tmp_path, "modeltap: {model_version: '7', source: /custom/src}\n")
    assert settings.model_version == "7"
    assert settings.source == "/custom/src"
    assert settings.pipeline == PipelineSettings()


def test_bad_overflow_lists_policies(tmp_path):
    err = config_error(tmp_path, "modeltap: {overflow: spill}\n")
    assert err.field == "data_collector.modeltap.overflow"
    assert "block, drop, raise" in str(err)


@pytest.mark.parametrize("value", ["0", "-1", "abc", "true", "null", ".nan"])
@pytest.mark.parametrize("key", ["flush_interval", "block_timeout"])
def test_bad_pipeline_number(tmp_path, key, value):
    # NaN compares false with everything: a NaN interval or timeout is never reached.
    err = config_error(tmp_path, f"modeltap: {{{key}: {value}}}\n")
    assert err.field == f"data_collector.modeltap.{key}"
    assert "positive float" in str(err)


@pytest.mark.parametrize("value", ["0", "-5", "abc", ".inf", ".nan"])
def test_bad_pipeline_count(tmp_path, value):
    # int(float("inf")) raises OverflowError: it must still be a ConfigError, not a crash.
    err = config_error(tmp_path, f"modeltap: {{buffer_records: {value}}}\n")
    assert err.field == "data_collector.modeltap.buffer_records"
    assert "positive int" in str(err)


def test_unknown_pipeline_key(tmp_path):
    err = config_error(tmp_path, "modeltap: {flush_intervall: 2}\n")
    assert err.field == "data_collector.modeltap.flush_intervall"
    assert "did you mean 'flush_interval'" in str(err)


# --- workspace file -------------------------------------------------------------------


def test_workspace_without_file_has_the_default_datastore(tmp_path):
    ws = load_workspace(tmp_path)
    assert ws.root == tmp_path.resolve()
    assert list(ws.datastores) == ["workspaceblobstore"]
    assert ws.datastores["workspaceblobstore"].type == "local"
    assert ws.datastores["workspaceblobstore"].path == "datastores/workspaceblobstore"


def test_workspace_unknown_datastore_type(tmp_path):
    (tmp_path / "workspace.yml").write_text("datastores:\n  s:\n    type: ftp\n    path: x\n")
    with pytest.raises(ConfigError) as info:
        load_workspace(tmp_path)
    assert info.value.field == "datastores.s.type"
    assert "'ftp' is not a datastore type" in str(info.value)
    assert "allowed: local" in str(info.value)


@pytest.mark.parametrize("spec", ["{type: local}", "{type: local, path: ''}"])
def test_workspace_local_datastore_needs_a_path(tmp_path, spec):
    (tmp_path / "workspace.yml").write_text(f"datastores:\n  s: {spec}\n")
    with pytest.raises(ConfigError) as info:
        load_workspace(tmp_path)
    assert info.value.field == "datastores.s.path"


def test_workspace_unknown_key(tmp_path):
    (tmp_path / "workspace.yml").write_text("datastore: {}\n")
    with pytest.raises(ConfigError) as info:
        load_workspace(tmp_path)
    assert info.value.field == "workspace.datastore"
    assert "did you mean 'datastores'" in str(info.value)


def test_workspace_bad_yaml(tmp_path):
    (tmp_path / "workspace.yml").write_text("datastores: {a: [\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_workspace(tmp_path)


# --- CLI ------------------------------------------------------------------------------


def test_cli_prints_config_error_in_one_line_and_exits_2(tmp_path):
    bad = write(
        tmp_path,
        SOURCE_EXAMPLE.replace("data_collector:\n", "data_collector:\n  rolling_rate: Weekly\n"),
        "bad.yml",
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "modeltap.cli",
            "serve",
            "-f",
            str(bad),
            "--workspace",
            str(tmp_path / "ws"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "data_collector.rolling_rate" in proc.stderr
    assert "Weekly" in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("modeltap: error:")]
    assert len(errors) == 1
    assert "Minute, Hour, Day, Month, Year" in errors[0]


def test_name_with_trailing_newline_is_rejected(tmp_path):
    # A quoted "ep\n" would become a folder name ending in a newline.
    with pytest.raises(ConfigError) as info:
        load_deployment(write(tmp_path, 'name: blue\nendpoint_name: "ep\\n"\n'))
    assert info.value.field == "endpoint_name"
