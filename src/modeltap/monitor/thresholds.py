"""Which metrics each signal type allows, their defaults, and `metric_thresholds` parsed.

The names are the source platform's (`chi_squared_test` is accepted for
`pearsons_chi_squared_test`, `tabular_classification` for `classification`)."""

from __future__ import annotations

import math
from typing import Any

from modeltap.config import _mapping
from modeltap.errors import ConfigError

__all__ = ["AUTO", "DEFAULTS", "METRICS", "SIGNAL_TYPES", "parse_thresholds"]

AUTO = "auto"
SIGNAL_TYPES = ("data_drift", "prediction_drift", "data_quality", "model_performance")
_DRIFT = {
    "numerical": (
        "jensen_shannon_distance",
        "normalized_wasserstein_distance",
        "population_stability_index",
        "two_sample_kolmogorov_smirnov_test",
    ),
    "categorical": (
        "jensen_shannon_distance",
        "population_stability_index",
        "pearsons_chi_squared_test",
    ),
}
_QUALITY = ("null_value_rate", "data_type_error_rate", "out_of_bounds_rate")
# The metrics each signal type allows, per group (feature type, or ml task).
METRICS: dict[str, dict[str, tuple[str, ...]]] = {
    "data_drift": _DRIFT,
    "prediction_drift": _DRIFT,
    "data_quality": {"numerical": _QUALITY, "categorical": _QUALITY},
    "model_performance": {
        "classification": ("accuracy", "precision", "recall"),
        "regression": ("mae", "mse", "rmse"),
    },
}
# Thresholds used when a signal sets none for a group.
_DRIFT_DEFAULTS = {
    "numerical": {"normalized_wasserstein_distance": 0.1},
    "categorical": {"jensen_shannon_distance": 0.1},
}
DEFAULTS: dict[str, dict[str, dict[str, float]]] = {
    "data_drift": _DRIFT_DEFAULTS,
    "prediction_drift": _DRIFT_DEFAULTS,
    "data_quality": {g: {m: 0.0 for m in _QUALITY} for g in ("numerical", "categorical")},
    "model_performance": {"classification": {"accuracy": 0.9}, "regression": {"mae": 1.0}},
}
_ALIASES = {
    "chi_squared_test": "pearsons_chi_squared_test",
    "tabular_classification": "classification",
    "tabular_regression": "regression",
}


def parse_thresholds(
    kind: str, value: Any, where: str, ml_task: str
) -> dict[str, dict[str, float | str]]:
    allowed = METRICS[kind]
    raw = _mapping(value, where, None)
    out: dict[str, dict[str, float | str]] = {}
    for group, metrics in raw.items():
        group = _ALIASES.get(str(group), str(group))
        if group not in allowed:
            raise ConfigError(
                f"unknown group; allowed: {', '.join(allowed)}", field=f"{where}.{group}"
            )
        chosen: dict[str, float | str] = {}
        for metric, threshold in _mapping(metrics, f"{where}.{group}", None).items():
            name = _ALIASES.get(str(metric), str(metric))
            at = f"{where}.{group}.{metric}"
            if name not in allowed[group]:
                raise ConfigError(
                    f"unknown metric for {group} features of a {kind} signal; allowed: "
                    f"{', '.join(allowed[group])}",
                    field=at,
                )
            chosen[name] = _threshold(threshold, at, kind)
        out[group] = chosen
    for group, defaults in DEFAULTS[kind].items():
        if not out.get(group):
            out[group] = dict(defaults)
    if kind == "model_performance":
        task = ml_task or next((g for g in raw if _ALIASES.get(g, g) in allowed), "classification")
        out = {_ALIASES.get(task, task): out[_ALIASES.get(task, task)]}
    return out


def _threshold(value: Any, where: str, kind: str) -> float | str:
    if isinstance(value, str) and value.strip().lower() == AUTO:
        if kind == "model_performance":
            raise ConfigError(
                "auto is not available for model_performance (the reference "
                "holds labels, not predictions); give a number",
                field=where,
            )
        return AUTO
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(f"{value!r} is not a threshold; allowed: a number or auto", field=where)
    return float(value)
