"""The payload relay: serve workers hand logged calls to the sidecar over a Unix socket."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import modeltap
from modeltap import runtime
from modeltap.serving.payload import record_call
from modeltap.serving.relay import MAX_DATAGRAM, Call, RelayReceiver, RelaySender, decode, encode
from tests.conftest import read_lines, store_root
from tests.servers import start_cli
from tests.serving.test_payload import DEPLOYMENT  # request and response, flush_interval 60

calls = st.builds(
    Call,
    request_id=st.text(min_size=1, max_size=40),
    time=st.floats(0, 4e9),
    path=st.text(max_size=60),
    method=st.sampled_from(["POST", "GET", "PUT"]),
    request_type=st.text(max_size=30),
    status=st.one_of(st.none(), st.integers(100, 599)),
    response_type=st.text(max_size=30),
    latency_ms=st.floats(0, 1e6),
    error=st.one_of(st.none(), st.text(max_size=80)),
    request_body=st.binary(max_size=300),
    response_body=st.binary(max_size=300),
)


@given(st.lists(calls, min_size=1, max_size=5))
@settings(max_examples=200)
def test_frames_round_trip(batch):
    # Line breaks and any bytes in bodies or fields: frames are found by their sizes.
    assert list(decode(b"".join(encode(c) for c in batch))) == batch


def test_bad_datagrams_are_refused_with_the_offset():
    frame = encode(Call("a", 1.0, "/score", "POST", "", 200, "", 1.0, None, b"{}", b"1"))
    with pytest.raises(ValueError, match="at byte 0 is cut short"):
        list(decode(frame[:-1]))
    with pytest.raises(ValueError, match="at byte 0 has a bad header"):
        list(decode(b"not json\n"))
    with pytest.raises(ValueError, match=f"at byte {len(frame)} has no header line"):
        list(decode(frame + b"[1,2"))


def _call(i: int, size: int = 20) -> Call:
    body = b'{"data": [%d], "pad": "%s"}' % (i, b"x" * size)
    return Call(f"id-{i}", time.time(), "/score?v=1", "POST", "application/json", 200,
                "application/json", 0.5, None, body, b'{"ok":true}')  # fmt: skip


async def _send_all(sender: RelaySender, batch: list[Call]) -> None:
    for i, call in enumerate(batch):
        sender.add(call)
        if i % 50 == 0:
            await asyncio.sleep(0.003)  # let the flush timer run, as between requests
    sender.close()


@pytest.fixture
def socket_path(tmp_path: Path) -> Path:
    # AF_UNIX paths are short (108 bytes): pytest's tmp_path can be longer.
    path = Path(f"/tmp/mt-relay-{os.getpid()}-{time.monotonic_ns()}.sock")
    yield path
    path.unlink(missing_ok=True)


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[runtime.Runtime]:
    yield runtime.configure(
        workspace=tmp_path / "ws",
        endpoint="ep",
        deployment="blue",
        collections=["request", "response"],
        flush_interval=60,
    )
    modeltap.shutdown()


def test_relayed_calls_are_recorded_by_the_receiver(rt, tmp_path, socket_path):
    receiver = RelayReceiver(socket_path, lambda call: record_call(rt, call))
    kept: list[Call] = []

    def keep(call: Call) -> None:  # what the socket does not take at once, the worker records
        kept.append(call)
        record_call(rt, call)

    sender = RelaySender(str(socket_path), keep)
    batch = [_call(i) for i in range(300)]
    asyncio.run(_send_all(sender, batch))
    receiver.close()
    modeltap.shutdown()
    assert sender.relayed + len(kept) == 300
    assert receiver.received == sender.relayed > 0
    requests = read_lines(store_root(tmp_path / "ws"), "request")
    responses = read_lines(store_root(tmp_path / "ws"), "response")
    assert sorted(r["correlationid"] for r in requests) == sorted(c.request_id for c in batch)
    assert len(responses) == 300
    first = next(r for r in requests if r["correlationid"] == "id-7")
    assert first["data"] == {"data": [7], "pad": "x" * 20}
    assert first["path"] == "/score?v=1" and first["method"] == "POST"
    answer = next(r for r in responses if r["correlationid"] == "id-7")
    assert answer["data"] == {"ok": True}
    assert answer["statuscode"] == 200 and answer["latencyms"] == 0.5


def test_no_sidecar_means_the_worker_records_every_call(socket_path, caplog):
    kept: list[Call] = []
    sender = RelaySender(str(socket_path), kept.append)  # nothing listens there
    batch = [_call(i) for i in range(120)]
    asyncio.run(_send_all(sender, batch))
    assert kept == batch and sender.relayed == 0
    warnings = [r for r in caplog.records if "payload relay" in r.getMessage()]
    assert len(warnings) == 1  # then it stops trying for a while instead of failing per call
    assert str(socket_path) in warnings[0].getMessage()


@pytest.fixture
def listener(socket_path: Path) -> Iterator[socket.socket]:
    """A sidecar that reads nothing unless the test does."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(socket_path))
    yield sock
    sock.close()


def test_a_busy_sidecar_costs_nothing(socket_path, listener):
    # Its queue fills, and the rest stays with the worker.
    kept: list[Call] = []
    sender = RelaySender(str(socket_path), kept.append)
    batch = [_call(i, size=4000) for i in range(400)]
    asyncio.run(_send_all(sender, batch))
    listener.setblocking(False)
    relayed: list[Call] = []
    while True:
        try:
            relayed.extend(decode(listener.recv(MAX_DATAGRAM + 1)))
        except BlockingIOError:
            break
    assert kept, "the queue never filled: the test proves nothing"
    assert len(relayed) == sender.relayed
    assert sorted(c.request_id for c in relayed + kept) == sorted(c.request_id for c in batch)


def test_a_call_too_big_for_a_datagram_stays_with_the_worker(socket_path, listener):
    kept: list[Call] = []
    sender = RelaySender(str(socket_path), kept.append)
    big = _call(1, size=MAX_DATAGRAM)
    asyncio.run(_send_all(sender, [big]))
    assert kept == [big] and sender.relayed == 0


# -- through `modeltap serve` --------------------------------------------------------------

SCORE = """
import os

def init():
    pass

def run(data):
    return {"pid": os.getpid()}
"""


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _sidecar(serve_pid: int) -> int:
    for pid in _children(serve_pid):
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"--relay-socket" in f.read():
                return pid
    raise AssertionError("no sidecar with --relay-socket under modeltap serve")


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    """Until every thread of pid has exited: the process's sockets close with the last one,
    so the main thread alone being a zombie is not enough."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = []
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with contextlib.suppress(OSError):  # gone meanwhile
                states.append((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
        if all(state in ("Z", "X") for state in states):
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} still runs {timeout} s after SIGKILL")


@pytest.fixture
def served(tmp_path: Path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "score.py").write_text(SCORE)
    (tmp_path / "deployment.yml").write_text(DEPLOYMENT)
    server, base = start_cli(
        "serve", tmp_path / "deployment.yml", tmp_path / "ws", tmp_path / "serve.log"
    )
    yield server, base, tmp_path / "ws"
    server.stop()


@pytest.mark.slow
def test_serve_writes_payload_records_in_its_sidecar(served):
    server, base, ws = served
    sidecar = _sidecar(server.proc.pid)
    with httpx.Client(base_url=base) as client:
        worker = {client.post("/score", json={"i": i}).json()["pid"] for i in range(20)}
    assert server.stop() == 0
    objects = list((store_root(ws)).rglob("*.jsonl"))
    assert objects and len(read_lines(store_root(ws), "request")) == 20
    # Object names carry the writing process's id: the sidecar's, not the worker's.
    assert all(f"-{sidecar}-" in path.name for path in objects), (objects, sidecar)
    assert not any(f"-{pid}-" in path.name for path in objects for pid in worker)


@pytest.mark.slow
def test_serve_keeps_recording_when_its_sidecar_dies(served):
    server, base, ws = served
    with httpx.Client(base_url=base) as client:
        client.post("/score", json={"warm": 1})
        sidecar = _sidecar(server.proc.pid)
        os.kill(sidecar, signal.SIGKILL)  # its unwritten records go with it
        _wait_gone(sidecar)  # what reaches it before its socket closes is lost with it
        after = []
        for i in range(200):
            r = client.post("/score", json={"i": i}, headers={"x-request-id": f"after-{i}"})
            assert r.status_code == 200
            after.append(r.headers["x-request-id"])
    assert server.stop() == 0
    recorded = {line["correlationid"] for line in read_lines(store_root(ws), "request")}
    assert set(after) <= recorded
    responses = {line["correlationid"] for line in read_lines(store_root(ws), "response")}
    assert set(after) <= responses
