"""The JSON line of a record (SPEC R4.2) and merging by correlation id (R4.5)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import orjson
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import modeltap
from modeltap import BasicCorrelationContext, Collector
from modeltap.record import AGENT, FRAME, JSON, Record, encode_lines, format_time
from modeltap.tabular import PANDAS_TYPE, snapshot
from tests.conftest import read_lines, store_root

SOURCE = "/endpoints/my_endpoint/deployments/blue"
T0 = datetime(2024, 3, 5, 18, 16, 25, tzinfo=UTC).timestamp()
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
# Written out from SPEC R4.2 on purpose, not imported from record.LINE_FIELDS: a change
# to the code's order must fail here.
FIELDS = [
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
]


def frame_record(df, cid="c1", collection="model_inputs", **kw) -> Record:
    snap, kind = snapshot(df)
    return Record(collection, snap, kind=FRAME, correlation_id=cid, collect_data_type=kind, **kw)


def parse(lines: list[bytes]) -> list[dict]:
    for line in lines:
        assert line.endswith(b"\n")
        assert b"\n" not in line[:-1]
        assert b"\r" not in line
    return [orjson.loads(line) for line in lines]


def content_range(data) -> str:
    n = len(orjson.dumps(data))
    return f"bytes 0-{n - 1}/{n}"


def test_every_field_of_a_line():
    df = pd.DataFrame({"sepal_length": [5.1, 4.9], "species": ["setosa", "virginica"]})
    rec = frame_record(df, cid="corr-1", xrequest_id="req-9", time_=T0 + 0.75, model_version="3")
    [line] = parse(encode_lines([rec], SOURCE))
    assert list(line) == FIELDS
    assert line["specversion"] == "1.0"
    assert uuid.UUID(line["id"]).version == 4
    assert line["source"] == SOURCE
    assert line["type"] == "azureml.inference.model_inputs"
    assert line["datacontenttype"] == "application/json"
    assert TIME_RE.match(line["time"])
    assert line["time"] == "2024-03-05T18:16:25Z"
    assert line["data"] == [
        {"sepal_length": 5.1, "species": "setosa"},
        {"sepal_length": 4.9, "species": "virginica"},
    ]
    assert line["correlationid"] == "corr-1"
    assert line["xrequestid"] == "req-9"
    assert line["modelversion"] == "3"
    assert line["collectdatatype"] == PANDAS_TYPE == "pandas.core.frame.DataFrame"
    assert line["agent"] == AGENT == f"modeltap/{modeltap.__version__}"
    assert line["contentrange"] == content_range(line["data"])


def test_defaults_xrequestid_modelversion_and_fresh_ids():
    recs = [frame_record(pd.DataFrame({"a": [i]}), cid=f"c{i}") for i in range(3)]
    lines = parse(encode_lines(recs, SOURCE))
    assert [line["xrequestid"] for line in lines] == ["c0", "c1", "c2"]
    assert {line["modelversion"] for line in lines} == {"default"}
    assert len({line["id"] for line in lines}) == 3


def test_given_id_is_kept():
    rec = frame_record(pd.DataFrame({"a": [1]}), id="fixed-id")
    assert parse(encode_lines([rec], SOURCE))[0]["id"] == "fixed-id"


def test_content_range_counts_bytes_exactly():
    df = pd.DataFrame({"s": ["héllo ✓ 日本"], "n": [1]})
    [raw] = encode_lines([frame_record(df)], SOURCE)
    line = orjson.loads(raw)
    data = orjson.dumps(line["data"])
    assert data in raw  # the data value appears verbatim
    n = len(data)
    assert n > len(data.decode())  # multibyte: bytes, not characters
    assert line["contentrange"] == f"bytes 0-{n - 1}/{n}"


def test_content_range_of_json_record_is_its_bytes():
    body = b'{"k":"v\xc3\xa9"}'
    rec = Record("request", body, kind=JSON, correlation_id="c", extra={"path": "/score"})
    [line] = parse(encode_lines([rec], SOURCE))
    assert line["data"] == {"k": "vé"}
    assert line["contentrange"] == f"bytes 0-{len(body) - 1}/{len(body)}"
    assert line["path"] == "/score"
    assert "collectdatatype" not in line


def test_time_is_utc_in_the_source_format(monkeypatch):
    try:
        monkeypatch.setenv("TZ", "XYZ-14")
        import time

        time.tzset()
        t = datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp() + 0.5
        assert format_time(t) == "2023-12-31T23:59:59Z"
        rec = frame_record(pd.DataFrame({"a": [1]}), time_=t)
        assert parse(encode_lines([rec], SOURCE))[0]["time"] == "2023-12-31T23:59:59Z"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_time_follows_each_record():
    recs = [
        frame_record(pd.DataFrame({"a": [i]}), cid=f"c{i}", time_=T0 + i * 3600.0) for i in range(3)
    ]
    times = [line["time"] for line in parse(encode_lines(recs, SOURCE))]
    assert times == ["2024-03-05T18:16:25Z", "2024-03-05T19:16:25Z", "2024-03-05T20:16:25Z"]


@pytest.mark.parametrize("text", ["a\nb", "a\r\nb", "tab\there", "x\x0by", "end\n"])
def test_no_newline_inside_a_line(text):
    df = pd.DataFrame({"s": [text], "t": ["\n"]})
    lines = encode_lines([frame_record(df)], SOURCE)
    assert len(lines) == 1
    [line] = parse(lines)
    assert line["data"] == [{"s": text, "t": "\n"}]


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\x85"])
def test_no_unicode_line_break_inside_a_line(char):
    # Python's str.splitlines() (used by conftest.read_lines and most readers) splits on
    # these too; a line must stay one line for them.
    df = pd.DataFrame({"s": [f"a{char}b"]})
    [raw] = encode_lines([frame_record(df)], SOURCE)
    text = raw.decode()
    assert len(text.splitlines()) == 1
    assert orjson.loads(raw)["data"] == [{"s": f"a{char}b"}]


def test_records_sharing_a_correlation_id_are_merged_in_order():
    recs = [
        frame_record(pd.DataFrame({"x": [1, 2]}), cid="A"),
        frame_record(pd.DataFrame({"x": [10]}), cid="B"),
        frame_record(pd.DataFrame({"x": [3]}), cid="A"),
        frame_record(pd.DataFrame({"x": [4, 5]}), cid="A"),
    ]
    lines = parse(encode_lines(recs, SOURCE))
    assert [line["correlationid"] for line in lines] == ["A", "B"]
    assert lines[0]["data"] == [{"x": 1}, {"x": 2}, {"x": 3}, {"x": 4}, {"x": 5}]
    assert lines[1]["data"] == [{"x": 10}]
    for line in lines:
        assert line["contentrange"] == content_range(line["data"])


def test_merge_includes_empty_frames_and_other_schemas():
    recs = [
        frame_record(pd.DataFrame({"x": [1]}), cid="A"),
        frame_record(pd.DataFrame({"x": pd.Series([], dtype="int64")}), cid="A"),
        frame_record(pd.DataFrame({"y": ["s"]}), cid="A"),
    ]
    [line] = parse(encode_lines(recs, SOURCE))
    assert line["data"] == [{"x": 1}, {"y": "s"}]
    assert line["contentrange"] == content_range(line["data"])


def test_different_correlation_ids_are_never_merged():
    recs = [frame_record(pd.DataFrame({"x": [i]}), cid=f"id{i}") for i in range(20)]
    lines = parse(encode_lines(recs, SOURCE))
    assert [line["correlationid"] for line in lines] == [f"id{i}" for i in range(20)]
    assert [line["data"] for line in lines] == [[{"x": i}] for i in range(20)]


def test_merge_off_keeps_one_line_per_record():
    recs = [frame_record(pd.DataFrame({"x": [i]}), cid="same") for i in range(3)]
    lines = parse(encode_lines(recs, SOURCE, merge=False))
    assert [line["data"] for line in lines] == [[{"x": 0}], [{"x": 1}], [{"x": 2}]]
    assert len({line["id"] for line in lines}) == 3


def test_json_records_are_not_merged():
    recs = [Record("request", b'{"a":1}', kind=JSON, correlation_id="A") for _ in range(2)]
    lines = parse(encode_lines(recs, SOURCE))
    assert [line["data"] for line in lines] == [{"a": 1}, {"a": 1}]


def test_mixed_frame_and_json_records_keep_order():
    recs = [
        Record("c", b"[1]", kind=JSON, correlation_id="J"),
        frame_record(pd.DataFrame({"x": [1]}), cid="F", collection="c"),
        Record("c", b'"s"', kind=JSON, correlation_id="K"),
    ]
    lines = parse(encode_lines(recs, SOURCE))
    assert [line["data"] for line in lines] == [[1], [{"x": 1}], "s"]


def test_unknown_record_kind_is_an_error():
    with pytest.raises(ValueError, match="unknown record kind"):
        encode_lines([Record("c", b"[]", kind="weird", correlation_id="x")], SOURCE)


def test_end_to_end_line_from_collector(workspace):
    modeltap.configure(
        workspace=workspace,
        endpoint="my_endpoint",
        deployment="blue",
        collections=["model_inputs"],
    )
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y\nz"]})
    Collector(name="model_inputs").collect(df, BasicCorrelationContext(id="req-1"))
    assert modeltap.flush()
    root = store_root(workspace)
    files = list(root.rglob("*.jsonl"))
    assert len(files) == 1
    assert "modelDataCollector/my_endpoint/blue/model_inputs/" in files[0].as_posix()
    [line] = read_lines(root, "model_inputs")
    assert list(line) == FIELDS
    assert line["source"] == SOURCE
    assert line["type"] == "azureml.inference.model_inputs"
    assert line["data"] == [{"a": 1, "b": "x"}, {"a": 2, "b": "y\nz"}]
    assert line["correlationid"] == line["xrequestid"] == "req-1"
    assert line["collectdatatype"] == "pandas.core.frame.DataFrame"
    assert line["agent"] == f"modeltap/{modeltap.__version__}"
    assert TIME_RE.match(line["time"])
    assert line["contentrange"] == content_range(line["data"])


_TEXT = st.text(alphabet=st.sampled_from(list('ab"\\/\n\u2028\u2029\x85é\x00')), max_size=6)
_EXTRA = st.one_of(
    st.none(),
    st.dictionaries(
        st.sampled_from(["path", "method", "contentrange", "datainblob", "headers", "id", "agent"]),
        st.one_of(
            _TEXT, st.integers(-(2**63), 2**63 - 1), st.dictionaries(_TEXT, _TEXT, max_size=2)
        ),
        max_size=3,
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    cid=_TEXT.filter(bool),
    xrid=st.one_of(st.none(), _TEXT),
    cdt=st.one_of(st.none(), _TEXT),
    text=_TEXT,
    extra=_EXTRA,
    data=st.sampled_from([b"null", b"[1,2]", b'{"a":"\xe2\x80\xa8"}', b""]),
)
def test_templated_line_is_byte_identical_to_the_dict_line(cid, xrid, cdt, text, extra, data):
    from modeltap.record import _line, _line_dict

    rec = Record(
        "c" + text.strip('\n"\\/\u2028\u2029\x85é\x00'),
        data,
        kind=JSON,
        correlation_id=cid,
        xrequest_id=xrid,
        time_=T0,
        collect_data_type=cdt,
        model_version=text,
        agent=text,
        content_type=text,
        extra=extra,
        id="id-" + text,
    )
    assert _line(rec, data, SOURCE + text) == _line_dict(rec, data, SOURCE + text)


def test_new_ids_are_uuid4_strings():
    from modeltap.context import new_id
    from modeltap.record import _new_id

    for _ in range(1000):
        for text in (orjson.loads(_new_id()), new_id()):
            assert uuid.UUID(text).version == 4
            assert uuid.UUID(text).variant == uuid.RFC_4122
            assert str(uuid.UUID(text)) == text
