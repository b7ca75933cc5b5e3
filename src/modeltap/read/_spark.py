"""read.spark(): a collection as a Spark DataFrame, one row per data row (SPEC R12.2).

Where the collection was compacted, the rows come from the Delta table's active Parquet
files: the deltalake package lists them for one table version (no Delta jars in Spark)
and Spark reads them as Parquet, with the table's schema. The objects the table does not
cover are read as the platform's monitoring preprocessor reads them: `spark.read.json` over
the time range's files, with an explicit schema, and `posexplode` of `data`; the row key
`{correlationid}_{row index}` it joins ground truth on is the `row_key` column.

Paths are handed to Spark as URLs its Hadoop file systems know: a local folder as
`file://`, an Azure Blob container as `abfss://<container>@<account>.dfs.core.windows.net/`
(hadoop-azure), an S3 bucket as `s3a://<bucket>/` (hadoop-aws): the cluster brings those
jars and their credentials (docs/scale.md).
"""

from __future__ import annotations

import os
import posixpath
from typing import Any

import orjson

from modeltap.config import default_workspace, load_workspace
from modeltap.layout import original_name
from modeltap.read import _delta
from modeltap.read._compacted import file_schema
from modeltap.read._objects import list_objects
from modeltap.read._parse import ENVELOPE
from modeltap.read._range import TimeLike, utc_range
from modeltap.read._source import Source, resolve
from modeltap.storage.base import ObjectInfo

__all__ = ["ROW_KEY", "spark", "spark_url"]

ROW_KEY = "row_key"  # {correlationid}_{row index in the line's data}, as the platform keys rows
_IDX = "__modeltap_row_index"  # the row's index in its line's data, while it is built
_PAYLOAD = "\x00payload"
_BLOB = "__modeltap_blob__"
_SAMPLE_FILES = 64  # files whose first and last lines give the JSON schema
_PAYLOAD_FIELDS = (
    "datacontenttype",
    "xrequestid",
    "modelversion",
    "collectdatatype",
    "agent",
    "contentrange",
    "path",
    "method",
    "datainblob",
)


def spark(
    source: str | os.PathLike[str],
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    spark: Any = None,
    *,
    workspace: str | os.PathLike[str] | None = None,
    delta: bool = True,
    resolve_blobs: bool = False,
) -> Any:
    """A collection as a Spark DataFrame: the columns `load` gives (the user's, then
    correlationid, time, record_id) and `row_key`. source, start, end: as for `load`.
    spark: the SparkSession (default: the active one, else a new local one).
    resolve_blobs: for request/response collections, add `payload` (binary): the bytes
    of each payload stored as its own object (R4.3, R4.4), null for the others."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ImportError("read.spark needs pyspark: pip install 'modeltap[spark]'") from None
    session = spark or SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()
    t0, t1 = utc_range(start, end)
    ws = workspace if workspace is not None else default_workspace()
    src = resolve(source, ws)
    try:
        found = _delta.find(src, ws) if delta else None
        snap = _delta.open_snapshot(found[0], not found[1], t0, t1) if found else None
        if found is not None and found[1]:
            rest: list[ObjectInfo] = []
        else:
            base = f"{src.prefix}/" if src.prefix else ""
            covered = snap.covered if snap else set()
            rest = [
                i
                for i in list_objects(src, t0, t1)
                if original_name(i.path[len(base) :]) not in covered
            ]
        df, payload = _frame(session, src, ws, snap, rest, t0, t1)
        return _with_payloads(session, df, src, ws) if payload and resolve_blobs else df
    finally:
        src.storage.close()


def _frame(
    session: Any,
    src: Source,
    ws: Any,
    snap: _delta.Snapshot | None,
    rest: list[ObjectInfo],
    t0: Any,
    t1: Any,
) -> tuple[Any, bool]:
    """(the DataFrame, whether the collection holds HTTP payloads)."""
    from pyspark.sql import functions as F

    table_schema = file_schema(snap) if snap is not None else None
    kinds = _sample(src, rest)
    seen_payload = kinds.pop(_PAYLOAD, None) is not None
    payload = snap.payload if snap is not None else seen_payload
    frames = []
    if snap is not None:
        files = [spark_url_of_table(snap, f) for f in snap.files(t0, t1)]
        if files:
            frames.append(_from_table(session, table_schema, files))
    if rest:
        urls = [spark_url(src, ws, i.path) for i in rest]
        frames.append(_from_json(session, urls, kinds, table_schema, payload))
    if not frames:
        frames.append(_from_json(session, [], kinds, table_schema, payload))
    df = frames[0]
    for more in frames[1:]:
        df = df.unionByName(more, allowMissingColumns=True)
    if t0 is not None:
        df = df.where(F.col("time") >= F.lit(t0))
    if t1 is not None:
        df = df.where(F.col("time") < F.lit(t1))
    user = [c for c in df.columns if c not in (*ENVELOPE, _IDX)]
    key = F.concat_ws("_", F.col("correlationid"), F.col(_IDX).cast("string"))
    return df.select(*[F.col(f"`{c}`") for c in user], *ENVELOPE, key.alias(ROW_KEY)), payload


_FOLDERS = {1: "yyyy", 2: "yyyy/MM", 3: "yyyy/MM/dd", 4: "yyyy/MM/dd/HH", 5: "yyyy/MM/dd/HH/mm"}


def _with_payloads(session: Any, df: Any, src: Source, ws: Any) -> Any:
    """`payload`: the stored object of each line with datainblob "true", found as the
    writer placed it: `{partition of the line's time}/{record id}` (read as binaryFile)."""
    from pyspark.sql import functions as F

    from modeltap.read._range import detect_depth

    depth = detect_depth(src.storage, src.prefix)
    if depth is None:
        return df.withColumn("payload", F.lit(None).cast("binary"))
    zone = session.conf.get("spark.sql.session.timeZone")
    folder = F.date_format(F.to_utc_timestamp("time", zone), _FOLDERS[depth])
    base = f"{src.prefix}/" if src.prefix else ""
    path = F.concat(F.lit(base), folder, F.lit("/"), F.col("record_id"))
    stored = df.where(F.col("datainblob") == "true").select(path).distinct().collect()
    wanted = [str(r[0]) for r in stored]
    present: set[str] = set()
    for part in {posixpath.dirname(p) for p in wanted}:
        present.update(i.path for i in src.storage.list(part))
    urls = [spark_url(src, ws, p) for p in wanted if p in present]
    if not urls:
        return df.withColumn("payload", F.lit(None).cast("binary"))
    blobs = session.read.format("binaryFile").load(urls)
    blobs = blobs.select(
        F.regexp_extract("path", r"[^/]+$", 0).alias(_BLOB), F.col("content").alias("payload")
    )
    return df.join(blobs, df["record_id"] == blobs[_BLOB], "left").drop(_BLOB)


def _from_table(session: Any, schema: Any, files: list[str]) -> Any:
    from pyspark.sql import functions as F

    df = session.read.schema(_spark_schema(schema)).parquet(*files)
    renamed = {"row_index": _IDX, **{f"data.{n}": n for n in _delta.TABLE_ONLY}}
    return df.select(*[F.col(f"`{c}`").alias(renamed.get(c, c)) for c in df.columns])


def _from_json(
    session: Any, urls: list[str], kinds: dict[str, str | None], table: Any, payload: bool
) -> Any:
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    envelope = [T.StructField(n, T.StringType()) for n in ("id", "time", "correlationid")]
    if payload:
        fields = [T.StructField(n, T.StringType()) for n in _PAYLOAD_FIELDS]
        schema = T.StructType([*envelope, *fields, T.StructField("data", T.VariantType())])
        df = session.read.schema(schema).json(urls) if urls else session.createDataFrame([], schema)
        return df.select(
            F.to_json("data").alias("data"),
            *_PAYLOAD_FIELDS,
            "correlationid",
            F.try_to_timestamp("time").alias("time"),
            F.col("id").alias("record_id"),
            F.lit(0).alias(_IDX),
        )
    columns: dict[str, Any] = {}
    if table is not None:
        for f in table:
            if f.name not in (*ENVELOPE, *_delta.TABLE_ONLY):
                columns[f.name] = _spark_type(f.type)
    for name, kind in kinds.items():
        columns.setdefault(name, _KIND_TYPES[kind]())
    row = T.StructType([T.StructField(n, t) for n, t in columns.items()])
    schema = T.StructType([*envelope, T.StructField("data", T.ArrayType(row))])
    df = session.read.schema(schema).json(urls) if urls else session.createDataFrame([], schema)
    exploded = df.select(F.posexplode("data").alias(_IDX, "r"), "correlationid", "time", "id")
    reserved = {*ENVELOPE}
    return exploded.select(
        *[F.col(f"r.`{n}`").alias(f"data.{n}" if n in reserved else n) for n in columns],
        "correlationid",
        F.try_to_timestamp("time").alias("time"),
        F.col("id").alias("record_id"),
        _IDX,
    )


# -- schemas ---------------------------------------------------------------------------------


def _kind(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "json"


def _merge(a: str | None, b: str | None) -> str | None:
    if a is None or a == b:
        return b
    if b is None:
        return a
    if {a, b} == {"int", "float"}:
        return "float"
    return "str"


def _types() -> dict[str | None, Any]:
    from pyspark.sql import types as T

    return {
        "int": T.LongType,
        "float": T.DoubleType,
        "bool": T.BooleanType,
        "str": T.StringType,
        "json": T.StringType,  # Spark gives an object or array in a string field as its JSON
        None: T.StringType,
    }


class _KindTypes:
    def __getitem__(self, kind: str | None) -> Any:
        return _types()[kind]


_KIND_TYPES = _KindTypes()


def _sample(src: Source, infos: list[ObjectInfo]) -> dict[str, str | None]:
    """Data columns and their kinds from the first and last lines of up to _SAMPLE_FILES
    files spread over the range (the key "\\x00payload" when the lines are payloads)."""
    if not infos:
        return {}
    step = max(1, len(infos) // _SAMPLE_FILES)
    chosen = [*infos[::step][:_SAMPLE_FILES], infos[-1]]
    kinds: dict[str, str | None] = {}
    for info in dict.fromkeys(chosen):
        try:
            data = src.storage.get(info.path)
        except Exception:  # an unreadable file: Spark's read will show it
            continue
        lines = data.split(b"\n", 1)[:1] + data.rstrip().rsplit(b"\n", 1)[-1:]
        for raw in lines:
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            rows = line.get("data") if isinstance(line, dict) else None
            if "method" in line or not isinstance(rows, list):
                kinds[_PAYLOAD] = "str"
                continue
            for row in rows[:1] + rows[-1:]:
                if isinstance(row, dict):
                    for key, value in row.items():
                        kinds[key] = _merge(kinds.get(key), _kind(value))
    return kinds


def _spark_schema(schema: Any) -> Any:
    from pyspark.sql import types as T

    return T.StructType([T.StructField(f.name, _spark_type(f.type)) for f in schema])


def _spark_type(t: Any) -> Any:
    import pyarrow as pa
    from pyspark.sql import types as T

    simple = {
        pa.int64(): T.LongType(),
        pa.int32(): T.IntegerType(),
        pa.int16(): T.ShortType(),
        pa.int8(): T.ByteType(),
        pa.float64(): T.DoubleType(),
        pa.float32(): T.FloatType(),
        pa.bool_(): T.BooleanType(),
        pa.date32(): T.DateType(),
        pa.binary(): T.BinaryType(),
    }
    if t in simple:
        return simple[t]
    if pa.types.is_timestamp(t):
        return T.TimestampType() if t.tz else T.TimestampNTZType()
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return T.ArrayType(_spark_type(t.value_type))
    if pa.types.is_struct(t):
        return T.StructType([T.StructField(f.name, _spark_type(f.type)) for f in t])
    if pa.types.is_decimal(t):
        return T.DecimalType(t.precision, t.scale)
    return T.StringType()


# -- URLs ------------------------------------------------------------------------------------


def spark_url(src: Source, workspace: Any, path: str) -> str:
    """The URL Spark reads an object of a datastore from."""
    local = src.storage.local_path(path)
    if local is not None:
        return "file://" + str(local)
    settings = load_workspace(workspace).datastores[src.storage.name]
    return _cloud_url(settings.type, settings.options, path)


def spark_url_of_table(snap: _delta.Snapshot, file: str) -> str:
    where = snap.where
    if where.storage.local_path("") is not None:  # a table in a local folder
        return "file://" + posixpath.join(where.uri, file)
    scheme, _, rest = where.uri.partition("://")
    container, _, inside = rest.partition("/")
    if scheme == "s3":
        return f"s3a://{container}/{posixpath.join(inside, file)}"
    account = where.storage_options.get("azure_storage_account_name", "")
    return f"abfss://{container}@{account}.dfs.core.windows.net/{posixpath.join(inside, file)}"


def _cloud_url(kind: str, options: dict[str, Any], path: str) -> str:
    inside = "/".join(p for p in (str(options.get("prefix") or "").strip("/"), path) if p)
    if kind == "s3":
        return f"s3a://{options['bucket']}/{inside}"
    from modeltap.storage.objectstore import _account_of, parse_connection_string

    if "connection_string_env" in options:
        env = str(options["connection_string_env"])
        account = parse_connection_string(os.environ.get(env, ""), env)["AccountName"]
    else:
        account = _account_of(str(options["account_url"]))
    return f"abfss://{options['container']}@{account}.dfs.core.windows.net/{inside}"
