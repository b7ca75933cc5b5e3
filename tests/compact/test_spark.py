"""read.spark (SPEC R12.2): the same rows and columns as load, from the Delta table's
Parquet files where compacted and from the JSON lines elsewhere, pruned by time, with the
platform's row key `{correlationid}_{row index}`."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import orjson
import pandas as pd
import pytest

from modeltap import compact, read
from tests.compact.helpers import ASSET, T0, fill, payloads, stop

pytestmark = pytest.mark.slow

COLUMNS = ["age", "income", "city", "member", "visits", "correlationid", "time", "record_id"]


def collect(df: Any) -> pd.DataFrame:
    """A Spark DataFrame's rows as pandas objects (toPandas passes pandas 3 a deprecated
    keyword in pyspark 4.3)."""
    return pd.DataFrame([r.asDict() for r in df.collect()], columns=df.columns, dtype=object)


def rows(df: pd.DataFrame, columns: list[str]) -> list[tuple[Any, ...]]:
    """Rows as sorted tuples of plain values (NaN and NA as None, times as UTC)."""
    out = []
    for record in df[columns].astype(object).itertuples(index=False):
        values = []
        for v in record:
            if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
                values.append(None)
            elif isinstance(v, datetime):  # Spark's are naive, in the session's zone (UTC)
                t = pd.Timestamp(v)
                values.append(t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC"))
            else:
                values.append(v)
        out.append(tuple(values))
    return sorted(out, key=repr)


@pytest.fixture
def half_compacted(workspace):
    """Four hours of data, the first two compacted."""
    fill(workspace, hours=4)
    stop()
    compact.compact(ASSET, workspace=workspace, until=T0 + timedelta(hours=2))
    return workspace


def test_same_rows_as_load(half_compacted, spark):
    ws = half_compacted
    df = read.spark(ASSET, spark=spark, workspace=ws)
    assert df.columns == [*COLUMNS, "row_key"]
    got = collect(df)
    expected = read.load(ASSET, workspace=ws, delta=False)
    assert len(got) == len(expected) == 32
    assert rows(got, COLUMNS) == rows(expected, COLUMNS)
    files = df.inputFiles()
    assert sum(f.endswith(".parquet") for f in files) == 2  # hours 8 and 9
    assert sum(f.endswith(".jsonl") for f in files) == 4  # hours 10 and 11, two flushes each
    types = dict(df.dtypes)
    assert types["age"] == "bigint" and types["time"] == "timestamp"
    assert types["income"] == "double" and types["member"] == "boolean"


def test_time_range_prunes_partitions(half_compacted, spark):
    ws = half_compacted
    for start, end in [
        (T0 + timedelta(hours=1), T0 + timedelta(hours=2)),  # in the table only
        (T0 + timedelta(hours=1, minutes=5), T0 + timedelta(hours=3)),  # both
    ]:
        df = read.spark(ASSET, start, end, spark=spark, workspace=ws)
        expected = read.load(ASSET, start, end, workspace=ws, delta=False)
        assert rows(collect(df), COLUMNS) == rows(expected, COLUMNS)
    only = read.spark(
        ASSET, T0 + timedelta(hours=1), T0 + timedelta(hours=2), spark=spark, workspace=ws
    )
    assert [f for f in only.inputFiles() if "hour=8" in f or ".jsonl" in f] == []


def test_json_lines_only_and_row_key(half_compacted, spark):
    ws = half_compacted
    df = read.spark(ASSET, spark=spark, workspace=ws, delta=False)
    got = collect(df)
    assert all(f.endswith(".jsonl") for f in df.inputFiles())
    assert rows(got, COLUMNS) == rows(read.load(ASSET, workspace=ws, delta=False), COLUMNS)
    # The platform's key: the correlation id and the row's index in its line's data.
    first = got[got["correlationid"] == "c0-0-0"].sort_values("row_key")
    assert first["row_key"].tolist() == ["c0-0-0_0", "c0-0-0_1"]
    assert first["age"].tolist() == [0, -1]
    table = collect(read.spark(ASSET, spark=spark, workspace=ws))
    assert sorted(table["row_key"]) == sorted(got["row_key"])


def test_payload_collection(workspace, spark):
    fill(workspace, hours=1, flushes=1)
    payloads(workspace)
    stop()
    compact.compact("ep-blue-request", workspace=workspace, until=T0 + timedelta(hours=1))
    got = collect(read.spark("ep-blue-request", spark=spark, workspace=workspace))
    expected = read.load("ep-blue-request", workspace=workspace, delta=False)
    got = got.sort_values("time", ignore_index=True)
    assert got["data"].tolist() == [orjson.dumps(v).decode() for v in expected["data"]]
    assert got["method"].tolist() == expected["method"].tolist()
    assert got["row_key"].tolist() == [f"r{i}_0" for i in range(6)]


def test_the_scale_page_spark_examples(tmp_path, monkeypatch, spark):
    from tests.test_docs import ROOT, blocks

    page = ROOT / "docs" / "scale.md"
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    for code in blocks(page, "python"):
        exec(compile(code, str(page), "exec"), namespace)
    namespace["spark"] = spark
    [example] = blocks(page, "pyspark")
    exec(compile(example, str(page), "exec"), namespace)
