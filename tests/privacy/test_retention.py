"""Retention (SPEC R13.2): partitions older than the deployment's retention are deleted
from local folders, Azure Blob (Azurite) and S3 (moto); never the current one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from click.testing import CliRunner

import modeltap
from modeltap import ConfigError, retention
from modeltap.cli import main
from modeltap.config import load_deployment, load_workspace
from modeltap.storage.local import LocalStorage

PREFIX = "coll/inputs"
DEPLOYMENT = """\
name: blue
endpoint_name: ep
data_collector:
  rolling_rate: Hour
  collections:
    model_inputs:
      enabled: 'True'
      data:
        path: azureml://datastores/lake/paths/coll/inputs
    model_outputs:
      enabled: 'True'
  modeltap:
    retention: P30D
"""


def folder(t: datetime) -> str:
    return f"{PREFIX}/{t:%Y/%m/%d/%H}"


def fill(storage, now: datetime) -> dict[str, list[str]]:
    """Objects in partitions 40 days, 31 days, 29 days and 0 days old, and one loose."""
    made: dict[str, list[str]] = {}
    for age in (40, 31, 29, 0):
        base = folder(now - timedelta(days=age))
        made[str(age)] = [
            f"{base}/w-1-00000001.jsonl",
            f"{base}/w-2-00000001.jsonl",
            f"{base}/5f0c8a4e-payload",
        ]
        for path in made[str(age)]:
            storage.put(path, b'{"x":1}\n')
    storage.put(f"{PREFIX}/README.txt", b"not a partition")
    return made


def paths(storage) -> list[str]:
    return [info.path for info in storage.list(PREFIX)]


def test_expired_partitions_are_the_ones_that_ended_before_the_retention(tmp_path):
    storage = LocalStorage(tmp_path / "store")
    now = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
    made = fill(storage, now)
    found = retention.expired(storage, PREFIX, timedelta(days=30), now)
    assert [p.folder for p in found] == [
        folder(now - timedelta(days=40)),
        folder(now - timedelta(days=31)),
    ]
    assert found[0].objects == tuple(sorted(made["40"])) and found[0].nbytes == 3 * 8
    # The current partition (12:00-13:00) never goes, however short the retention.
    tiny = retention.expired(storage, PREFIX, timedelta(seconds=1), now)
    assert folder(now) not in [p.folder for p in tiny]
    assert len(tiny) == 3
    # the partition of 2026-02-09 12:00 ends at 13:00: it goes 30 days after that, not before
    day29 = folder(now - timedelta(days=29))
    edge = datetime(2026, 3, 11, 13, 0, tzinfo=UTC)
    at = retention.expired(storage, PREFIX, timedelta(days=30), edge)
    before = retention.expired(storage, PREFIX, timedelta(days=30), edge - timedelta(seconds=1))
    assert day29 in [p.folder for p in at] and day29 not in [p.folder for p in before]
    with pytest.raises(ConfigError, match="is not a retention: it must be positive"):
        retention.expired(storage, PREFIX, timedelta(0), now)


def test_retention_apply_on_every_datastore_type(lake, tmp_path):
    (tmp_path / "deployment.yml").write_text(DEPLOYMENT)
    modeltap.configure(deployment_file=tmp_path / "deployment.yml", workspace=lake.workspace)
    modeltap.shutdown()  # the policy is recorded in the workspace
    now = datetime.now(UTC)
    made = fill(lake.storage, now)
    before = paths(lake.storage)

    run = CliRunner().invoke(
        main, ["retention", "apply", "--dry-run", "--workspace", str(lake.workspace)]
    )
    assert run.exit_code == 0, run.output
    old = [folder(now - timedelta(days=d)) for d in (40, 31)]
    assert [line.split()[2] for line in run.stdout.splitlines()] == [f"lake:{f}" for f in old]
    assert run.stdout.startswith("would remove lake:")
    assert "would remove 2 partitions (6 objects, 48 B) of 2 collections" in run.stderr
    assert paths(lake.storage) == before  # a dry run deletes nothing

    run = CliRunner().invoke(main, ["retention", "apply", "--workspace", str(lake.workspace)])
    assert run.exit_code == 0, run.output
    assert run.stdout.startswith("removed lake:") and "removed 2 partitions" in run.stderr
    kept = sorted([*made["29"], *made["0"], f"{PREFIX}/README.txt"])
    assert paths(lake.storage) == kept
    if lake.kind == "local":  # no empty partition folders left behind
        assert not (lake.workspace / "lake" / folder(now - timedelta(days=40))).exists()
    # once is enough: nothing more to do
    run = CliRunner().invoke(main, ["retention", "apply", "--workspace", str(lake.workspace)])
    assert "removed 0 partitions" in run.stderr and paths(lake.storage) == kept


def test_policies_follow_the_deployment_file(tmp_path):
    ws = tmp_path / "ws"
    (tmp_path / "deployment.yml").write_text(DEPLOYMENT.replace("lake", "workspaceblobstore"))
    modeltap.configure(deployment_file=tmp_path / "deployment.yml", workspace=ws)
    modeltap.shutdown()
    assert [(p.collection, p.age) for p in retention.policies(ws)] == [
        ("model_inputs", timedelta(days=30)),
        ("model_outputs", timedelta(days=30)),
    ]
    run = CliRunner().invoke(main, ["retention", "show", "--workspace", str(ws)])
    assert run.stdout.splitlines() == [
        "ep/blue/model_inputs  P30D  workspaceblobstore:coll/inputs",
        "ep/blue/model_outputs  P30D  workspaceblobstore:modelDataCollector/ep/blue/model_outputs",
    ]
    # started again without a retention: its collections are kept for good
    (tmp_path / "deployment.yml").write_text(
        DEPLOYMENT.replace("lake", "workspaceblobstore").replace(
            "  modeltap:\n    retention: P30D\n", ""
        )
    )
    modeltap.configure(deployment_file=tmp_path / "deployment.yml", workspace=ws)
    modeltap.shutdown()
    assert retention.policies(ws) == []
    run = CliRunner().invoke(main, ["retention", "apply", "--workspace", str(ws)])
    assert run.exit_code == 0 and "no retention is set" in run.stderr
    # -f applies a file's retention whether or not it ran here
    (tmp_path / "other.yml").write_text(DEPLOYMENT.replace("lake", "workspaceblobstore"))
    settings = load_deployment(tmp_path / "other.yml", load_workspace(ws))
    assert [p.age for p in retention.of_deployment(settings)] == [timedelta(days=30)] * 2
    run = CliRunner().invoke(
        main, ["retention", "apply", "-f", str(tmp_path / "other.yml"), "--workspace", str(ws)]
    )
    assert run.exit_code == 0 and "removed 0 partitions (0 objects, 0 B) of 2 collections" in (
        run.stderr
    )


def test_unknown_datastore_is_a_one_line_error(tmp_path):
    ws = tmp_path / "ws"
    policy = retention.Policy("gone", "p", "ep", "blue", "c", timedelta(days=1))
    with pytest.raises(modeltap.ConfigError, match="'gone'"):
        list(retention.sweep(load_workspace(ws), [policy]))


def test_retention_reaches_the_compacted_table(lake, tmp_path):
    from modeltap import compact, read
    from modeltap.record import FRAME, Record
    from modeltap.tabular import PANDAS_TYPE

    (tmp_path / "deployment.yml").write_text(DEPLOYMENT)
    rt = modeltap.configure(deployment_file=tmp_path / "deployment.yml", workspace=lake.workspace)
    now = datetime.now(UTC)
    for age in (40, 31, 29):
        at = (now - timedelta(days=age)).timestamp()
        frame = pd.DataFrame({"age": [age, age]})
        rt.pipeline.submit(
            Record(
                "model_inputs",
                frame,
                kind=FRAME,
                correlation_id=f"d{age}",
                time_=at,
                collect_data_type=PANDAS_TYPE,
            )
        )
    assert modeltap.flush(30)
    modeltap.shutdown()
    assert compact.compact("ep-blue-model_inputs", workspace=lake.workspace).objects == 3

    dry = CliRunner().invoke(
        main, ["retention", "apply", "--dry-run", "--workspace", str(lake.workspace)]
    )
    assert "would remove 4 rows of ep/blue/model_inputs from the compacted table" in dry.stdout
    run = CliRunner().invoke(main, ["retention", "apply", "--workspace", str(lake.workspace)])
    assert run.exit_code == 0, run.output
    assert "removed 4 rows of ep/blue/model_inputs from the compacted table" in run.stdout
    df = read.load("ep-blue-model_inputs", workspace=lake.workspace)
    assert df["age"].tolist() == [29, 29]
    table = [i.path for i in lake.storage.list(f"{PREFIX}-delta") if i.path.endswith(".parquet")]
    assert len(table) == 1  # the data files of the expired partitions are gone
