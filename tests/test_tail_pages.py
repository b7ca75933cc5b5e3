"""Bounded reads for the web page: pages of the newest lines within a time range, the lines
of one correlation id (modeltap.tail), and the line scanner under them (read/_lines.py).

Data is made by the real pipeline (tests/test_summary_tail.py's helpers)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import orjson
import pandas as pd
import pytest

from modeltap import runtime
from modeltap import tail as tails
from modeltap.read import _lines
from modeltap.record import FRAME, Record
from modeltap.tabular import PANDAS_TYPE
from tests.conftest import store_root
from tests.helpers import flush, setup
from tests.test_summary_tail import PREFIX, T0, jsonl_files, series, submit

COLLECTION = "ep/blue/model_inputs"


def newest_first(ids: list[str]) -> list[str]:
    return ids[::-1]


# -- the scanner ----------------------------------------------------------------------------


def test_scan_finds_every_time_without_parsing_and_agrees_with_a_full_parse(workspace):
    setup(workspace)
    submit(T0, 'quote"and\\backslash')  # escapes in the id: after the time, still fast
    series(T0 + timedelta(minutes=1), 5, timedelta(seconds=7))
    data = b"".join(f.read_bytes() for f in jsonl_files(workspace))
    scanned = _lines.scan(data)
    assert not scanned.parsed  # the fast path: no line was parsed
    want = [json.loads(raw)["time"] for raw in data.splitlines()]
    got = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in scanned.times if t is not None]
    assert got == want and len(scanned.raw) == 6 and scanned.bad == 0
    assert scanned.record(0)["correlationid"] == 'quote"and\\backslash'


def test_scan_falls_back_to_parsing_lines_of_other_writers():
    foreign = [
        {"time": "2026-03-01T08:00:00Z", "correlationid": "a", "data": []},  # time first
        {
            "specversion": "1.0",
            "id": "x",
            "source": "s",
            "type": "t",
            "datacontenttype": 'a"b',
            "time": "2026-03-01T09:00:00Z",
            "data": [],
        },  # escaped
    ]
    data = b"\n".join(orjson.dumps(x) for x in foreign) + b"\n\nnot json\n[1]\n"
    scanned = _lines.scan(data)
    assert scanned.times == [T0.replace(hour=8, minute=0), T0.replace(hour=9, minute=0)]
    assert scanned.index == [0, 1] and scanned.bad == 2
    assert scanned.record(1)["datacontenttype"] == 'a"b'


def test_a_line_that_only_looks_like_modeltaps_is_left_out_when_chosen(workspace):
    setup(workspace)
    ids = series(T0, 3, timedelta(minutes=1))
    [newest_file] = [f for f in jsonl_files(workspace) if b"c002" in f.read_bytes()]
    good = newest_file.read_bytes()
    cut = good.replace(b'"correlationid":"c002"', b'"correlationid":"c002"\x00}{')
    assert cut != good
    newest_file.write_bytes(cut)
    with tails.open_tail(COLLECTION, workspace) as t:
        lines = t.newest(2)
        assert [line.correlationid for line in lines] == ids[:2]
        assert t.bad_lines == 1


# -- pages ----------------------------------------------------------------------------------


def test_pages_walk_back_through_the_collection_newest_first(workspace):
    setup(workspace)
    ids = series(T0, 23, timedelta(minutes=13))  # 08:30 ... 13:16, six hour partitions
    seen: list[str] = []
    with tails.open_tail(COLLECTION, workspace) as t:
        for offset in range(0, 30, 5):
            lines, more = t.page(5, offset)
            seen += [line.correlationid or "" for line in lines]
            assert more == (offset + 5 < 23)
        last, more = t.page(3, 20)  # exactly the last three: nothing older
        assert [line.correlationid for line in last] == ids[2::-1] and not more
    assert seen == newest_first(ids)


def test_a_page_reads_only_the_partitions_it_needs(workspace, counting):
    setup(workspace)
    series(T0, 30, timedelta(minutes=10))  # six hour partitions, 08:30 ... 13:20
    counting.got.clear()
    with tails.open_tail(COLLECTION, workspace) as t:
        lines, more = t.page(2, 0)  # 13:20, 13:10, and one more (13:00) to know of more
        assert [line.correlationid for line in lines] == ["c029", "c028"] and more
        assert counting.got and all("/2026/03/01/13/" in p for p in counting.got)
        lines, more = t.page(2, 2)  # 13:00 and 12:50: the 12 partition too
    assert [line.correlationid for line in lines] == ["c027", "c026"] and more
    assert {p.split("/")[-2] for p in counting.got} == {"13", "12"}


def test_a_time_range_keeps_start_and_leaves_out_end(workspace, counting):
    setup(workspace)
    ids = series(T0, 30, timedelta(minutes=10))
    start, end = T0 + timedelta(minutes=60), T0 + timedelta(minutes=120)  # 09:30 .. 10:30
    counting.got.clear()
    with tails.open_tail(COLLECTION, workspace) as t:
        lines = t.newest(100, start, end)
        assert [line.correlationid for line in lines] == ids[6:12]
        assert all("/2026/03/01/09/" in p or "/2026/03/01/10/" in p for p in counting.got)
        page, more = t.page(4, 0, start=start)
        assert [line.correlationid for line in page] == newest_first(ids)[:4] and more
        page, more = t.page(4, 4, end=end)
        assert [line.correlationid for line in page] == newest_first(ids[:12])[4:8] and more
        assert t.page(4, 0, start=T0 + timedelta(days=1)) == ([], False)


def test_a_range_leaves_out_lines_without_a_time(workspace):
    setup(workspace)
    series(T0, 2, timedelta(minutes=1))
    folder = store_root(workspace) / PREFIX / "2026/03/01/08"
    (folder / "odd.jsonl").write_text(json.dumps({"correlationid": "timeless"}) + "\n")
    with tails.open_tail(COLLECTION, workspace) as t:
        assert [x.correlationid for x in t.newest(5)] == ["timeless", "c000", "c001"]
        ranged = t.newest(5, T0, T0 + timedelta(hours=1))
        assert [x.correlationid for x in ranged] == ["c000", "c001"]


# -- one correlation id ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "cid", ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "id é ☃ \u2028"]
)
def test_find_returns_the_lines_of_one_id(workspace, cid):
    setup(workspace)
    series(T0, 10, timedelta(minutes=20))
    submit(T0 + timedelta(minutes=45), cid, rows=3)
    flush()
    with tails.open_tail(COLLECTION, workspace) as t:
        found = t.find(cid)
    [line] = found.lines
    assert line.correlationid == cid and found.stopped_at is None
    assert [row["cid"] for row in line.data] == [cid] * 3
    assert line.time == T0 + timedelta(minutes=45)
    assert json.loads(line.raw) == line.record
    path = store_root(workspace) / line.path
    assert path.read_bytes().splitlines()[line.index] == line.raw


def test_find_stops_at_the_newest_partition_holding_the_id(workspace, counting):
    setup(workspace)
    series(T0, 30, timedelta(minutes=10))  # 08 ... 13
    submit(T0 + timedelta(hours=4), "twice")  # 12:30
    submit(T0 + timedelta(minutes=5), "twice")  # 08:35: older, not reached
    flush()
    counting.got.clear()
    with tails.open_tail(COLLECTION, workspace) as t:
        found = t.find("twice")
    assert [line.time for line in found.lines] == [T0 + timedelta(hours=4)]
    assert {p.split("/")[-2] for p in counting.got} == {"13", "12"}
    with tails.open_tail(COLLECTION, workspace) as t:
        both = t.find("twice", end=T0 + timedelta(hours=1))
        assert [line.time for line in both.lines] == [T0 + timedelta(minutes=5)]
        assert t.find("twice", T0 + timedelta(hours=5)).lines == []
        assert t.find("nobody").lines == []


def test_find_matches_the_correlation_id_only(workspace):
    setup(workspace)
    frame = pd.DataFrame({"note": ["abc"]})  # the id appears in the data of another record
    other = Record(
        "model_inputs",
        frame,
        kind=FRAME,
        correlation_id="other",
        time_=T0.timestamp(),
        collect_data_type=PANDAS_TYPE,
    )
    runtime.current().pipeline.submit(other)
    flush()
    with tails.open_tail(COLLECTION, workspace) as t:
        assert t.find("abc").lines == []
        assert [x.correlationid for x in t.find("other").lines] == ["other"]


def test_find_within_a_byte_budget_says_where_it_stopped(workspace, counting):
    setup(workspace)
    series(T0, 30, timedelta(minutes=10))
    counting.got.clear()
    with tails.open_tail(COLLECTION, workspace) as t:
        found = t.find("c000", max_bytes=1)  # one partition, then out of budget
    assert found.lines == []
    assert found.stopped_at == datetime(2026, 3, 1, 13, tzinfo=UTC)  # 12:00-13:00 not read
    assert {p.split("/")[-2] for p in counting.got} == {"13"}


def envelope_line(time: str, cid: str) -> bytes:
    return orjson.dumps(
        {
            "specversion": "1.0",
            "id": cid,
            "source": "s",
            "type": "t",
            "datacontenttype": "application/json",
            "time": time,
            "data": [],
            "correlationid": cid,
        }
    )


def test_time_range_of_an_object():
    times = ["2026-03-01T09:00:00Z", "2026-03-01T08:00:00Z", "2026-03-01T09:30:00Z"]
    data = b"\n".join(envelope_line(t, str(k)) for k, t in enumerate(times)) + b"\n"
    assert _lines.time_range(data) == (T0.replace(minute=0), T0.replace(hour=9, minute=30))
    # another offset: text order is not time order any more (10:00+05:00 is 05:00Z)
    data += envelope_line("2026-03-01T10:00:00+05:00", "x")
    assert _lines.time_range(data) == (
        datetime(2026, 3, 1, 5, tzinfo=UTC),
        datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
    )
    assert _lines.time_range(b"") == (None, None)
    assert _lines.time_range(b'{"time": "2026-03-01T08:00:00Z"}') == (T0.replace(minute=0),) * 2


def test_objects_in_time_order_and_not(workspace):
    setup(workspace)
    series(T0, 1, timedelta(minutes=1))  # registers the collection; 08:30
    folder = store_root(workspace) / PREFIX / "2026/03/01/08"
    at = [T0.replace(minute=m) for m in range(10)]  # 08:00 ... 08:09, in order
    ordered = [envelope_line(t.strftime("%Y-%m-%dT%H:%M:%SZ"), f"a{t.minute}") for t in at]
    ordered[9] = ordered[9][:-1] + b",}"  # the newest one is not JSON after all
    (folder / "a.jsonl").write_bytes(b"\n".join(ordered) + b"\n")
    unordered = [envelope_line(f"2026-03-01T08:{m:02d}:00Z", f"b{m}") for m in (5, 45, 1)]
    (folder / "b.jsonl").write_bytes(b"\n".join(unordered) + b"\n")
    assert _lines.scan((folder / "a.jsonl").read_bytes()).ordered
    assert not _lines.scan((folder / "b.jsonl").read_bytes()).ordered
    with tails.open_tail(COLLECTION, workspace) as t:
        assert [x.correlationid for x in t.newest(4)] == ["a7", "a8", "c000", "b45"]
        assert t.bad_lines == 1
        early = t.newest(3, end=T0.replace(minute=5))
        assert [x.correlationid for x in early] == ["a2", "a3", "a4"]
        window = t.newest(10, T0.replace(minute=4), T0.replace(minute=6))
        assert [x.correlationid for x in window] == ["a4", "a5", "b5"]


# -- what is kept between operations --------------------------------------------------------


def test_scanned_objects_are_kept_between_operations(workspace, counting):
    setup(workspace)
    ids = series(T0, 12, timedelta(minutes=30))  # 08:30 ... 14:00
    with tails.open_tail(COLLECTION, workspace) as t:
        assert [x.correlationid for x in t.newest(4)] == ids[-4:]  # 12:30 ... 14:00
        read_once = list(counting.got)
        counting.got.clear()
        page, _ = t.page(3, 0)  # the 4 newest again (3, and whether more): nothing read
        assert [x.correlationid for x in page] == ids[:-4:-1] and counting.got == []
        page, _ = t.page(3, 3)  # one partition further back: only that one is read
        assert counting.got and not set(counting.got) & set(read_once)
    # an object of another size at the same place is another object
    newest = store_root(workspace) / max(read_once)  # the 14 partition's
    newest.write_bytes(newest.read_bytes() + newest.read_bytes().splitlines(keepends=True)[0])
    counting.got.clear()
    with tails.open_tail(COLLECTION, workspace) as t:
        assert [x.correlationid for x in t.newest(2)] == ["c011", "c011"]
    assert counting.got == [max(read_once)]


def test_the_cache_keeps_to_its_size():
    cache = _lines.ScanCache(100)
    one = _lines.scan(b"")
    for k in range(5):
        cache.put((f"p{k}", k), one, 30)
    assert [cache.get((f"p{k}", k)) is one for k in range(5)] == [False, False, True, True, True]
    cache.get(("p2", 2))  # used: kept over p3
    cache.put(("p5", 5), one, 30)
    assert cache.get(("p2", 2)) is one and cache.get(("p3", 3)) is None
    cache.put(("big", 0), one, 101)  # larger than the whole cache: not kept
    assert cache.get(("big", 0)) is None
