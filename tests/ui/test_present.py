"""How records are laid out (ui/present.py) and charted (ui/data.chart), without a browser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from modeltap.assets import Catalog
from modeltap.summary import AssetSummary, PartitionCount, Partitions
from modeltap.tail import Line
from modeltap.ui import data, present

T = datetime(2026, 3, 1, 8, tzinfo=UTC)


def line(record: dict, path: str = "c/2026/03/01/08/w-1.jsonl", index: int = 0) -> Line:
    return Line(b"{}", record, T, path, index)


def test_rows_flatten_to_columns_in_first_seen_order():
    rows = [{"a": 1, "b": {"c": 2, "d": {"e": 3}}}, {"f": None, "a": 2.5}]
    rows += [{"a": k} for k in range(present.ROWS_PER_RECORD + 3)]
    table = present.rows_table([line({"data": rows, "correlationid": "x"}), line({"data": []})])
    assert table.columns == ["a", "b.c", "b.d.e", "f"]
    first = table.rows[0]
    assert [c.text for c in first.cells] == ["1", "2", "3", ""]
    assert [c.kind for c in first.cells] == ["num", "num", "num", "null"]
    assert [c.text for c in table.rows[1].cells] == ["2.5", "", "", ""]
    shown = [r for r in table.rows if r.line.record["data"]]
    assert len(shown) == present.ROWS_PER_RECORD and [r.first for r in shown[:2]] == [True, False]
    assert shown[-1].more_rows == len(rows) - present.ROWS_PER_RECORD
    assert table.rows[-1].cells == []  # a record without rows


def test_long_values_are_cut_with_the_whole_value_on_hover():
    long = "x" * 500
    cell = present.cell(long)
    assert len(cell.text) == present.MAX_CELL and cell.text.endswith("…")
    assert cell.title == long
    assert present.cell({"k": [1, True, None]}).text == '{"k":[1,true,null]}'
    assert present.text(False) == "false" and present.text(None) == ""


def test_many_columns_are_capped():
    row = {f"c{k}": k for k in range(present.MAX_COLUMNS + 5)}
    table = present.rows_table([line({"data": [row]})])
    assert len(table.columns) == present.MAX_COLUMNS and table.hidden_columns == 5


def test_payloads_show_their_fields_size_and_where_a_stored_body_is():
    lines = [
        line(
            {"data": {"q": 1}, "method": "POST", "statuscode": 200, "contentrange": "bytes 0-6/7"}
        ),
        line(
            {
                "data": "https://x/blob",
                "datainblob": "true",
                "id": "rid",
                "contentrange": "bytes 0-2999/3000",
            }
        ),
        line({"data": None, "contentrange": "bytes */0"}),
    ]
    table = present.payload_table(lines)
    assert table.columns == ["method", "statuscode", "size", "body"]
    assert [[c.text for c in r.cells] for r in table.rows] == [
        ["POST", "200", "7 B", '{"q":1}'],
        ["", "", "3.0 kB", "stored as its own object"],
        ["", "", "0 B", ""],
    ]
    assert table.rows[1].blob == "c/2026/03/01/08/rid" and table.rows[0].blob is None


def test_record_view_for_rows_bodies_and_stored_payloads():
    rows = present.record_view(line({"data": [{"a": 1}], "time": "t", "modelversion": "v"}))
    assert rows.table is not None and rows.body is None and ("modelversion", "v") in rows.fields
    body = present.record_view(line({"data": {"b": [1]}, "statuscode": 503, "latencyms": 3}))
    assert body.body == '{\n  "b": [\n    1\n  ]\n}' and (body.status, body.latency_ms) == (
        503,
        3.0,
    )
    big = present.record_view(line({"data": "y" * (present.MAX_PRETTY + 10)}))
    assert big.body is not None and big.body.endswith("(10 more characters)")
    stored = present.record_view(
        line({"data": "u", "datainblob": "true", "id": "r", "contentrange": "bytes 0-9/10"})
    )
    assert (stored.blob, stored.size, stored.body, stored.table) == (
        "c/2026/03/01/08/r",
        10,
        None,
        None,
    )


def summary(parts: list[PartitionCount]) -> AssetSummary:
    asset = Catalog.make("a", "1", "e", "d", "c", "workspaceblobstore", "p")
    return AssetSummary(
        asset,
        None,
        0,
        0,
        0,
        0,
        None,
        None,
        Partitions(0, None, None, None),
        by_partition=tuple(parts),
    )


def test_chart_adds_minutes_into_hours_and_keeps_coarser_partitions():
    minutes = [
        PartitionCount(
            f"2026/03/01/08/{m:02d}",
            T + timedelta(minutes=m),
            T + timedelta(minutes=m + 1),
            2,
            m == 5,
        )
        for m in range(0, 60, 5)
    ]
    late = T + timedelta(hours=3)
    minutes.append(PartitionCount("2026/03/01/11/00", late, late + timedelta(minutes=1), 7, False))
    chart = data.chart(summary(minutes))
    assert len(chart["labels"]) == data.CHART_BUCKETS and chart["unit"] == "hour"
    assert chart["values"][-4:] == [24, 0, 0, 7] and chart["estimated"][-4:] == [
        True,
        False,
        False,
        False,
    ]
    assert chart["labels"][-1] == "03-01 11:00"

    days = [
        PartitionCount(
            f"2026/03/0{d}", T.replace(day=d, hour=0), T.replace(day=d + 1, hour=0), d, False
        )
        for d in (1, 2, 4)
    ]
    chart = data.chart(summary(days))
    assert chart == {
        "labels": ["2026/03/01", "2026/03/02", "2026/03/04"],
        "values": [1, 2, 4],
        "estimated": [False] * 3,
        "unit": "day",
    }
    assert data.chart(summary([]))["values"] == []
