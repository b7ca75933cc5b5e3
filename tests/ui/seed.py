"""A workspace with something of everything the web page shows, made by the real writers.

Endpoint `shop`, deployment `blue`: model_inputs and model_outputs (frames, over six
hours), request and response (payload logging's record_call: JSON bodies, a binary body
stored as its own object, a body spilled to disk as a large one is, a failed call), and
endpoint `shop`, deployment `green` with model_inputs only. User-controlled values carry
markup everywhere they can: data values and column names, correlation ids, content-type
and path. A monitor's results are written by the monitor's own store (the contract's
layout), with a breach, distributions and a report.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

import modeltap
from modeltap import runtime
from modeltap.monitor import store
from modeltap.record import FRAME, Record
from modeltap.serving.payload import record_call
from modeltap.serving.relay import Call
from modeltap.tabular import PANDAS_TYPE

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
# Each sets window.__xss when it runs: the browser tests check it never does.
XSS = (
    "<script>window.__xss=1</script>",
    '"><img src=x onerror="window.__xss=1">',
    "'><svg onload=window.__xss=1>",
)
XSS_ID = '"><img src=x onerror="window.__xss=1">id'
XSS_COLUMN = "<img src=x onerror=window.__xss=1>"
MONITOR = "shop_drift"


@dataclass
class Seeded:
    workspace: Path
    orders: list[str] = field(default_factory=list)  # correlation ids, oldest first
    times: dict[str, datetime] = field(default_factory=dict)
    binary: bytes = b""
    spilled: bytes = b""
    binary_id: str = "binary-call"
    spilled_id: str = "spilled-call"
    failed_id: str = "failed-call"


def collections(datastore: str | None, deployment: str) -> dict[str, dict[str, object]]:
    def one(name: str) -> dict[str, object]:
        if datastore is None:
            return {"enabled": True}
        path = f"azureml://datastores/{datastore}/paths/collected/{deployment}/{name}"
        return {"enabled": True, "data": {"path": path}}

    return {name: one(name) for name in ("model_inputs", "model_outputs", "request", "response")}


def submit(collection: str, frame: pd.DataFrame, cid: str, at: datetime) -> None:
    record = Record(
        collection,
        frame,
        kind=FRAME,
        correlation_id=cid,
        time_=at.timestamp(),
        collect_data_type=PANDAS_TYPE,
    )
    runtime.current().pipeline.submit(record)


def call(
    cid: str, at: datetime, body: bytes, kind: str = "application/json", status: int = 200
) -> Call:
    return Call(
        cid,
        at.timestamp(),
        "/score?debug=" + XSS[0],
        "POST",
        kind,
        status,
        "application/json",
        12.5,
        None if status < 500 else "ValueError: " + XSS[1],
        body,
        b'{"approved": [true, false]}' if status < 500 else b'{"error": "failed"}',
    )


def seed(workspace: Path, datastore: str | None = None, records: int = 30) -> Seeded:
    """records orders over six hours from T0 (two rows each), their payloads, a second
    deployment, and a monitor's results. datastore: a cloud datastore of workspace.yml."""
    out = Seeded(workspace)
    rt = modeltap.configure(
        workspace=workspace,
        endpoint="shop",
        deployment="blue",
        collections=collections(datastore, "blue"),
        rolling_rate="Hour",
    )
    step = timedelta(hours=6) / records
    for k in range(records):
        cid = XSS_ID if k == records - 2 else f"order-{k:03d}"
        at = T0 + k * step
        frame = pd.DataFrame(
            {
                "age": [30 + k, 51],
                "income": [52000.5, 87000.0],
                "city": ["Lyon", "Oslo"],
                "comment": [XSS[k % len(XSS)], "plain"],
                XSS_COLUMN: ["x", "y"],
            }
        )
        submit("model_inputs", frame, cid, at)
        submit("model_outputs", pd.DataFrame({"approved": [k % 2 == 0, True]}), cid, at)
        record_call(rt, call(cid, at + timedelta(seconds=1), frame.to_json().encode()))
        out.orders.append(cid)
        out.times[cid] = at
    last = T0 + records * step
    out.binary = bytes(range(256)) * 12
    record_call(rt, call(out.binary_id, last, out.binary, "application/octet-stream"))
    out.spilled = b'{"big": "' + b"x" * 5000 + b'"}'
    with tempfile.TemporaryFile() as spilled:
        spilled.write(out.spilled)
        record_call(
            rt,
            call(out.spilled_id, last + timedelta(seconds=1), b"", "application/json"),
            request_file=spilled,
        )
        assert modeltap.flush(30)
    record_call(rt, call(out.failed_id, last + timedelta(seconds=2), b'{"x": 1}', status=500))
    # a header with markup: the content type is recorded as it was sent
    weird = call("typed-call", last + timedelta(seconds=3), b"<b>hi</b>", XSS[1])
    record_call(rt, weird)
    for name in ("binary_id", "spilled_id", "failed_id"):
        out.times[getattr(out, name)] = last
    assert modeltap.flush(30)
    modeltap.shutdown()

    modeltap.configure(
        workspace=workspace,
        endpoint="shop",
        deployment="green",
        collections={"model_inputs": collections(datastore, "green")["model_inputs"]},
    )
    submit("model_inputs", pd.DataFrame({"age": [1]}), "green-1", T0)
    assert modeltap.flush(30)
    modeltap.shutdown()
    monitor_runs(workspace)
    return out


def monitor_runs(workspace: Path) -> list[str]:
    """Three runs of MONITOR a day apart; the last one breaches on `age`."""
    ids = []
    for day, drift in enumerate((0.02, 0.03, 0.31)):
        when = T0 + timedelta(days=1 + day)
        rows = [
            row("drift_inputs", "age", "numerical", "normalized_wasserstein_distance", drift, 0.1),
            row("drift_inputs", "city", "categorical", "jensen_shannon_distance", 0.01, 0.1),
            row("quality_inputs", XSS[0], "categorical", "null_value_rate", 0.0, 0.0),
        ]
        details = {
            "monitor": MONITOR,
            "features": [
                {
                    "signal": "drift_inputs",
                    "feature": "age",
                    "feature_type": "numerical",
                    "reference": {"edges": [0, 20, 40, 60], "counts": [5, 10, 5]},
                    "production": {"edges": [0, 20, 40, 60], "counts": [1, 6, 13]},
                },
                {
                    "signal": "drift_inputs",
                    "feature": XSS[2],
                    "feature_type": "categorical",
                    "reference": {"categories": ["Lyon", XSS[1]], "counts": [12, 8]},
                    "production": {"categories": ["Lyon", XSS[1]], "counts": [10, 10]},
                },
            ],
        }
        with store.reserve_run_id(workspace, MONITOR, when) as run_id:
            details["run_id"] = run_id
            store.write_details(workspace, MONITOR, run_id, details)
            store.write_rows(workspace, MONITOR, run_id, when, rows)
            report = f"<html><body><h1>report {run_id}</h1><script>document.title='ran'</script>"
            store.write_report(workspace, MONITOR, run_id, report + "</body></html>")
        ids.append(run_id)
    return ids


def row(signal: str, feature: str, kind: str, metric: str, value: float, threshold: float):
    return store.ResultRow(
        signal=signal,
        signal_type="data_quality" if signal.startswith("quality") else "data_drift",
        feature=feature,
        feature_type=kind,
        metric=metric,
        value=value,
        threshold=threshold,
        breached=value > threshold,
        window_start=T0,
        window_end=T0 + timedelta(days=1),
        production_rows=60,
        reference_rows=100,
    )
