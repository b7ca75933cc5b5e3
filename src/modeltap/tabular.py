"""Tables in, row objects out: snapshots on the request path, JSON on the writer (small
numeric frames are encoded on the request path instead, see `encode_small`).

Accepted: pandas DataFrames, and (R1.4 Beyond) pyarrow Tables and polars DataFrames,
each recorded with its own `collectdatatype`. Libraries are looked up in
`sys.modules`, never imported here: if the caller holds such a table, its library
is already loaded.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import decimal
import sys
import time
from collections.abc import Sequence
from typing import Any

import orjson

__all__ = ["PANDAS_TYPE", "encode_frames", "encode_small", "is_large", "snapshot"]

PANDAS_TYPE = "pandas.core.frame.DataFrame"
PYARROW_TYPE = "pyarrow.lib.Table"
POLARS_TYPE = "polars.dataframe.frame.DataFrame"

_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
_pandas_cow: bool | None = None


def _copy_on_write(pd: Any) -> bool:
    # Under copy-on-write (default from pandas 3) a shallow copy is a true snapshot:
    # any later change to the caller's frame copies the changed column first.
    global _pandas_cow
    if _pandas_cow is None:
        major = int(pd.__version__.split(".")[0])
        _pandas_cow = major >= 3 or bool(pd.options.mode.copy_on_write is True)
    return _pandas_cow


def snapshot(obj: Any) -> tuple[Any, str]:
    """A copy of `obj` that later changes by the caller cannot reach, and its data type.

    Raises TypeError naming the type for anything that is not a supported table.
    """
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(obj, pd.DataFrame):
        if not _unique(obj.columns):
            dupes = sorted({str(c) for c in obj.columns[obj.columns.duplicated()]})
            raise ValueError(f"DataFrame columns must be unique to be collected; repeated: {dupes}")
        return obj.copy(deep=not _copy_on_write(pd)), PANDAS_TYPE
    pa = sys.modules.get("pyarrow")
    if pa is not None and isinstance(obj, pa.Table):
        return obj, PYARROW_TYPE  # immutable
    pl = sys.modules.get("polars")
    if pl is not None and isinstance(obj, pl.DataFrame):
        return obj.clone(), POLARS_TYPE
    kind = type(obj)
    raise TypeError(
        f"collect() takes a pandas DataFrame (or a pyarrow Table or polars DataFrame), "
        f"got {kind.__module__}.{kind.__qualname__}"
    )


# Frames up to this many cells are encoded by collect() itself (see encode_small).
SMALL_CELLS = 1000


def _unique(columns: Any) -> bool:
    """pandas' Index.is_unique, without building its hash table (~50 us on a frame's first
    call, i.e. on every frame a request makes) when the names are all str."""
    seen = _unique_seen.get(id(columns))
    if seen is not None and seen[0] is columns:  # the same frame again (an Index is immutable)
        return seen[1]
    names = list(columns)  # ~3-10 us for str names, so remember the last few answers
    if all(type(name) is str for name in names):
        unique = len(set(names)) == len(names)
    else:
        unique = bool(columns.is_unique)
    if len(_unique_seen) >= 16:
        with contextlib.suppress(RuntimeError, StopIteration, KeyError):  # other threads
            del _unique_seen[next(iter(_unique_seen))]
    _unique_seen[id(columns)] = (columns, unique)  # holding it keeps the id from being reused
    return unique


_unique_seen: dict[int, tuple[Any, bool]] = {}


def encode_small(obj: Any) -> bytes | None:
    """The rows of a small pandas DataFrame of plain columns as JSON, or None for anything else.

    Plain columns are numpy numbers and bools, and pandas' Arrow-backed `str` (the default
    for strings from pandas 3). Why: on the request path, encoding such a frame costs about
    what its snapshot does, and then the writer has no pandas work left. A snapshot left
    the writer a concat and an object conversion per batch, which held the interpreter
    lock against the caller: the caller's p99 and the records landed per second of CPU
    both suffered (BENCHMARKS.md, "Performance round 2"). The bytes are exactly those
    `encode_frames` makes (tested); other dtypes (dates, categoricals, nullable types,
    object columns) and larger frames keep the snapshot.
    """
    pd = sys.modules.get("pandas")
    if pd is None or type(obj) is not pd.DataFrame:
        return None
    rows, width = obj.shape  # (obj.size costs ten times more)
    if not width or rows * width > SMALL_CELLS:
        return None  # rows without columns are snapshot()'s case
    return _encode_plain(obj, width)


def _encode_plain(frame: Any, width: int) -> bytes | None:
    """A pandas frame's rows read column by column (encode_small's way), or None when a
    column is not plain or a name not a unique str."""
    try:
        names = _column_names(frame.columns)
        if names is None:
            return None  # snapshot() names the duplicates, or takes the other names
        columns = _plain_columns(frame._mgr, width)
    except AttributeError:  # pragma: no cover - other pandas versions
        return None
    if columns is None:
        return None
    if len(columns[0]) == 1:  # the common case of one request's row: no zip of the columns
        return orjson.dumps([dict(zip(names, [c[0] for c in columns], strict=True))], option=_OPTS)
    records = zip(*columns, strict=True)  # columns of one frame: equal lengths
    return orjson.dumps([dict(zip(names, row, strict=True)) for row in records], option=_OPTS)


def is_large(obj: Any, cells: int) -> bool:
    """A pandas DataFrame of at least `cells` cells (the writer may hand it to a helper)."""
    pd = sys.modules.get("pandas")
    if pd is None or type(obj) is not pd.DataFrame:
        return False
    rows, width = obj.shape
    return bool(rows * width >= cells)


def _column_names(columns: Any) -> list[str] | None:
    """The names when all are str and unique. An Index of pandas' `str` dtype hands them
    over through Arrow (~2 us) where iterating it costs ~15 us for ten names."""
    arrow = getattr(columns._values, "_pa_array", None)
    names = arrow.to_pylist() if arrow is not None else list(columns)
    if not all(type(name) is str for name in names) or len(set(names)) < len(names):
        return None
    return names


def _plain_columns(manager: Any, width: int) -> list[list[Any]] | None:
    """Each column's values as a list, block by block (one tolist() per numpy block, not
    per column), or None when a block is not plain."""
    np_array = sys.modules["numpy"].ndarray  # pandas is loaded, so numpy is
    columns: list[Any] = [None] * width
    for block in manager.blocks:
        values = block.values
        locs = block.mgr_locs.as_array.tolist()
        if type(values) is np_array:
            if values.dtype.kind not in "biuf" or values.ndim != 2:
                return None
            for loc, column in zip(locs, values.tolist(), strict=True):
                columns[loc] = column
            continue
        arrow = getattr(values, "_pa_array", None)  # ArrowStringArray: `str`, `string[pyarrow]`
        if arrow is None or getattr(values.dtype, "name", None) not in ("str", "string"):
            return None
        columns[locs[0]] = arrow.to_pylist()  # missing: None, written null as NaN and NA are
    return columns


def _default(value: Any) -> Any:
    """JSON for what orjson does not know: pandas/numpy scalars, missing values, decimals."""
    pd = sys.modules.get("pandas")
    if pd is not None:
        if value is pd.NaT or value is pd.NA:
            return None
        if isinstance(value, pd.Timedelta):
            return value.isoformat()
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return item()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def dumps(value: Any) -> bytes:
    """JSON for table values. Lines escape U+2028/2029/0085 later (record._line)."""
    return orjson.dumps(value, default=_default, option=_OPTS)


_YIELD_EVERY = 0.0005  # seconds of writer work between yields
_last_yield = 0.0


def yield_gil() -> None:
    """Let a waiting thread (the caller's scoring code) run, every 0.5 ms of writer work.

    The writer runs Python code; a thread wanting the GIL would otherwise wait up to the
    interpreter's switch interval (5 ms). Cheap to call often: it sleeps only when 0.5 ms
    have passed. time.sleep(0) (not a zero-timeout select) is what lets the waiter win
    the race for the lock; it costs ~70 us, hence the rate limit.
    """
    global _last_yield
    now = time.perf_counter()
    if now - _last_yield >= _YIELD_EVERY:
        time.sleep(0)
        _last_yield = time.perf_counter()


def _pandas_rows(frames: Sequence[Any]) -> list[bytes]:
    import pandas as pd  # loaded already: these frames are pandas'

    cols = list(frames[0].columns)
    if len(frames) > 1:
        # One concat and one conversion for a group of same-layout frames: pandas'
        # per-call overhead is paid once per group rather than once per record.
        big = pd.concat(frames, ignore_index=True)
        if big.shape[1] != len(cols):  # same layout, other column names: one by one
            return [_pandas_rows([frame])[0] for frame in frames]
    else:
        big = frames[0]
    yield_gil()
    rows = big.to_numpy(dtype=object).tolist()
    out = []
    start = 0
    for frame in frames:
        end = start + len(frame)
        out.append(dumps([dict(zip(cols, row, strict=True)) for row in rows[start:end]]))
        start = end
        yield_gil()
    return out


def _schema(frame: Any) -> tuple[Any, ...]:
    """Frames with equal keys concatenate without changing any value's type.

    Column names are not part of the key (reading a str Index costs more than the rest
    of the encoding): concat aligns by name, and a group whose names differ is noticed
    after the concat and encoded frame by frame.
    """
    try:
        # The block layout says what `frame.dtypes` says at a tenth of the cost, which
        # matters once per record on the writer. Fall back if pandas changes its internals.
        mgr = frame._mgr
        return (frame.shape[1], tuple(b.dtype for b in mgr.blocks), mgr.blknos.tobytes())
    except AttributeError:  # pragma: no cover - other pandas versions
        return (tuple(frame.columns), tuple(map(str, frame.dtypes)))


# Frames per concat: bounds the time the GIL is held in one pandas call (~1 ms).
_CONCAT_FRAMES = 64
_CONCAT_CELLS = 20_000


def _chunks(indexes: list[int], snapshots: Sequence[Any]) -> list[list[int]]:
    chunks: list[list[int]] = [[]]
    cells = 0
    for i in indexes:
        size = snapshots[i].size
        if chunks[-1] and (len(chunks[-1]) >= _CONCAT_FRAMES or cells + size > _CONCAT_CELLS):
            chunks.append([])
            cells = 0
        chunks[-1].append(i)
        cells += size
    return chunks


def encode_frames(snapshots: Sequence[Any]) -> list[bytes]:
    """Serialize snapshots to JSON arrays of row objects, in order."""
    out: list[bytes | None] = [None] * len(snapshots)
    pandas_groups: dict[tuple[Any, ...], list[int]] = {}
    pd = sys.modules.get("pandas")
    for i, snap in enumerate(snapshots):
        if pd is not None and isinstance(snap, pd.DataFrame):
            rows, width = snap.shape
            # A large frame gains nothing from a concat; read its columns when plain.
            if rows * width > SMALL_CELLS and type(snap) is pd.DataFrame:
                out[i] = _encode_plain(snap, width)
                if out[i] is not None:
                    yield_gil()
                    continue
            pandas_groups.setdefault(_schema(snap), []).append(i)
        elif hasattr(snap, "to_pylist"):  # pyarrow.Table
            out[i] = dumps(snap.to_pylist())
        elif hasattr(snap, "to_dicts"):  # polars.DataFrame
            out[i] = dumps(snap.to_dicts())
        else:
            raise TypeError(f"cannot serialize {type(snap).__qualname__}")
    for indexes in pandas_groups.values():
        for part in _chunks(indexes, snapshots):
            for i, data in zip(part, _pandas_rows([snapshots[i] for i in part]), strict=True):
                out[i] = data
            yield_gil()
    return out  # type: ignore[return-value]
