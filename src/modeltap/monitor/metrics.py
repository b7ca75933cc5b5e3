"""Every metric as a pure function over arrays or counts (numpy/scipy; no pandas).

The functions take *sufficient statistics*, not frames, so any engine that can produce
them (one machine here, Spark in engine_spark) computes the same numbers:

- sorted samples (or the counts of a histogram on shared edges) of a numerical feature,
- category counts over the union of categories of a categorical feature,
- counts of nulls / type errors / out-of-bounds values for data quality,
- a confusion matrix, or sums of errors, for model performance.

Names are the source platform's. Alert direction (`LOWER_IS_BREACH`): p-values and
accuracy/precision/recall breach when value < threshold; every other metric breaches
when value > threshold. NaN (not computable) never breaches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "LOWER_IS_BREACH",
    "PSI_FLOOR",
    "STD_FLOOR",
    "bin_count",
    "breached",
    "chi_squared_pvalue",
    "classification",
    "histogram",
    "jensen_shannon_distance",
    "ks_pvalue",
    "ks_statistic",
    "normalized_wasserstein_distance",
    "population_stability_index",
    "rate",
    "regression",
    "shared_edges",
    "wasserstein",
]

PSI_FLOOR = 1e-4  # a bin (or category) share of 0 counts as this in PSI
STD_FLOOR = 1e-3  # the normalized Wasserstein distance divides by at least this
LOWER_IS_BREACH = frozenset(
    {
        "two_sample_kolmogorov_smirnov_test",
        "pearsons_chi_squared_test",
        "accuracy",
        "precision",
        "recall",
    }
)
_KS_EXACT_MAX_N = 10_000  # scipy's ks_2samp(method="auto") is exact up to this many per side

FloatArray = NDArray[np.float64]


def breached(metric: str, value: float, threshold: float) -> bool:
    """value < threshold for p-values and accuracy/precision/recall, else value >
    threshold; a NaN value or threshold never breaches."""
    if math.isnan(value) or math.isnan(threshold):
        return False
    return value < threshold if metric in LOWER_IS_BREACH else value > threshold


# -- histograms on shared bins -------------------------------------------------------------


def bin_count(n_ref: int, n_prod: int) -> int:
    """k = ceil(log2(n_smaller) + 1) bins (Sturges' rule on the smaller sample), >= 1."""
    smaller = min(n_ref, n_prod)
    return max(1, math.ceil(math.log2(smaller) + 1)) if smaller > 0 else 1


def shared_edges(lo: float, hi: float, k: int) -> FloatArray:
    """k equal-width bins on the joint range [lo, hi] of both samples.

    When lo == hi (one value on both sides) the range is widened to [lo - 0.5, hi + 0.5]:
    an absolute widening, so it works for 0 and negative values, where a relative one
    (lo * 0.99) would give an empty or reversed range."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"bin range must be finite, got [{lo}, {hi}]")
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, k + 1)


def histogram(sorted_values: FloatArray, edges: FloatArray) -> NDArray[np.int64]:
    """Counts per bin, as np.histogram(values, edges)[0]: bins are [e_i, e_i+1) except the
    last, which also holds e_k. Values must be sorted (binary search, no pass over them)."""
    idx = np.searchsorted(sorted_values, edges, side="left")
    idx[-1] = np.searchsorted(sorted_values, edges[-1], side="right")
    return np.diff(idx).astype(np.int64)


# -- distances between two distributions of counts ----------------------------------------


def jensen_shannon_distance(ref_counts: ArrayLike, prod_counts: ArrayLike) -> float:
    """JS distance, base 2 (in [0, 1]), between the two count vectors as proportions P, Q
    over the same bins or the union of categories:

        M = (P + Q) / 2;  JS = sqrt( (KL(P || M) + KL(Q || M)) / 2 ),  KL with log2

    = scipy.spatial.distance.jensenshannon(P, Q, base=2). NaN when a side is empty.
    (Evidently uses the natural log: its value is this one times sqrt(ln 2) ~ 0.833.)"""
    from scipy.spatial.distance import jensenshannon

    p, q = _proportions(ref_counts), _proportions(prod_counts)
    if p is None or q is None:
        return math.nan
    return float(jensenshannon(p, q, base=2))


def population_stability_index(ref_counts: ArrayLike, prod_counts: ArrayLike) -> float:
    """PSI = sum_i (q_i - p_i) * ln(q_i / p_i), p the reference's and q the production's
    proportion of bin (or category) i.

    Zero-bin rule: a proportion of exactly 0 is replaced by PSI_FLOOR = 0.0001 on either
    side before the sum (the other proportions are left as they are), so an empty bin
    adds a large but finite term. NaN when a side is empty."""
    p, q = _proportions(ref_counts), _proportions(prod_counts)
    if p is None or q is None:
        return math.nan
    p = np.where(p == 0, PSI_FLOOR, p)
    q = np.where(q == 0, PSI_FLOOR, q)
    return float(np.sum((q - p) * np.log(q / p)))


def chi_squared_pvalue(ref_counts: ArrayLike, prod_counts: ArrayLike) -> float:
    """Pearson's chi-squared test of homogeneity on the 2 x k table of reference and
    production counts (scipy.stats.chi2_contingency, without Yates' correction): are both
    samples drawn from one distribution? Categories with no count on either side are
    dropped; with fewer than 2 categories left there is nothing to test (p = 1).

    Not the goodness-of-fit form that takes the reference's proportions as exact
    (scipy.stats.chisquare): the reference is a sample too, and that form raised a false
    alarm in ~48% of no-drift trials (see docs/monitoring.md)."""
    from scipy.stats import chi2_contingency

    table = np.vstack([np.asarray(ref_counts, float), np.asarray(prod_counts, float)])
    if table[0].sum() == 0 or table[1].sum() == 0:
        return math.nan
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0
    return float(chi2_contingency(table, correction=False).pvalue)


def _proportions(counts: ArrayLike) -> FloatArray | None:
    c = np.asarray(counts, dtype=float)
    total = c.sum()
    return c / total if total > 0 else None


# -- distances from sorted samples ----------------------------------------------------------


def wasserstein(ref_sorted: FloatArray, prod_sorted: FloatArray) -> float:
    """W1 = integral |F_ref(x) - F_prod(x)| dx over the two empirical CDFs: the value of
    scipy.stats.wasserstein_distance(ref, prod), computed from sorted samples in O(n)
    (scipy sorts again with argsort and mergesort: ~20x slower at 1M rows)."""
    n1, n2 = len(ref_sorted), len(prod_sorted)
    if n1 == 0 or n2 == 0:
        return math.nan
    if n1 == n2:  # both quantile functions step on the same grid of 1/n
        return float(np.mean(np.abs(ref_sorted - prod_sorted)))
    values, f_ref, f_prod = _merged_cdfs(ref_sorted, prod_sorted)
    return float(np.abs(f_ref[:-1] - f_prod[:-1]) @ np.diff(values))


def normalized_wasserstein_distance(ref_sorted: FloatArray, prod_sorted: FloatArray) -> float:
    """W1(ref, prod) / max(std(ref, ddof=1), STD_FLOOR = 0.001): the distance in units of
    the reference's standard deviation (a single reference value has std 0).

    Evidently divides by std with ddof=0: at n rows the two differ by sqrt(n/(n-1))."""
    n = len(ref_sorted)
    if n == 0 or len(prod_sorted) == 0:
        return math.nan
    std = float(np.std(ref_sorted, ddof=1)) if n > 1 else 0.0
    return wasserstein(ref_sorted, prod_sorted) / max(std, STD_FLOOR)


def ks_statistic(ref_sorted: FloatArray, prod_sorted: FloatArray) -> float:
    """D = sup_x |F_ref(x) - F_prod(x)|, as scipy.stats.ks_2samp computes it."""
    if len(ref_sorted) == 0 or len(prod_sorted) == 0:
        return math.nan
    values, f_ref, f_prod = _merged_cdfs(ref_sorted, prod_sorted)
    last = np.append(values[1:] != values[:-1], True)  # the CDFs' values after each tie
    diff = f_ref[last] - f_prod[last]
    return float(max(diff.max(), np.clip(-diff.min(), 0, 1)))


def ks_pvalue(d: float, n_ref: int, n_prod: int) -> float:
    """The two-sided p-value of the two-sample Kolmogorov-Smirnov test with statistic d:
    scipy.stats.ks_2samp's own (method="auto": exact when both samples have at most 10,000
    values, else kstwo.sf(d, round(n*m/(n+m)))).

    It depends on d, n and m only, so an engine that computes D and the counts gets
    the same p-value as ks_2samp on the samples. For the exact case, two samples of the
    same sizes whose D is d are given to ks_2samp."""
    from scipy import stats

    if math.isnan(d) or n_ref == 0 or n_prod == 0:
        return math.nan
    if max(n_ref, n_prod) > _KS_EXACT_MAX_N:
        m, n = sorted([float(n_ref), float(n_prod)], reverse=True)
        return float(np.clip(stats.kstwo.sf(d, np.round(m * n / (m + n))), 0, 1))
    g = math.gcd(n_ref, n_prod)
    a, b = n_prod // g, n_ref // g  # D = (i*a - j*b) / lcm for some counts i <= n, j <= m
    lcm = n_ref * a
    target = round(d * lcm)
    # the largest i whose j = (i*a - target) / b is a whole number in [0, n_prod]
    for i in range(n_ref, -1, -1):
        rest = i * a - target
        if rest >= 0 and rest % b == 0 and rest // b <= n_prod:
            j = rest // b
            break
    else:  # pragma: no cover - d always comes from counts of these sizes
        raise ValueError(f"no samples of sizes {n_ref}, {n_prod} have D = {d}")
    x = np.repeat([0.0, 1.0], [i, n_ref - i])
    y = np.repeat([0.0, 1.0], [j, n_prod - j])
    return float(stats.ks_2samp(x, y).pvalue)


def _merged_cdfs(a: FloatArray, b: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(values of a and b merged in order, F_a and F_b just after each of them).

    b's values go after equal values of a (searchsorted "right"); inside a run of ties
    the CDFs are partial, which is harmless where they are multiplied by a zero width."""
    n1, n2 = len(a), len(b)
    pos = np.searchsorted(a, b, side="right") + np.arange(n2)
    from_b = np.zeros(n1 + n2, dtype=bool)
    from_b[pos] = True
    values = np.empty(n1 + n2)
    values[pos] = b
    values[~from_b] = a
    count_b = np.cumsum(from_b)
    count_a = np.arange(1, n1 + n2 + 1) - count_b
    return values, count_a / n1, count_b / n2


# -- data quality and performance -------------------------------------------------------------


def rate(count: int, total: int) -> float:
    """count / total: null_value_rate, data_type_error_rate, out_of_bounds_rate. NaN
    when there are no rows."""
    return count / total if total > 0 else math.nan


def classification(confusion: NDArray[np.int64], labels: Sequence[object]) -> dict[str, float]:
    """accuracy, precision and recall from a confusion matrix (rows: truth, columns:
    prediction, in the order of `labels`).

    accuracy = trace / total. Two classes: precision = TP / (TP + FP) and recall =
    TP / (TP + FN) of the positive class: True or 1 when it is a label, else the second
    label in sorted order. More than two: macro averages (each class's precision and
    recall, averaged with equal weight). A class never predicted has precision 0 (as
    scikit-learn's zero_division default)."""
    cm = np.asarray(confusion, dtype=float)
    total = cm.sum()
    if total == 0:
        return {"accuracy": math.nan, "precision": math.nan, "recall": math.nan}
    tp = np.diag(cm)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    prec = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    rec = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    if len(labels) == 2:
        k = positive_index(labels)
        precision, recall = float(prec[k]), float(rec[k])
    else:
        present = (predicted + actual) > 0
        precision, recall = float(prec[present].mean()), float(rec[present].mean())
    return {"accuracy": float(tp.sum() / total), "precision": precision, "recall": recall}


def positive_index(labels: Sequence[object]) -> int:
    """Index of the positive class of two labels: True or 1 if present, else the second."""
    for k, label in enumerate(labels):
        if label is True or (isinstance(label, int | float | np.number) and label == 1):
            return k
    return 1


def regression(n: int, abs_error_sum: float, sq_error_sum: float) -> dict[str, float]:
    """mae = sum|y - y^| / n, mse = sum (y - y^)^2 / n, rmse = sqrt(mse)."""
    if n == 0:
        return {"mae": math.nan, "mse": math.nan, "rmse": math.nan}
    mse = sq_error_sum / n
    return {"mae": abs_error_sum / n, "mse": mse, "rmse": math.sqrt(mse)}
