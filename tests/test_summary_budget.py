"""Asset summaries within a byte budget (what the web page's overview shows) and the
records of each partition."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from modeltap import summary
from tests.conftest import store_root
from tests.helpers import setup
from tests.test_summary_tail import INPUTS, PREFIX, T0, jsonl_files, series


def hours(paths: list[str]) -> set[str]:
    return {p.split("/")[-2] for p in paths}


def test_records_of_each_partition(workspace):
    setup(workspace)
    series(T0, 10, timedelta(minutes=25))  # 08:30 08:55 09:20 ... 11:50 12:15
    s = summary.show_asset(INPUTS, workspace)
    assert [(p.folder, p.records, p.estimated) for p in s.by_partition] == [
        ("2026/03/01/08", 2, False),
        ("2026/03/01/09", 2, False),
        ("2026/03/01/10", 2, False),
        ("2026/03/01/11", 3, False),
        ("2026/03/01/12", 1, False),
    ]
    first = s.by_partition[0]
    assert (first.start, first.end) == (T0.replace(minute=0), T0.replace(hour=9, minute=0))
    assert not s.estimated and s.records == sum(p.records for p in s.by_partition)


def test_a_budget_reads_the_ends_then_the_newest_and_estimates_the_rest(workspace, counting):
    setup(workspace)
    series(T0, 48, timedelta(minutes=6), flush_every=2)  # 08:30 ... 13:12, 10 lines an hour
    exact = {s.asset.name: s for s in summary.list_assets(workspace)}[INPUTS]
    files = jsonl_files(workspace)
    size = {f.relative_to(store_root(workspace)).as_posix(): f.stat().st_size for f in files}
    in_12 = sum(v for k, v in size.items() if "/2026/03/01/12/" in k)
    summary._SCANS.clear()  # count this summary's reads, not the one above's
    counting.got.clear()

    [s] = [x for x in summary.list_assets(workspace, max_bytes=0) if x.asset.name == INPUTS]
    assert hours(counting.got) == {"08", "13"}  # first and last partitions: for the times
    assert (s.first, s.last) == (exact.first, exact.last)
    assert s.estimated and (s.files, s.bytes) == (exact.files, exact.bytes)
    assert abs(s.records - 48) <= 3  # lines of one size: the estimate is close
    marks = {p.folder[-2:]: p.estimated for p in s.by_partition}
    assert marks == {"08": False, "09": True, "10": True, "11": True, "12": True, "13": False}

    summary._SCANS.clear()
    counting.got.clear()
    ends = sum(v for k, v in size.items() if "/08/" in k or "/13/" in k)
    [s] = [
        x for x in summary.list_assets(workspace, max_bytes=ends + in_12) if x.asset.name == INPUTS
    ]
    assert hours(counting.got) == {"08", "12", "13"}  # then the newest that fit
    assert Counter(p.estimated for p in s.by_partition) == Counter({True: 3, False: 3})
    assert [p.records for p in s.by_partition if not p.estimated] == [
        p.records for p in exact.by_partition if p.folder[-2:] in ("08", "12", "13")
    ]

    big = summary.list_assets(workspace, max_bytes=sum(size.values()))
    [s] = [x for x in big if x.asset.name == INPUTS]
    assert not s.estimated and s.records == 48 and s.by_partition == exact.by_partition


def test_loose_files_are_always_read(workspace):
    setup(workspace)
    series(T0, 3, timedelta(hours=1))
    folder = store_root(workspace) / PREFIX
    (folder / "loose.jsonl").write_text('{"time": "2026-02-01T00:00:00Z"}\n' * 4)
    [s] = [x for x in summary.list_assets(workspace, max_bytes=0) if x.asset.name == INPUTS]
    assert s.records == 7 and s.first is not None and s.first.month == 2
    assert sum(p.records for p in s.by_partition) == 3  # loose lines are in no partition


def test_a_summary_made_again_reads_only_new_objects(workspace, counting):
    setup(workspace)
    series(T0, 6, timedelta(minutes=30))
    first = {s.asset.name: s for s in summary.list_assets(workspace)}[INPUTS]
    counting.got.clear()
    again = {s.asset.name: s for s in summary.list_assets(workspace)}[INPUTS]
    assert counting.got == [] and again == first
    series(T0 + timedelta(hours=5), 1, timedelta(minutes=1))  # one new object
    counting.got.clear()
    s = {s.asset.name: s for s in summary.list_assets(workspace)}[INPUTS]
    assert s.records == 7 and len(counting.got) == 1
