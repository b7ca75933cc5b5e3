"""Collections for the compaction tests, written by the real pipeline at chosen times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

import modeltap
from modeltap import runtime
from modeltap.record import FRAME, JSON, Record
from modeltap.tabular import PANDAS_TYPE
from tests.helpers import flush, setup

ASSET = "ep-blue-model_inputs"
PREFIX = "modelDataCollector/ep/blue/model_inputs"
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def submit(frame: pd.DataFrame, at: datetime, cid: str, collection: str = "model_inputs") -> None:
    record = Record(
        collection,
        frame,
        kind=FRAME,
        correlation_id=cid,
        time_=at.timestamp(),
        collect_data_type=PANDAS_TYPE,
    )
    runtime.current().pipeline.submit(record)


def frame(hour: int, flush_no: int, i: int) -> pd.DataFrame:
    """Two rows of mixed types, values that tell where they came from."""
    return pd.DataFrame(
        {
            "age": [hour * 100 + flush_no * 10 + i, -1],
            "income": [1000.5 * i, float("nan")],
            "city": [f"c{hour}", None],
            "member": [True, False],
            "visits": pd.array([i, None], dtype="Int64"),
        }
    )


def fill(
    workspace: Path,
    hours: int = 4,
    flushes: int = 2,
    records: int = 2,
    start: datetime = T0,
    rate: str = "Hour",
    make: Any = frame,
    configure: bool = True,
) -> int:
    """hours x flushes objects (one per hour per flush) of `records` records each; returns
    the number of rows written."""
    if configure:
        setup(workspace, rate=rate, collections=["model_inputs", "request"])
    rows = 0
    for f in range(flushes):
        for h in range(hours):
            for i in range(records):
                at = start + timedelta(hours=h, minutes=f * 10 + i)
                data = make(h, f, i)
                submit(data, at, f"c{h}-{f}-{i}")
                rows += len(data)
        flush()
    return rows


def payloads(workspace: Path, n: int = 6, start: datetime = T0) -> None:
    """Request lines: JSON bodies, a text body and a JSON string body."""
    pipe = runtime.current().pipeline
    bodies = [
        (b'{"data": [[1, 2]]}', "application/json"),
        (b'"plain text"', "text/plain"),
        (b'[{"a": 1}]', "application/json"),
    ]
    for i in range(n):
        body, media = bodies[i % len(bodies)]
        pipe.submit(
            Record(
                "request",
                body,
                kind=JSON,
                correlation_id=f"r{i}",
                time_=(start + timedelta(minutes=20 * i)).timestamp(),
                content_type=media,
                extra={"path": "/score", "method": "POST"},
            )
        )
    flush()


def canonical(df: pd.DataFrame) -> pd.DataFrame:
    """Rows in one order (by line, then position in it), to compare two reads."""
    out = df.copy()
    out["_pos"] = out.groupby("record_id", sort=False).cumcount()
    out = out.sort_values(["time", "record_id", "_pos"], ignore_index=True, kind="stable")
    return out.drop(columns="_pos")


def stop() -> None:
    modeltap.shutdown()
