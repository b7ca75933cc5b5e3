"""The datastore table (storage/registry.py) drives the workspace file: its types, their
options and the "allowed" lists; reading the file never needs a cloud SDK. Also the
names `modeltap.config` keeps for other layers, and the retention durations it parses."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import modeltap.config
from modeltap.config import DatastoreSettings, load_workspace, parse_retention
from modeltap.errors import ConfigError
from modeltap.storage import LocalStorage, Storage, open_datastore
from modeltap.storage.registry import DATASTORE_TYPES, DatastoreType
from tests.test_config import config_error


def test_the_table_has_one_row_per_documented_type():
    assert list(DATASTORE_TYPES) == ["local", "azure_blob", "s3"]
    extras = {row.name: (row.extra, row.sdk) for row in DATASTORE_TYPES.values()}
    assert extras == {
        "local": ("", ""),
        "azure_blob": ("azure", "obstore"),
        "s3": ("s3", "obstore"),
    }
    docs = (Path(__file__).parents[1] / "docs" / "datastores.md").read_text()
    for name in DATASTORE_TYPES:
        assert f"| `{name}` |" in docs


def _check_memo(spec: dict[str, Any], where: str, src: str) -> dict[str, Any]:
    if not isinstance(spec.get("folder"), str):
        raise ConfigError("needs a folder", field=f"{where}.folder", source=src)
    return {"path": spec["folder"], "note": spec.get("note", "")}


def _open_memo(name: str, settings: DatastoreSettings, workspace: Path) -> Storage:
    return LocalStorage(workspace / settings.path, name=name)


MEMO = DatastoreType("memo", frozenset({"folder", "note"}), _check_memo, _open_memo)


def test_a_new_row_is_read_checked_listed_and_opened(tmp_path, monkeypatch):
    """Nothing outside the table lists the types: a row added to it is a datastore type."""
    monkeypatch.setitem(DATASTORE_TYPES, "memo", MEMO)
    (tmp_path / "workspace.yml").write_text(
        "datastores:\n  notes: {type: memo, folder: kept, note: hi}\n"
    )
    settings = load_workspace(tmp_path).datastores["notes"]
    assert settings == DatastoreSettings("memo", "kept", {"note": "hi"})
    store = open_datastore("notes", settings, tmp_path)
    store.put("a.txt", b"x")
    assert (tmp_path / "kept" / "a.txt").read_bytes() == b"x"

    (tmp_path / "workspace.yml").write_text("datastores:\n  notes: {type: memo, fold: kept}\n")
    with pytest.raises(ConfigError) as info:  # the row's keys, with a suggestion
        load_workspace(tmp_path)
    assert info.value.field == "datastores.notes.fold"
    assert "did you mean 'folder'" in str(info.value) and "allowed: folder, note" in str(info.value)

    (tmp_path / "workspace.yml").write_text("datastores:\n  notes: {type: ftp}\n")
    with pytest.raises(ConfigError) as info:
        load_workspace(tmp_path)
    assert "allowed: local, azure_blob, s3, memo" in str(info.value)
    with pytest.raises(ConfigError) as info:
        open_datastore("notes", DatastoreSettings("ftp"), tmp_path)
    assert "allowed: local, azure_blob, s3, memo" in str(info.value)
    assert info.value.field == "datastores.notes.type"


@pytest.mark.parametrize("kind", [["s3"], {"a": 1}, None, 3])
def test_a_type_that_is_not_a_name_is_one_error(tmp_path, kind):
    (tmp_path / "workspace.yml").write_text(f"datastores:\n  lake: {{type: {json.dumps(kind)}}}\n")
    with pytest.raises(ConfigError) as info:
        load_workspace(tmp_path)
    assert info.value.field == "datastores.lake.type"
    assert "is not a datastore type; allowed: local, azure_blob, s3" in str(info.value)


def test_reading_a_workspace_with_cloud_datastores_imports_no_sdk(tmp_path):
    """obstore is an optional extra: the file is checked without it (and config needs no
    pydantic)."""
    (tmp_path / "workspace.yml").write_text(
        "datastores:\n"
        "  lake: {type: azure_blob, container: abc, account_url: 'https://a.blob.x'}\n"
        "  bucket: {type: s3, bucket: abc, max_retries: 2}\n"
    )
    code = f"""
        import json, sys
        import modeltap
        from modeltap.config import load_workspace, parse_retention
        ws = load_workspace({str(tmp_path)!r})
        assert parse_retention("P90D").days == 90
        print(json.dumps({{
            "types": sorted(d.type for d in ws.datastores.values()),
            "loaded": [m for m in ("obstore", "modeltap.storage.objectstore", "pydantic")
                       if m in sys.modules],
        }}))
    """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"types": ["azure_blob", "local", "s3"], "loaded": []}


def test_config_keeps_the_names_other_layers_import():
    for name in [
        *modeltap.config.__all__,
        "ENV_COLLECT_MODEL_DATA",
        "parse_bool",
        "parse_sampling_rate",
        "_pipeline",  # runtime.configure
        "_check_keys",  # monitor/spec.py
        "_mapping",  # monitor/spec.py, monitor/thresholds.py
    ]:
        assert hasattr(modeltap.config, name), name


# --- data_collector.modeltap --------------------------------------------------------------


def test_the_modeltap_block_lists_every_key_it_takes(tmp_path):
    err = config_error(tmp_path, "modeltap: {retension: P1D}\n")
    assert err.field == "data_collector.modeltap.retension"
    assert "did you mean 'retention'" in str(err)
    for key in ("flush_interval", "spool_bytes", "model_version", "source", "redact"):
        assert key in str(err)


# --- retention: ISO 8601 durations ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P90D", timedelta(days=90)),
        ("p90d", timedelta(days=90)),
        (" P12W ", timedelta(weeks=12)),
        ("PT36H", timedelta(hours=36)),
        ("P1M", timedelta(days=30)),
        ("P1Y", timedelta(days=365)),
        ("P1.5Y", timedelta(days=547, hours=12)),
        ("P1W2D", timedelta(days=9)),
        ("P1DT6H", timedelta(days=1, hours=6)),
        ("P1,5D", timedelta(days=1, hours=12)),
        ("PT1.5M", timedelta(minutes=1, seconds=30)),
        ("PT0.5S", timedelta(seconds=0.5)),
        ("P1Y2M3DT4H5M6S", timedelta(days=365 + 60 + 3, hours=4, minutes=5, seconds=6)),
        ("P01D", timedelta(days=1)),
    ],
)
def test_retention_durations(text, expected):
    assert parse_retention(text) == expected


@pytest.mark.parametrize(
    "value",
    [
        "P",
        "PT",
        "P1DT",  # a T with no time after it
        "P1H",  # hours before the T
        "PT1D",  # days after it
        "P1D1Y",  # out of order
        "P0.5DT2H",  # a fraction before the last part
        "P1e3D",
        "P\u0661D",  # an Arabic-Indic digit
        "90 days",
        "-P1D",
        "P0D",
        "PT0S",
        "P9999999999999D",  # more than a timedelta holds
        90,
        "",
    ],
)
def test_retention_that_is_not_a_positive_duration_names_the_field(value):
    with pytest.raises(ConfigError) as info:
        parse_retention(value, "dep.yml")
    assert info.value.field == "data_collector.modeltap.retention"
    assert info.value.source == "dep.yml"
    assert "is not a positive ISO 8601 duration" in str(info.value)


def test_no_retention_is_none():
    assert parse_retention(None) is None
