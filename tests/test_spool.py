"""Durability (R5.2): the local spool, storage outages, crashes and clean shutdown."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from modeltap.config import PipelineSettings
from modeltap.errors import BufferFullError
from modeltap.layout import RollingRate
from modeltap.pipeline import Pipeline, Route
from modeltap.record import BLOB, JSON, Record
from modeltap.spool import Spool
from modeltap.storage.local import LocalStorage
from tests.conftest import read_lines
from tests.test_pipeline import GatedStorage, rec


def make(tmp_path: Path, storage=None, on_drop=None, **settings):
    storage = storage or LocalStorage(tmp_path / "store")
    settings.setdefault("flush_interval", 60.0)
    routes = {"c": Route(storage, "ep/d/c", "/endpoints/ep/deployments/d")}
    pipe = Pipeline(
        routes,
        PipelineSettings(**settings),
        RollingRate.HOUR,
        on_drop=on_drop,
        spool_dir=tmp_path / "spool",
    )
    return pipe, storage


def spool_files(tmp_path: Path) -> list[Path]:
    return sorted(p for p in (tmp_path / "spool").rglob("*") if p.is_file() and p.name != "lock")


def ids(root: Path) -> list[int]:
    return [row["i"] for line in read_lines(root) for row in line["data"]]


def test_spool_durability_has_the_line_on_disk_before_collect_returns(tmp_path):
    pipe, _ = make(tmp_path, durability="spool")
    pipe.submit(rec(7))
    # No flush yet: the line is already in an open segment on disk, nothing in storage.
    (segment,) = spool_files(tmp_path)
    assert segment.name.endswith(".open")
    assert b'"data":[{"i":7}]' in segment.read_bytes()
    assert not (tmp_path / "store").exists()
    assert pipe.flush(10)
    assert ids(tmp_path / "store") == [7]
    assert spool_files(tmp_path) == []
    snap = pipe.counters.snapshot()
    assert (snap["accepted"], snap["spooled"], snap["written"]) == (1, 1, 1)
    assert pipe.close()


def test_spool_durability_commits_on_the_flush_interval(tmp_path):
    pipe, _ = make(tmp_path, durability="spool", flush_interval=0.2)
    for i in range(50):
        pipe.submit(rec(i))
    deadline = time.monotonic() + 5
    while len(ids(tmp_path / "store")) < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(ids(tmp_path / "store")) == list(range(50))
    assert pipe.close()


def test_spool_durability_payload_objects(tmp_path):
    pipe, _ = make(tmp_path, durability="spool")
    pipe.submit(Record("c", b"\x00\x01binary", kind=BLOB, correlation_id="x", id="rid1"))
    assert pipe.flush(10)
    (line,) = read_lines(tmp_path / "store")
    assert line["datainblob"] == "true"
    assert line["id"] == "rid1"
    assert Path(line["data"]).read_bytes() == b"\x00\x01binary"
    assert pipe.close()


def test_outage_moves_commits_to_the_spool_and_uploads_them_later(tmp_path):
    storage = GatedStorage(tmp_path / "store", fail_times=3)
    pipe, _ = make(tmp_path, storage, batch_window=0.001)
    for i in range(100):
        pipe.submit(rec(i))
    assert pipe.flush(20)
    assert sorted(ids(tmp_path / "store")) == list(range(100))
    snap = pipe.counters.snapshot()
    assert snap["spooled"] == 100  # the failed commit went to disk, not back to memory
    assert snap["storage_errors"] >= 3
    assert snap["written"] == 100 and snap["dropped"] == 0
    assert spool_files(tmp_path) == []
    assert pipe.close()


def test_outage_memory_stays_bounded_and_the_spool_cap_applies(tmp_path):
    """Storage down, spool capped small: the writer stops taking records once the spool is
    full, so the buffer fills and the overflow policy drops (counted), never memory growth."""
    storage = GatedStorage(tmp_path / "store", fail_times=10**6)
    pipe, _ = make(
        tmp_path,
        storage,
        spool_bytes=4000,
        buffer_records=20,
        overflow="drop",
        flush_interval=0.05,
        batch_window=0.001,
    )
    dropped = 0
    for i in range(400):
        try:
            pipe.submit(rec(i))
        except BufferFullError:
            dropped += 1
        time.sleep(0.001)
    snap = pipe.counters.snapshot()
    assert dropped > 0 and snap["dropped"] == dropped
    assert pipe.buffered() <= 20
    assert pipe.spooled_bytes() <= 4000
    storage.fail_times = 0
    assert pipe.flush(30)
    assert len(ids(tmp_path / "store")) == 400 - dropped
    assert pipe.close()


def test_spool_cap_with_spool_durability_raises_when_asked(tmp_path):
    storage = GatedStorage(tmp_path / "store", fail_times=10**6)
    pipe, _ = make(tmp_path, storage, durability="spool", spool_bytes=2000, overflow="raise")
    with pytest.raises(BufferFullError, match="spool full"):
        for i in range(100):
            pipe.submit(rec(i))
    storage.fail_times = 0
    assert pipe.flush(20)
    assert len(ids(tmp_path / "store")) == pipe.counters.snapshot()["accepted"] > 0
    assert pipe.close()


def test_clean_shutdown_is_bounded_and_leaves_the_rest_in_the_spool(tmp_path):
    storage = GatedStorage(tmp_path / "store", fail_times=10**6)
    pipe, _ = make(tmp_path, storage, durability="spool")
    for i in range(10):
        pipe.submit(rec(i))
    started = time.monotonic()
    assert pipe.close(timeout=2) is False
    assert time.monotonic() - started < 4
    assert [p.name.endswith(".seg") for p in spool_files(tmp_path)] == [True]
    # The next process (storage back) uploads them.
    pipe2, _ = make(tmp_path)
    assert pipe2.flush(10)
    deadline = time.monotonic() + 10
    while len(ids(tmp_path / "store")) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(ids(tmp_path / "store")) == list(range(10))
    assert pipe2.counters.snapshot()["written"] == 10
    assert pipe2.close()
    assert spool_files(tmp_path) == []


class HangingStorage(GatedStorage):
    """Its puts wait for the gate (a storage that takes connections and never answers)."""

    def __init__(self, root: Path):
        super().__init__(root)
        self.entered = threading.Event()

    def put_parts(self, path: str, parts, *, overwrite: bool = True) -> None:
        self.entered.set()
        super().put_parts(path, parts, overwrite=overwrite)


def stuck_writer(tmp_path: Path, on_drop=None, **settings):
    """A pipeline whose writer is stuck in a put that does not return, with records
    pending (encoded) and queued behind it."""
    storage = HangingStorage(tmp_path / "store")
    pipe, _ = make(
        tmp_path, storage, on_drop=on_drop, flush_interval=0.2, batch_window=0.001, **settings
    )
    storage.gate.clear()
    for i in range(10):
        pipe.submit(rec(i))
    assert storage.entered.wait(5)  # the writer is in put()
    for i in range(10, 30):
        pipe.submit(rec(i))
    return pipe, storage


def test_shutdown_with_storage_hanging_spools_what_the_writer_holds(tmp_path, caplog):
    """Memory durability: close() used to leave the records with the stuck writer and log
    that they waited in a spool that held no file."""
    pipe, storage = stuck_writer(tmp_path)
    started = time.monotonic()
    assert pipe.close(timeout=2) is False
    assert time.monotonic() - started < 3
    assert storage.puts == 0  # still stuck
    snap = pipe.counters.snapshot()
    assert (snap["spooled"], snap["dropped"], snap["written"]) == (30, 0, 0)
    assert "30 records were not written before shutdown" in caplog.text
    assert len(spool_files(tmp_path)) == 2  # the pending object and the queued records
    storage.gate.set()  # storage answers again; the stuck put of records 0-9 lands too
    pipe2, _ = make(tmp_path)  # the next process adopts the spool
    deadline = time.monotonic() + 10
    while len(ids(tmp_path / "store")) < 30 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pipe2.close()
    assert sorted(ids(tmp_path / "store")) == list(range(30))  # each once
    assert spool_files(tmp_path) == []


def test_shutdown_with_storage_hanging_and_no_spool_room_counts_the_drop(tmp_path, caplog):
    dropped: list[int] = []
    pipe, storage = stuck_writer(
        tmp_path, on_drop=lambda count, exc: dropped.append(count), spool_bytes=100
    )
    assert pipe.close(timeout=2) is False
    storage.gate.set()
    snap = pipe.counters.snapshot()
    assert snap["dropped"] == 30 and sum(dropped) == 30 and snap["spooled"] == 0
    assert "dropped at shutdown" in caplog.text
    assert "wait in the spool" not in caplog.text  # never a log line that is not true
    assert spool_files(tmp_path) == []


def test_shutdown_with_spool_durability_and_storage_hanging_is_bounded(tmp_path):
    pipe, storage = stuck_writer(tmp_path, durability="spool")
    started = time.monotonic()
    assert pipe.close(timeout=2) is False
    assert time.monotonic() - started < 3
    storage.gate.set()
    assert pipe.counters.snapshot()["dropped"] == 0
    pipe2, _ = make(tmp_path)
    deadline = time.monotonic() + 10
    while len(ids(tmp_path / "store")) < 30 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pipe2.close()
    assert sorted(ids(tmp_path / "store")) == list(range(30))


def _dead_owner(tmp_path: Path, content: bytes, name: str) -> Path:
    folder = tmp_path / "spool" / "abcdef123456-999"
    folder.mkdir(parents=True)
    (folder / "lock").touch()
    (folder / name).write_bytes(content)
    return folder


def test_adoption_cuts_a_partial_last_line_and_lands_once(tmp_path):
    whole = b'{"id":"a","data":[{"i":1}]}\n{"id":"b","data":[{"i":2}]}\n'
    path = "ep%2Fd%2Fc%2F2026%2F01%2F01%2F00%2Fw-1-00000001.jsonl"
    folder = _dead_owner(tmp_path, whole + b'{"id":"c","da', f"00000001@local@{path}.open")
    store = LocalStorage(tmp_path / "store")
    # The object may already be there (the dead process uploaded, then died before removing
    # its segment): the create-only upload finds it and does not write it twice.
    pipe, _ = make(tmp_path, store)
    assert pipe.flush(10)
    deadline = time.monotonic() + 5
    while folder.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not folder.exists()
    target = tmp_path / "store/ep/d/c/2026/01/01/00/w-1-00000001.jsonl"
    assert target.read_bytes() == whole
    assert pipe.close()
    # A second adoption of the same content (a crash after upload) adds nothing.
    _dead_owner(tmp_path, whole, f"00000001@local@{path}.seg")
    pipe, _ = make(tmp_path, store)
    deadline = time.monotonic() + 5
    while spool_files(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert target.read_bytes() == whole
    assert len(list((tmp_path / "store").rglob("*.jsonl"))) == 1
    assert pipe.close()


def test_a_live_owner_is_never_adopted(tmp_path):
    folder = _dead_owner(tmp_path, b'{"x":1}\n', "00000001@local@a%2Fb.jsonl.open")
    fd = os.open(folder / "lock", os.O_WRONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # its owner is alive
    try:
        assert Spool(tmp_path / "spool", 10**6).adopt() == []
    finally:
        os.close(fd)
    first, second = Spool(tmp_path / "spool", 10**6), Spool(tmp_path / "spool", 10**6)
    assert len(first.adopt()) == 1
    assert second.adopt() == []  # the first holds it until its segments are uploaded
    first.close()


def test_sealed_segments_are_taken_oldest_first_and_a_failed_one_comes_back_first(tmp_path):
    spool = Spool(tmp_path / "spool", 10**6)
    assert not spool.has_sealed() and spool.take_sealed() is None
    first = spool.add("local", "a/1.jsonl", b"1\n", 1)
    spool.append("local", "a/2.jsonl", b"2\n", 1)
    assert spool.has_sealed()
    spool.seal("a/2.jsonl")
    assert spool.take_sealed() is first
    spool.put_back(first)  # its upload failed: it is tried again before the newer one
    assert spool.take_sealed() is first
    second = spool.take_sealed()
    assert second is not None and second.path == "a/2.jsonl"
    assert spool.take_sealed() is None and not spool.has_sealed()
    spool.remove(first)
    spool.remove(second)
    assert spool.nbytes == 0
    spool.close()


CRASHER = """
import sys, time
from modeltap.config import PipelineSettings
from modeltap.layout import RollingRate
from modeltap.pipeline import Pipeline, Route
from modeltap.record import JSON, Record
from modeltap.storage.local import LocalStorage

root = sys.argv[1]
routes = {"c": Route(LocalStorage(root + "/store"), "ep/d/c", "src")}
settings = PipelineSettings(durability="spool", flush_interval=0.3)
pipe = Pipeline(routes, settings, RollingRate.HOUR, spool_dir=root + "/spool")
i = 0
while True:
    pipe.submit(Record("c", b'[{"i":%d}]' % i, kind=JSON, correlation_id=str(i)))
    print(i, flush=True)  # acknowledged: submit() returned
    i += 1
    if i % 50 == 0:
        time.sleep(0.01)
"""


def test_kill_9_mid_load_then_restart_lands_every_acknowledged_record_once(tmp_path):
    script = tmp_path / "crasher.py"
    script.write_text(textwrap.dedent(CRASHER))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    acknowledged: list[int] = []
    reader = threading.Thread(
        target=lambda: acknowledged.extend(int(x) for x in proc.stdout or () if x.strip())
    )
    reader.start()
    time.sleep(1.5)  # several flush intervals: some segments uploaded, one open
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    reader.join(10)
    assert proc.stdout is not None
    proc.stdout.close()
    assert len(acknowledged) > 1000
    assert any(p.name.endswith(".open") for p in spool_files(tmp_path))
    before = len(ids(tmp_path / "store"))
    assert 0 < before < len(acknowledged)  # the crash left records only in the spool

    pipe, _ = make(tmp_path)  # the restart: adopts and uploads
    deadline = time.monotonic() + 20
    while len(ids(tmp_path / "store")) < len(acknowledged) and time.monotonic() < deadline:
        time.sleep(0.1)
    landed = ids(tmp_path / "store")
    assert set(acknowledged) <= set(landed)
    assert len(landed) == len(set(landed))  # none twice
    assert pipe.close()
    assert spool_files(tmp_path) == []


def test_json_record_counts_of_adopted_segments(tmp_path):
    pipe, _ = make(tmp_path, durability="spool")
    for i in range(5):
        pipe.submit(Record("c", b"[1]", kind=JSON, correlation_id=str(i)))
    assert pipe.flush(10)
    assert pipe.counters.snapshot()["lines_written"] == 5
    assert pipe.close()


@pytest.mark.parametrize(
    ("content", "end"),
    [(b"", 0), (b"no newline", 0), (b"a\n", 2), (b"a\nbc", 2), (b"abc\ndefghij", 4)],
)
def test_end_of_last_line_reads_back_across_chunks(tmp_path, content, end):
    from modeltap.spool import _end_of_last_line

    file = tmp_path / "f"
    file.write_bytes(content)
    assert _end_of_last_line(file, chunk=3) == end
