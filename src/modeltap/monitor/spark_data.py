"""The Spark engine's data: production and reference rows as Spark DataFrames (what
monitor.data.load_data gives the one-machine engine), and read.join's pairing of inputs,
outputs and ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modeltap.errors import ConfigError

__all__ = ["join", "load_data"]

_INDEX = "__modeltap_index__"


def load_data(
    spark: Any,
    spec: Any,
    at: Any,
    workspace: Path,
    columns: list[str] | None = None,
    default_window: bool = False,
) -> tuple[Any, Any]:
    """As monitor.data.load_data, as a cached Spark DataFrame."""
    from datetime import timedelta

    from modeltap.monitor import data

    window = data.window_for(spec, at)
    if default_window and window.start is None and window.end is None:
        window = data.Window(at - timedelta(days=7), at)
    path, where = spec.path, f"{spec.where}.input_data.path"
    local = Path(path)
    if local.is_file():
        df = _read_file(spark, local, where)
        if window.start or window.end:
            df = _in_window(df, window, spec.where)
    elif local.is_dir() and not data._is_collection(local):
        files = [f for f in sorted(local.iterdir()) if f.suffix in data._TABLE_SUFFIXES]
        frames = [_read_file(spark, f, where) for f in files]
        df = frames[0]
        for more in frames[1:]:
            df = df.unionByName(more, allowMissingColumns=True)
    else:
        df = _read_collection(spark, path, window, workspace, columns, spec.where)
    if df.isEmpty():
        bounds = data._describe(window)
        raise ConfigError(f"no rows in {path!r}{bounds}", field=data._window_field(spec))
    return df.cache(), window


def _read_collection(
    spark: Any, path: str, window: Any, workspace: Path, columns: list[str] | None, where: str
) -> Any:
    from modeltap import read
    from modeltap.read.shared import ROW_KEY

    source = path[len("azureml:") :] if path.startswith("azureml:") and "://" not in path else path
    try:
        df = read.spark(source, window.start, window.end, spark, workspace=workspace)
    except read.NotFoundError as exc:
        raise ConfigError(str(exc), field=f"{where}.input_data.path") from None
    df = df.drop(ROW_KEY)
    for name in columns or ():
        if name not in df.columns:
            known = ", ".join(c for c in df.columns if not c.startswith("__"))
            raise ConfigError(
                f"no column {name!r} in {source}; columns: {known}", field=f"{where}.features"
            )
    return df


def _read_file(spark: Any, path: Path, where: str) -> Any:
    reader, suffix = spark.read, path.suffix.lower()
    try:
        if suffix == ".parquet":
            return reader.parquet(str(path))
        if suffix == ".csv":
            return reader.csv(str(path), header=True, inferSchema=True)
        if suffix in (".jsonl", ".ndjson"):
            return reader.json(str(path))
        if suffix == ".json":
            return reader.json(str(path), multiLine=True)
    except Exception as exc:
        raise ConfigError(f"cannot read {str(path)!r}: {exc}", field=where) from None
    raise ConfigError(
        f"{str(path)!r}: unknown file type; allowed: .parquet, .csv, .jsonl, .json", field=where
    )


def _in_window(df: Any, window: Any, where: str) -> Any:
    from pyspark.sql import functions as F

    if "time" not in df.columns:
        raise ConfigError(
            "a data_window needs a 'time' column in the file", field=f"{where}.data_window"
        )
    t = F.col("time").try_cast("timestamp")
    if window.start is not None:
        df = df.where(t >= F.lit(window.start))
    if window.end is not None:
        df = df.where(t < F.lit(window.end))
    return df


def join(inputs: Any, outputs: Any, truth: Any, on: str, how: str = "inner") -> Any:
    """read.join's pairing: inputs and outputs by correlation id and position within
    it, then the ground truth by `on` (by position too when it repeats a key)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    def positions(df: Any, key: str) -> Any:
        # the read order breaks ties: a line's rows in the order of its data
        df = df.withColumn(_INDEX, F.monotonically_increasing_id())
        order = [c for c in ("time", "record_id") if c in df.columns]
        w = Window.partitionBy(key).orderBy(*order, _INDEX)
        return df.withColumn("__pos__", F.row_number().over(w)).drop(_INDEX)

    left = positions(inputs, "correlationid")
    right = positions(outputs, "correlationid")
    both = set(left.columns) & set(right.columns) - {"correlationid", "__pos__"}
    left = left.select(*[F.col(c).alias(f"{c}_input" if c in both else c) for c in left.columns])
    right = right.select(
        *[F.col(c).alias(f"{c}_output" if c in both else c) for c in right.columns]
    )
    merged = left.join(right, ["correlationid", "__pos__"], how)
    keys = [on]
    if truth.groupBy(on).count().where("count > 1").limit(1).count():
        truth = positions(truth, on)
        keys.append("__pos__")
    else:
        merged = merged.withColumnRenamed("__pos__", "__merged_pos__")
    clash = set(truth.columns) & set(merged.columns) - set(keys)
    truth = truth.select(
        *[F.col(c).alias(f"{c}_truth" if c in clash else c) for c in truth.columns]
    )
    joined = merged.join(truth, keys, "left")
    return joined.drop("__pos__", "__merged_pos__")


def _suffixed(df: Any, names: set[str], suffix: str) -> Any:
    from pyspark.sql import functions as F

    return df.select(*[F.col(f"`{c}`").alias(c + suffix if c in names else c) for c in df.columns])
