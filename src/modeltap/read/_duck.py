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

The sample is taken in _duck_sample.py, the query written in _duck_sql.py; this module runs
it and falls back file by file.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa

from modeltap.read._duck_sample import Unsuitable, sample_files
from modeltap.read._duck_sql import COLUMN_IN_ERROR, PAYLOAD, Plan, plan_query
from modeltap.read._gather import Gathered
from modeltap.read._parse import TIME_TYPE, _array
from modeltap.storage.base import ObjectInfo, Storage
from modeltap.storage.local import LocalStorage

__all__ = ["DuckRead", "local_files", "module", "read"]

log = logging.getLogger(__name__)

_MAX_OBJECT = 256 << 20  # the longest line DuckDB is asked to take
_MIN_OBJECT = 16 << 20  # DuckDB's default maximum_object_size
_BATCH_ROWS = 1 << 16  # the most rows per Arrow batch (DuckDB sends about one per file)
_FILE_IN_ERROR = re.compile(r'in file "(.*?)"(?:,| at| in|:|$)')
_THREADS = min(4, (os.cpu_count() or 1) * 2)
_RETRIES = 2  # files DuckDB stops on before it reads one file per query
_COPY_BATCHES = 16  # DuckDB batches (about one per file) copied out together


def module() -> Any | None:
    """The duckdb module, or None when it is not installed."""
    try:
        import duckdb  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    return duckdb


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


# -- files on disk --------------------------------------------------------------------------


def local_files(storage: Storage, infos: list[ObjectInfo]) -> list[str] | None:
    """Paths on local disk of these objects, when DuckDB may read them directly: the
    storage keeps them as files (Storage.local_path) and its get() is the plain file read
    of LocalStorage (a storage with a get() of its own, such as a test's that fails some
    reads, is read through get(), so DuckDB sees what get() gives)."""
    if storage.local_path("") is None or type(storage).get is not LocalStorage.get:
        return None
    return [str(storage.local_path(info.path)) for info in infos]


# -- the query ------------------------------------------------------------------------------


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
    plan: Plan,
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
        if PAYLOAD in message:
            raise Unsuitable("payload lines") from None
        column = COLUMN_IN_ERROR.search(message)
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
    sample = sample_files(paths)
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
        plan = plan_query(sample, extra, wanted, start, end, floats)
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
    plan: Plan,
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
    con: Any, duckdb: Any, plan: Plan, paths: list[str], params: dict[str, Any]
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


def _finish(pieces: list[Gathered | str], plan: Plan) -> list[Gathered | str]:
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
