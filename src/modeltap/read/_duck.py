"""DuckDB as the parser of row collections, when duckdb is installed.

One query reads every selected file in parallel (DuckDB's C++ JSON reader), filters the
lines by time, expands the `data` lists and streams Arrow batches back, gathered column by
column as they come (_gather.py). DuckDB needs the
columns and their types before it reads, so they are taken from a sample: the first and
the last line of every file, the first and the last row of each of those lines. Types are
chosen so that nothing is changed silently:

* integers are read as DOUBLE and turned back into BIGINT value by value in the query; a
  value with decimals stops it, and the column is read again as DOUBLE (a float that
  shows up after sampled integers keeps its decimals); integers beyond 2**53 in the
  sample are read as BIGINT (DuckDB would round a float among them: the one case not
  caught), found outside it they send the read to the exact reader;
* strings are read as VARCHAR (a number in such a column comes back as its JSON text,
  like the line-by-line reader does);
* a column whose sampled values are all null is read as JSON and decoded afterwards.

Whatever DuckDB cannot read as declared (a cut or corrupt line, a value whose type does
not fit, a line whose `data` is not rows) stops the query with an error that names the
file: that file goes to the exact reader (_parse.Parser), which skips and counts bad lines,
and the files before and after it are queried again (after two such files, one query per
file), so rows stay in the order of the files. Collections that hold payload lines or
nested values, or whose sample is not conclusive, are left to the exact reader altogether
(`read()` returns None).

Limit: a data column that appears in none of the sampled rows is not read (DuckDB ignores
keys it was not told about). modeltap writes a frame's rows with the same keys, so this
takes a collection whose frames change columns in the middle of a file, and never at the
start or end of one; `load(..., exact=True)` reads every key of every line.

DuckDB reads files on local disk: _load copies objects of other datastores into a
temporary folder first (Storage.get()), so every datastore is read the same way.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa

from modeltap.read._gather import Gathered
from modeltap.read._parse import ENVELOPE, TIME_TYPE, _array
from modeltap.storage.base import ObjectInfo, Storage
from modeltap.storage.local import LocalStorage

__all__ = ["DuckRead", "local_files", "module", "read"]

log = logging.getLogger(__name__)

_HEAD = 1 << 13  # bytes read at each end of a local file for the sample
_MAX_TAIL = 1 << 24  # past this, the last line of a file is left out of the sample
_MAX_OBJECT = 256 << 20  # the longest line DuckDB is asked to take
_MIN_OBJECT = 16 << 20  # DuckDB's default maximum_object_size
_EXACT_INT = 2**53  # integers up to this are exact as doubles
_INT64 = 2**63
_BATCH_ROWS = 1 << 16  # the most rows per Arrow batch (DuckDB sends about one per file)
_PAYLOAD = "modeltap: payload line"
_DECIMALS = "modeltap: decimals in column #"
_BEYOND = "modeltap: integers beyond 2**53 in column #"
_COLUMN_IN_ERROR = re.compile(r"modeltap: (decimals|integers beyond 2\*\*53) in column #(\d+)\.")
_FILE_IN_ERROR = re.compile(r'in file "(.*?)"(?:,| at| in|:|$)')
_THREADS = min(4, (os.cpu_count() or 1) * 2)
_RETRIES = 2  # files DuckDB stops on before it reads one file per query
_ENVELOPE = frozenset(ENVELOPE)
_COPY_BATCHES = 16  # DuckDB batches (about one per file) copied out together


def module() -> Any | None:
    """The duckdb module, or None when it is not installed."""
    try:
        import duckdb  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    return duckdb


class Unsuitable(Exception):
    """The collection is not one DuckDB can read faithfully: use the exact reader."""


@dataclass
class DuckRead:
    """What DuckDB read, and what it left to the exact reader, in the order of the files:
    the rows DuckDB read (user columns, extra envelope columns, then ENVELOPE) and the
    objects to read with _parse.Parser."""

    pieces: list[Gathered | ObjectInfo]
    sampled: list[str] = field(default_factory=list)  # data columns seen in the sample

    @property
    def exact(self) -> list[ObjectInfo]:
        return [p for p in self.pieces if isinstance(p, ObjectInfo)]


# -- the sample -----------------------------------------------------------------------------

_NUMBERS = frozenset({"int", "big", "float"})


def _kind(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise Unsuitable("an integer beyond int64")
        return "big" if abs(value) > _EXACT_INT else "int"
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
            if not -_EXACT_INT <= values[i] <= _EXACT_INT:
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


# -- files on disk --------------------------------------------------------------------------


def local_files(storage: Storage, infos: list[ObjectInfo]) -> list[str] | None:
    """Paths on local disk of these objects, when DuckDB may read them directly: a plain
    LocalStorage (a subclass with its own get() is read through get())."""
    if not isinstance(storage, LocalStorage) or type(storage).get is not LocalStorage.get:
        return None
    return [storage.url(info.path) for info in infos]


def _sample(paths: list[str]) -> Sample:
    return Sample.of([line for path in paths for line in _ends_or_nothing(path)])


def _ends_or_nothing(path: str) -> list[bytes]:
    try:
        return _file_ends(path)
    except OSError:
        return []  # unreadable: DuckDB's error names it, the exact reader reports it


# -- the query ------------------------------------------------------------------------------


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_TYPES = {
    "int": "DOUBLE",
    "big": "BIGINT",
    "float": "DOUBLE",
    "bool": "BOOLEAN",
    "str": "VARCHAR",
    None: "JSON",
}


@dataclass
class _Plan:
    sql: str
    columns: dict[str, str]  # read_ndjson's columns=
    json: list[str]  # output columns read as JSON (all null in the sample)
    sampled: set[str]
    sizes: dict[str, int] = field(default_factory=dict)  # file path -> bytes
    sample: Sample | None = None

    def rows_in(self, paths: list[str]) -> int:
        """About how many rows these files hold, to size the numpy columns: reserved, not
        touched, so a generous guess costs no memory (a short one costs a realloc)."""
        if self.sample is None:
            return 0
        return self.sample.rows_in(sum(self.sizes.get(p, 0) for p in paths))


def _plan(
    sample: Sample,
    extra: tuple[str, ...],
    wanted: list[str] | None,
    start: datetime | None,
    end: datetime | None,
    floats: Collection[int] = (),  # columns (by position) read as float whatever the sample
) -> _Plan:
    kinds = dict(sample.kinds)
    if wanted is not None:  # only the data columns asked for (those not sampled as JSON)
        kinds = {c: kinds.get(c) for c in wanted if c not in _ENVELOPE and c not in extra}
    kinds = {k: "float" if i in floats else kind for i, (k, kind) in enumerate(kinds.items())}
    if not kinds:
        raise Unsuitable("no data column to read")
    if len({k.lower() for k in kinds}) != len(kinds) or "" in kinds:
        raise Unsuitable("column names that differ only in case")  # one DuckDB struct field
    reserved = {*_ENVELOPE, *extra}
    names = {k: f"data.{k}" if k in reserved else k for k in kinds}
    if len({*names.values(), *reserved}) < len(names) + len(reserved):
        raise Unsuitable("a column name given twice")  # e.g. "time" and "data.time"
    columns = {
        "id": "VARCHAR",
        "time": "VARCHAR",
        "correlationid": "VARCHAR",
        "method": "VARCHAR",
        **{name: "VARCHAR" for name in extra},
        "data": "STRUCT("
        + ", ".join(f"{_ident(k)} {_TYPES[kind]}" for k, kind in kinds.items())
        + ")[]",
    }
    select = [
        *(
            f"{_value(i, k, kind)} AS {_ident(names[k])}"
            for i, (k, kind) in enumerate(kinds.items())
        ),
        *map(_ident, extra),
        'correlationid, t AS "time", id AS record_id',
    ]
    where = [f"CASE WHEN method IS NULL THEN true ELSE error('{_PAYLOAD}') END"]
    if start is not None:
        where.append("t >= $start")
    if end is not None:
        where.append("t < $end")
    lines = (
        'SELECT *, TRY_CAST("time" AS TIMESTAMPTZ) AS t FROM read_ndjson($files, '
        "columns = $columns, format = 'newline_delimited', maximum_object_size = $size)"
    )
    rows = (
        f"SELECT unnest(data) AS r, {', '.join(['correlationid', 't', 'id', *map(_ident, extra)])} "
        f"FROM ({lines}) WHERE {' AND '.join(where)}"
    )
    return _Plan(
        f"SELECT {', '.join(select)} FROM ({rows})",
        columns,
        [names[k] for k, kind in kinds.items() if kind is None],
        {names[k] for k in kinds if k in sample.kinds},
    )


def _value(i: int, key: str, kind: str | None) -> str:
    """The SQL for one data column. Integers are read as doubles (so that a float among
    them is not rounded) and turned back into BIGINT here, value by value: a value with
    decimals, or beyond 2**53, stops the query with an error naming the column."""
    field = f"r.{_ident(key)}"
    if kind != "int":
        return field
    return (
        f"CASE WHEN {field} IS NULL THEN NULL "
        f"WHEN {field} <> trunc({field}) THEN error('{_DECIMALS}{i}.') "
        f"WHEN abs({field}) > {_EXACT_INT} THEN error('{_BEYOND}{i}.') "
        f"ELSE CAST({field} AS BIGINT) END"
    )


class _Decimals(Exception):
    """A column of integers in the sample has values with decimals: read it as float."""

    def __init__(self, column: int):
        super().__init__(column)
        self.column = column


class _Failed(Exception):
    def __init__(self, path: str | None, message: str):
        super().__init__(message)
        self.path = path


# One DuckDB database per process, a cursor (a connection of its own) per read.
_DB: tuple[int, Any] | None = None
_DB_LOCK = threading.Lock()


def _cursor(duckdb: Any) -> Any:
    global _DB
    with _DB_LOCK:
        if _DB is None or _DB[0] != os.getpid():
            db = duckdb.connect(":memory:")
            # Strings as large_string: what pandas keeps them as, so no copy on the way.
            db.execute("SET arrow_large_buffer_size = true")
            _DB = (os.getpid(), db)
        con = _DB[1].cursor()
    return _session(con)


def _session(con: Any) -> Any:
    con.execute("SET TimeZone = 'UTC'")  # naive line times are UTC, and so is the output
    return con


def _query(
    con: Any,
    duckdb: Any,
    plan: _Plan,
    paths: list[str],
    params: dict[str, Any],
    tick: Callable[[float], None],
) -> Gathered:
    """Run the plan on these files: their rows, or _Failed naming the file DuckDB stopped on."""
    pending: list[pa.RecordBatch] = []
    try:
        reader = con.sql(plan.sql, params={**params, "files": paths}).to_arrow_reader(_BATCH_ROWS)
        gathered = Gathered(reader.schema, plan.rows_in(paths))
        for batch in reader:
            pending.append(batch)
            if len(pending) == _COPY_BATCHES:
                gathered.add(pending)  # copied: DuckDB reuses that memory
                pending.clear()
                tick(con.query_progress())
        gathered.add(pending)
        pending.clear()
    except (duckdb.Error, pa.ArrowException, OSError) as exc:  # Arrow's stream re-raises
        message = str(exc)
        if _PAYLOAD in message:
            raise Unsuitable("payload lines") from None
        column = _COLUMN_IN_ERROR.search(message)
        if column and column.group(1) == "decimals":
            raise _Decimals(int(column.group(2))) from None
        if column:
            raise Unsuitable("integers beyond 2**53 that the sample did not show") from None
        raise _Failed(_named(message, paths), message) from None
    return gathered.done()


def _named(message: str, paths: list[str]) -> str | None:
    """The file an error message is about."""
    found = _FILE_IN_ERROR.search(message)
    if found and found.group(1) in paths:
        return found.group(1)
    return next((p for p in paths if f'"{p}"' in message), None)


def read(
    paths: list[str],
    infos: list[ObjectInfo],
    start: datetime | None,
    end: datetime | None,
    extra: tuple[str, ...],
    wanted: list[str] | None,
    tick: Callable[[float], None] = lambda pct: None,
) -> DuckRead | None:
    """Read the row objects stored in these local files (infos[i] in paths[i]) with
    DuckDB; None when the collection is not one for DuckDB (see the module docstring)."""
    duckdb = module()
    if duckdb is None or not paths:
        return None
    with ThreadPoolExecutor(1) as pool:  # DuckDB starts up while the sample is read
        connecting = pool.submit(_cursor, duckdb)
        try:
            return _read(duckdb, connecting, paths, infos, start, end, extra, wanted, tick)
        except Unsuitable as exc:
            log.debug("modeltap: reading line by line (%s)", exc)
            return None
        finally:
            connecting.result().close()


def _read(
    duckdb: Any,
    connecting: Future[Any],
    paths: list[str],
    infos: list[ObjectInfo],
    start: datetime | None,
    end: datetime | None,
    extra: tuple[str, ...],
    wanted: list[str] | None,
    tick: Callable[[float], None],
) -> DuckRead:
    sample = _sample(paths)
    if not sample.lines:
        raise Unsuitable("no readable line in the sample")
    params: dict[str, Any] = {
        "size": min(_MAX_OBJECT, max(_MIN_OBJECT, max(i.size for i in infos) + 1)),
    }
    if start is not None:
        params["start"] = start
    if end is not None:
        params["end"] = end
    con = connecting.result()
    floats: set[int] = set()  # columns of integers found to have decimals
    sizes = {path: info.size for path, info in zip(paths, infos, strict=True)}
    while True:
        plan = _plan(sample, extra, wanted, start, end, floats)
        plan.sizes, plan.sample = sizes, sample
        try:
            pieces = _read_all(con, duckdb, plan, paths, {**params, "columns": plan.columns}, tick)
            break
        except _Decimals as found:  # read again, that column as float
            floats.add(found.column)
    by_path = dict(zip(paths, infos, strict=True))
    return DuckRead(
        [by_path[p] if isinstance(p, str) else p for p in _finish(pieces, plan)],
        sampled=list(sample.kinds),
    )


def _read_all(
    con: Any,
    duckdb: Any,
    plan: _Plan,
    paths: list[str],
    params: dict[str, Any],
    tick: Callable[[float], None],
) -> list[Gathered | str]:
    """DuckDB's rows and the paths of the files it left to the exact reader, in file
    order. One query for all files; when DuckDB stops on a file, the files before and
    after it are queried apart; after two such files, one query per file."""
    failures = 0

    def run(todo: list[str]) -> list[Gathered | str]:
        nonlocal failures
        if not todo:
            return []
        if failures >= _RETRIES:
            return _per_file(con, duckdb, plan, todo, params)
        try:
            return [_query(con, duckdb, plan, todo, params, tick)]
        except _Failed as exc:
            if exc.path is None:
                raise Unsuitable(f"DuckDB: {exc}") from None
            log.debug("modeltap: %s left to the exact reader: %s", exc.path, exc)
            failures += 1
            i = todo.index(exc.path)
            return [*run(todo[:i]), exc.path, *run(todo[i + 1 :])]

    return run(list(paths))


def _per_file(
    con: Any, duckdb: Any, plan: _Plan, paths: list[str], params: dict[str, Any]
) -> list[Gathered | str]:
    def one(path: str) -> Gathered | str:
        cursor = _session(con.cursor())
        try:
            return _query(cursor, duckdb, plan, [path], params, lambda pct: None)
        except _Failed:
            return path
        finally:
            cursor.close()

    with ThreadPoolExecutor(min(_THREADS, len(paths))) as pool:
        return list(pool.map(one, paths))


# -- after the query ------------------------------------------------------------------------


def _finish(pieces: list[Gathered | str], plan: _Plan) -> list[Gathered | str]:
    gathered = [p for p in pieces if isinstance(p, Gathered)]
    for name in plan.json:
        decoded = [_decoded(g.column(name)) for g in gathered]
        found = name in plan.sampled or any(d is not None for d in decoded)
        for g, d in zip(gathered, decoded, strict=True):
            # a column asked for with columns= and found nowhere is dropped
            g.replace(name, (d if d is not None else pa.nulls(g.num_rows)) if found else None)
    for g in gathered:
        if g.schema.field("time").type != TIME_TYPE:
            g.replace("time", g.column("time").cast(TIME_TYPE))
    return pieces


def _decoded(column: pa.ChunkedArray) -> pa.Array | None:
    """A JSON column back to values (None when it holds no value at all)."""
    if column.null_count == len(column):
        return None
    values = [None if v is None else orjson.loads(v) for v in column.to_pylist()]
    if any(isinstance(v, dict | list) for v in values):
        raise Unsuitable("nested values outside the sample")
    return _array(values)
