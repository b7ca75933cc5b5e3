"""`modeltap assets list|show` and `modeltap data tail`, run as a user runs them."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner, Result

import modeltap
from modeltap import BasicCorrelationContext, Collector
from modeltap.assets import Catalog
from modeltap.cli import main
from tests.test_summary_tail import INPUTS, PREFIX, T0, series, setup

URI = f"azureml://datastores/workspaceblobstore/paths/{PREFIX}"


def run(*args: str, columns: int = 250) -> Result:
    return CliRunner(env={"COLUMNS": str(columns)}).invoke(main, list(args))


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "modeltap.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "250"},
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
def data(workspace: Path) -> list[str]:
    """ep/blue: 12 input lines, 08:30 ... 12:10 every 20 minutes; empty outputs."""
    setup(workspace)
    ids = series(T0, 12, timedelta(minutes=20))
    modeltap.shutdown()
    return ids


# -- assets list ----------------------------------------------------------------------------


def test_assets_list_json(workspace, data):
    out = cli("assets", "list", "--workspace", str(workspace), "--json")
    listed = json.loads(out.stdout)
    assert [a["name"] for a in listed] == [INPUTS, "ep-blue-model_outputs", "ep-blue-request"]
    inputs = listed[0]
    assert inputs["version"] == "1"
    assert (inputs["endpoint"], inputs["deployment"], inputs["collection"]) == (
        "ep",
        "blue",
        "model_inputs",
    )
    assert inputs["uri"] == URI
    assert inputs["records"] == 12
    assert (inputs["first"], inputs["last"]) == ("2026-03-01T08:30:00Z", "2026-03-01T12:10:00Z")
    files = sorted((workspace / "datastores/workspaceblobstore" / PREFIX).rglob("*.jsonl"))
    assert inputs["files"] == len(files)
    assert inputs["bytes"] == sum(f.stat().st_size for f in files)
    assert inputs["error"] is None
    assert "partitions" not in inputs  # those are for `assets show`
    assert listed[1]["records"] == 0 and listed[1]["first"] is None


def test_assets_list_table_and_narrow_terminals(workspace, data):
    result = run("assets", "list", "--workspace", str(workspace))
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if f"{INPUTS}:1" in line)
    for shown in ("12", "2026-03-01T08:30:00Z", URI):
        assert shown in row
    assert "2026-03-01T12:10:00Z" in result.stdout
    assert "ep/blue/model_inputs" in result.stdout
    assert "records" in result.stdout and "datastore URI" in result.stdout

    narrow = run("assets", "list", "--workspace", str(workspace), columns=80)
    assert narrow.exit_code == 0
    lines = narrow.stdout.splitlines()
    files = len(list((workspace / "datastores/workspaceblobstore" / PREFIX).rglob("*.jsonl")))
    assert lines[0] == f"{INPUTS}:1  ep/blue/model_inputs"
    assert lines[1].startswith(
        f"  12 records, 2026-03-01T08:30:00Z to 2026-03-01T12:10:00Z, {files} files, "
    ) and lines[1].endswith(" kB")
    assert lines[2] == f"  {URI}"
    assert "  0 records, 0 files, 0 B" in lines


def test_assets_list_of_an_empty_workspace(workspace):
    result = run("assets", "list", "--workspace", str(workspace))
    assert result.exit_code == 0 and result.stdout == ""
    assert "no data assets" in result.stderr
    assert json.loads(run("assets", "list", "--workspace", str(workspace), "--json").stdout) == []


def test_assets_list_reports_an_asset_it_cannot_list(workspace, data):
    Catalog(workspace).register(
        Catalog.make("archived", "1", "ep", "blue", "model_inputs", "archive", "old/inputs")
    )
    result = run("assets", "list", "--workspace", str(workspace))
    assert result.exit_code == 0
    assert "archived:1" in result.stdout and f"{INPUTS}:1" in result.stdout
    assert "modeltap: warning: archived:1: " in result.stderr
    assert "unknown datastore 'archive'" in result.stderr
    listed = json.loads(run("assets", "list", "--workspace", str(workspace), "--json").stdout)
    assert "unknown datastore 'archive'" in listed[0]["error"]
    assert listed[1]["records"] == 12


def test_workspace_from_the_environment(workspace, data, monkeypatch):
    monkeypatch.setenv("MODELTAP_WORKSPACE", str(workspace))
    listed = json.loads(run("assets", "list", "--json").stdout)
    assert listed[0]["records"] == 12


# -- assets show ----------------------------------------------------------------------------


def test_assets_show(workspace, data):
    shown = json.loads(
        cli("assets", "show", INPUTS, "--workspace", str(workspace), "--json").stdout
    )
    assert shown["name"] == INPUTS and shown["records"] == 12
    assert shown["partitions"] == {"count": 5, "first": "2026/03/01/08", "last": "2026/03/01/12"}
    assert shown["rolling_rate"] == "Hour"
    assert shown["uri"] == URI
    assert (
        json.loads(
            run("assets", "show", f"{INPUTS}:1", "--workspace", str(workspace), "--json").stdout
        )
        == shown
    )

    human = run("assets", "show", INPUTS, "--workspace", str(workspace))
    assert human.exit_code == 0
    text = human.stdout
    assert text.startswith(f"{INPUTS}:1  (uri_folder)\n")
    for expected in (
        "collection:    ep/blue/model_inputs",
        f"datastore URI: {URI}",
        "records:       12",
        "first record:  2026-03-01T08:30:00Z",
        "last record:   2026-03-01T12:10:00Z",
        "partitions:    5 (Hour): 2026/03/01/08 to 2026/03/01/12",
        "rolling rate:  Hour",
    ):
        assert f"  {expected}\n" in text


def test_assets_show_unknown_name_suggests_the_closest(workspace, data):
    done = cli("assets", "show", "ep-blue-model_input", "--workspace", str(workspace), check=False)
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("modeltap: error: no data asset 'ep-blue-model_input'")
    assert "did you mean 'ep-blue-model_inputs'" in line
    version = run("assets", "show", f"{INPUTS}:3", "--workspace", str(workspace))
    assert version.exit_code == 2 and "has no version '3'; versions: 1" in version.stderr


# -- data tail ------------------------------------------------------------------------------


def test_tail_json_prints_the_newest_lines_as_stored(workspace, data):
    out = cli(
        "data", "tail", "ep/blue/model_inputs", "-n", "5", "--json", "--workspace", str(workspace)
    )
    lines = out.stdout.splitlines()
    assert [json.loads(line)["correlationid"] for line in lines] == data[-5:]
    stored = {
        line
        for f in (workspace / "datastores/workspaceblobstore" / PREFIX).rglob("*.jsonl")
        for line in f.read_text().splitlines()
    }
    assert set(lines) <= stored  # byte for byte
    default = run("data", "tail", "ep/blue/model_inputs", "--json", "--workspace", str(workspace))
    assert len(default.stdout.splitlines()) == 12  # -n 20 by default: all of them


def test_tail_human_output(workspace, data):
    result = run("data", "tail", "ep/blue/model_inputs", "-n", "3", "--workspace", str(workspace))
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        '2026-03-01T11:30:00Z  c009  [{"i":0,"cid":"c009"}]',
        '2026-03-01T11:50:00Z  c010  [{"i":0,"cid":"c010"}]',
        '2026-03-01T12:10:00Z  c011  [{"i":0,"cid":"c011"}]',
    ]


def test_tail_truncates_data_to_the_terminal_width(workspace):
    setup(workspace)
    wide = pd.DataFrame({"text": ["x" * 500]})
    Collector(name="model_inputs").collect(wide, BasicCorrelationContext(id="wide"))
    assert modeltap.flush(10)
    result = run("data", "tail", "ep/blue/model_inputs", "--workspace", str(workspace), columns=60)
    [line] = result.stdout.splitlines()
    assert len(line) == 60 and line.endswith("xxx\N{HORIZONTAL ELLIPSIS}")
    assert '  wide  [{"text":"xxx' in line


def test_tail_of_nothing_yet(workspace):
    setup(workspace)
    result = run("data", "tail", "ep/blue/model_outputs", "--workspace", str(workspace))
    assert result.exit_code == 0 and result.stdout == ""
    assert "no records in ep/blue/model_outputs yet" in result.stderr


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("ep/blue", "'ep/blue' is not ENDPOINT/DEPLOYMENT/COLLECTION"),
        ("ep/blue/model_inputs/x", "is not ENDPOINT/DEPLOYMENT/COLLECTION"),
        ("ep/../model_inputs", "deployment: '..' is not a valid name"),
        ("ep/blue/.hidden", "collection: '.hidden' is not a valid name"),
        ("ep/blue/model_input", "did you mean 'ep/blue/model_inputs'"),
    ],
)
def test_tail_rejects_bad_and_unknown_collections(workspace, data, target, message):
    result = run("data", "tail", target, "--workspace", str(workspace))
    assert result.exit_code == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("modeltap: error: ") and message in line


def test_tail_follow_shows_records_added_after_it_started(workspace):
    setup(workspace)
    inputs = Collector(name="model_inputs")
    for cid in ("old-1", "old-2", "old-3"):
        inputs.collect(pd.DataFrame({"x": [1]}), BasicCorrelationContext(id=cid))
    assert modeltap.flush(10)
    command = [sys.executable, "-m", "modeltap.cli", "data", "tail", "ep/blue/model_inputs"]
    command += ["-n", "2", "--follow", "--json", "--workspace", str(workspace)]
    seen: queue.Queue[str] = queue.Queue()
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        reader = threading.Thread(target=lambda: [seen.put(x) for x in proc.stdout or ()])
        reader.start()
        try:
            assert cids(seen, 2) == ["old-2", "old-3"]
            for cid in ("new-1", "new-2"):
                inputs.collect(pd.DataFrame({"x": [2]}), BasicCorrelationContext(id=cid))
            assert modeltap.flush(10)
            assert cids(seen, 2) == ["new-1", "new-2"]
            inputs.collect(pd.DataFrame({"x": [3]}), BasicCorrelationContext(id="new-3"))
            assert modeltap.flush(10)
            assert cids(seen, 1) == ["new-3"]
            time.sleep(2.5)  # a few more polls: nothing is printed twice
            assert seen.empty()
            assert proc.poll() is None  # still following
        finally:
            proc.terminate()
            proc.wait(10)
            reader.join(10)


def cids(lines: queue.Queue[str], n: int, timeout: float = 30.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    out = []
    while len(out) < n:
        out.append(
            json.loads(lines.get(timeout=max(deadline - time.monotonic(), 0.1)))["correlationid"]
        )
    return out


def test_follow_stops_cleanly_on_ctrl_c(workspace, data, monkeypatch):
    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(time, "sleep", interrupt)
    result = run(
        "data", "tail", "ep/blue/model_inputs", "-n", "1", "-f", "--workspace", str(workspace)
    )
    assert result.exit_code == 0
    assert result.stdout.count("\n") == 1 and "c011" in result.stdout


@pytest.mark.parametrize(
    "command", [["assets", "list"], ["assets", "show"], ["data", "tail"]], ids=" ".join
)
def test_every_command_has_an_example(command):
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert "Example:" in result.stdout and f"modeltap {' '.join(command)} " in result.stdout
