"""The workspace file's cloud datastores (SPEC R7): accepted shapes, errors naming the
field, credentials only from the environment, and secrets never shown."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from modeltap.config import load_workspace
from modeltap.errors import ConfigError
from modeltap.storage import open_datastore
from modeltap.storage.objectstore import AZURITE_KEY, parse_connection_string, redact

KEY = "c2VjcmV0LWFjY291bnQta2V5LW5vYm9keS1zaG91bGQtc2Vl"  # base64, a made-up secret
SAS = "sv=2022-11-02&ss=b&srt=co&sp=rwl&se=2030-01-01T00:00:00Z&sig=AbCdEf%2BsEcReT%3D"

EXAMPLE = """\
datastores:
  workspaceblobstore: {type: local, path: datastores/workspaceblobstore}
  lake:
    type: azure_blob
    container: collected
    account_url: https://myaccount.blob.core.windows.net/
  lake2:
    type: azure_blob
    container: collected
    connection_string_env: AZURE_STORAGE_CONNECTION_STRING
    prefix: /some/folder/
    timeout: 30
    max_retries: 0
  s3lake:
    type: s3
    bucket: collected
    region: us-east-1
    endpoint_url: http://127.0.0.1:5000
    prefix: some/folder
"""


def workspace(tmp_path: Path, text: str):
    (tmp_path / "workspace.yml").write_text(text)
    return load_workspace(tmp_path)


def error(tmp_path: Path, spec: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        workspace(tmp_path, f"datastores:\n  lake: {spec}\n")
    return info.value


def test_both_cloud_types_parse(tmp_path):
    ws = workspace(tmp_path, EXAMPLE)
    assert set(ws.datastores) == {"workspaceblobstore", "lake", "lake2", "s3lake"}
    lake = ws.datastores["lake"]
    assert lake.type == "azure_blob"
    assert lake.options == {
        "container": "collected",
        "account_url": "https://myaccount.blob.core.windows.net",
    }
    assert ws.datastores["lake2"].options == {
        "container": "collected",
        "connection_string_env": "AZURE_STORAGE_CONNECTION_STRING",
        "prefix": "some/folder",
        "timeout": 30,
        "max_retries": 0,
    }
    assert ws.datastores["s3lake"].options == {
        "bucket": "collected",
        "region": "us-east-1",
        "endpoint_url": "http://127.0.0.1:5000",
        "prefix": "some/folder",
    }


def test_account_url_datastore_opens_without_secrets(tmp_path):
    ws = workspace(tmp_path, EXAMPLE)
    store = open_datastore("lake", ws.datastores["lake"], tmp_path)
    url = store.url("some/folder/2026/01/01/x.jsonl")
    assert url == "https://myaccount.blob.core.windows.net/collected/some/folder/2026/01/01/x.jsonl"
    s3 = open_datastore("s3lake", ws.datastores["s3lake"], tmp_path)
    assert s3.url("a/b.jsonl") == "s3://collected/some/folder/a/b.jsonl"


@pytest.mark.parametrize(
    ("spec", "field", "says"),
    [
        (
            "{type: azure_blob, contaner: c, account_url: 'https://a.b'}",
            "lake.contaner",
            "'container'",
        ),
        ("{type: azure_blob, account_url: 'https://a.b'}", "lake.container", "container name"),
        (
            "{type: azure_blob, container: Bad_Name, account_url: 'https://a.b'}",
            "lake.container",
            "'Bad_Name'",
        ),
        ("{type: azure_blob, container: abc}", "lake.account_url", "exactly one of"),
        (
            "{type: azure_blob, container: abc, account_url: 'https://a',"
            " connection_string_env: X}",
            "lake.connection_string_env",
            "exactly one of",
        ),
        (
            "{type: azure_blob, container: abc, account_url: 'ftp://a.b'}",
            "lake.account_url",
            "https://",
        ),
        ("{type: azure_blob, container: abc, account_url: 3}", "lake.account_url", "URL"),
        (
            "{type: azure_blob, container: abc, account_url: 'https://a.b', use_azure_cli: maybe}",
            "lake.use_azure_cli",
            "boolean",
        ),
        ("{type: s3, region: us-east-1}", "lake.bucket", "bucket name"),
        ("{type: s3, bucket: a_b}", "lake.bucket", "'a_b'"),
        (
            "{type: s3, bucket: abc, endpoint_url: 'localhost:5000'}",
            "lake.endpoint_url",
            "https://",
        ),
        ("{type: s3, bucket: abc, regoin: x}", "lake.regoin", "'region'"),
        ("{type: s3, bucket: abc, path: x}", "lake.path", "allowed: bucket, connect_timeout"),
        ("{type: s3, bucket: abc, prefix: 'a/../b'}", "lake.prefix", "'..'"),
        ("{type: s3, bucket: abc, prefix: ''}", "lake.prefix", "folder"),
        ("{type: s3, bucket: abc, timeout: 0}", "lake.timeout", "positive number"),
        ("{type: s3, bucket: abc, timeout: '5s'}", "lake.timeout", "positive number"),
        ("{type: s3, bucket: abc, max_retries: 1.5}", "lake.max_retries", "whole number"),
        ("{type: s3, bucket: abc, max_retries: true}", "lake.max_retries", "whole number"),
        ("{type: gcs, bucket: abc}", "lake.type", "allowed: local, azure_blob, s3"),
    ],
)
def test_bad_values_name_the_field(tmp_path, spec, field, says):
    err = error(tmp_path, spec)
    assert err.field == f"datastores.{field}"
    assert says in str(err)
    assert str(tmp_path / "workspace.yml") in str(err)


def test_secrets_in_the_file_are_refused_and_not_echoed(tmp_path):
    conn = f"DefaultEndpointsProtocol=https;AccountName=a;AccountKey={KEY}"
    err = error(tmp_path, f"{{type: azure_blob, container: abc, connection_string_env: '{conn}'}}")
    assert err.field == "datastores.lake.connection_string_env"
    assert "name of an environment variable" in str(err)
    assert KEY not in str(err) and "AccountKey" not in str(err)
    url = f"https://a.blob.core.windows.net/?{SAS}"
    err = error(tmp_path, f"{{type: azure_blob, container: abc, account_url: '{url}'}}")
    assert err.field == "datastores.lake.account_url"
    assert "must not carry credentials" in str(err) and "sig=" not in str(err)
    err = error(tmp_path, "{type: s3, bucket: abc, endpoint_url: 'http://key:secret@h:1'}")
    assert err.field == "datastores.lake.endpoint_url" and "key:secret" not in str(err)


# --- credentials, looked up when the datastore opens -------------------------------------


def lake(tmp_path: Path, env: str = "MODELTAP_TEST_CONN"):
    spec = f"{{type: azure_blob, container: abc, connection_string_env: {env}}}"
    return workspace(tmp_path, f"datastores:\n  lake: {spec}\n").datastores["lake"]


def test_connection_string_env_not_set(tmp_path, monkeypatch):
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    settings = lake(tmp_path, "AZURE_STORAGE_CONNECTION_STRING")  # reading the file is fine
    with pytest.raises(ConfigError) as info:
        open_datastore("lake", settings, tmp_path)
    assert str(info.value).endswith(
        "datastores.lake.connection_string_env: "
        "environment variable AZURE_STORAGE_CONNECTION_STRING is not set"
    )
    assert info.value.source == str(tmp_path / "workspace.yml")


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (f"AccountName=a;AccountKey={KEY};BlobEndpoint", "part 3 is not Key=Value"),
        (f"{KEY}", "part 1 is not Key=Value"),
        ("AccountName=a;BlobEndpoint=https://a.blob.core.windows.net", "neither AccountKey nor"),
        (f"AccountName=a;AccountKey={KEY}!!", "AccountKey is not base64"),
        (f"AccountKey={KEY}", "neither AccountName nor BlobEndpoint"),
    ],
)
def test_malformed_connection_string_never_shows_the_key(tmp_path, monkeypatch, value, says):
    monkeypatch.setenv("MODELTAP_TEST_CONN", value)
    with pytest.raises(ConfigError) as info:
        open_datastore("lake", lake(tmp_path), tmp_path)
    assert info.value.field == "datastores.lake.connection_string_env"
    assert says in str(info.value)
    assert "environment variable MODELTAP_TEST_CONN" in str(info.value)
    assert KEY not in str(info.value) and KEY[:12] not in str(info.value)


def test_connection_string_forms():
    fields = parse_connection_string(
        f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={KEY};"
        "EndpointSuffix=core.chinacloudapi.cn"
    )
    assert fields["BlobEndpoint"] == "https://acct.blob.core.chinacloudapi.cn"
    assert fields["AccountKey"] == KEY
    dev = parse_connection_string("UseDevelopmentStorage=true")
    assert dev["AccountName"] == "devstoreaccount1" and dev["AccountKey"] == AZURITE_KEY
    assert dev["BlobEndpoint"] == "http://127.0.0.1:10000/devstoreaccount1"
    sas = parse_connection_string(
        f"BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature={SAS}"
    )
    assert sas["AccountName"] == "acct" and sas["SharedAccessSignature"] == SAS
    # keys are case-insensitive, unknown ones (other services) ignored
    odd = parse_connection_string(
        f"accountname=x;ACCOUNTKEY={KEY};QueueEndpoint=https://x.queue.core.windows.net"
    )
    assert odd == {
        "AccountName": "x",
        "AccountKey": KEY,
        "BlobEndpoint": "https://x.blob.core.windows.net",
    }


def test_sas_connection_string_opens_and_its_url_has_no_token(tmp_path, monkeypatch):
    monkeypatch.setenv(
        "MODELTAP_TEST_CONN",
        f"BlobEndpoint=https://acct.blob.core.windows.net;SharedAccessSignature=?{SAS}",
    )
    store = open_datastore("lake", lake(tmp_path), tmp_path)
    assert store.url("a/b") == "https://acct.blob.core.windows.net/abc/a/b"


# --- redaction --------------------------------------------------------------------------


def test_redact_known_secrets_and_credential_shapes():
    assert redact(f"bad key {KEY} here", [KEY]) == "bad key *** here"
    assert redact("x AccountName=a;AccountKey=abc+/==;BlobEndpoint=h") == (
        "x AccountName=a;AccountKey=***;BlobEndpoint=h"
    )
    assert redact(f"GET https://a/c/p?{SAS} failed") == (
        "GET https://a/c/p?sv=2022-11-02&ss=b&srt=co&sp=rwl&se=2030-01-01T00:00:00Z&sig=*** failed"
    )
    assert (
        redact("Authorization: SharedKey acct:c2lnbmF0dXJl") == "Authorization: SharedKey acct:***"
    )
    assert redact("Authorization: Bearer eyJ0eXAi.abc.def") == "Authorization: Bearer ***"
    assert redact('{"secret_access_key": "wJalrXUtnFEMI"}') == '{"secret_access_key": "***"}'
    assert redact("X-Amz-Signature=abcdef&X-Amz-Credential=AKIA/2024") == (
        "X-Amz-Signature=***&X-Amz-Credential=***"
    )
    # percent-encoded forms of a known secret too
    assert redact("sv=1&sig=a%2Bb%3D", ["a+b="]) == "sv=1&sig=***"
    assert redact("nothing secret: path a/b.jsonl") == "nothing secret: path a/b.jsonl"


def test_errors_shown_in_the_docs_are_the_errors_given(tmp_path, monkeypatch):
    page = Path(__file__).resolve().parents[1] / "docs" / "datastores.md"
    unknown, unset = re.findall(r"^```text\n(.*?)\n```", page.read_text(), re.S | re.M)
    err = error(tmp_path, "{type: azure_blob, contaner: c, account_url: 'https://a.b'}")
    assert unknown.endswith(str(err).split("workspace.yml: ", 1)[1])
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    with pytest.raises(ConfigError) as info:
        open_datastore("lake", lake(tmp_path, "AZURE_STORAGE_CONNECTION_STRING"), tmp_path)
    assert unset.endswith(str(info.value).split("workspace.yml: ", 1)[1])


def test_error_summary_is_one_redacted_line():
    from modeltap.storage.objectstore import _summary

    long = Exception("x" * 390 + f" AccountKey {KEY} end\nDebug source:\n{KEY}")
    line = _summary(long, [KEY])
    assert line.startswith("Exception: xxx") and "\n" not in line
    assert KEY[:6] not in line
    xml = Exception("403 Forbidden: <?xml version='1.0'?><Error><Code>AuthFailure</Code></Error>")
    assert _summary(xml, []) == "Exception: 403 Forbidden (AuthFailure)"
