"""Exactly once under faults: a compaction killed mid-run and run again, two runs at once
(as processes, and as two threads forced onto the same commit), and the command itself
(report, errors, --schedule stopping cleanly on SIGTERM)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from subprocess import PIPE

import pandas as pd
import pytest
from deltalake import DeltaTable

from modeltap import compact, read
from modeltap.compact import _run
from tests.compact.helpers import ASSET, PREFIX, T0, canonical, fill, stop
from tests.conftest import store_root

pytestmark = pytest.mark.slow


def cli(workspace: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "modeltap.cli",
        "compact",
        ASSET,
        "--workspace",
        str(workspace),
        *args,
    ]


def log_dir(workspace: Path) -> Path:
    return store_root(workspace) / f"{PREFIX}-delta" / "_delta_log"


def exactly_once(workspace: Path, rows: int) -> None:
    """The table holds every row once, and load equals the JSON lines alone."""
    stored = DeltaTable(str(store_root(workspace) / f"{PREFIX}-delta")).to_pandas()
    assert len(stored) == rows
    assert not stored.duplicated(["record_id", "row_index"]).any()
    both = read.load(ASSET, workspace=workspace)
    alone = read.load(ASSET, workspace=workspace, delta=False)
    pd.testing.assert_frame_equal(canonical(both), canonical(alone))


def start(args: list[str], log: Path, **kw) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:  # the child keeps its own copy of the file
        return subprocess.Popen(args, stderr=out, **kw)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.005)


def test_killed_mid_run_then_run_again(workspace, tmp_path):
    rows = fill(workspace, hours=10, flushes=2)
    stop()
    # One partition per commit: ten commits to kill in the middle of.
    first = start(cli(workspace, "--batch-bytes", "1"), tmp_path / "first.log")
    wait_for(log_dir(workspace) / f"{2:020d}.json", first)
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    second = start(cli(workspace, "--batch-bytes", "1"), tmp_path / "second.log")
    wait_for(log_dir(workspace) / f"{4:020d}.json", second)
    time.sleep(0.03)  # somewhere inside the next commit
    second.send_signal(signal.SIGKILL)
    second.wait(30)
    versions = len(list(log_dir(workspace).glob("*.json")))
    assert 3 <= versions < 10
    last = subprocess.run(cli(workspace, "--json"), capture_output=True, timeout=300, check=True)
    report = json.loads(last.stdout.decode().strip().splitlines()[-1])
    assert report["objects"] == 20 - 2 * versions  # the rest of them, once
    exactly_once(workspace, rows)


def test_two_runs_at_once(workspace, tmp_path):
    rows = fill(workspace, hours=8, flushes=2)
    stop()
    procs = [
        start(cli(workspace, "--batch-bytes", "1", "--json"), tmp_path / "runs.log", stdout=PIPE)
        for _ in range(2)
    ]
    reports = []
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0
        reports.append(json.loads(out.decode().strip().splitlines()[-1]))
    assert sum(r["objects"] for r in reports) == 16  # every object by one run only
    assert sum(r["commits"] for r in reports) == 8
    exactly_once(workspace, rows)


def test_the_run_that_loses_a_commit_plans_again(workspace, monkeypatch):
    rows = fill(workspace, hours=3, flushes=1)
    stop()
    both_planned = threading.Barrier(2, timeout=60)
    real = _run._write
    first_call: dict[int, bool] = {}

    def write(*args, **kwargs):
        me = threading.get_ident()
        if me not in first_call:  # both runs planned the same first batch: commit at once
            first_call[me] = True
            both_planned.wait()
        return real(*args, **kwargs)

    monkeypatch.setattr(_run, "_write", write)
    reports: list[_run.Report] = []

    def one() -> None:
        reports.append(compact.compact(ASSET, workspace=workspace, batch_bytes=1))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(reports) == 2
    assert sum(r.conflicts for r in reports) >= 1  # the first batch for sure; later ones may race
    assert sum(r.objects for r in reports) == 3
    exactly_once(workspace, rows)


def test_command_reports_and_errors(workspace):
    fill(workspace, hours=2, flushes=1)
    stop()
    env = {**os.environ}
    done = subprocess.run(cli(workspace), capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "compacted 2 objects of 2 partitions (8 rows) in 1 commit" in done.stdout
    assert f"paths/{PREFIX}-delta: version 0" in done.stdout
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "modeltap.cli",
            "compact",
            "no-such-asset",
            "--workspace",
            str(workspace),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("modeltap: error: no data asset 'no-such-asset'")
    assert "Traceback" not in bad.stderr
    until = subprocess.run(cli(workspace, "--until", "soon"), capture_output=True, text=True)
    assert until.returncode == 2 and "'soon' is not an ISO 8601 time" in until.stderr


def test_schedule_stops_cleanly_on_sigterm(workspace):
    rows = fill(workspace, hours=2, flushes=1, start=T0 - timedelta(days=1))
    stop()
    proc = subprocess.Popen(cli(workspace, "--schedule"), stdout=PIPE, stderr=PIPE, text=True)
    wait_for(log_dir(workspace) / f"{0:020d}.json", proc)
    deadline = time.monotonic() + 60
    while "version 0" not in (proc.stdout.readline() if proc.stdout else ""):
        assert time.monotonic() < deadline
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "compact stopped after 1 run" in err
    assert "Traceback" not in err
    exactly_once(workspace, rows)
