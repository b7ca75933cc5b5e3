"""DuckDB's rows gathered as they stream in, ready for pandas without a second copy.

DuckDB sends about one Arrow batch per file, its buffers sized for more rows than that
and owned by DuckDB. Held as they are, they cost more than the rows; copied into an Arrow
table and then converted to pandas, every number is held twice at the end. So columns of
numbers (float64, int64) are copied straight into numpy arrays that grow in place
(realloc, no copy of what they hold) and that pandas then takes as they are; the other
columns (strings, booleans, times, JSON text) are copied into Arrow chunks, which pandas
keeps as they are for strings. DuckDB's buffers are released a few files at a time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from modeltap.read._tables import to_pandas

__all__ = ["Gathered"]

_POOL = pa.system_memory_pool()  # malloc: exact sizes, no cache of its own on top
_FIRST = 1 << 15  # rows a numpy column is made for at first; it doubles from there
_NUMPY = {pa.float64(): np.dtype(np.float64), pa.int64(): np.dtype(np.int64)}


class _Numbers:
    """One column of numbers: values, and a mask of nulls once a null has been seen."""

    def __init__(self, dtype: np.dtype[Any], capacity: int):
        self.values = np.empty(capacity, dtype=dtype)
        self.nulls: np.ndarray[Any, np.dtype[np.bool_]] | None = None

    def grow(self, capacity: int) -> None:
        self.values.resize(capacity, refcheck=False)  # realloc: in place for big arrays
        if self.nulls is not None:
            self.nulls.resize(capacity, refcheck=False)

    def put(self, at: int, chunk: pa.Array) -> None:
        n = len(chunk)
        raw = np.frombuffer(chunk.buffers()[1], self.values.dtype, chunk.offset + n)
        self.values[at : at + n] = raw[chunk.offset :]
        if chunk.null_count:
            if self.nulls is None:
                self.nulls = np.zeros(len(self.values), dtype=np.bool_)
            missing = chunk.is_null().to_numpy(zero_copy_only=False)
            self.nulls[at : at + n] = missing
            if self.values.dtype.kind == "f":
                self.values[at : at + n][missing] = np.nan
        elif self.nulls is not None:
            self.nulls[at : at + n] = False

    def trim(self, n: int) -> None:
        self.grow(n)

    def arrow(self) -> pa.Array:
        return pa.array(self.values, mask=self.nulls)

    def pandas(self) -> Any:
        if self.nulls is None or not self.nulls.any():
            return self.values
        if self.values.dtype.kind == "f":
            return self.values  # NaN where null, as pyarrow's to_pandas gives
        return pd.arrays.IntegerArray(self.values, self.nulls)  # Int64


class Gathered:
    """The rows of one query, column by column."""

    def __init__(self, schema: pa.Schema, expected_rows: int = 0):
        """expected_rows: room made at first (np.empty: pages are only used once written);
        past it the numpy columns grow by doubling, which zero-fills the new room."""
        self.schema = schema
        self.num_rows = 0
        self._capacity = max(_FIRST, expected_rows)
        self._numbers = {
            i: _Numbers(_NUMPY[f.type], self._capacity)
            for i, f in enumerate(schema)
            if f.type in _NUMPY
        }
        self._chunks: dict[int, list[pa.Array]] = {
            i: [] for i in range(len(schema)) if i not in self._numbers
        }

    def add(self, batches: list[pa.RecordBatch]) -> None:
        """Copy these batches in (after which DuckDB may free them)."""
        rows = sum(b.num_rows for b in batches)
        if not rows:
            return
        if self.num_rows + rows > self._capacity:
            while self.num_rows + rows > self._capacity:
                self._capacity *= 2
            for column in self._numbers.values():
                column.grow(self._capacity)
        at = self.num_rows
        for batch in batches:
            for i, column in self._numbers.items():
                column.put(at, batch.column(i))
            at += batch.num_rows
        if self._chunks:
            others = [b.select(list(self._chunks)) for b in batches]
            copied = pa.concat_batches(others, memory_pool=_POOL)
            for j, i in enumerate(self._chunks):
                self._chunks[i].append(copied.column(j))
        self.num_rows = at

    def done(self) -> Gathered:
        for column in self._numbers.values():
            column.trim(self.num_rows)
        self._capacity = self.num_rows
        return self

    def column(self, name: str) -> pa.ChunkedArray:
        i = self.schema.get_field_index(name)
        if i in self._numbers:
            return pa.chunked_array([self._numbers[i].arrow()[: self.num_rows]])
        return pa.chunked_array(self._chunks[i], self.schema.field(i).type)

    def replace(self, name: str, column: pa.ChunkedArray | pa.Array | None) -> None:
        """Put another column (of other values or type) in the place of one of the
        non-number columns; None drops it."""
        i = self.schema.get_field_index(name)
        if column is None:
            self.schema = self.schema.remove(i)
            self._renumber(i)
            return
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        self._numbers.pop(i, None)
        self._chunks[i] = list(chunks)
        self.schema = self.schema.set(i, pa.field(name, column.type))

    def _renumber(self, gone: int) -> None:
        self._numbers = {
            (j if j < gone else j - 1): c for j, c in self._numbers.items() if j != gone
        }
        self._chunks = {(j if j < gone else j - 1): c for j, c in self._chunks.items() if j != gone}

    def table(self) -> pa.Table:
        """The rows as an Arrow table (numbers wrapped, not copied)."""
        arrays = []
        for i, f in enumerate(self.schema):
            if i in self._numbers:
                arrays.append(pa.chunked_array([self._numbers[i].arrow()[: self.num_rows]]))
            else:
                arrays.append(pa.chunked_array(self._chunks[i], f.type))
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def frame(self) -> pd.DataFrame:
        """The rows as a pandas DataFrame, same columns and dtypes as to_pandas(table()):
        the numpy arrays of numbers become its columns as they are. Uses this up."""
        names = self.schema.names
        if len(set(names)) < len(names):  # the same name twice: pandas by way of Arrow
            return to_pandas(self.table())
        others = pa.Table.from_arrays(
            [pa.chunked_array(self._chunks[i], self.schema.field(i).type) for i in self._chunks],
            names=[names[i] for i in self._chunks],
        )
        self._chunks.clear()
        converted = to_pandas(others)
        del others
        columns: dict[str, Any] = {}
        for i, name in enumerate(names):
            if i in self._numbers:
                columns[name] = self._numbers[i].pandas()
            else:
                columns[name] = converted.iloc[:, list(converted.columns).index(name)]
        self._numbers.clear()
        frame = pd.DataFrame(columns, copy=False)
        frame.columns = pd.Index(names, dtype="str")
        return frame
