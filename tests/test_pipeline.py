"""The writer pipeline (R5.1, R5.2, R4.5): batching, overflow policies, retries, counters."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from modeltap.config import PipelineSettings
from modeltap.errors import BufferFullError, CollectionDisabledError, StorageError
from modeltap.layout import RollingRate
from modeltap.pipeline import Pipeline, Route
from modeltap.record import JSON, Record
from modeltap.storage.local import LocalStorage
from tests.conftest import read_lines


class GatedStorage(LocalStorage):
    """Local storage whose writes wait for a gate, or fail a given number of times."""

    def __init__(self, root, fail_times: int = 0):
        super().__init__(root)
        self.gate = threading.Event()
        self.gate.set()
        self.fail_times = fail_times
        self.puts = 0

    # LocalStorage.put() writes through put_parts(), so both pass the gate here.
    def put_parts(self, path: str, parts, *, overwrite: bool = True) -> None:
        self.gate.wait(30)
        self.puts += 1
        if self.fail_times > 0:
            self.fail_times -= 1
            raise StorageError("injected outage", path=path)
        super().put_parts(path, parts, overwrite=overwrite)


def make(tmp_path, storage=None, **settings):
    storage = storage or LocalStorage(tmp_path)
    settings.setdefault("flush_interval", 60.0)
    routes = {"c": Route(storage, "ep/d/c", "/endpoints/ep/deployments/d")}
    return Pipeline(routes, PipelineSettings(**settings), RollingRate.HOUR), storage


def rec(i: int, cid: str | None = None) -> Record:
    return Record("c", f'[{{"i":{i}}}]'.encode(), kind=JSON, correlation_id=cid or f"id{i}")


def test_batches_become_one_object_per_flush(tmp_path):
    pipe, _ = make(tmp_path)
    for i in range(1000):
        pipe.submit(rec(i))
    assert pipe.flush(10)
    files = list(tmp_path.rglob("*.jsonl"))
    assert len(files) == 1
    assert [line["data"] for line in read_lines(tmp_path)] == [[{"i": i}] for i in range(1000)]
    assert pipe.counters.snapshot()["written"] == 1000
    assert pipe.close()


def test_flush_interval_commits_without_flush_calls(tmp_path):
    pipe, _ = make(tmp_path, flush_interval=0.2)
    pipe.submit(rec(1))
    deadline = time.monotonic() + 5
    while not list(tmp_path.rglob("*.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(read_lines(tmp_path)) == 1
    pipe.close()


def test_object_bytes_commits_early(tmp_path):
    pipe, _ = make(tmp_path, object_bytes=2000, batch_records=10)
    for i in range(200):
        pipe.submit(rec(i))
    pipe.flush(10)
    assert len(list(tmp_path.rglob("*.jsonl"))) > 1
    assert len(read_lines(tmp_path)) == 200
    pipe.close()


def test_records_sharing_an_id_merge_into_one_line(tmp_path):
    pipe, _ = make(tmp_path)
    import pandas as pd

    from modeltap.record import FRAME

    for part in range(3):
        pipe.submit(Record("c", pd.DataFrame({"p": [part]}), kind=FRAME, correlation_id="same"))
    pipe.submit(Record("c", pd.DataFrame({"p": [9]}), kind=FRAME, correlation_id="other"))
    pipe.flush(10)
    lines = read_lines(tmp_path)
    assert [line["correlationid"] for line in lines] == ["same", "other"]
    assert lines[0]["data"] == [{"p": 0}, {"p": 1}, {"p": 2}]
    assert pipe.counters.written == 4
    pipe.close()


@pytest.mark.parametrize("policy", ["drop", "raise"])
def test_full_buffer_drops_and_counts(tmp_path, policy):
    storage = GatedStorage(tmp_path)
    pipe, _ = make(
        tmp_path, storage, buffer_records=5, batch_records=5, batch_window=0.01, overflow=policy
    )
    storage.gate.clear()  # storage hangs: the writer holds one batch, the buffer fills
    pipe.submit(rec(0))
    pipe.flush(0.3)  # the writer takes that record and blocks in put()
    errors = 0
    for i in range(1, 20):
        try:
            pipe.submit(rec(i))
        except BufferFullError as exc:
            errors += 1
            assert "buffer full" in str(exc) and policy in str(exc)
    counts = pipe.counters.snapshot()
    assert errors == counts["dropped"] == 19 - 5
    storage.gate.set()
    assert pipe.flush(10)
    assert pipe.counters.written == counts["accepted"] == 6
    assert len(read_lines(tmp_path)) == 6
    pipe.close()


def test_block_policy_waits_for_room_and_loses_nothing(tmp_path):
    storage = GatedStorage(tmp_path)
    pipe, _ = make(
        tmp_path,
        storage,
        buffer_records=5,
        batch_records=5,
        batch_window=0.01,
        overflow="block",
        block_timeout=10,
    )
    storage.gate.clear()
    threading.Timer(0.5, storage.gate.set).start()
    for i in range(50):
        pipe.submit(rec(i))  # blocks while storage hangs, never drops
    assert pipe.flush(10)
    assert pipe.counters.dropped == 0
    assert sorted(line["data"][0]["i"] for line in read_lines(tmp_path)) == list(range(50))
    pipe.close()


def test_block_policy_drops_after_its_timeout(tmp_path):
    storage = GatedStorage(tmp_path)
    pipe, _ = make(
        tmp_path,
        storage,
        buffer_records=1,
        batch_records=1,
        batch_window=0.01,
        overflow="block",
        block_timeout=0.2,
    )
    storage.gate.clear()
    pipe.submit(rec(0))
    pipe.flush(0.3)
    pipe.submit(rec(1))  # fills the buffer
    started = time.monotonic()
    with pytest.raises(BufferFullError):
        pipe.submit(rec(2))
    assert time.monotonic() - started >= 0.15
    assert pipe.counters.dropped == 1
    storage.gate.set()
    pipe.close()


def test_block_policy_holds_a_caller_once_per_stall_not_once_per_record(tmp_path):
    """Under serve, collect() runs on the event loop: a wait per record froze the server
    (4 x block_timeout per request) while storage was down. After one wait ends in a
    drop, records are dropped at once until the writer makes room again."""
    storage = GatedStorage(tmp_path)
    pipe, _ = make(
        tmp_path,
        storage,
        buffer_records=1,
        batch_records=1,
        batch_window=0.01,
        overflow="block",
        block_timeout=0.5,
    )
    storage.gate.clear()
    pipe.submit(rec(0))
    pipe.flush(0.3)  # the writer is stuck in put() with record 0
    pipe.submit(rec(1))  # fills the buffer
    started = time.monotonic()
    with pytest.raises(BufferFullError):
        pipe.submit(rec(2))  # waits block_timeout, then drops
    assert time.monotonic() - started >= 0.45
    started = time.monotonic()
    for i in range(3, 23):
        with pytest.raises(BufferFullError):
            pipe.submit(rec(i))
    assert time.monotonic() - started < 0.4  # 20 drops, no more waiting
    assert pipe.counters.dropped == 21
    storage.gate.set()  # storage is back: the writer takes record 1, making room
    assert pipe.flush(10)
    storage.gate.clear()
    pipe.submit(rec(30))
    pipe.flush(0.3)
    pipe.submit(rec(31))
    started = time.monotonic()
    with pytest.raises(BufferFullError):
        pipe.submit(rec(32))
    assert time.monotonic() - started >= 0.45  # it waits again after the writer made room
    storage.gate.set()
    assert pipe.close()


def test_failed_commits_are_retried_and_counted(tmp_path):
    storage = GatedStorage(tmp_path, fail_times=2)
    pipe, _ = make(tmp_path, storage)
    for i in range(10):
        pipe.submit(rec(i))
    assert pipe.flush(15)
    counts = pipe.counters.snapshot()
    assert counts["storage_errors"] == 2
    assert counts["written"] == 10 and counts["dropped"] == 0
    assert len(read_lines(tmp_path)) == 10
    pipe.close()


def test_close_writes_everything_and_refuses_more(tmp_path):
    pipe, _ = make(tmp_path, flush_interval=3600)
    for i in range(100):
        pipe.submit(rec(i))
    assert pipe.close(10)
    assert len(read_lines(tmp_path)) == 100
    with pytest.raises(CollectionDisabledError, match="shut down"):
        pipe.submit(rec(1))


def test_bad_record_is_dropped_and_reported_not_fatal(tmp_path):
    seen = []
    storage = LocalStorage(tmp_path)
    routes = {"c": Route(storage, "ep/d/c", "/s")}
    pipe = Pipeline(
        routes,
        PipelineSettings(flush_interval=60),
        RollingRate.HOUR,
        on_drop=lambda n, exc: seen.append((n, exc)),
    )
    pipe.submit(Record("c", object(), correlation_id="x"))  # a frame that is not a frame
    pipe.submit(rec(1))
    assert pipe.flush(10)
    assert pipe.counters.dropped == 1 and seen and seen[0][0] == 1
    pipe.submit(rec(2))
    assert pipe.flush(10)
    assert len(read_lines(tmp_path)) >= 1
    pipe.close()


def test_payload_lines_are_made_on_submit_and_frame_lines_by_the_writer(tmp_path):
    from modeltap.record import FRAME

    pipe, _ = make(tmp_path)
    json_record = rec(1)
    rows = [Record("c", b'[{"p":%d}]' % i, kind=FRAME, correlation_id="same") for i in range(2)]
    pipe.submit(json_record)
    assert json_record.line is not None  # made here, not on the writer
    for record in rows:
        pipe.submit(record)
        assert record.line is None  # the writer makes it: off a scoring thread's clock
    pipe.flush(10)
    written = sorted(tmp_path.rglob("*.jsonl"))[0].read_bytes().splitlines(keepends=True)
    assert written[0] == json_record.line  # used as made
    # Rows of one id still merge; their own lines are not used.
    assert [line["data"] for line in read_lines(tmp_path)][1] == [{"p": 0}, {"p": 1}]
    pipe.close()


def test_a_refused_payload_is_retried_until_it_lands_not_dropped(tmp_path):
    """No spool: the payload waits in memory and is put again on the back-off (it used to
    be dropped after three attempts slept on the writer thread)."""
    from modeltap.record import BLOB

    storage = GatedStorage(tmp_path, fail_times=3)
    pipe, _ = make(tmp_path, storage)
    pipe.submit(Record("c", b"\x00payload", kind=BLOB, correlation_id="x", id="rid1"))
    pipe.submit(rec(1))
    assert pipe.flush(15)
    counts = pipe.counters.snapshot()
    assert (counts["storage_errors"], counts["dropped"], counts["written"]) == (3, 0, 2)
    by_id = {line["id"]: line for line in read_lines(tmp_path)}
    assert by_id["rid1"]["datainblob"] == "true"
    assert Path(by_id["rid1"]["data"]).read_bytes() == b"\x00payload"
    assert pipe.close()
