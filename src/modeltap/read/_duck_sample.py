"""The sample DuckDB's columns come from: the first and the last line of every file, the
first and the last row of each of those lines, and the kind of value each column holds
(see _duck.py for how the kinds become DuckDB types).

A long line is not parsed whole: its first and last rows are cut out of it where modeltap's
layout of a line says they are (`sliced`), and the line is parsed whole when that fails."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import orjson

__all__ = ["EXACT_INT", "Sample", "Unsuitable", "sample_files"]

_HEAD = 1 << 13  # bytes read at each end of a local file for the sample
_MAX_TAIL = 1 << 24  # past this, the last line of a file is left out of the sample
EXACT_INT = 2**53  # integers up to this are exact as doubles
_INT64 = 2**63


class Unsuitable(Exception):
    """The collection is not one DuckDB can read faithfully: use the exact reader."""


def sample_files(paths: list[str]) -> Sample:
    """The sample of these local files (an unreadable one adds nothing)."""
    return Sample.of([line for path in paths for line in _ends_or_nothing(path)])


def _ends_or_nothing(path: str) -> list[bytes]:
    try:
        return _file_ends(path)
    except OSError:
        return []  # unreadable: DuckDB's error names it, the exact reader reports it


_NUMBERS = frozenset({"int", "big", "float"})


def _kind(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise Unsuitable("an integer beyond int64")
        return "big" if abs(value) > EXACT_INT else "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    raise Unsuitable("nested values")


def _merge(a: str | None, b: str | None) -> str | None:
    if a is None or a == b:
        return b
    if b is None:
        return a
    if a in _NUMBERS and b in _NUMBERS:
        return "float" if "float" in (a, b) else "big"
    return "str"  # strings with anything, booleans with numbers: JSON text


class Sample:
    """Columns and kinds of values seen in the sampled lines (their first and last rows),
    in order of appearance."""

    def __init__(self) -> None:
        self.kinds: dict[str, str | None] = {}
        self.lines = 0
        self.rows = 0  # in the sampled lines (about, for long lines)
        self.bytes = 0  # of the sampled lines
        # rows already seen: (keys, types of the values) -> positions of the integers
        self._seen: dict[tuple[tuple[str, ...], tuple[type, ...]], tuple[int, ...]] = {}

    @classmethod
    def of(cls, lines: list[bytes]) -> Sample:
        sample = cls()
        for line in lines:
            sample.add(line)
        return sample

    def add(self, raw: bytes) -> None:
        """Raises Unsuitable for a line DuckDB should not read."""
        sliced = _sliced(raw) if len(raw) > _SLICE_FROM else None
        if sliced is not None:
            self._count(raw, raw.count(b"},{") + 1)
            for row in sliced:
                self._row(row)
            return
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return  # a corrupt or cut line: the read will name its file
        if not isinstance(line, dict):
            return
        data = line.get("data")
        if "method" in line or not isinstance(data, list):
            raise Unsuitable("payload lines")
        self._count(raw, len(data))
        if data:
            self._row(data[0])
            if len(data) > 1:
                self._row(data[-1])

    def _count(self, raw: bytes, rows: int) -> None:
        self.lines += 1
        self.rows += rows
        self.bytes += len(raw) + 1

    def rows_in(self, size: int) -> int:
        """About how many rows `size` bytes of such lines hold (rather more than fewer)."""
        return int(size * self.rows / max(self.bytes, 1) * 1.2) + 1024

    def _row(self, row: Any) -> None:
        if row is None:
            return
        if not isinstance(row, dict):
            raise Unsuitable("payload lines")
        values = tuple(row.values())
        types = tuple(map(type, values))
        shape = (tuple(row), types)
        ints = self._seen.get(shape)
        if ints is None:  # a new shape of row: every value
            for key, value in row.items():
                self.kinds[key] = _merge(self.kinds.get(key), _kind(value))
            self._seen[shape] = tuple(i for i, t in enumerate(types) if t is int)
            return
        for i in ints:  # a known shape: only the integers can change kind (by size)
            if not -EXACT_INT <= values[i] <= EXACT_INT:
                key = shape[0][i]
                self.kinds[key] = _merge(self.kinds.get(key), _kind(values[i]))


_DATA = b'"data":[{'
_AFTER_DATA = b'}],"correlationid":"'  # record._line writes data, then correlationid
_SLICE_FROM = 2048  # shorter lines are parsed whole
_TRIES = 16


def _sliced(raw: bytes) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The first and the last row of a row line laid out as modeltap writes it, parsed
    from slices of the line (the rows in between are not parsed); None when the line is
    laid out otherwise, is not a row line, or any slice does not parse as expected.

    A slice boundary is only taken where the bytes cannot be inside a JSON string (quotes
    in strings are escaped), and every slice must parse as a whole object, so a wrong
    boundary shows as a parse error and the line is parsed whole instead."""
    begin = raw.find(_DATA)
    close = raw.rfind(_AFTER_DATA)
    if begin < 0 or close <= begin:
        return None
    begin += len(_DATA) - 1  # the first row's "{"
    close += 1  # the "]" that ends data
    try:
        envelope = orjson.loads(raw[: begin - 1] + b"null" + raw[close + 1 :])
        if not isinstance(envelope, dict) or "method" in envelope or envelope["data"] is not None:
            return None
        first = _object(raw, begin, lambda at: raw.find(b"},{", at, close), close)
        cut = close
        for _ in range(_TRIES):  # the last row starts after the last "},{" that parses
            cut = raw.rfind(b"},{", begin, cut)
            start = cut + 2 if cut >= 0 else begin
            try:
                last = orjson.loads(raw[start:close])
            except orjson.JSONDecodeError:
                if cut < 0:
                    return None
                continue
            return (first, last) if isinstance(last, dict) else None
    except (orjson.JSONDecodeError, KeyError):
        return None
    return None


def _object(raw: bytes, begin: int, next_end: Callable[[int], int], close: int) -> Any:
    """The object that starts at begin: the first candidate end that parses."""
    at = begin
    for _ in range(_TRIES):
        end = next_end(at)
        end = close - 1 if end < 0 else end
        try:
            value = orjson.loads(raw[begin : end + 1])
        except orjson.JSONDecodeError:
            if end >= close - 1:
                break
            at = end + 1
            continue
        if isinstance(value, dict):
            return value
        break
    raise KeyError("no object")


def _last_line(data: bytes, whole: bool) -> bytes:
    """The last line of data (a slice), when it ends with a newline (else it may be cut);
    when data is only the end of an object (whole is False), nothing unless a newline
    shows where that line starts."""
    if not data.endswith((b"\n", b"\r")):
        return b""
    end = len(data)
    while end and data[end - 1] in b" \t\r\n":
        end -= 1
    start = data.rfind(b"\n", 0, end) + 1
    return data[start:end] if start or whole else b""


def _ends(data: bytes) -> list[bytes]:
    """The first and the last line of an object (slices: the object is not copied)."""
    cut = data.find(b"\n")
    first = data[:cut] if cut >= 0 else data
    last = _last_line(data, True) if cut >= 0 else b""
    return [line for line in (first, last) if line.strip()]


def _file_ends(path: str) -> list[bytes]:
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        head = os.pread(fd, _HEAD, 0)
        while b"\n" not in head and len(head) < size:  # a first line longer than _HEAD
            head += os.pread(fd, len(head), len(head))
        if size <= len(head):
            return _ends(head)
        step = _HEAD
        last = _last_line(os.pread(fd, step, size - step), False)
        while not last and step < min(size, _MAX_TAIL):  # a last line longer than that
            step *= 4
            last = _last_line(os.pread(fd, step, max(0, size - step)), size <= step)
    finally:
        os.close(fd)
    return [line for line in (head.partition(b"\n")[0], last) if line.strip()]
