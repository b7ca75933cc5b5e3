"""The monitor file: the source platform's monitor schedule YAML -> a validated MonitorSpec.

The platform's shape is accepted as written. Fields that mean nothing on one machine
(`compute`, `properties`, a pre-processing component...) become notes; everything wrong
is one ConfigError that names the field (`create_monitor.monitoring_signals.<key>.<field>`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from modeltap.config import _check_keys, _mapping, iso_duration, parse_bool
from modeltap.errors import ConfigError
from modeltap.monitor.thresholds import AUTO, DEFAULTS, METRICS, SIGNAL_TYPES, parse_thresholds
from modeltap.yamlfile import read_yaml

__all__ = [
    "AUTO",
    "DEFAULTS",
    "METRICS",
    "SIGNAL_TYPES",
    "AlertSpec",
    "DataSpec",
    "MonitorSpec",
    "SignalSpec",
    "Trigger",
    "load_monitor",
]

_TOP = {"name", "trigger", "create_monitor"}
_TOP_IGNORED = {"$schema", "description", "tags", "display_name", "properties", "type"}
_CREATE = {"monitoring_target", "monitoring_signals", "alert_notification"}
_CREATE_IGNORED = {"compute", "monitoring_feature_filter"}
_SIGNAL = {
    "type",
    "production_data",
    "reference_data",
    "features",
    "feature_type_override",
    "metric_thresholds",
    "alert_enabled",
}
_SIGNAL_IGNORED = {"properties", "data_segment", "feature_importance_settings"}
_DATA = {"input_data", "data_context", "data_window", "target_column_name", "data_column_names"}
_DATA_IGNORED = {"pre_processing_component", "data_column_names_type"}
_WINDOW = {"lookback_window_size", "lookback_window_offset", "window_start", "window_end"}
_COLUMN_NAMES = {"correlation_id", "prediction", "prediction_probability", "actual", "target"}
_ALERT = {"emails", "webhooks", "command"}
_TRIGGER = {
    "type",
    "frequency",
    "interval",
    "schedule",
    "expression",
    "start_time",
    "end_time",
    "time_zone",
}


@dataclass(frozen=True)
class DataSpec:
    path: str  # a file, a folder, an asset (azureml:name:version or a bare name), a URI
    where: str  # the field path, for messages
    data_context: str = ""
    window_size: timedelta | None = None  # lookback_window_size
    window_offset: timedelta = timedelta(0)  # lookback_window_offset
    window_start: str | None = None
    window_end: str | None = None
    target_column: str | None = None
    column_names: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SignalSpec:
    key: str
    type: str
    production: tuple[DataSpec, ...]
    reference: DataSpec | None
    features: tuple[str, ...] | None  # None: all features
    type_override: dict[str, str]  # feature -> numerical | categorical
    thresholds: dict[str, dict[str, float | str]]  # group -> metric -> number or "auto"
    alert_enabled: bool
    where: str


@dataclass(frozen=True)
class Trigger:
    type: str  # recurrence | cron
    frequency: str = "day"
    interval: int = 1
    hours: tuple[int, ...] = (0,)
    minutes: tuple[int, ...] = (0,)
    week_days: tuple[int, ...] = ()  # 0 = monday
    month_days: tuple[int, ...] = ()
    expression: str = ""


@dataclass(frozen=True)
class AlertSpec:
    emails: tuple[str, ...] = ()
    webhooks: tuple[str, ...] = ()
    command: str | tuple[str, ...] | None = None


@dataclass(frozen=True)
class MonitorSpec:
    name: str
    file: Path
    signals: dict[str, SignalSpec]
    alert: AlertSpec
    trigger: Trigger | None = None
    ml_task: str = ""
    target: str = ""
    notes: tuple[str, ...] = ()


def _error(message: str, where: str | None = None) -> ConfigError:
    return ConfigError(message, field=where)


def load_monitor(path: str | os.PathLike[str]) -> MonitorSpec:
    """Read and validate a monitor file; ConfigError naming the file and field if wrong."""
    file = Path(path)
    try:
        return _load(file.resolve())
    except ConfigError as exc:
        if exc.source is None:
            raise ConfigError(exc.message, field=exc.field, source=str(file)) from None
        raise


def _load(file: Path) -> MonitorSpec:
    src = str(file)
    raw = read_yaml(file, "monitor file")
    notes: list[str] = []
    _check_keys(raw, _TOP | _TOP_IGNORED, "monitor", src)
    notes += [f"{k}: not used locally" for k in raw if k in _TOP_IGNORED - {"$schema"}]
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or "/" in name or name.startswith("."):
        raise _error(f"{name!r} is not a monitor name (a non-empty text, no '/')", "name")
    create = _mapping(raw.get("create_monitor"), "create_monitor", src)
    _check_keys(create, _CREATE | _CREATE_IGNORED, "create_monitor", src)
    for key in sorted(set(create) & _CREATE_IGNORED):
        notes.append(f"create_monitor.{key}: no local meaning (runs on this machine)")
    target = _mapping(create.get("monitoring_target"), "create_monitor.monitoring_target", src)
    _check_keys(target, {"ml_task", "endpoint_deployment_id", "model_id"}, "monitoring_target", src)
    ml_task = str(target.get("ml_task") or "")
    if ml_task and ml_task not in ("classification", "regression"):
        raise _error(
            f"{ml_task!r}; allowed: classification, regression",
            "create_monitor.monitoring_target.ml_task",
        )
    where = "create_monitor.monitoring_signals"
    raw_signals = _mapping(create.get("monitoring_signals"), where, src)
    if not raw_signals:
        raise _error("a monitor needs at least one signal", where)
    signals = {
        str(key): _signal(str(key), _mapping(value, f"{where}.{key}", src), ml_task, notes, file)
        for key, value in raw_signals.items()
    }
    alert = _alert(_mapping(create.get("alert_notification"), "alert_notification", src))
    trigger = _trigger(raw["trigger"], notes) if raw.get("trigger") is not None else None
    return MonitorSpec(
        name=name.strip(),
        file=file,
        signals=signals,
        alert=alert,
        trigger=trigger,
        ml_task=ml_task,
        target=str(target.get("endpoint_deployment_id") or target.get("model_id") or ""),
        notes=tuple(notes),
    )


def _signal(
    key: str, raw: dict[str, Any], ml_task: str, notes: list[str], file: Path
) -> SignalSpec:
    where = f"create_monitor.monitoring_signals.{key}"
    kind = raw.get("type")
    if kind not in SIGNAL_TYPES:
        raise _error(
            f"{kind!r} is not a signal type; allowed: {', '.join(SIGNAL_TYPES)}", f"{where}.type"
        )
    _check_keys(raw, _SIGNAL | _SIGNAL_IGNORED, where, None)
    notes += [f"{where}.{k}: not used locally" for k in sorted(set(raw) & _SIGNAL_IGNORED)]
    prod_raw = raw.get("production_data")
    if prod_raw is None:
        raise _error("required", f"{where}.production_data")
    items = prod_raw if isinstance(prod_raw, list) else [prod_raw]
    production = tuple(
        _data(
            _mapping(item, f"{where}.production_data", None),
            f"{where}.production_data" + (f"[{i}]" if isinstance(prod_raw, list) else ""),
            notes,
            file,
        )
        for i, item in enumerate(items)
    )
    ref_raw = raw.get("reference_data")
    reference = (
        _data(
            _mapping(ref_raw, f"{where}.reference_data", None),
            f"{where}.reference_data",
            notes,
            file,
        )
        if ref_raw is not None
        else None
    )
    if reference is None:
        raise _error("required (the data to compare production with)", f"{where}.reference_data")
    features = _features(raw.get("features"), f"{where}.features", notes)
    override = _override(raw.get("feature_type_override"), f"{where}.feature_type_override")
    thresholds = parse_thresholds(
        kind, raw.get("metric_thresholds"), f"{where}.metric_thresholds", ml_task
    )
    alert = parse_bool(raw.get("alert_enabled", True), f"{where}.alert_enabled")
    return SignalSpec(
        key, kind, production, reference, features, override, thresholds, alert, where
    )


def _data(raw: dict[str, Any], where: str, notes: list[str], file: Path) -> DataSpec:
    _check_keys(raw, _DATA | _DATA_IGNORED, where, None)
    notes += [f"{where}.{k}: no local meaning" for k in sorted(set(raw) & _DATA_IGNORED)]
    inp = _mapping(raw.get("input_data"), f"{where}.input_data", None)
    _check_keys(inp, {"path", "type", "mode"}, f"{where}.input_data", None)
    path = inp.get("path")
    if not isinstance(path, str) or not path.strip():
        raise _error("required: a file, a folder or a data asset", f"{where}.input_data.path")
    path = path.strip()
    if not path.startswith("azureml:") and ("/" in path or path.startswith(".")):
        path = str((file.parent / path).resolve()) if not Path(path).is_absolute() else path
    window = _mapping(raw.get("data_window"), f"{where}.data_window", None)
    _check_keys(window, _WINDOW, f"{where}.data_window", None)
    names = _mapping(raw.get("data_column_names"), f"{where}.data_column_names", None)
    _check_keys(names, _COLUMN_NAMES, f"{where}.data_column_names", None)
    target = raw.get("target_column_name")
    size = window.get("lookback_window_size")
    return DataSpec(
        path=path,
        where=where,
        data_context=str(raw.get("data_context") or ""),
        window_size=_duration(size, f"{where}.data_window.lookback_window_size")
        if size is not None
        else None,
        window_offset=_duration(
            window.get("lookback_window_offset", "P0D"),
            f"{where}.data_window.lookback_window_offset",
        ),
        window_start=_opt_text(window.get("window_start")),
        window_end=_opt_text(window.get("window_end")),
        target_column=str(target) if target is not None else None,
        column_names={str(k): str(v) for k, v in names.items()},
    )


def _duration(value: Any, where: str) -> timedelta:
    """An ISO 8601 duration in days, hours, minutes or seconds (P7D, PT12H, P1DT6H)."""
    text = str(value).strip().upper() if value is not None else ""
    # config's parser, not pandas': pd.Timedelta reads "P1M" as a minute and "P1.5D" as
    # five days. Years and months have no fixed length in a data window: refused.
    delta = None if "Y" in text or "M" in text.split("T")[0] else iso_duration(text)
    if delta is None:
        raise _error(
            f"{value!r} is not a duration; use ISO 8601 days/hours/minutes such as P7D, PT12H",
            where,
        )
    if delta < timedelta(0):
        raise _error(f"{value!r} is negative", where)
    return delta


def _opt_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _features(value: Any, where: str, notes: list[str]) -> tuple[str, ...] | None:
    if value is None or value == "all_features":
        return None
    if isinstance(value, dict) and set(value) == {"top_n_feature_importance"}:
        notes.append(f"{where}: feature importance is not computed locally; all features used")
        return None
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return tuple(dict.fromkeys(value))
    raise _error(f"{value!r}; allowed: a list of column names, or all_features", where)


def _override(value: Any, where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for kind, names in _mapping(value, where, None).items():
        if kind not in ("numerical", "categorical"):
            raise _error(f"{kind!r}; allowed: numerical, categorical", f"{where}.{kind}")
        if not isinstance(names, list):
            raise _error("must be a list of column names", f"{where}.{kind}")
        out.update({str(n): str(kind) for n in names})
    return out


def _alert(raw: dict[str, Any]) -> AlertSpec:
    where = "create_monitor.alert_notification"
    _check_keys(raw, _ALERT, where, None)
    emails = _texts(raw.get("emails"), f"{where}.emails")
    for address in emails:
        if "@" not in address:
            raise _error(f"{address!r} is not an e-mail address", f"{where}.emails")
    hooks = _texts(raw.get("webhooks"), f"{where}.webhooks")
    for url in hooks:
        if not url.startswith(("http://", "https://")):
            raise _error(f"{url!r} is not an http(s) URL", f"{where}.webhooks")
    command = raw.get("command")
    if (
        command is not None
        and not (isinstance(command, str) and command.strip())
        and not (isinstance(command, list) and command and all(isinstance(c, str) for c in command))
    ):
        raise _error("a command line, or a list of arguments", f"{where}.command")
    cmd = tuple(command) if isinstance(command, list) else command
    return AlertSpec(emails, hooks, cmd)


def _texts(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _error("must be a list of texts", where)
    return tuple(v.strip() for v in value)


def _trigger(raw: Any, notes: list[str]) -> Trigger:
    from modeltap.monitor.schedule import parse_trigger

    where = "trigger"
    data = _mapping(raw, where, None)
    _check_keys(data, _TRIGGER, where, None)
    trigger: Trigger = parse_trigger(data, notes)
    return trigger
