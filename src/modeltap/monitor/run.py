"""One run of a monitor: read each signal's data, compute it, keep the results, write the
report, then alert. Results are saved before any notifier runs, so a failing notifier
(or report) never loses them."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from modeltap.config import default_workspace
from modeltap.errors import ConfigError
from modeltap.monitor import store
from modeltap.monitor.data import ENVELOPE, Window, load_data
from modeltap.monitor.engine import Engine, LocalEngine
from modeltap.monitor.signals import SignalResult, evaluate, performance
from modeltap.monitor.spec import DataSpec, MonitorSpec, SignalSpec, load_monitor

__all__ = ["RunOutcome", "run_monitor"]

log = logging.getLogger(__name__)


@dataclass
class RunOutcome:
    monitor: str
    run_id: str
    run_time: datetime
    rows: list[store.ResultRow]
    results_path: Path
    details_path: Path
    report_path: Path | None = None
    notes: list[str] = field(default_factory=list)
    alerts: list[Any] = field(default_factory=list)  # alerts.Delivery, one per notifier
    problems: list[str] = field(default_factory=list)  # report or notifier failures

    @property
    def breached(self) -> bool:
        return any(r.breached for r in self.rows)

    @property
    def exit_code(self) -> int:
        """0 no breach, 1 a breach (2, bad input, is an exception before any result)."""
        return 1 if self.breached else 0

    def result_dicts(self) -> list[dict[str, Any]]:
        return [_jsonable(r.as_dict(self.run_id, self.run_time, self.monitor)) for r in self.rows]


def run_monitor(
    file: str | os.PathLike[str] | MonitorSpec,
    workspace: str | os.PathLike[str] | None = None,
    at: datetime | str | None = None,
    *,
    engine: Engine | None = None,
    notify: bool = True,
    report: bool = True,
) -> RunOutcome:
    """Compute every signal of the monitor once, as of `at` (default: now, UTC), append
    the results to the workspace's table, write the HTML report and send alerts."""
    spec = file if isinstance(file, MonitorSpec) else load_monitor(file)
    ws = Path(workspace).resolve() if workspace is not None else default_workspace()
    run_time = _at(at)
    engine = engine or LocalEngine()
    rows: list[store.ResultRow] = []
    features: list[dict[str, Any]] = []
    signals: dict[str, Any] = {}
    for signal in spec.signals.values():
        result, window, n_prod, n_ref = _run_signal(signal, spec, engine, ws, run_time)
        for o in result.outcomes:
            rows.append(
                store.ResultRow(
                    signal.key,
                    signal.type,
                    o.feature,
                    o.feature_type,
                    o.metric,
                    o.value,
                    o.threshold,
                    o.breached,
                    window.start,
                    window.end,
                    n_prod,
                    n_ref,
                )
            )
        features.extend(result.distributions)
        signals[signal.key] = {
            "type": signal.type,
            "breached": any(o.breached for o in result.outcomes),
            "alert_enabled": signal.alert_enabled,
            "window_start": _iso(window.start),
            "window_end": _iso(window.end),
            "production_rows": n_prod,
            "reference_rows": n_ref,
        }
    with store.reserve_run_id(ws, spec.name, run_time) as run_id:
        details = {
            "monitor": spec.name,
            "run_id": run_id,
            "run_time": _iso(run_time),
            "features": features,
            "signals": signals,
            "notes": list(spec.notes),
        }
        details_path = store.write_details(ws, spec.name, run_id, details)
        results_path = store.write_rows(ws, spec.name, run_id, run_time, rows)
    outcome = RunOutcome(
        spec.name, run_id, run_time, rows, results_path, details_path, notes=list(spec.notes)
    )
    if report:
        _write_report(outcome, ws, details)
    if notify:
        _alert(outcome, spec, ws)
    return outcome


def _run_signal(
    signal: SignalSpec, spec: MonitorSpec, engine: Engine, ws: Path, at: datetime
) -> tuple[SignalResult, Window, int, int]:
    assert signal.reference is not None
    if signal.type == "model_performance":
        return _run_performance(signal, spec, engine, ws, at)
    skip = set(ENVELOPE) | _named_columns(signal.reference)
    columns = list(signal.features) if signal.features is not None else None
    load = getattr(engine, "load_data", load_data)  # an engine may read data its own way (Spark)
    prod, window = load(signal.production[0], at, ws, columns, default_window=True)
    ref, _ = load(signal.reference, at, ws)
    result = evaluate(signal, engine, ref, prod, skip)
    return result, window, engine.rows(prod), engine.rows(ref)


def _run_performance(
    signal: SignalSpec, spec: MonitorSpec, engine: Engine, ws: Path, at: datetime
) -> tuple[SignalResult, Window, int, int]:
    from modeltap import read

    assert signal.reference is not None
    ref_spec = signal.reference
    names = ref_spec.column_names
    truth_col = names.get("actual") or names.get("target") or ref_spec.target_column
    if not truth_col:
        raise ConfigError(
            "name the ground truth's label column: target_column_name, or data_column_names.actual",
            field=ref_spec.where,
        )
    key = names.get("correlation_id", "correlationid")
    load = getattr(engine, "load_data", load_data)  # an engine may read data its own way (Spark)
    by_context = {p.data_context: p for p in signal.production}
    outputs_spec = by_context.get("model_outputs", signal.production[0])
    outputs, window = load(outputs_spec, at, ws, default_window=True)
    inputs_spec = by_context.get("model_inputs")
    if inputs_spec is not None and inputs_spec is not outputs_spec:
        inputs, _ = load(inputs_spec, at, ws, default_window=True)
    else:
        inputs = outputs[["correlationid"]]
    truth, _ = load(ref_spec, at, ws)
    pred_col = _prediction_column(outputs, outputs_spec, truth_col)
    for frame, col, where in ((truth, truth_col, ref_spec.where), (truth, key, ref_spec.where)):
        if col not in frame.columns:
            raise ConfigError(
                f"the ground truth has no column {col!r}; its columns: "
                f"{', '.join(map(str, frame.columns))}",
                field=where,
            )
    join = getattr(engine, "join", read.join)
    joined = join(inputs, outputs, truth[[key, truth_col]], on=key, how="inner")
    truth_name = truth_col if truth_col + "_truth" not in joined.columns else truth_col + "_truth"
    task = next(iter(signal.thresholds))
    labelled = (
        engine.labelled(joined, truth_name)
        if hasattr(engine, "labelled")
        else joined[joined[truth_name].notna()]
    )
    result = performance(signal, engine, labelled, truth_name, pred_col, task)
    return result, window, engine.rows(labelled), engine.rows(truth)


def _prediction_column(outputs: Any, spec: DataSpec, truth_col: str) -> str:
    name = spec.column_names.get("prediction")
    data_cols = [c for c in outputs.columns if c not in ENVELOPE]
    if name is None and len(data_cols) == 1:
        name = data_cols[0]
    where = f"{spec.where}.data_column_names.prediction"
    if name is None:
        raise ConfigError(
            f"name the prediction column; the outputs have: {', '.join(data_cols)}", field=where
        )
    if name not in outputs.columns:
        raise ConfigError(
            f"{name!r} is not a column of the outputs: {', '.join(data_cols)}", field=where
        )
    return str(name)


def _named_columns(spec: DataSpec) -> set[str]:
    named = set(spec.column_names.values())
    return named | ({spec.target_column} if spec.target_column else set())


def _write_report(outcome: RunOutcome, ws: Path, details: dict[str, Any]) -> None:
    from modeltap.monitor import report

    try:
        html = report.render(outcome, details, ws)
        outcome.report_path = store.write_report(ws, outcome.monitor, outcome.run_id, html)
    except Exception as exc:  # the results are saved: a report problem is reported, not fatal
        log.debug("report failed", exc_info=True)
        outcome.problems.append(f"report not written: {type(exc).__name__}: {exc}")


def _alert(outcome: RunOutcome, spec: MonitorSpec, ws: Path) -> None:
    from modeltap.monitor import alerts

    enabled = {s.key for s in spec.signals.values() if s.alert_enabled}
    breaches = [r for r in outcome.rows if r.breached and r.signal in enabled]
    if not breaches:
        return
    outcome.alerts = alerts.send(spec.alert, outcome, breaches, ws)
    outcome.problems += [
        f"alert by {d.notifier} failed: {d.error}" for d in outcome.alerts if not d.ok
    ]


def _at(at: datetime | str | None) -> datetime:
    import pandas as pd

    if at is None:  # the next whole second: rows stamped this second are in the window
        return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    try:
        t = pd.Timestamp(at)
    except ValueError:
        raise ConfigError(f"{at!r} is not an ISO 8601 time", field="--at") from None
    if pd.isna(t):
        raise ConfigError(f"{at!r} is not an ISO 8601 time", field="--at")
    t = t.tz_localize(UTC) if t.tzinfo is None else t.tz_convert(UTC)
    return t.to_pydatetime().replace(microsecond=0)


def _iso(t: datetime | None) -> str | None:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z") if t is not None else None


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    import math

    out = {}
    for k, v in d.items():
        if isinstance(v, datetime):
            v = _iso(v)
        elif isinstance(v, float) and math.isnan(v):
            v = None
        out[k] = v
    return out
