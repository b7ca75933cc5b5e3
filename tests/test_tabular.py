"""Tables in, row objects out (SPEC R1.4, R4.2): snapshots, value types, schema groups."""

from __future__ import annotations

import datetime as dt
import decimal

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import modeltap
from modeltap import BasicCorrelationContext, Collector, runtime
from modeltap.record import FRAME, Record, encode_lines
from modeltap.tabular import (
    PANDAS_TYPE,
    PYARROW_TYPE,
    SMALL_CELLS,
    encode_frames,
    encode_small,
    snapshot,
)
from tests.conftest import read_lines, store_root


def rows(df) -> list:
    """The data of a table as it would be written."""
    snap, _ = snapshot(df)
    [data] = encode_frames([snap])
    return orjson.loads(data)


def encode_all(*tables) -> list:
    return [orjson.loads(d) for d in encode_frames([snapshot(t)[0] for t in tables])]


# --- values ---------------------------------------------------------------------------


def test_rows_are_objects_in_order():
    df = pd.DataFrame({"b": [1, 2, 3], "a": ["x", "y", "z"]})
    data = rows(df)
    assert data == [{"b": 1, "a": "x"}, {"b": 2, "a": "y"}, {"b": 3, "a": "z"}]
    assert list(data[0]) == ["b", "a"]  # column order kept


def test_nan_and_none_are_null():
    df = pd.DataFrame({"f": [1.5, np.nan, None], "o": ["a", None, np.nan]})
    assert rows(df) == [{"f": 1.5, "o": "a"}, {"f": None, "o": None}, {"f": None, "o": None}]


def test_datetimes_are_iso():
    df = pd.DataFrame(
        {
            "ts": [pd.Timestamp("2024-03-05 18:16:25"), pd.NaT],
            "tz": pd.to_datetime(["2024-03-05T18:16:25Z", None], utc=True),
            "d": [dt.date(2024, 3, 5), dt.date(2024, 3, 6)],
            "py": [dt.datetime(2024, 3, 5, 1, 2, 3), None],
            "td": [pd.Timedelta(seconds=90), pd.NaT],
        }
    )
    data = rows(df)
    assert data[0]["ts"] == "2024-03-05T18:16:25"
    assert data[1]["ts"] is None
    assert data[0]["tz"] == "2024-03-05T18:16:25+00:00"
    assert data[1]["tz"] is None
    assert data[0]["d"] == "2024-03-05"
    assert data[0]["py"] == "2024-03-05T01:02:03"
    assert data[1]["py"] is None
    assert pd.Timedelta(data[0]["td"]) == pd.Timedelta(seconds=90)
    assert data[1]["td"] is None


def test_numpy_scalars_bools_and_decimals():
    df = pd.DataFrame(
        {
            "i8": np.array([1, -2], dtype=np.int8),
            "u64": np.array([2**63, 0], dtype=np.uint64),
            "f32": np.array([0.5, 1.25], dtype=np.float32),
            "b": [True, False],
            "obj": pd.Series([np.int64(7), np.float64(2.5)], dtype=object),
            "dec": [decimal.Decimal("1.5"), decimal.Decimal("2")],
        }
    )
    data = rows(df)
    assert data == [
        {"i8": 1, "u64": 2**63, "f32": 0.5, "b": True, "obj": 7, "dec": 1.5},
        {"i8": -2, "u64": 0, "f32": 1.25, "b": False, "obj": 2.5, "dec": 2.0},
    ]
    assert data[0]["b"] is True


def test_unicode_and_nested_values():
    df = pd.DataFrame(
        {
            "s": ["héllo", "日本語 ✓ 😀"],
            "l": [[1, [2, 3]], []],
            "d": [{"k": [1, None]}, {"k": {"n": 2}}],
            "arr": [np.array([1, 2]), np.array([0.5])],
            "t": [(1, "a"), (2, "b")],
        }
    )
    assert rows(df) == [
        {"s": "héllo", "l": [1, [2, 3]], "d": {"k": [1, None]}, "arr": [1, 2], "t": [1, "a"]},
        {"s": "日本語 ✓ 😀", "l": [], "d": {"k": {"n": 2}}, "arr": [0.5], "t": [2, "b"]},
    ]


def test_int_column_names_become_strings():
    df = pd.DataFrame([[5.1, 3.5, 1.4, 0.2]])
    assert rows(df) == [{"0": 5.1, "1": 3.5, "2": 1.4, "3": 0.2}]


def test_categorical_and_nullable_dtypes():
    df = pd.DataFrame(
        {
            "cat": pd.Categorical(["a", "b", None]),
            "i": pd.array([1, None, 3], dtype="Int64"),
            "f": pd.array([0.5, None, 1.0], dtype="Float64"),
            "b": pd.array([True, None, False], dtype="boolean"),
            "s": pd.array(["x", None, "z"], dtype="string"),
        }
    )
    assert rows(df) == [
        {"cat": "a", "i": 1, "f": 0.5, "b": True, "s": "x"},
        {"cat": "b", "i": None, "f": None, "b": None, "s": None},
        {"cat": None, "i": 3, "f": 1.0, "b": False, "s": "z"},
    ]


def test_index_is_not_written():
    df = pd.DataFrame({"a": [1, 2]}, index=["r1", "r2"])
    assert rows(df) == [{"a": 1}, {"a": 2}]


def test_empty_frames():
    assert rows(pd.DataFrame({"a": pd.Series([], dtype="int64")})) == []
    assert rows(pd.DataFrame()) == []
    assert rows(pd.DataFrame(index=[0, 1])) == [{}, {}]


# --- snapshots ------------------------------------------------------------------------


def test_snapshot_returns_type():
    snap, kind = snapshot(pd.DataFrame({"a": [1]}))
    assert kind == PANDAS_TYPE == "pandas.core.frame.DataFrame"
    assert isinstance(snap, pd.DataFrame)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda df: df.loc.__setitem__((0, "a"), 99),
        lambda df: df.iloc.__setitem__((1, 0), -1),
        lambda df: df.__setitem__("a", [7, 8, 9]),
        lambda df: df.__setitem__("new", 1),
        lambda df: df.__delitem__("b"),
        lambda df: df.pop("a"),
        lambda df: df.insert(0, "first", 0),
        lambda df: df.fillna({"b": "filled"}, inplace=True),
        lambda df: df.update(pd.DataFrame({"a": [5, 6, 7]})),
        lambda df: setattr(df, "columns", ["z", "y"]),
        lambda df: df.at.__setitem__((2, "b"), "changed"),
        lambda df: df["a"].__setitem__(0, 42),
        lambda df: df.loc.__setitem__(5, [9, "new row"]),
    ],
)
def test_snapshot_is_unaffected_by_later_changes(mutate):
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", None, "z"]})
    snap, _ = snapshot(df)
    mutate(df)
    [data] = encode_frames([snap])
    assert orjson.loads(data) == [
        {"a": 1, "b": "x"},
        {"a": 2, "b": None},
        {"a": 3, "b": "z"},
    ]


def test_snapshot_of_frame_built_on_a_numpy_array():
    arr = np.array([[1.0, 2.0], [3.0, 4.0]])
    df = pd.DataFrame(arr, columns=["x", "y"])
    snap, _ = snapshot(df)
    arr[0, 0] = 99.0
    df.iloc[1, 1] = -4.0
    [data] = encode_frames([snap])
    assert orjson.loads(data) == [{"x": 1.0, "y": 2.0}, {"x": 3.0, "y": 4.0}]


def test_snapshot_survives_in_a_record_until_encoded():
    df = pd.DataFrame({"a": [1]})
    snap, kind = snapshot(df)
    rec = Record("c", snap, kind=FRAME, correlation_id="x", collect_data_type=kind)
    df.loc[0, "a"] = 2
    [line] = encode_lines([rec], "/s")
    assert orjson.loads(line)["data"] == [{"a": 1}]


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ({"a": [1]}, "builtins.dict"),
        ([[1, 2]], "builtins.list"),
        (np.array([[1, 2]]), "numpy.ndarray"),
        (pd.Series([1, 2]), "Series"),
        ("text", "builtins.str"),
        (None, "builtins.NoneType"),
    ],
)
def test_non_tables_are_a_type_error_naming_the_type(value, name):
    with pytest.raises(TypeError) as info:
        snapshot(value)
    assert name in str(info.value)
    assert "pandas DataFrame" in str(info.value)


def test_duplicate_columns_are_named():
    df = pd.DataFrame([[1, 2, 3, 4]], columns=["a", "b", "a", "c"])
    with pytest.raises(ValueError, match=r"repeated: \['a'\]"):
        snapshot(df)
    df2 = pd.DataFrame([[1, 2, 3, 4]], columns=["x", "y", "x", "y"])
    with pytest.raises(ValueError) as info:
        snapshot(df2)
    assert "'x'" in str(info.value) and "'y'" in str(info.value)


def test_encode_frames_rejects_unknown_objects():
    with pytest.raises(TypeError, match="cannot serialize dict"):
        encode_frames([{"a": 1}])


# --- pyarrow --------------------------------------------------------------------------


def test_pyarrow_table():
    ts = pa.array([0, 1], pa.timestamp("s"))
    table = pa.table({"a": [1, None], "s": ["x", "日本"], "ts": ts})
    snap, kind = snapshot(table)
    assert kind == PYARROW_TYPE == "pyarrow.lib.Table"
    [data] = encode_frames([snap])
    assert orjson.loads(data) == [
        {"a": 1, "s": "x", "ts": "1970-01-01T00:00:00"},
        {"a": None, "s": "日本", "ts": "1970-01-01T00:00:01"},
    ]


def test_pyarrow_line_has_its_collectdatatype():
    snap, kind = snapshot(pa.table({"a": [1]}))
    rec = Record("c", snap, kind=FRAME, correlation_id="x", collect_data_type=kind)
    line = orjson.loads(encode_lines([rec], "/s")[0])
    assert line["collectdatatype"] == "pyarrow.lib.Table"
    assert line["data"] == [{"a": 1}]


# --- batches with different schemas -----------------------------------------------------


def test_frames_with_different_columns_in_one_batch():
    frames = [
        pd.DataFrame({"a": [1]}),
        pd.DataFrame({"b": ["x", "y"]}),
        pd.DataFrame({"a": [2, 3]}),
        pd.DataFrame({"b": ["z"], "a": [4]}),
        pd.DataFrame({"a": [5], "b": ["w"]}),
    ]
    assert encode_all(*frames) == [
        [{"a": 1}],
        [{"b": "x"}, {"b": "y"}],
        [{"a": 2}, {"a": 3}],
        [{"b": "z", "a": 4}],
        [{"a": 5, "b": "w"}],
    ]


def test_same_columns_different_dtypes_keep_their_values():
    raw = encode_frames(
        [
            snapshot(f)[0]
            for f in [
                pd.DataFrame({"a": [1]}),
                pd.DataFrame({"a": [1.5]}),
                pd.DataFrame({"a": ["s"]}),
                pd.DataFrame({"a": [True]}),
                pd.DataFrame({"a": pd.array([2, None], dtype="Int64")}),
                pd.DataFrame({"a": [3]}),
                pd.DataFrame({"a": pd.Categorical(["c"])}),
                pd.DataFrame({"a": [pd.Timestamp("2024-01-01")]}),
            ]
        ]
    )
    # ints stay ints (not 1.0), bools stay bools (not 1), in input order
    assert raw == [
        b'[{"a":1}]',
        b'[{"a":1.5}]',
        b'[{"a":"s"}]',
        b'[{"a":true}]',
        b'[{"a":2},{"a":null}]',
        b'[{"a":3}]',
        b'[{"a":"c"}]',
        b'[{"a":"2024-01-01T00:00:00"}]',
    ]


def test_empty_frames_in_a_batch():
    frames = [
        pd.DataFrame({"a": [1]}),
        pd.DataFrame({"a": pd.Series([], dtype="int64")}),
        pd.DataFrame({"a": pd.Series([], dtype="float64")}),
        pd.DataFrame({"a": pd.Series([], dtype=object)}),
        pd.DataFrame({"a": [None]}),
        pd.DataFrame({"a": [np.nan]}),
        pd.DataFrame(),
        pd.DataFrame({"a": [2]}),
    ]
    assert encode_all(*frames) == [
        [{"a": 1}],
        [],
        [],
        [],
        [{"a": None}],
        [{"a": None}],
        [],
        [{"a": 2}],
    ]


def test_pandas_and_pyarrow_in_one_batch():
    assert encode_all(pd.DataFrame({"a": [1]}), pa.table({"a": [2]}), pd.DataFrame({"a": [3]})) == [
        [{"a": 1}],
        [{"a": 2}],
        [{"a": 3}],
    ]


def test_many_frames_of_one_schema_keep_their_rows():
    # more than one concat chunk, with frames of varying length, interleaved with another schema
    frames = []
    for i in range(1200):
        if i % 7 == 0:
            frames.append(pd.DataFrame({"other": [f"o{i}"]}))
        else:
            frames.append(pd.DataFrame({"i": [i] * (i % 3), "s": [str(i)] * (i % 3)}))
    out = encode_all(*frames)
    assert len(out) == len(frames)
    for i, data in enumerate(out):
        if i % 7 == 0:
            assert data == [{"other": f"o{i}"}]
        else:
            assert data == [{"i": i, "s": str(i)}] * (i % 3)


# --- small frames encoded by collect() itself --------------------------------------------

_DTYPES = st.sampled_from(
    ["int8", "int16", "int32", "int64", "uint8", "uint64", "float16", "float32", "float64", "bool"]
)


@st.composite
def small_frames(draw):
    n = draw(st.integers(0, 12))
    names = draw(st.lists(st.text(max_size=8), min_size=1, max_size=5, unique=True))
    columns = {}
    for name in names:
        dtype = np.dtype(draw(_DTYPES))
        columns[name] = draw(hnp.arrays(dtype, n))  # NaN, inf, extremes included
    if draw(st.booleans()):  # pandas' str columns too, missing values and all
        texts = draw(st.lists(st.none() | st.text(max_size=6), min_size=n, max_size=n))
        dtype = draw(st.sampled_from(["str", "string[pyarrow]"]))
        columns["\u2028s" if "\u2028s" not in columns else "s"] = pd.array(texts, dtype=dtype)
    return pd.DataFrame(columns)


@given(small_frames())
@settings(max_examples=300, deadline=None)
def test_small_frames_encode_exactly_as_the_writer_does(df):
    assert encode_small(df) == encode_frames([snapshot(df)[0]])[0]


@pytest.mark.parametrize(
    "df",
    [
        pd.DataFrame({"a": ["x", "y"]}, dtype=object),  # strings held as objects
        pd.DataFrame({"a": ["x", None]}, dtype="string[python]"),
        pd.DataFrame({"a": [1, None]}, dtype="Int64"),  # nullable
        pd.DataFrame({"t": pd.to_datetime(["2026-01-01"])}),
        pd.DataFrame({"c": pd.Categorical(["u"])}),
        pd.DataFrame({"o": [{"k": 1}]}),  # objects
        pd.DataFrame({1: [1.0]}),  # a name that is not a str
        pd.DataFrame([[1, 2]], columns=["a", "a"]),  # duplicates: snapshot() names them
        pd.DataFrame(index=[0, 1]),  # rows without columns
        pd.DataFrame({"a": range(SMALL_CELLS + 1)}),  # large: the writer batches it
    ],
    ids=[
        "object-str",
        "python-string",
        "nullable",
        "datetime",
        "categorical",
        "object",
        "int-name",
        "dupes",
        "no-cols",
        "large",
    ],
)
def test_other_frames_keep_the_snapshot(df):
    assert encode_small(df) is None


def test_collect_merges_encoded_rows_of_one_id(tmp_path, monkeypatch):
    snapshots = []
    real_snapshot = snapshot
    monkeypatch.setattr(
        "modeltap.tabular.snapshot", lambda df: snapshots.append(df) or real_snapshot(df)
    )
    runtime.configure(
        workspace=tmp_path / "ws", endpoint="ep", deployment="blue", collections=["model_inputs"]
    )
    collector = Collector(name="model_inputs")
    ctx = BasicCorrelationContext(id="one")
    collector.collect(pd.DataFrame({"a": [1, 2]}), ctx)  # encoded by collect()
    collector.collect(pd.DataFrame({"a": ["three"]}, dtype=object), ctx)  # a snapshot
    modeltap.shutdown()
    assert len(snapshots) == 1  # only the object frame; the numeric one was encoded at once
    [line] = read_lines(store_root(tmp_path / "ws"), "model_inputs")
    assert line["data"] == [{"a": 1}, {"a": 2}, {"a": "three"}]
    assert line["collectdatatype"] == PANDAS_TYPE
