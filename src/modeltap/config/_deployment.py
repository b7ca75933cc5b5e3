"""A deployment file in the source platform's shape -> DeploymentSettings (SPEC R2).

Every bad value is one ConfigError naming the field and what is allowed. Fields of
the source platform's deployment file that mean nothing locally are accepted and
reported as notes.
"""

from __future__ import annotations

import math
import os
import urllib.parse
from pathlib import Path
from typing import Any

from modeltap.config._fields import (
    MOST_COUNT,
    MOST_SECONDS,
    _check_keys,
    _mapping,
    _suggest,
    parse_bool,
    parse_datastore_uri,
    parse_retention,
    parse_sampling_rate,
)
from modeltap.config._settings import (
    DEFAULT_DATASTORE,
    PAYLOAD_COLLECTIONS,
    CollectionSettings,
    DeploymentSettings,
    PipelineSettings,
    WorkspaceSettings,
)
from modeltap.errors import ConfigError
from modeltap.layout import DEFAULT_ROOT, RollingRate, collection_prefix, validate_name
from modeltap.redact._settings import parse_redact
from modeltap.yamlfile import read_yaml

__all__ = [
    "ENV_COLLECT_MODEL_DATA",
    "MODEL_TYPES",
    "load_deployment",
    "make_deployment",
]

OVERFLOW_POLICIES = ("block", "drop", "raise")
DURABILITY_MODES = ("memory", "spool")
ENCODERS = ("process", "thread")
_CHOICES = {"overflow": OVERFLOW_POLICIES, "durability": DURABILITY_MODES, "encoder": ENCODERS}
MODEL_TYPES = ("custom_model", "mlflow_model", "triton_model")
MODEL_DATA = ("model_inputs", "model_outputs")
ENV_COLLECT_MODEL_DATA = "MODELTAP_COLLECT_MODEL_DATA"  # set by `modeltap serve --collect`

# Top-level fields of the source's deployment file: those modeltap reads, those accepted
# without a word, and those that mean nothing locally (accepted with a note).
_USED_TOP = {"name", "endpoint_name", "model", "code_configuration", "data_collector"}
_SILENT_TOP = {"$schema", "environment_variables"}
_IGNORED_TOP = {
    "description",
    "tags",
    "environment",
    "instance_type",
    "instance_count",
    "scale_settings",
    "request_settings",
    "liveness_probe",
    "readiness_probe",
    "app_insights_enabled",
    "egress_public_network_access",
    "type",
    "properties",
    "model_mount_path",
    "with_package",
}
_KNOWN_TOP = _USED_TOP | _SILENT_TOP | _IGNORED_TOP
_DATA_COLLECTOR_KEYS = {
    "collections",
    "rolling_rate",
    "sampling_rate",
    "request_logging",
    "modeltap",
}
_COLLECTION_KEYS = {"enabled", "data", "client_id"}
# data_collector.modeltap: the pipeline's settings and these deployment settings.
_DEPLOYMENT_EXTRAS = ("model_version", "source", "redact", "retention")
_MODELTAP_KEYS = set(PipelineSettings.__dataclass_fields__) | set(_DEPLOYMENT_EXTRAS)


def _pipeline(raw: dict[str, Any], src: str | None) -> PipelineSettings:
    """PipelineSettings from its fields' names and values (the data_collector.modeltap
    block without the deployment's own keys, or configure()'s keywords)."""
    defaults = PipelineSettings()
    allowed = set(PipelineSettings.__dataclass_fields__)
    _check_keys(raw, allowed, "data_collector.modeltap", src)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"data_collector.modeltap.{key}"
        if key in _CHOICES:
            allowed_values = _CHOICES[key]
            if value not in allowed_values:
                raise ConfigError(
                    f"{value!r} is not allowed; allowed: {', '.join(allowed_values)}",
                    field=where,
                    source=src,
                )
            values[key] = value
            continue
        if key == "spool_dir":
            if not isinstance(value, str | os.PathLike):
                raise ConfigError(f"{value!r} is not a folder path", field=where, source=src)
            values[key] = os.fspath(value)
            continue
        kind = type(getattr(defaults, key))
        most = MOST_SECONDS if kind is float else MOST_COUNT
        try:
            number = kind(value)
            whole = kind is not int or float(value) == number
        except (TypeError, ValueError, OverflowError):
            number, whole = -1, False
        if (
            isinstance(value, bool)
            or not whole
            or not math.isfinite(number)
            or not 0 < number <= most
        ):
            unit = " (seconds)" if kind is float else ""
            raise ConfigError(
                f"{value!r} is not allowed; use a positive {kind.__name__}{unit} up to {most:g}",
                field=where,
                source=src,
            )
        values[key] = number
    return PipelineSettings(**values)


# A spooled object's file name is `<seq>@<datastore>@<object path><suffix>`, quoted, at most
# 250 bytes (spool.py; file systems allow 255). Besides the collection's folder the object
# path holds the partition (`yyyy/MM/dd/HH/mm`: 24 bytes quoted) and the object's name
# (an instance id of 35 bytes or a payload id of 36), each after a quoted "/".
_SPOOL_NAME_BYTES = 250
_SPOOL_NAME_FIXED = len("00000000@") + len("@") + 2 * len("%2F") + 24 + 36 + len(".open")


def _check_spoolable(datastore: str, path: str, where: str, src: str | None) -> None:
    """A collection folder whose objects the spool can hold (it is used in any outage)."""
    quoted = len(urllib.parse.quote(datastore, safe="")) + len(urllib.parse.quote(path, safe=""))
    room = _SPOOL_NAME_BYTES - _SPOOL_NAME_FIXED
    if quoted > room:
        raise ConfigError(
            f"the folder {path!r} of datastore {datastore!r} is too long: objects waiting in "
            f"the local spool are named after it, in at most {room} bytes for datastore and "
            f"folder (quoted: '/' counts 3, non-ASCII letters 6 or more); this takes {quoted}",
            field=where,
            source=src,
        )


def make_deployment(
    *,
    endpoint: str,
    deployment: str,
    collections: dict[str, dict[str, Any]] | list[str],
    rolling_rate: str = "Hour",
    sampling_rate: Any = 1.0,
    pipeline: dict[str, Any] | None = None,
    model_version: str = "default",
    source: str | None = None,
    datastores: set[str] | None = None,
    src: str | None = None,
    workspace_file: str | None = None,
    redact: Any = None,
    retention: Any = None,
    **extra: Any,
) -> DeploymentSettings:
    """Validated settings from plain values (the YAML loader and configure() both use it)."""
    endpoint = validate_name(endpoint, "endpoint_name")
    deployment = validate_name(deployment, "name")
    rate = (
        RollingRate.parse(rolling_rate)
        if not isinstance(rolling_rate, RollingRate)
        else rolling_rate
    )
    if isinstance(collections, list | tuple):
        collections = {name: {"enabled": True} for name in collections}
    known = datastores if datastores is not None else {DEFAULT_DATASTORE}
    add_to = workspace_file or "the workspace file"
    result: dict[str, CollectionSettings] = {}
    for name, raw in _mapping(collections, "data_collector.collections", src).items():
        collection = _collection(str(name), raw, known, endpoint, deployment, add_to, src)
        if collection is not None:
            result[collection.name] = collection
    return DeploymentSettings(
        endpoint=endpoint,
        deployment=deployment,
        collections=result,
        rolling_rate=rate,
        sampling_rate=parse_sampling_rate(sampling_rate, src=src),
        source=source or f"/endpoints/{endpoint}/deployments/{deployment}",
        model_version=str(model_version),
        pipeline=_pipeline(pipeline or {}, src),
        redact=parse_redact(redact, collections, src),
        retention=parse_retention(retention, src),
        **extra,
    )


def _collection(
    name: str,
    raw: Any,
    known: set[str],
    endpoint: str,
    deployment: str,
    workspace_file: str,
    src: str | None,
) -> CollectionSettings | None:
    """One collection of data_collector.collections; None when it is not enabled."""
    where = f"data_collector.collections.{name}"
    validate_name(name, where)
    raw = _mapping(raw, where, src)
    _check_keys(raw, _COLLECTION_KEYS, where, src)
    if not parse_bool(raw.get("enabled", False), f"{where}.enabled", src):
        return None
    data = _mapping(raw.get("data"), f"{where}.data", src)
    _check_keys(data, {"name", "path", "version"}, f"{where}.data", src)
    if "path" in data:
        datastore, path = parse_datastore_uri(data["path"], f"{where}.data.path", src)
    else:
        datastore = DEFAULT_DATASTORE
        path = collection_prefix(DEFAULT_ROOT, endpoint, deployment, name)
    if datastore not in known:
        raise ConfigError(
            f"unknown datastore {datastore!r}{_suggest(datastore, known)}; "
            f"defined: {', '.join(sorted(known))} (add it to {workspace_file})",
            field=f"{where}.data.path",
            source=src,
        )
    _check_spoolable(datastore, path, f"{where}.data.path", src)
    asset = str(data.get("name") or f"{endpoint}-{deployment}-{name}")
    validate_name(asset, f"{where}.data.name")
    version = str(data.get("version", 1))
    validate_name(version, f"{where}.data.version")
    return CollectionSettings(name, datastore, path, asset, version, name in PAYLOAD_COLLECTIONS)


_MODEL_KEYS = {"path", "type", "name", "version", "description", "tags", "properties", "stage"}


def _model_dir(model: Any, base: Path, notes: list[str]) -> dict[str, Any]:
    """model_path and model_type from `model: ./path` or `model: {path: ..., type: ...}`."""
    kind = "custom_model"
    if isinstance(model, dict):
        for key in sorted(set(model) - _MODEL_KEYS):
            notes.append(f"model.{key}: not used by a local deployment, ignored")
        kind = str(model.get("type") or kind)
        if kind not in MODEL_TYPES:
            raise ConfigError(
                f"{kind!r} is not a model type; allowed: {', '.join(MODEL_TYPES)}",
                field="model.type",
            )
        model = model.get("path")
    if model is None:
        return {"model_type": kind}
    if isinstance(model, str) and model.startswith("azureml:"):
        notes.append(
            f"model: {model!r} names a registered cloud model; "
            "AZUREML_MODEL_DIR is left unset (use a local path to serve a model folder)"
        )
        return {"model_type": kind}
    path = (base / str(model)).resolve()
    if not path.exists():
        raise ConfigError(f"model path {str(path)!r} does not exist", field="model")
    if kind == "mlflow_model" and not (path / "MLmodel").is_file():
        raise ConfigError(
            f"{str(path)!r} is not an MLflow model folder (it has no MLmodel file)",
            field="model.path",
        )
    return {"model_path": path, "model_type": kind}


def _model_data_switch(collections: dict[str, Any]) -> dict[str, Any]:
    """`modeltap serve --collect`: model_inputs and model_outputs on, whatever the file says."""
    if os.environ.get(ENV_COLLECT_MODEL_DATA) != "1":
        return collections
    switched = dict(collections)
    for name in MODEL_DATA:
        given = switched.get(name)
        switched[name] = {**(given if isinstance(given, dict) else {}), "enabled": True}
    return switched


def load_deployment(
    path: str | os.PathLike[str], workspace: WorkspaceSettings | None = None
) -> DeploymentSettings:
    """Read and validate a deployment file in the source platform's shape (R2.1)."""
    try:
        return _load_deployment(Path(path).resolve(), workspace)
    except ConfigError as exc:
        if exc.source is None:  # name the file in every error
            raise ConfigError(exc.message, field=exc.field, source=str(Path(path))) from None
        raise


def _load_deployment(path: Path, workspace: WorkspaceSettings | None) -> DeploymentSettings:
    src = str(path)
    raw = read_yaml(path, "deployment file")
    notes = _top_level_notes(raw)
    for key in ("endpoint_name", "name"):
        if raw.get(key) in (None, ""):
            raise ConfigError("is required", field=key, source=src)
    dc = _mapping(raw.get("data_collector"), "data_collector", src)
    _check_keys(dc, _DATA_COLLECTOR_KEYS, "data_collector", src)
    if "request_logging" in dc:
        notes.append("data_collector.request_logging: header capture is not implemented, ignored")
    code = _code(raw, path.parent, src)
    extras = _modeltap_block(dc, src)
    model = _model_dir(raw.get("model"), path.parent, notes)
    return make_deployment(
        endpoint=str(raw["endpoint_name"]),
        deployment=str(raw["name"]),
        collections=_model_data_switch(
            _mapping(dc.get("collections"), "data_collector.collections", src)
        ),
        rolling_rate=dc.get("rolling_rate", "Hour"),
        sampling_rate=dc.get("sampling_rate", 1.0),
        datastores=set(workspace.datastores) if workspace else None,
        src=src,
        workspace_file=str(workspace.root / "workspace.yml") if workspace else None,
        **extras,
        **model,
        **code,
        file=path,
        notes=tuple(notes),
    )


def _top_level_notes(raw: dict[str, Any]) -> list[str]:
    """A note for each top-level field that means nothing locally or is unknown."""
    notes = []
    for key in raw:
        if key in _IGNORED_TOP:
            notes.append(f"{key}: not used by a local deployment, ignored")
        elif key not in _KNOWN_TOP:
            notes.append(f"{key}: unknown field, ignored{_suggest(str(key), _KNOWN_TOP)}")
    return notes


def _code(raw: dict[str, Any], base: Path, src: str) -> dict[str, Any]:
    """code_dir and scoring_script from code_configuration, each checked to exist."""
    code = _mapping(raw.get("code_configuration"), "code_configuration", src)
    code_dir = (base / str(code["code"])).resolve() if code.get("code") else None
    script = code.get("scoring_script")
    if code_dir is not None and not code_dir.is_dir():
        raise ConfigError(
            f"folder {str(code_dir)!r} does not exist", field="code_configuration.code", source=src
        )
    if script is not None and code_dir is not None and not (code_dir / str(script)).is_file():
        raise ConfigError(
            f"file {str(code_dir / str(script))!r} does not exist",
            field="code_configuration.scoring_script",
            source=src,
        )
    return {"code_dir": code_dir, "scoring_script": str(script) if script else None}


def _modeltap_block(dc: dict[str, Any], src: str) -> dict[str, Any]:
    """data_collector.modeltap: the pipeline's settings (checked by _pipeline) and the
    deployment's model_version, source, redact and retention."""
    block = dict(_mapping(dc.get("modeltap"), "data_collector.modeltap", src))
    _check_keys(block, _MODELTAP_KEYS, "data_collector.modeltap", src)
    extras = {key: block.pop(key) for key in _DEPLOYMENT_EXTRAS if key in block}
    return {**extras, "pipeline": block}
