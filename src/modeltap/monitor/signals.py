"""Signals: which features, which metrics, which thresholds, and whether they breach.

Engine-neutral: the statistics come from an `Engine` (engine.py), the numbers from
metrics.py. `auto` thresholds are learnt from the reference as NannyML does: the reference
is cut into AUTO_CHUNKS consecutive chunks, each chunk's metric is computed against the
whole reference, and the threshold is mean + 3 std of those values (mean - 3 std for
metrics that breach downwards: p-values).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modeltap.errors import ConfigError
from modeltap.monitor import metrics
from modeltap.monitor.engine import (
    CategoricalStats,
    ClassificationStats,
    Engine,
    NumericalStats,
    QualityStats,
)
from modeltap.monitor.spec import AUTO, SignalSpec

__all__ = ["AUTO_CHUNKS", "Outcome", "evaluate", "feature_types", "performance"]

AUTO_CHUNKS = 10  # NannyML's default chunker cuts the reference in 10
AUTO_STDS = 3.0
CHART_CATEGORIES = 30  # categories kept in the details JSON; the rest are "(other)"
_THREADS = 4


@dataclass(frozen=True)
class Outcome:
    """One metric of one feature (feature "" for whole-model metrics)."""

    feature: str
    feature_type: str
    metric: str
    value: float
    threshold: float
    breached: bool


@dataclass
class SignalResult:
    outcomes: list[Outcome] = field(default_factory=list)
    distributions: list[dict[str, Any]] = field(default_factory=list)  # details JSON features


def feature_types(
    signal: SignalSpec, engine: Engine, ref: Any, prod: Any, skip: set[str]
) -> dict[str, str]:
    """feature -> numerical | categorical, in the reference's column order. The type comes
    from the reference (feature_type_override first); all_features means every column
    both sides have, except `skip` (envelope fields and the target)."""
    ref_cols, prod_cols = engine.columns(ref), engine.columns(prod)
    where = f"{signal.where}.features"
    if signal.features is None:
        names = [c for c in ref_cols if c in prod_cols and c not in skip]
    else:
        names = list(signal.features)
        for name in names:
            for side, cols in (("reference", ref_cols), ("production", prod_cols)):
                if name not in cols:
                    raise ConfigError(
                        f"{name!r} is not a column of the {side} data; its columns: "
                        f"{', '.join(c for c in cols if c not in skip)}",
                        field=where,
                    )
    types: dict[str, str] = {}
    for name in names:
        kind = signal.type_override.get(name) or engine.feature_type(ref, name)
        if kind is not None:
            types[name] = kind
    if not types:
        raise ConfigError(
            "no feature to monitor: the reference and production data share no column", field=where
        )
    return types


def evaluate(
    signal: SignalSpec, engine: Engine, ref: Any, prod: Any, skip: set[str]
) -> SignalResult:
    """Every metric of a data_drift, prediction_drift or data_quality signal."""
    types = feature_types(signal, engine, ref, prod, skip)
    result = SignalResult()

    def one(item: tuple[str, str]) -> tuple[list[Outcome], dict[str, Any] | None]:
        name, kind = item
        chosen = signal.thresholds.get(kind, {})
        compute = _feature_metrics(signal.type, engine, name, kind, set(chosen))
        values, dist = compute(ref, prod)
        out = []
        for metric, threshold in chosen.items():
            where = f"{signal.where}.metric_thresholds.{kind}.{metric}"
            t = (
                _auto(engine, ref, metric, compute, where)
                if threshold == AUTO
                else float(threshold)
            )
            value = values[metric]
            out.append(Outcome(name, kind, metric, value, t, metrics.breached(metric, value, t)))
        return out, dist

    with ThreadPoolExecutor(min(_THREADS, len(types))) as pool:  # numpy sorts drop the GIL
        for outcomes, dist in pool.map(one, types.items()):
            result.outcomes.extend(outcomes)
            if dist is not None:
                result.distributions.append({"signal": signal.key, **dist})
    return result


Compute = Callable[[Any, Any], tuple[dict[str, float], dict[str, Any] | None]]


def _feature_metrics(kind: str, engine: Engine, name: str, ftype: str, wanted: set[str]) -> Compute:
    def drift(ref: Any, prod: Any) -> tuple[dict[str, float], dict[str, Any] | None]:
        if ftype == "numerical":
            stats = engine.numerical(
                ref,
                prod,
                name,
                w1="normalized_wasserstein_distance" in wanted,
                ks="two_sample_kolmogorov_smirnov_test" in wanted,
            )
            return numerical_metrics(stats), _numerical_dist(name, stats)
        cats = engine.categorical(ref, prod, name)
        return categorical_metrics(cats), _categorical_dist(name, cats)

    def quality(ref: Any, prod: Any) -> tuple[dict[str, float], dict[str, Any] | None]:
        return quality_metrics(engine.quality(ref, prod, name, ftype)), None

    return quality if kind == "data_quality" else drift


def numerical_metrics(s: NumericalStats) -> dict[str, float]:
    return {
        "jensen_shannon_distance": metrics.jensen_shannon_distance(s.ref_hist, s.prod_hist),
        "population_stability_index": metrics.population_stability_index(s.ref_hist, s.prod_hist),
        "normalized_wasserstein_distance": s.w1 / max(s.ref_std, metrics.STD_FLOOR),
        "two_sample_kolmogorov_smirnov_test": metrics.ks_pvalue(s.ks_d, s.n_ref, s.n_prod),
    }


def categorical_metrics(s: CategoricalStats) -> dict[str, float]:
    return {
        "jensen_shannon_distance": metrics.jensen_shannon_distance(s.ref_counts, s.prod_counts),
        "population_stability_index": metrics.population_stability_index(
            s.ref_counts, s.prod_counts
        ),
        "pearsons_chi_squared_test": metrics.chi_squared_pvalue(s.ref_counts, s.prod_counts),
    }


def quality_metrics(s: QualityStats) -> dict[str, float]:
    return {
        "null_value_rate": metrics.rate(s.nulls, s.rows),
        "data_type_error_rate": metrics.rate(s.type_errors, s.rows),
        "out_of_bounds_rate": metrics.rate(s.out_of_bounds, s.rows),
    }


def performance(
    signal: SignalSpec, engine: Engine, joined: Any, truth: str, prediction: str, task: str
) -> SignalResult:
    stats = engine.performance(joined, truth, prediction, task)
    if isinstance(stats, ClassificationStats):
        values = metrics.classification(np.asarray(stats.confusion), stats.labels)
    else:
        values = metrics.regression(stats.n, stats.abs_error_sum, stats.sq_error_sum)
    result = SignalResult()
    for metric, threshold in signal.thresholds.get(task, {}).items():
        t = float(threshold)
        value = values[metric]
        result.outcomes.append(
            Outcome("", "", metric, value, t, metrics.breached(metric, value, t))
        )
    return result


def _auto(engine: Engine, ref: Any, metric: str, compute: Compute, where: str) -> float:
    """mean +/- 3 std (ddof=0) of the metric of each reference chunk vs the reference."""
    if engine.rows(ref) < AUTO_CHUNKS * 10:
        raise ConfigError(
            f"auto needs at least {AUTO_CHUNKS * 10} reference rows ({engine.rows(ref)} given)",
            field=where,
        )
    values = np.array([compute(ref, chunk)[0][metric] for chunk in engine.chunks(ref, AUTO_CHUNKS)])
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return math.nan
    spread = AUTO_STDS * float(np.std(values))
    mean = float(np.mean(values))
    return mean - spread if metric in metrics.LOWER_IS_BREACH else mean + spread


def _numerical_dist(name: str, s: NumericalStats) -> dict[str, Any]:
    return {
        "feature": name,
        "feature_type": "numerical",
        "reference": {"edges": s.edges, "counts": s.ref_hist},
        "production": {"edges": s.edges, "counts": s.prod_hist},
    }


def _categorical_dist(name: str, s: CategoricalStats) -> dict[str, Any]:
    """The categories for charts: the first CHART_CATEGORIES (the reference's most frequent,
    then new ones), the rest summed as "(other)". Metrics use them all."""
    cats, ref, prod = s.categories, s.ref_counts, s.prod_counts
    if len(cats) > CHART_CATEGORIES:
        k = CHART_CATEGORIES - 1
        cats = [*cats[:k], "(other)"]
        ref, prod = [*ref[:k], sum(ref[k:])], [*prod[:k], sum(prod[k:])]
    return {
        "feature": name,
        "feature_type": "categorical",
        "reference": {"categories": cats, "counts": ref},
        "production": {"categories": cats, "counts": prod},
    }
