"""The Record: one collected event, and its JSON line (SPEC R4.2).

A record is made on the request path with as little work as possible; its data is
serialized later, on the writer thread, in batches (see `encode_lines`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from random import getrandbits
from typing import Any

import orjson

from modeltap.context import new_id
from modeltap.version import __version__ as _version

__all__ = [
    "AGENT",
    "BLOB",
    "FRAME",
    "JSON",
    "LINE_FIELDS",
    "Record",
    "content_range",
    "encode_lines",
    "format_time",
    "json_line",
    "no_line_breaks",
    "one_line_json",
]

AGENT = f"modeltap/{_version}"

# Record kinds: how `data` is held until it is written.
FRAME = "frame"  # a snapshot of a table (pandas/pyarrow/polars), serialized as row objects
JSON = "json"  # bytes that already are one JSON value
BLOB = "blob"  # a payload stored as its own object (binary, or over the size threshold)


class Record:
    """One collected event. Plain slots class: it is made once per collect() call."""

    __slots__ = (
        "agent",
        "collect_data_type",
        "collection",
        "content_type",
        "correlation_id",
        "data",
        "extra",
        "id",
        "kind",
        "line",
        "model_version",
        "time",
        "xrequest_id",
    )

    def __init__(
        self,
        collection: str,
        data: Any,
        *,
        kind: str = FRAME,
        correlation_id: str,
        xrequest_id: str | None = None,
        time_: float | None = None,
        collect_data_type: str | None = None,
        model_version: str = "default",
        agent: str = AGENT,
        content_type: str = "application/json",
        extra: dict[str, Any] | None = None,
        id: str | None = None,
    ):
        self.collection = collection
        self.data = data
        self.kind = kind
        self.correlation_id = correlation_id
        self.xrequest_id = xrequest_id if xrequest_id is not None else correlation_id
        self.time = time.time() if time_ is None else time_
        self.collect_data_type = collect_data_type
        self.model_version = model_version
        self.agent = agent
        self.content_type = content_type
        self.extra = extra
        self.id = id  # made on the writer when None: one uuid4 less on the request path
        self.line: bytes | None = None  # its JSON line, when encoded before the writer

    def __repr__(self) -> str:
        return (
            f"Record(collection={self.collection!r}, kind={self.kind!r}, "
            f"correlation_id={self.correlation_id!r}, id={self.id!r})"
        )


_last_second = -1
_last_text = ""


def format_time(epoch_seconds: float) -> str:
    """UTC time as the source writes it: YYYY-MM-DDTHH:MM:SSZ."""
    global _last_second, _last_text
    second = int(epoch_seconds)
    if second != _last_second:  # one strftime per second, not per record
        _last_text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        _last_second = second
    return _last_text


def _data_bytes(records: Sequence[Record]) -> list[bytes]:
    out: list[bytes | None] = [None] * len(records)
    # A FRAME record's data is a snapshot, or its rows already encoded by collect()
    # (tabular.encode_small); either way its rows merge with others of its id.
    frames = [i for i, r in enumerate(records) if r.kind == FRAME and type(r.data) is not bytes]
    if frames:
        from modeltap import tabular  # only FRAME records need it (it imports no pandas)

        for i, data in zip(
            frames, tabular.encode_frames([records[i].data for i in frames]), strict=True
        ):
            out[i] = data
    for i, r in enumerate(records):
        if r.kind == JSON or (r.kind == FRAME and type(r.data) is bytes):
            out[i] = r.data
    if any(d is None for d in out):
        kinds = sorted({r.kind for r in records} - {FRAME, JSON})
        raise ValueError(f"unknown record kind(s): {kinds}")
    return out  # type: ignore[return-value]


def _merge_arrays(parts: list[bytes]) -> bytes:
    inner = [p[1:-1] for p in parts if len(p) > 2]
    return b"[" + b",".join(inner) + b"]"


def encode_lines(records: Iterable[Record], source: str, *, merge: bool = True) -> list[bytes]:
    """JSON lines (each ending in a newline) for records of ONE collection.

    With merge, records sharing a correlation id whose data are row lists become one line
    with their rows concatenated (R4.5); records with different ids are never merged.
    """
    records = list(records)
    datas = _data_bytes(records)  # no work for data that is bytes already
    groups: dict[str, list[int]] = {}
    order: list[list[int]] = []
    for i, r in enumerate(records):
        if merge and r.kind == FRAME:
            group = groups.get(r.correlation_id)
            if group is not None:
                group.append(i)
                continue
            groups[r.correlation_id] = group = [i]
            order.append(group)
        else:
            order.append([i])
    from modeltap.tabular import yield_gil

    lines = []
    for group in order:
        yield_gil()
        first = records[group[0]]
        if first.line is not None and len(group) == 1:  # a merged group is made anew
            lines.append(first.line)
            continue
        data = datas[group[0]] if len(group) == 1 else _merge_arrays([datas[i] for i in group])
        lines.append(_line(first, data, source))
    return lines


def json_line(record: Record, source: str) -> bytes:
    """The line of a record whose data is JSON bytes already (a JSON record, or a FRAME
    whose rows collect() encoded), made without the writer. A FRAME line is used as it
    is unless another record of its id merges with it."""
    if type(record.data) is not bytes or record.kind not in (JSON, FRAME):
        raise ValueError(f"json_line takes JSON bytes, got a {record.kind} record")
    return _line(record, record.data, source)


# The line's fields, in the order the source writes them (SPEC R4.2).
LINE_FIELDS = (
    "specversion",
    "id",
    "source",
    "type",
    "datacontenttype",
    "time",
    "data",
    "correlationid",
    "xrequestid",
    "modelversion",
    "collectdatatype",
    "agent",
    "contentrange",
)
# Keys of `extra` that name one of these replace its value in place (a dict update);
# others follow "contentrange".
_BASE_KEYS = frozenset(LINE_FIELDS)
_VERSION_4 = ~((0xC000 << 48) | (0xF000 << 64)) & ((1 << 128) - 1)
_VARIANT_4 = (0x8000 << 48) | (0x4000 << 64)


def _new_id() -> bytes:
    """A new id as a JSON string: the same random version 4 UUID as `context.new_id`,
    formatted without the uuid.UUID object (~4x faster; the writer makes one per line)."""
    h = b"%032x" % (getrandbits(128) & _VERSION_4 | _VARIANT_4)
    return b'"%s-%s-%s-%s-%s"' % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


_encoded: dict[str, bytes] = {}  # JSON strings of the few values every line repeats


def _enc(value: str) -> bytes:
    """orjson's encoding of a str, line breaks escaped; cached for repeated values."""
    out = _encoded.get(value)
    if out is None:
        out = no_line_breaks(orjson.dumps(value))
        if len(_encoded) < 4096 and type(value) is str:
            _encoded[value] = out
    return out


def _line(r: Record, data: bytes, source: str) -> bytes:
    """The record's JSON line: the envelope is put together from pre-encoded pieces around
    the data, which is copied once. The bytes are exactly those of `_line_dict`."""
    data = no_line_breaks(data)
    n = len(data)
    extra = r.extra
    tail: bytes
    if extra:
        if any(k in _BASE_KEYS for k in extra):
            if (extra.keys() & _BASE_KEYS) - {"contentrange"}:
                return _line_dict(r, data, source)  # rare: fall back to the dict update
            rng = no_line_breaks(orjson.dumps(extra["contentrange"]))
            rest = {k: v for k, v in extra.items() if k != "contentrange"}
        else:
            rng, rest = b'"bytes 0-%d/%d"' % (max(n - 1, 0), n), extra
        tail = b',"contentrange":' + rng
        if rest:
            tail += b"," + no_line_breaks(orjson.dumps(rest))[1:-1]
    else:
        tail = b',"contentrange":"bytes 0-%d/%d"' % (max(n - 1, 0), n)
    cid = r.correlation_id
    enc_cid = no_line_breaks(orjson.dumps(cid))
    return b"".join(
        (
            b'{"specversion":"1.0","id":',
            no_line_breaks(orjson.dumps(r.id)) if r.id is not None else _new_id(),
            _head(source, r.collection, r.content_type),
            format_time(r.time).encode(),
            b'","data":',
            data,
            b',"correlationid":',
            enc_cid,
            b',"xrequestid":',
            enc_cid if r.xrequest_id == cid else no_line_breaks(orjson.dumps(r.xrequest_id)),
            _middle(r.model_version, r.collect_data_type, r.agent),
            tail,
            b"}\n",
        )
    )


@functools.lru_cache(maxsize=256)  # values come from requests: bounded
def _head(source: str, collection: str, content_type: str) -> bytes:
    """The envelope from the id to the time, for the few (source, collection, type) there are."""
    return b"".join(
        (
            b',"source":',
            _enc(source),
            b',"type":',
            _enc("azureml.inference." + collection),
            b',"datacontenttype":',
            _enc(content_type),
            b',"time":"',
        )
    )


@functools.lru_cache(maxsize=256)  # values come from requests: bounded
def _middle(model_version: str, collect_data_type: str | None, agent: str) -> bytes:
    """The envelope after the correlation ids, up to the content range."""
    return b"".join(
        (
            b',"modelversion":',
            _enc(model_version),
            b"" if collect_data_type is None else b',"collectdatatype":' + _enc(collect_data_type),
            b',"agent":',
            _enc(agent),
        )
    )


def _line_dict(r: Record, data: bytes, source: str) -> bytes:
    """The line built as an orjson dict: the reference `_line` must match byte for byte."""
    data = no_line_breaks(data)
    n = len(data)
    obj: dict[str, Any] = {
        "specversion": "1.0",
        "id": r.id if r.id is not None else new_id(),
        "source": source,
        "type": f"azureml.inference.{r.collection}",
        "datacontenttype": r.content_type,
        "time": format_time(r.time),
        "data": orjson.Fragment(data),
        "correlationid": r.correlation_id,
        "xrequestid": r.xrequest_id,
        "modelversion": r.model_version,
    }
    if r.collect_data_type is not None:
        obj["collectdatatype"] = r.collect_data_type
    obj["agent"] = r.agent
    obj["contentrange"] = f"bytes 0-{max(n - 1, 0)}/{n}"
    if r.extra:
        obj.update(r.extra)
    return no_line_breaks(orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE))


def no_line_breaks(data: bytes) -> bytes:
    """Escape U+2028, U+2029 and U+0085, which orjson writes raw but line readers split on.

    They can only occur inside JSON strings, so escaping them keeps the value the same."""
    if not data.isascii() and (b"\xe2\x80" in data or b"\xc2\x85" in data):
        data = (
            data.replace(b"\xe2\x80\xa8", b"\\u2028")
            .replace(b"\xe2\x80\xa9", b"\\u2029")
            .replace(b"\xc2\x85", b"\\u0085")
        )
    return data


def content_range(size: int) -> str:
    """The `contentrange` of a payload of `size` bytes as received (SPEC R4.2): a body
    stored as a JSON string (text) is longer once escaped, but its range is what came."""
    return f"bytes 0-{size - 1}/{size}" if size else "bytes */0"


def one_line_json(raw: bytes) -> bytes:
    """A valid JSON document on one line. Its raw CR and LF bytes can only be whitespace
    between tokens (inside strings JSON requires them escaped), so they become spaces:
    the same value, with no parse and so no depth limit (orjson encodes 254 levels)."""
    if b"\n" in raw or b"\r" in raw:
        raw = raw.replace(b"\r", b" ").replace(b"\n", b" ")
    return raw.strip()
