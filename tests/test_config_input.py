"""Careless and hostile configuration files: one clear error naming the file and the field,
never a traceback, never gigabytes of memory (R2.7)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from modeltap.config import load_deployment, load_workspace, make_deployment
from modeltap.errors import ConfigError
from modeltap.spool import Spool
from tests.conftest import SOURCE_DEPLOYMENT
from tests.test_config import HEAD, config_error, one_collection, write

# --- the bytes of the file --------------------------------------------------------------


def test_deployment_file_that_is_not_utf8_is_one_error_naming_it(tmp_path):
    path = tmp_path / "deployment.yml"
    path.write_bytes(HEAD.encode() + b"description: caf\xe9\n")  # Latin-1, not UTF-8
    with pytest.raises(ConfigError) as info:
        load_deployment(path)
    assert str(path) in str(info.value)
    assert "not UTF-8" in str(info.value) and "0xe9" in str(info.value)


def test_workspace_file_that_is_not_utf8_is_one_error_naming_it(tmp_path):
    (tmp_path / "workspace.yml").write_bytes(b"datastores: {}\n# \xff\xfe\n")
    with pytest.raises(ConfigError) as info:
        load_workspace(tmp_path)
    assert str(tmp_path / "workspace.yml") in str(info.value)
    assert "not UTF-8" in str(info.value)


def test_duplicate_keys_are_an_error_not_last_wins(tmp_path):
    text = HEAD + "data_collector:\n  sampling_rate: 0.5\n  sampling_rate: 1.0\n"
    with pytest.raises(ConfigError) as info:
        load_deployment(write(tmp_path, text))
    message = str(info.value)
    assert "duplicate key 'sampling_rate'" in message
    assert "line 4" in message and "line 5" in message


def test_duplicate_datastores_are_an_error(tmp_path):
    (tmp_path / "workspace.yml").write_text(
        "datastores:\n  a: {type: local, path: x}\n  a: {type: local, path: y}\n"
    )
    with pytest.raises(ConfigError, match="duplicate key 'a'"):
        load_workspace(tmp_path)


def test_merge_keys_may_override(tmp_path):
    # `<<: *base` then an explicit key is YAML's documented override, not a duplicate.
    text = HEAD + textwrap.dedent("""\
        data_collector:
          collections:
            model_inputs: &on {enabled: 'True'}
            model_outputs:
              <<: *on
              enabled: 'False'
        """)
    settings = load_deployment(write(tmp_path, text))
    assert list(settings.collections) == ["model_inputs"]


BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


@pytest.mark.parametrize("name", ["deployment.yml", "workspace.yml"])
def test_an_alias_bomb_is_refused_without_expanding_it(tmp_path, name):
    (tmp_path / name).write_text(HEAD + "tags:\n" + textwrap.indent(BILLION_LAUGHS, "  "))
    with pytest.raises(ConfigError) as info:
        if name == "workspace.yml":
            load_workspace(tmp_path)
        else:
            load_deployment(tmp_path / name)
    assert "aliases" in str(info.value) and str(tmp_path / name) in str(info.value)


def test_a_recursive_alias_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="refers to itself"):
        load_deployment(write(tmp_path, HEAD + "tags: &t [1, *t]\n"))


def test_a_few_aliases_are_fine(tmp_path):
    text = HEAD + textwrap.dedent("""\
        data_collector:
          collections:
            model_inputs: &on {enabled: 'True'}
            model_outputs: *on
            request: *on
        """)
    assert len(load_deployment(write(tmp_path, text)).collections) == 3


# --- numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, value",
    [
        ("flush_interval", "1.0e+300"),
        ("block_timeout", "1.0e+12"),
        ("batch_window", "100000"),
        ("buffer_records", "1.0e+300"),
        ("spool_bytes", "1.0e+30"),
    ],
)
def test_absurd_pipeline_numbers_are_refused(tmp_path, key, value):
    err = config_error(tmp_path, f"modeltap: {{{key}: {value}}}\n")
    assert err.field == f"data_collector.modeltap.{key}"
    assert "up to" in str(err)


def test_pipeline_numbers_up_to_the_limit_are_accepted():
    settings = make_deployment(
        endpoint="ep",
        deployment="d",
        collections=["model_inputs"],
        pipeline={"flush_interval": 86400, "block_timeout": 86400, "spool_bytes": 2**50},
    )
    assert settings.pipeline.flush_interval == 86400


@pytest.mark.parametrize(
    "key, value", [("timeout", "1.0e+300"), ("retry_timeout", "1.0e+10"), ("max_retries", "1000")]
)
def test_absurd_datastore_numbers_are_refused(tmp_path, key, value):
    (tmp_path / "workspace.yml").write_text(
        f"datastores:\n  lake: {{type: s3, bucket: abc, {key}: {value}}}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_workspace(tmp_path)
    assert info.value.field == f"datastores.lake.{key}"
    assert "up to" in str(info.value)


# --- names and paths --------------------------------------------------------------------


def test_a_bad_datastore_name_names_the_workspace_file(tmp_path):
    (tmp_path / "workspace.yml").write_text("datastores:\n  'my lake': {type: local, path: x}\n")
    with pytest.raises(ConfigError) as info:
        load_workspace(tmp_path)
    assert info.value.field == "datastores.my lake"
    assert str(tmp_path / "workspace.yml") in str(info.value)


def test_an_unknown_datastore_says_which_workspace_file_to_add_it_to(tmp_path):
    ws = load_workspace(tmp_path / "ws")
    err = config_error(
        tmp_path, one_collection("data: {path: 'azureml://datastores/lake/paths/x'}"), ws
    )
    assert str(tmp_path / "ws" / "workspace.yml") in str(err)


def long_path(n: int) -> str:
    return "azureml://datastores/workspaceblobstore/paths/" + "/".join(["a" * 9] * n)


def test_a_data_path_too_long_to_spool_is_refused_when_the_file_loads(tmp_path):
    err = config_error(tmp_path, one_collection(f"data: {{path: '{long_path(16)}'}}"))
    assert err.field == "data_collector.collections.model_inputs.data.path"
    assert "too long" in str(err)


def test_the_longest_data_path_accepted_spools(tmp_path):
    """The limit is the spool's: the longest path config accepts, in the longest partition
    (Minute) and with the longest object names, is a name the spool takes."""
    n = 1
    while True:
        try:
            settings = make_deployment(
                endpoint="ep",
                deployment="d",
                collections={"c": {"enabled": True, "data": {"path": long_path(n + 1)}}},
            )
        except ConfigError:
            break
        n += 1
    prefix = make_deployment(
        endpoint="ep",
        deployment="d",
        collections={"c": {"enabled": True, "data": {"path": long_path(n)}}},
    ).collections["c"]
    spool = Spool(tmp_path / "spool", 1 << 30)
    seq = "9" * 8
    for name in (f"{'f' * 12}-4194304-{seq}.jsonl", "0" * 36):  # instance id, blob id
        path = f"{prefix.path}/2026/11/25/10/59/{name}"
        spool.add("workspaceblobstore", path, b"{}\n", 1)
    spool.close()
    assert len(prefix.path) > 100 and settings is not None


def test_a_long_default_path_from_long_names_is_refused(tmp_path):
    name = "n" * 80
    with pytest.raises(ConfigError, match="too long"):
        make_deployment(endpoint=name, deployment=name, collections=["model_inputs"])


# --- secrets ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://a.blob.core.windows.net/#sig=AbCdEf",
        "https://a.blob.core.windows.net/;sig=AbCdEf",
        "https://a.blob.core.windows.net/c;se=2030&sig=AbCdEf",
    ],
)
def test_signatures_in_a_fragment_or_parameters_are_refused(tmp_path, url):
    (tmp_path / "workspace.yml").write_text(
        f"datastores:\n  lake: {{type: azure_blob, container: abc, account_url: '{url}'}}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_workspace(tmp_path)
    assert info.value.field == "datastores.lake.account_url"
    assert "must not carry credentials" in str(info.value)
    assert "AbCdEf" not in str(info.value)


# --- the CLI: one line, exit 2 ----------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modeltap.cli", *args], capture_output=True, text=True, timeout=60
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("modeltap: error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def test_cli_non_utf8_and_duplicate_keys_are_one_line(tmp_path):
    bad = write(tmp_path, "")  # with its scripts folder
    bad.write_bytes(SOURCE_DEPLOYMENT.encode() + b"description: \xe9\n")
    line = one_error_line(run_cli("serve", "-f", str(bad), "--workspace", str(tmp_path / "ws")))
    assert str(bad) in line and "UTF-8" in line
    bad.write_text(SOURCE_DEPLOYMENT + "name: green\n")
    line = one_error_line(run_cli("serve", "-f", str(bad), "--workspace", str(tmp_path / "ws")))
    assert "duplicate key 'name'" in line


def test_cli_unset_credential_without_the_sidecar_is_one_line(tmp_path):
    """serve --no-agent used to start uvicorn and die in the worker with a traceback."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "workspace.yml").write_text(
        "datastores:\n  lake:\n    type: azure_blob\n    container: abc\n"
        "    connection_string_env: MODELTAP_TEST_UNSET_CONNECTION\n"
    )
    path = "azureml://datastores/lake/paths/x"
    text = SOURCE_DEPLOYMENT.replace(
        "    model_inputs:\n      enabled: 'True'\n",
        f"    model_inputs:\n      enabled: 'True'\n      data: {{path: '{path}'}}\n",
    )
    deployment = write(tmp_path, text)
    for command in (["serve", "--no-agent"], ["serve"], ["agent"]):
        proc = run_cli(*command, "-f", str(deployment), "--workspace", str(ws), "--port", "0")
        line = one_error_line(proc)
        assert "MODELTAP_TEST_UNSET_CONNECTION is not set" in line
        assert "datastores.lake.connection_string_env" in line
        assert str(ws / "workspace.yml") in line
