"""The Spark engine: the monitor's sufficient statistics from distributed aggregations
(SPEC R12.2), so `modeltap monitor run monitor.yml --engine spark` gives the numbers the
one-machine engine gives, on data one machine could not hold.

Data: collections are read with `modeltap.read.spark` (the Delta table where compacted,
the JSON lines elsewhere, only the window's partitions); files with Spark's own readers.
Loaded frames are cached for the run's many aggregations.

What is exact and what is bounded (docs/scale.md states it too):

* counts (categories, nulls, type errors, out-of-bounds values, confusion matrices) and
  the histograms on the shared Sturges bins that Jensen-Shannon and PSI use are exact, so
  those metrics (and chi-squared) equal the local engine's;
* standard deviation and regression error sums are Spark's floating-point sums: equal up
  to rounding (relative 1e-12 or so);
* the Wasserstein distance and the Kolmogorov-Smirnov statistic are exact when a feature
  has at most `exact_distinct` distinct values (their counts go to the driver and the CDFs
  are walked there); past that they come from a histogram of `fine_bins` equal bins over
  [min, max], with h the bin width and m_i = max(reference share, production share) of
  bin i:  |W1 - W1_hist| <= h * sum_i m_i   and   D_hist <= D <= D_hist + max_i m_i.
  The bounds of each such feature are kept in `SparkEngine.bounds`.
"""

from __future__ import annotations

import itertools
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from modeltap.errors import ConfigError
from modeltap.monitor import metrics
from modeltap.monitor.engine import (
    CATEGORICAL_MAX_DISTINCT,
    CategoricalStats,
    ClassificationStats,
    NumericalStats,
    QualityStats,
    RegressionStats,
)

__all__ = ["SparkEngine"]

log = logging.getLogger(__name__)

_INDEX = "__modeltap_index__"


class SparkEngine:
    """The monitor's Engine over Spark DataFrames (see engine.py for the interface)."""

    def __init__(
        self, spark: Any = None, exact_distinct: int = 1_000_000, fine_bins: int = 1 << 16
    ):
        from pyspark.sql import SparkSession

        self.spark = spark or SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()
        self.exact_distinct = exact_distinct
        self.fine_bins = fine_bins
        self.bounds: dict[str, tuple[float, float]] = {}  # column -> (W1 bound, D bound)

    # -- data ------------------------------------------------------------------------------

    def load_data(
        self,
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
            df = self._read_file(local, where)
            if window.start or window.end:
                df = self._in_window(df, window, spec.where)
        elif local.is_dir() and not data._is_collection(local):
            files = [f for f in sorted(local.iterdir()) if f.suffix in data._TABLE_SUFFIXES]
            frames = [self._read_file(f, where) for f in files]
            df = frames[0]
            for more in frames[1:]:
                df = df.unionByName(more, allowMissingColumns=True)
        else:
            df = self._read_collection(path, window, workspace, columns, spec.where)
        if df.isEmpty():
            bounds = data._describe(window)
            raise ConfigError(f"no rows in {path!r}{bounds}", field=data._window_field(spec))
        return df.cache(), window

    def _read_collection(
        self, path: str, window: Any, workspace: Path, columns: list[str] | None, where: str
    ) -> Any:
        from modeltap import read
        from modeltap.read._spark import ROW_KEY

        source = (
            path[len("azureml:") :] if path.startswith("azureml:") and "://" not in path else path
        )
        try:
            df = read.spark(source, window.start, window.end, self.spark, workspace=workspace)
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

    def _read_file(self, path: Path, where: str) -> Any:
        reader, suffix = self.spark.read, path.suffix.lower()
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

    def _in_window(self, df: Any, window: Any, where: str) -> Any:
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

    def join(self, inputs: Any, outputs: Any, truth: Any, on: str, how: str = "inner") -> Any:
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
        left = left.select(
            *[F.col(c).alias(f"{c}_input" if c in both else c) for c in left.columns]
        )
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

    def labelled(self, joined: Any, truth: str) -> Any:
        from pyspark.sql import functions as F

        return joined.where(F.col(f"`{truth}`").isNotNull())

    # -- the Engine interface ------------------------------------------------------------

    def rows(self, frame: Any) -> int:
        return int(frame.count())

    def columns(self, frame: Any) -> list[str]:
        return [c for c in frame.columns if not c.startswith("__modeltap")]

    def feature_type(self, ref: Any, column: str) -> str | None:
        from pyspark.sql import types as T

        t = ref.schema[column].dataType
        if isinstance(t, T.BooleanType):
            return "categorical"
        if isinstance(t, T.IntegralType):
            few = ref.select(column).where(_present(column, t)).distinct()
            return (
                "categorical"
                if few.limit(CATEGORICAL_MAX_DISTINCT + 1).count() <= 10
                else ("numerical")
            )
        if isinstance(t, T.FractionalType):
            return "numerical"
        if isinstance(t, T.TimestampType | T.TimestampNTZType | T.DateType):
            return None
        return "categorical"

    def numerical(self, ref: Any, prod: Any, column: str, w1: bool, ks: bool) -> NumericalStats:
        from pyspark.sql import functions as F

        sides = _sides(ref, prod, column).cache()  # three jobs over it: stats, bins, CDFs
        try:
            stats = {
                row[0]: row[1:]
                for row in sides.groupBy("side")
                .agg(F.count("v"), F.min("v"), F.max("v"), F.stddev_samp("v"))
                .collect()
            }
            (n_ref, lo_r, hi_r, std_r), (n_prod, lo_p, hi_p, _) = (
                stats.get(k, (0, None, None, None)) for k in (0, 1)
            )
            std = float(std_r) if n_ref > 1 and std_r is not None else 0.0
            if not (n_ref and n_prod):
                return NumericalStats(n_ref, n_prod, std, [], [], [], math.nan, math.nan)
            lo, hi = min(lo_r, lo_p), max(hi_r, hi_p)
            edges = metrics.shared_edges(lo, hi, metrics.bin_count(n_ref, n_prod))
            ref_hist, prod_hist = _histograms(sides, edges)
            w1_value = ks_value = math.nan
            if w1 or ks:
                w1_value, ks_value = self._distances(sides, column, n_ref, n_prod, lo, hi)
        finally:
            sides.unpersist()
        return NumericalStats(
            n_ref,
            n_prod,
            std,
            edges.tolist(),
            ref_hist.tolist(),
            prod_hist.tolist(),
            w1_value if w1 else math.nan,
            ks_value if ks else math.nan,
        )

    def _distances(
        self, sides: Any, column: str, n_ref: int, n_prod: int, lo: float, hi: float
    ) -> tuple[float, float]:
        """(W1, KS's D): exact from the distinct values' counts when there are few enough,
        else from a fine histogram (with the bounds kept in self.bounds)."""
        from pyspark.sql import functions as F

        counts = sides.groupBy("v").pivot("side", [0, 1]).count().na.fill(0)
        found = counts.limit(self.exact_distinct + 1).collect()
        if len(found) <= self.exact_distinct:
            rows = sorted((float(v), int(a), int(b)) for v, a, b in found)
            values = np.array([v for v, _, _ in rows])
            f_ref = np.cumsum([a for _, a, _ in rows]) / n_ref
            f_prod = np.cumsum([b for _, _, b in rows]) / n_prod
            diff = f_ref - f_prod
            w1 = float(np.abs(diff[:-1]) @ np.diff(values)) if len(values) > 1 else 0.0
            return w1, float(np.abs(diff).max())
        del found
        bins = self.fine_bins
        width = (hi - lo) / bins if hi > lo else 1.0
        index = F.least(F.floor((F.col("v") - F.lit(lo)) / F.lit(width)), F.lit(bins - 1))
        per_bin = sides.groupBy(index.cast("int").alias("b")).pivot("side", [0, 1]).count()
        ref_c, prod_c = np.zeros(bins), np.zeros(bins)
        for b, a, c in per_bin.na.fill(0).collect():
            ref_c[b], prod_c[b] = a, c
        share_r, share_p = ref_c / n_ref, prod_c / n_prod
        diff = np.cumsum(share_r) - np.cumsum(share_p)
        mass = np.maximum(share_r, share_p)
        self.bounds[column] = (width * float(mass.sum()), float(mass.max()))
        return width * float(np.abs(diff).sum()), float(np.abs(diff).max())

    def categorical(self, ref: Any, prod: Any, column: str) -> CategoricalStats:
        rc, pc = _category_counts(ref, column), _category_counts(prod, column)
        categories = list(rc) + [c for c in pc if c not in rc]
        return CategoricalStats(
            categories, [rc.get(c, 0) for c in categories], [pc.get(c, 0) for c in categories]
        )

    def quality(self, ref: Any, prod: Any, column: str, kind: str) -> QualityStats:
        from pyspark.sql import functions as F

        t = prod.schema[column].dataType
        present = _present(column, t)
        expected = _kind_of(ref.schema[column].dataType) if kind == "categorical" else "number"
        valid = present & _matches(column, t, expected)
        if kind == "numerical":
            v_ref = F.col(f"`{column}`").try_cast("double")  # the local engine keeps +-inf here
            bounds = ref.where(v_ref.isNotNull() & ~F.isnan(v_ref)).agg(F.min(v_ref), F.max(v_ref))
            bounds = bounds.first()
            v = F.col(f"`{column}`").try_cast("double")
            if bounds[0] is None:
                outside: Any = F.lit(True)
            else:
                outside = (v < F.lit(bounds[0])) | (v > F.lit(bounds[1]))
        else:
            seen = list(_category_counts(ref, column))
            outside = ~_as_text(column, t).isin(seen) if seen else F.lit(True)
        n = prod.agg(
            F.count(F.lit(1)),
            F.sum((~present).cast("long")),
            F.sum((present & ~valid).cast("long")),
            F.sum((valid & outside).cast("long")),
        ).first()
        return QualityStats(int(n[0]), int(n[1] or 0), int(n[2] or 0), int(n[3] or 0))

    def chunks(self, frame: Any, n: int) -> list[Any]:
        from pyspark.sql import functions as F
        from pyspark.sql import types as T

        total = frame.count()
        schema = T.StructType([*frame.schema.fields, T.StructField(_INDEX, T.LongType())])
        pairs = frame.rdd.zipWithIndex().map(lambda pair: (*pair[0], pair[1]))
        indexed = self.spark.createDataFrame(pairs, schema).cache()
        bounds = np.linspace(0, total, n + 1).astype(int)
        return [
            indexed.where((F.col(_INDEX) >= int(a)) & (F.col(_INDEX) < int(b))).drop(_INDEX)
            for a, b in itertools.pairwise(bounds)
        ]

    def performance(
        self, frame: Any, truth: str, prediction: str, task: str
    ) -> ClassificationStats | RegressionStats:
        from pyspark.sql import functions as F

        both = frame.select(F.col(f"`{truth}`").alias("t"), F.col(f"`{prediction}`").alias("p"))
        both = both.na.drop()
        if task == "regression":
            y, yhat = F.col("t").try_cast("double"), F.col("p").try_cast("double")
            finite = _is_finite(y) & _is_finite(yhat)
            err = y - yhat
            n, a, s = (
                both.where(finite)
                .agg(F.count(F.lit(1)), F.sum(F.abs(err)), F.sum(err * err))
                .first()
            )
            return RegressionStats(int(n), float(a or 0.0), float(s or 0.0))
        counts = both.groupBy("t", "p").count().collect()
        labels = sorted({r[0] for r in counts} | {r[1] for r in counts}, key=_label_order)
        index = {label: k for k, label in enumerate(labels)}
        cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
        for t, p, c in counts:
            cm[index[t], index[p]] += c
        return ClassificationStats(labels, cm.tolist())


# -- column helpers --------------------------------------------------------------------------


def _suffixed(df: Any, names: set[str], suffix: str) -> Any:
    from pyspark.sql import functions as F

    return df.select(*[F.col(f"`{c}`").alias(c + suffix if c in names else c) for c in df.columns])


def _label_order(v: Any) -> tuple[str, Any]:
    return (str(type(v)), v)


def _is_finite(c: Any) -> Any:
    from pyspark.sql import functions as F

    return c.isNotNull() & ~F.isnan(c) & (F.abs(c) != F.lit(float("inf")))


def _present(column: str, t: Any) -> Any:
    """Not null (and, for floating point columns, not NaN: pandas counts NaN as missing)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    c = F.col(f"`{column}`")
    if isinstance(t, T.FractionalType):
        return c.isNotNull() & ~F.isnan(c)
    return c.isNotNull()


def _finite(frame: Any, column: str) -> Any:
    """The column's finite values as doubles, in a column `v`."""
    from pyspark.sql import functions as F

    v = F.col(f"`{column}`").try_cast("double")
    return frame.select(v.alias("v")).where(_is_finite(F.col("v")))


def _sides(ref: Any, prod: Any, column: str) -> Any:
    """Both sides' finite values in one frame: `v` (double) and `side` (0 ref, 1 prod)."""
    from pyspark.sql import functions as F

    r = _finite(ref, column).withColumn("side", F.lit(0))
    return r.unionByName(_finite(prod, column).withColumn("side", F.lit(1)))


def _histograms(sides: Any, edges: Any) -> tuple[Any, Any]:
    """Counts per bin of each side, as metrics.histogram: [e_i, e_i+1), the last closed."""
    from pyspark.ml.feature import Bucketizer

    bucketizer = Bucketizer(splits=[float(e) for e in edges], inputCol="v", outputCol="b")
    counts = np.zeros((2, len(edges) - 1), dtype=np.int64)
    for side, b, n in bucketizer.transform(sides).groupBy("side", "b").count().collect():
        counts[side, int(b)] = n
    return counts[0], counts[1]


def _as_text(column: str, t: Any) -> Any:
    """Values as the text the local engine compares (pandas' str(): True/False)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    c = F.col(f"`{column}`")
    if isinstance(t, T.BooleanType):
        return F.when(c, F.lit("True")).otherwise(F.lit("False"))
    return c.cast("string")


def _category_counts(frame: Any, column: str) -> dict[str, int]:
    """Counts per category (as text), most frequent first, ties in text order."""
    t = frame.schema[column].dataType
    text = _as_text(column, t).alias("c")
    rows = frame.where(_present(column, t)).select(text).groupBy("c").count().collect()
    return {c: int(n) for c, n in sorted(rows, key=lambda r: (-r[1], r[0]))}


def _kind_of(t: Any) -> str:
    from pyspark.sql import types as T

    if isinstance(t, T.BooleanType):
        return "bool"
    if isinstance(t, T.NumericType):
        return "number"
    return "text"


def _matches(column: str, t: Any, expected: str) -> Any:
    """Whether each value is of the expected kind; text that reads as one counts (a column
    whose JSON values had several types is read back as their text)."""
    from pyspark.sql import functions as F

    kind = _kind_of(t)
    c = F.col(f"`{column}`")
    if kind == expected or expected == "text":
        return F.lit(kind == expected)
    if kind != "text":
        return F.lit(False)
    if expected == "number":
        return c.try_cast("double").isNotNull()
    return F.lower(c).isin("true", "false")
