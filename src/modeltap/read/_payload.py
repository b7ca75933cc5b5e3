"""Payload lines (HTTP bodies, text, stored objects): one row per line."""

from __future__ import annotations

import logging
import posixpath
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pandas as pd
import pyarrow as pa

from modeltap.errors import ModeltapError
from modeltap.read._parse import ENVELOPE, TIME_TYPE
from modeltap.read._source import Source
from modeltap.read._tables import SKIPPED, Engine, finish_table

__all__ = ["finish_frame", "payload_frame"]

log = logging.getLogger(__name__)

_DROP = ("specversion", "source", "type")
_THREADS = 8


def payload_frame(
    src: Source,
    lines: list[tuple[str, dict[str, Any]]],
    resolve_blobs: bool,
    skipped: dict[str, Any],
) -> pd.DataFrame:
    """One row per line: the body in `data` (the parsed JSON value, text, or where the
    payload is stored), the payload fields, then correlationid, time, record_id."""
    records = []
    for _, line in lines:
        rec = {k: v for k, v in line.items() if k not in _DROP}
        rec["record_id"] = rec.pop("id", None)
        records.append(rec)
    if resolve_blobs:
        _fetch_blobs(src, lines, records, skipped)
    names = list(dict.fromkeys(k for rec in records for k in rec))
    first = ["data"]
    last = [*ENVELOPE]
    order = [*first, *(n for n in names if n not in first and n not in last), *last]
    columns: dict[str, Any] = {
        n: pd.Series([r.get(n) for r in records], dtype=object) for n in order
    }
    # The envelope columns get the same types as in a table of rows.
    columns["time"] = pa.array([r.get("time") for r in records], TIME_TYPE).to_pandas()
    for name in ("correlationid", "record_id"):
        values = [r.get(name) for r in records]
        columns[name] = pa.array(
            [v if v is None or isinstance(v, str) else str(v) for v in values], pa.string()
        ).to_pandas()
    return pd.DataFrame(columns)


def _fetch_blobs(
    src: Source,
    lines: list[tuple[str, dict[str, Any]]],
    records: list[dict[str, Any]],
    skipped: dict[str, Any],
) -> None:
    todo = [
        (i, f"{posixpath.dirname(path)}/{line.get('id')}")
        for i, (path, line) in enumerate(lines)
        if str(line.get("datainblob", "")).lower() == "true" and line.get("id")
    ]

    def get(path: str) -> bytes | None:
        try:
            return src.storage.get(path)
        except ModeltapError as exc:
            log.warning("modeltap: payload %s could not be read: %s", path, exc)
            return None

    with ThreadPoolExecutor(_THREADS) as pool:
        for (i, path), body in zip(todo, pool.map(get, [p for _, p in todo]), strict=True):
            records[i]["data"] = body
            if body is None:
                skipped["blobs"].append(path)


def finish_frame(
    frame: pd.DataFrame, engine: Engine, skipped: dict[str, Any], resolve_blobs: bool
) -> Any:
    if engine == "pandas":
        frame.attrs[SKIPPED] = skipped
        return frame
    out = frame.copy()
    if "data" in out.columns:
        # Arrow needs one type: the body's JSON text, or its bytes when blobs were fetched.
        def encode(value: Any) -> Any:
            if value is None or isinstance(value, bytes):
                return value
            text = value if isinstance(value, str) else orjson.dumps(value).decode()
            return text.encode() if resolve_blobs else text

        out["data"] = out["data"].map(encode)
    table = pa.Table.from_pandas(out, preserve_index=False)
    return finish_table(table, engine, skipped)
