"""Every metric equals a direct scipy/numpy computation; properties; false-alarm rates."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from modeltap.monitor import metrics
from modeltap.monitor.engine import LocalEngine
from modeltap.monitor.signals import categorical_metrics, numerical_metrics

TOL = 1e-9
rng = np.random.default_rng(7)
REF = rng.normal(10, 2, 3000)
PROD = rng.normal(10.5, 2.5, 2500)
REF_C = rng.choice(list("abcde"), 3000, p=[0.3, 0.3, 0.2, 0.1, 0.1])
PROD_C = rng.choice(list("abcdf"), 2500, p=[0.2, 0.3, 0.2, 0.2, 0.1])


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=TOL, abs_tol=TOL)


def direct_numerical(r, p):
    """The formulas as written in docs/monitoring.md, straight from numpy/scipy."""
    k = math.ceil(math.log2(min(len(r), len(p))) + 1)
    lo, hi = min(r.min(), p.min()), max(r.max(), p.max())
    edges = np.linspace(lo, hi, k + 1)
    hp = np.histogram(r, edges)[0] / len(r)
    hq = np.histogram(p, edges)[0] / len(p)
    fp, fq = np.where(hp == 0, 1e-4, hp), np.where(hq == 0, 1e-4, hq)
    return {
        "jensen_shannon_distance": float(jensenshannon(hp, hq, base=2)),
        "population_stability_index": float(np.sum((fq - fp) * np.log(fq / fp))),
        "normalized_wasserstein_distance": stats.wasserstein_distance(r, p)
        / max(np.std(r, ddof=1), 0.001),
        "two_sample_kolmogorov_smirnov_test": stats.ks_2samp(r, p).pvalue,
    }


def engine_numerical(r, p):
    s = LocalEngine().numerical(
        pd.DataFrame({"x": r}), pd.DataFrame({"x": p}), "x", w1=True, ks=True
    )
    return numerical_metrics(s)


@pytest.mark.parametrize(
    ("r", "p"),
    [
        (REF, PROD),  # exact KS regime (<= 10,000 per side), unequal sizes
        (REF, PROD[:3000] if len(PROD) >= 3000 else rng.normal(10.5, 2.5, 3000)),  # equal sizes
        (rng.normal(0, 1, 20_000), rng.normal(0.02, 1, 15_000)),  # asymptotic KS regime
        (rng.integers(0, 50, 4000).astype(float), rng.integers(0, 55, 3000).astype(float)),  # ties
        (np.full(50, -3.0), np.full(40, -3.0)),  # min == max, negative
        (rng.exponential(1, 500) - 5, rng.exponential(1.2, 700) - 5),  # min <= 0
    ],
    ids=["unequal", "equal", "large", "ties", "constant", "negative"],
)
def test_numerical_metrics_equal_direct_computation(r, p):
    got, want = engine_numerical(r, p), direct_numerical(r, p)
    if r.min() == r.max() == p.min() == p.max():  # the documented widening: one bin
        want["jensen_shannon_distance"] = want["population_stability_index"] = 0.0
    for name, value in want.items():
        assert close(got[name], float(value)), (name, got[name], value)


def test_categorical_metrics_equal_direct_computation():
    s = LocalEngine().categorical(pd.DataFrame({"c": REF_C}), pd.DataFrame({"c": PROD_C}), "c")
    got = categorical_metrics(s)
    cats = sorted(set(REF_C) | set(PROD_C))
    rc = np.array([np.sum(c == REF_C) for c in cats], float)
    pc = np.array([np.sum(c == PROD_C) for c in cats], float)
    p, q = rc / rc.sum(), pc / pc.sum()
    fp, fq = np.where(p == 0, 1e-4, p), np.where(q == 0, 1e-4, q)
    assert close(got["jensen_shannon_distance"], float(jensenshannon(p, q, base=2)))
    assert close(got["population_stability_index"], float(np.sum((fq - fp) * np.log(fq / fp))))
    chi = stats.chi2_contingency(np.vstack([rc, pc]), correction=False).pvalue
    assert close(got["pearsons_chi_squared_test"], float(chi))
    assert set(s.categories[:5]) == set("abcde") and s.categories[-1] == "f"  # new ones last


def test_wasserstein_and_ks_statistic_equal_scipy_bit_for_bit_on_random_sizes():
    for n, m in [(1, 1), (1, 7), (13, 5), (1000, 999), (4096, 4096)]:
        r, p = np.sort(rng.normal(size=n)), np.sort(rng.standard_t(3, size=m))
        assert close(metrics.wasserstein(r, p), stats.wasserstein_distance(r, p))
        assert close(metrics.ks_statistic(r, p), stats.ks_2samp(r, p).statistic)
        d = metrics.ks_statistic(r, p)
        assert close(metrics.ks_pvalue(d, n, m), stats.ks_2samp(r, p).pvalue)


def test_histogram_matches_numpy_including_the_closed_last_bin():
    x = np.sort(np.concatenate([rng.normal(size=999), [5.0, 5.0]]))
    edges = metrics.shared_edges(x.min(), 5.0, 11)
    assert metrics.histogram(x, edges).tolist() == np.histogram(x, edges)[0].tolist()
    assert metrics.bin_count(1000, 3) == math.ceil(math.log2(3) + 1) == 3
    assert metrics.bin_count(1, 1) == 1


def test_performance_metrics_equal_direct_computation():
    from sklearn.metrics import accuracy_score, precision_score, recall_score

    t = rng.integers(0, 3, 500)
    p = np.where(rng.random(500) < 0.7, t, rng.integers(0, 3, 500))
    frame = pd.DataFrame({"y": t, "yhat": p})
    s = LocalEngine().performance(frame, "y", "yhat", "classification")
    got = metrics.classification(np.asarray(s.confusion), s.labels)
    assert close(got["accuracy"], accuracy_score(t, p))
    assert close(got["precision"], precision_score(t, p, average="macro"))
    assert close(got["recall"], recall_score(t, p, average="macro"))
    b_t, b_p = (t > 0).astype(int), (p > 0).astype(int)
    s = LocalEngine().performance(pd.DataFrame({"y": b_t, "yhat": b_p}), "y", "yhat", "x")
    got = metrics.classification(np.asarray(s.confusion), s.labels)
    assert close(got["precision"], precision_score(b_t, b_p))
    assert close(got["recall"], recall_score(b_t, b_p))
    y, yhat = rng.normal(size=300), rng.normal(size=300)
    s = LocalEngine().performance(pd.DataFrame({"y": y, "yhat": yhat}), "y", "yhat", "regression")
    got = metrics.regression(s.n, s.abs_error_sum, s.sq_error_sum)
    assert close(got["mae"], float(np.mean(np.abs(y - yhat))))
    assert close(got["mse"], float(np.mean((y - yhat) ** 2)))
    assert close(got["rmse"], float(np.sqrt(np.mean((y - yhat) ** 2))))


def test_alert_directions():
    assert metrics.breached("two_sample_kolmogorov_smirnov_test", 0.01, 0.05)
    assert not metrics.breached("pearsons_chi_squared_test", 0.5, 0.05)
    assert metrics.breached("accuracy", 0.7, 0.9) and not metrics.breached("recall", 0.95, 0.9)
    assert metrics.breached("jensen_shannon_distance", 0.2, 0.1)
    assert not metrics.breached("null_value_rate", 0.0, 0.0)
    assert not metrics.breached("mae", math.nan, 0.1)


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(finite, min_size=2, max_size=200))
def test_identical_data_never_breaches(values):
    x = np.array(values)
    got = engine_numerical(x, x.copy())
    assert got["jensen_shannon_distance"] == pytest.approx(0, abs=1e-12)
    assert got["population_stability_index"] == pytest.approx(0, abs=1e-12)
    assert got["normalized_wasserstein_distance"] == 0
    assert got["two_sample_kolmogorov_smirnov_test"] == pytest.approx(1.0)
    for name, default in [
        ("jensen_shannon_distance", 0.1),
        ("normalized_wasserstein_distance", 0.1),
        ("two_sample_kolmogorov_smirnov_test", 0.05),
    ]:
        assert not metrics.breached(name, got[name], default)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.5, 5.0))
def test_shifted_data_breaches(seed, shift):
    g = np.random.default_rng(seed)
    r, p = g.normal(0, 1, 2000), g.normal(shift, 1, 2000)
    got = engine_numerical(r, p)
    assert metrics.breached(
        "normalized_wasserstein_distance", got["normalized_wasserstein_distance"], 0.1
    )
    assert metrics.breached("jensen_shannon_distance", got["jensen_shannon_distance"], 0.1)
    assert metrics.breached(
        "two_sample_kolmogorov_smirnov_test", got["two_sample_kolmogorov_smirnov_test"], 0.05
    )
    cats = np.array(list("abcd"))
    rc = g.choice(cats, 2000, p=[0.4, 0.3, 0.2, 0.1])
    pc = g.choice(cats, 2000, p=[0.1, 0.2, 0.3, 0.4])
    s = LocalEngine().categorical(pd.DataFrame({"c": rc}), pd.DataFrame({"c": pc}), "c")
    assert metrics.breached(
        "pearsons_chi_squared_test", categorical_metrics(s)["pearsons_chi_squared_test"], 0.05
    )


def consistent_with_5_percent(alarms: int, trials: int) -> bool:
    """A calibrated test alarms in 5% of no-drift trials *in expectation*; the count seen
    in a finite run scatters around it (300 trials: 15 +/- 3.8). The count is consistent
    with a rate of at most 5% when seeing that many or more has probability > 1% at 5%."""
    return stats.binom.sf(alarms - 1, trials, 0.05) > 0.01


def test_false_alarm_rate_at_no_drift_is_at_most_5_percent():
    """300 no-drift trials each (fixed seed): the chi-squared homogeneity test and KS alarm
    (p < 0.05) at a rate consistent with at most 5%. The goodness-of-fit chi-squared that
    takes the reference's shares as exact is run on the same draws for contrast."""
    g = np.random.default_rng(20261125)
    trials, n = 300, 5000
    probs = np.linspace(1, 2, 10) / np.linspace(1, 2, 10).sum()
    chi_alarms = ks_alarms = gof_alarms = 0
    for _ in range(trials):
        rc = np.bincount(g.choice(10, n, p=probs), minlength=10)
        pc = np.bincount(g.choice(10, n, p=probs), minlength=10)
        chi_alarms += metrics.chi_squared_pvalue(rc, pc) < 0.05
        gof_alarms += stats.chisquare(pc, rc / rc.sum() * pc.sum()).pvalue < 0.05
        r, p = np.sort(g.normal(size=2000)), np.sort(g.normal(size=1500))
        ks_alarms += metrics.ks_pvalue(metrics.ks_statistic(r, p), 2000, 1500) < 0.05
    print(f"alarms in {trials} trials: chi2 {chi_alarms}, KS {ks_alarms}, GOF {gof_alarms}")
    assert consistent_with_5_percent(chi_alarms, trials), chi_alarms
    assert consistent_with_5_percent(ks_alarms, trials), ks_alarms
    assert not consistent_with_5_percent(gof_alarms, trials), gof_alarms  # miscalibrated


def test_auto_threshold_of_a_p_value_is_mean_minus_3_std():
    from modeltap.monitor.signals import AUTO_CHUNKS, evaluate
    from modeltap.monitor.spec import SignalSpec

    g = np.random.default_rng(5)
    ref = pd.DataFrame({"x": g.normal(size=2000)})
    prod = pd.DataFrame({"x": g.normal(size=500)})
    signal = SignalSpec(
        "s",
        "data_drift",
        (),
        None,
        None,
        {},
        {"numerical": {"two_sample_kolmogorov_smirnov_test": "auto"}},
        True,
        "signals.s",
    )
    [out] = evaluate(signal, LocalEngine(), ref, prod, set()).outcomes
    x = ref["x"].to_numpy()
    ps = [stats.ks_2samp(x, c).pvalue for c in np.array_split(x, AUTO_CHUNKS)]
    assert close(out.threshold, float(np.mean(ps) - 3 * np.std(ps)))
    assert close(out.value, float(stats.ks_2samp(x, prod["x"]).pvalue))
    assert out.breached is (out.value < out.threshold)


def test_many_categories_keep_every_count_in_metrics_and_30_bars_in_charts():
    from modeltap.monitor.signals import _categorical_dist

    g = np.random.default_rng(3)
    ref = pd.DataFrame({"id": g.integers(0, 500, 5000).astype(str)})
    prod = pd.DataFrame({"id": g.integers(0, 600, 4000).astype(str)})
    s = LocalEngine().categorical(ref, prod, "id")
    assert len(s.categories) == 600 and sum(s.ref_counts) == 5000 and sum(s.prod_counts) == 4000
    dist = _categorical_dist("id", s)
    assert len(dist["reference"]["categories"]) == 30
    assert dist["reference"]["categories"][-1] == "(other)"
    assert sum(dist["reference"]["counts"]) == 5000 and sum(dist["production"]["counts"]) == 4000
