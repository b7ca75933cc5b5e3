"""The engine interface, and the one-machine engine (pandas + numpy).

An engine turns columns of two tables (reference, production) into the *sufficient
statistics* below; signals.py turns those into metrics with metrics.py, so every engine
gives the same numbers. A second engine (Spark) implements the same methods over its own
frames:

    feature_type(ref, column) -> "numerical" | "categorical" | None (not a feature)
    numerical(ref, prod, column, w1, ks) -> NumericalStats  (w1/ks: compute W1 / KS's D)
    categorical(ref, prod, column)      -> CategoricalStats
    quality(ref, prod, column, kind)    -> QualityStats
    chunks(frame, n)                    -> n consecutive row slices (auto thresholds)
    rows(frame), columns(frame)
    performance(frame, truth, prediction, task) -> ClassificationStats | RegressionStats

signals.evaluate(signal, engine, ref, prod, skip) and signals.performance(...) take any
engine and its frames; run.run_monitor reads pandas frames through modeltap.read for the
LocalEngine, and store.py writes the results any engine computed.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from modeltap.monitor import metrics

__all__ = [
    "CATEGORICAL_MAX_DISTINCT",
    "CategoricalStats",
    "ClassificationStats",
    "Engine",
    "LocalEngine",
    "NumericalStats",
    "QualityStats",
    "RegressionStats",
]

# An integer column with at most this many distinct values in the reference is categorical.
CATEGORICAL_MAX_DISTINCT = 10


@dataclass(frozen=True)
class NumericalStats:
    n_ref: int  # finite values on each side
    n_prod: int
    ref_std: float  # ddof=1; 0.0 for a single value
    edges: list[float]  # shared_edges(joint min, joint max, bin_count(n_ref, n_prod))
    ref_hist: list[int]  # counts per bin
    prod_hist: list[int]
    w1: float  # integral |F_ref - F_prod| (NaN when not asked for)
    ks_d: float  # sup |F_ref - F_prod| (NaN when not asked for)


@dataclass(frozen=True)
class CategoricalStats:
    categories: list[str]  # union: the reference's by count, then production-only ones
    ref_counts: list[int]
    prod_counts: list[int]


@dataclass(frozen=True)
class QualityStats:
    rows: int  # production rows
    nulls: int
    type_errors: int  # non-null values whose type is not the reference's
    out_of_bounds: int  # outside the reference's [min, max], or an unseen category


@dataclass(frozen=True)
class ClassificationStats:
    labels: list[Any]
    confusion: list[list[int]]  # rows: truth, columns: prediction


@dataclass(frozen=True)
class RegressionStats:
    n: int
    abs_error_sum: float
    sq_error_sum: float


class Engine(Protocol):
    def rows(self, frame: Any) -> int: ...
    def columns(self, frame: Any) -> list[str]: ...
    def feature_type(self, ref: Any, column: str) -> str | None: ...
    def numerical(self, ref: Any, prod: Any, column: str, w1: bool, ks: bool) -> NumericalStats: ...
    def categorical(self, ref: Any, prod: Any, column: str) -> CategoricalStats: ...
    def quality(self, ref: Any, prod: Any, column: str, kind: str) -> QualityStats: ...
    def chunks(self, frame: Any, n: int) -> list[Any]: ...
    def performance(
        self, frame: Any, truth: str, prediction: str, task: str
    ) -> ClassificationStats | RegressionStats: ...


class LocalEngine:
    """pandas DataFrames in, numpy sorts and counts; one column at a time."""

    def rows(self, frame: Any) -> int:
        return len(frame)

    def columns(self, frame: Any) -> list[str]:
        return [str(c) for c in frame.columns]

    def feature_type(self, ref: Any, column: str) -> str | None:
        import pandas as pd

        s = ref[column]
        dtype = s.dtype
        if pd.api.types.is_bool_dtype(dtype):
            return "categorical"
        if pd.api.types.is_integer_dtype(dtype):
            distinct = s.nunique(dropna=True)
            return "categorical" if distinct <= CATEGORICAL_MAX_DISTINCT else "numerical"
        if pd.api.types.is_float_dtype(dtype):
            return "numerical"
        if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
            return None
        if _kind_of_values(s) == "number":  # an object column of numbers
            return "numerical"
        return "categorical"

    def numerical(self, ref: Any, prod: Any, column: str, w1: bool, ks: bool) -> NumericalStats:
        r, p = _finite_sorted(ref[column]), _finite_sorted(prod[column])
        n_ref, n_prod = len(r), len(p)
        std = float(np.std(r, ddof=1)) if n_ref > 1 else 0.0
        if n_ref and n_prod:
            edges = metrics.shared_edges(
                min(r[0], p[0]), max(r[-1], p[-1]), metrics.bin_count(n_ref, n_prod)
            )
            ref_hist, prod_hist = metrics.histogram(r, edges), metrics.histogram(p, edges)
        else:
            edges, ref_hist, prod_hist = np.array([]), np.array([], int), np.array([], int)
        return NumericalStats(
            n_ref,
            n_prod,
            std,
            edges.tolist(),
            ref_hist.tolist(),
            prod_hist.tolist(),
            metrics.wasserstein(r, p) if w1 else math.nan,
            metrics.ks_statistic(r, p) if ks else math.nan,
        )

    def categorical(self, ref: Any, prod: Any, column: str) -> CategoricalStats:
        rc = _category_counts(ref[column])
        pc = _category_counts(prod[column])
        categories = rc.index.append(pc.index[~pc.index.isin(rc.index)])
        return CategoricalStats(
            [str(c) for c in categories],
            rc.reindex(categories, fill_value=0).astype("int64").tolist(),
            pc.reindex(categories, fill_value=0).astype("int64").tolist(),
        )

    def quality(self, ref: Any, prod: Any, column: str, kind: str) -> QualityStats:
        import pandas as pd

        s = prod[column]
        nulls = s.isna()
        expected = _kind_of_values(ref[column]) if kind == "categorical" else "number"
        values = s[~nulls]
        valid = values[_matches(values, expected)]
        if kind == "numerical":
            r = pd.to_numeric(ref[column], errors="coerce")
            v = pd.to_numeric(valid, errors="coerce")
            out = int(((v < r.min()) | (v > r.max())).sum()) if r.notna().any() else len(v)
        else:
            seen = set(_category_counts(ref[column]).index)
            out = int((~valid.astype(str).isin(seen)).sum())
        return QualityStats(len(s), int(nulls.sum()), int(len(values) - len(valid)), out)

    def chunks(self, frame: Any, n: int) -> list[Any]:
        bounds = np.linspace(0, len(frame), n + 1).astype(int)
        return [frame.iloc[a:b] for a, b in itertools.pairwise(bounds)]

    def performance(
        self, frame: Any, truth: str, prediction: str, task: str
    ) -> ClassificationStats | RegressionStats:
        import pandas as pd

        both = frame[[truth, prediction]].dropna()
        if task == "regression":
            y = pd.to_numeric(both[truth], errors="coerce").to_numpy(float)
            yhat = pd.to_numeric(both[prediction], errors="coerce").to_numpy(float)
            keep = np.isfinite(y) & np.isfinite(yhat)
            err = y[keep] - yhat[keep]
            return RegressionStats(int(keep.sum()), float(np.abs(err).sum()), float(err @ err))
        t, p = both[truth].tolist(), both[prediction].tolist()
        labels = sorted(set(t) | set(p), key=lambda v: (str(type(v)), v))
        index = {label: k for k, label in enumerate(labels)}
        cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
        np.add.at(cm, ([index[v] for v in t], [index[v] for v in p]), 1)
        return ClassificationStats(labels, cm.tolist())


def _finite_sorted(s: Any) -> NDArray[np.float64]:
    import pandas as pd

    if pd.api.types.is_bool_dtype(s.dtype):
        s = s.astype(float)
    elif not pd.api.types.is_numeric_dtype(s.dtype):
        s = pd.to_numeric(s.where(_matches(s, "number")), errors="coerce")
    values: NDArray[np.float64] = np.sort(s.to_numpy(dtype=float, na_value=np.nan))
    # sorted: -inf first, then the finite values, then +inf and NaN
    lo = np.searchsorted(values, -np.inf, side="right")
    hi = np.searchsorted(values, np.inf, side="left")
    return values[lo:hi]


def _category_counts(s: Any) -> Any:
    """Counts per category (as text), most frequent first, ties in text order."""
    counts = s.dropna().astype(str).value_counts()
    return counts.sort_index().sort_values(ascending=False, kind="stable").astype("int64")


_INFERRED = {
    "string": "text",
    "bytes": "text",
    "boolean": "bool",
    "integer": "number",
    "floating": "number",
    "mixed-integer-float": "number",
    "decimal": "number",
    "empty": "text",
}


def _column_kind(s: Any) -> str | None:
    """The one kind of all non-null values of s, or None when they are mixed."""
    import pandas as pd

    dtype = s.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(dtype):
        return "number"
    if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        return "text"
    return _INFERRED.get(pd.api.types.infer_dtype(s, skipna=True))


def _matches(values: Any, expected: str) -> Any:
    """For each value, whether it is of the expected kind. Text that reads as one counts:
    a collection column whose values had several JSON types is read back as their JSON
    text ('5', 'true', 'oops'), so '5' is a number there and 'true' a boolean."""
    import pandas as pd

    kinds = _kinds(values)
    text = kinds == "text"
    if not text.any() or expected == "text":
        return kinds == expected
    as_text = values[text].astype(str)
    if expected == "number":
        parsed = pd.to_numeric(as_text, errors="coerce").notna()
    else:
        parsed = as_text.str.lower().isin(["true", "false"])
    return (kinds == expected) | parsed.reindex(values.index, fill_value=False)


def _kinds(s: Any) -> Any:
    """'number', 'bool' or 'text' for each value (of the non-null values given)."""
    import pandas as pd

    kind = _column_kind(s)
    if kind is not None:
        return pd.Series(kind, index=s.index)
    return s.map(_kind_of_value)


def _kind_of_value(v: Any) -> str:
    if isinstance(v, bool | np.bool_):
        return "bool"
    if isinstance(v, int | float | np.number):
        return "number"
    return "text"


def _kind_of_values(s: Any) -> str:
    """The kind of a column's values: its dtype's, or its most common value kind."""
    kind = _column_kind(s.dropna())
    if kind is not None:
        return kind
    kinds = _kinds(s.dropna())
    return str(kinds.value_counts().index[0]) if len(kinds) else "text"
