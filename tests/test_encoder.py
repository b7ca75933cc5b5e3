"""The encoder process: large frames encoded beside the writer, exactly, and nothing lost
when the helper dies, hangs or its parent is killed."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import orjson
import pandas as pd
import pytest

import modeltap
from modeltap import runtime
from modeltap.context import BasicCorrelationContext
from modeltap.errors import ConfigError
from modeltap.pipeline import encoder as encoder_module
from modeltap.tabular import encode_frames
from tests.conftest import read_lines, store_root


def big_frame(seed: int) -> pd.DataFrame:
    """1000 rows x 10 columns: above OFFLOAD_CELLS; floats, ints and str with JSON's
    special characters."""
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {f"f{c}": rng.normal(size=1000) * 1000 for c in range(5)}
    columns.update({f"i{c}": rng.integers(-(10**9), 10**9, size=1000) for c in range(3)})
    columns.update(
        {f"s{c}": rng.choice(["a", 'b,"c', "d\\e\n", "é\u2028"], 1000) for c in range(2)}
    )
    frame = pd.DataFrame(columns)
    assert frame.size >= encoder_module.OFFLOAD_CELLS
    return frame


def configure(tmp_path, **settings):
    runtime.configure(
        workspace=tmp_path / "ws",
        endpoint="ep",
        deployment="blue",
        collections=["model_inputs"],
        **settings,
    )
    return modeltap.Collector(name="model_inputs")


def the_encoder() -> encoder_module.Encoder:
    return runtime.current().pipeline._writer.encoder


def collect_until_the_helper_encodes(collector, sent: dict[str, pd.DataFrame]) -> None:
    """Collect large frames until the helper (started by the first) has encoded one."""
    deadline = time.monotonic() + 90
    while the_encoder().frames_remote == 0:
        assert time.monotonic() < deadline, "the encoder process never encoded a frame"
        send(collector, sent, 4)
        assert modeltap.flush(timeout=60)


def send(collector, sent: dict[str, pd.DataFrame], count: int) -> None:
    for _ in range(count):
        frame = big_frame(len(sent))
        ctx = collector.collect(frame, BasicCorrelationContext(id=f"r{len(sent)}"))
        sent[ctx.get_id()] = frame


def assert_each_landed_once_exactly(tmp_path, sent: dict[str, pd.DataFrame]) -> None:
    lines = read_lines(store_root(tmp_path / "ws"), "model_inputs")
    ids = [line["correlationid"] for line in lines]
    assert sorted(ids) == sorted(sent)  # each once
    for line in lines:
        want = orjson.loads(encode_frames([sent[line["correlationid"]]])[0])
        assert line["data"] == want


def helper_pid() -> int:
    proc = the_encoder()._proc
    assert proc is not None
    return proc.pid


def test_large_frames_are_encoded_in_the_helper_exactly(tmp_path):
    collector = configure(tmp_path)
    sent: dict[str, pd.DataFrame] = {}
    collect_until_the_helper_encodes(collector, sent)
    send(collector, sent, 12)
    pid = helper_pid()
    modeltap.shutdown()
    assert_each_landed_once_exactly(tmp_path, sent)
    with pytest.raises(ProcessLookupError):  # stopped and reaped with the pipeline
        os.kill(pid, 0)


def test_a_killed_helper_costs_nothing(tmp_path, caplog):
    collector = configure(tmp_path)
    sent: dict[str, pd.DataFrame] = {}
    collect_until_the_helper_encodes(collector, sent)
    os.kill(helper_pid(), signal.SIGKILL)
    with caplog.at_level(logging.WARNING, logger="modeltap.pipeline.encoder"):
        send(collector, sent, 12)
        assert modeltap.flush(timeout=60)
    assert "encoder process" in caplog.text and "the writer encodes alone" in caplog.text
    modeltap.shutdown()
    assert_each_landed_once_exactly(tmp_path, sent)


def test_a_hung_helper_is_stopped_and_its_frames_encoded_here(tmp_path, monkeypatch):
    monkeypatch.setattr(encoder_module, "_DEADLINE_BASE", 1.0)
    collector = configure(tmp_path)
    sent: dict[str, pd.DataFrame] = {}
    collect_until_the_helper_encodes(collector, sent)
    pid = helper_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        send(collector, sent, 12)
        assert modeltap.flush(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):  # killed and reaped: as it should be
            os.kill(pid, signal.SIGCONT)
    assert the_encoder()._proc is None  # given up on, to be started again later
    modeltap.shutdown()
    assert_each_landed_once_exactly(tmp_path, sent)


def test_encoder_thread_starts_no_process(tmp_path):
    collector = configure(tmp_path, encoder="thread")
    sent: dict[str, pd.DataFrame] = {}
    send(collector, sent, 8)
    assert modeltap.flush(timeout=60)
    assert the_encoder()._proc is None and the_encoder().frames_remote == 0
    modeltap.shutdown()
    assert_each_landed_once_exactly(tmp_path, sent)


def test_an_unknown_encoder_is_refused_by_name(tmp_path):
    with pytest.raises(ConfigError, match="encoder") as err:
        configure(tmp_path, encoder="gpu")
    assert "process" in str(err.value) and "thread" in str(err.value)


def test_the_helper_exits_with_its_killed_parent(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path[:0] = {sys.path!r}
        import modeltap
        from modeltap import runtime
        from tests.test_encoder import big_frame
        modeltap.configure(workspace={str(tmp_path / "ws")!r}, endpoint="ep",
                           deployment="blue", collections=["model_inputs"])
        collector = modeltap.Collector(name="model_inputs")
        encoder = runtime.current().pipeline._writer.encoder
        deadline = time.monotonic() + 90
        while encoder.frames_remote == 0 and time.monotonic() < deadline:
            collector.collect(big_frame(0))
            modeltap.flush(timeout=60)
        print(encoder._proc.pid, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(parent.stdout.readline())  # type: ignore[union-attr]
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()  # type: ignore[union-attr]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    pytest.fail("the encoder process outlived its parent by 30 s")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False
