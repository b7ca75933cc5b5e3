"""Deployment YAML and workspace file -> typed, validated settings (SPEC R2, R7.1).

Every bad value is one ConfigError naming the field and what is allowed. Fields of
the source platform's deployment file that mean nothing locally are accepted and
reported as notes.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import urllib.parse
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from modeltap.errors import ConfigError
from modeltap.layout import DEFAULT_ROOT, RollingRate, collection_prefix, validate_name
from modeltap.redact._settings import RedactSettings, parse_redact
from modeltap.yamlfile import read_yaml

__all__ = [
    "DEFAULT_DATASTORE",
    "DEFAULT_WORKSPACE",
    "ENV_WORKSPACE",
    "MODEL_TYPES",
    "PAYLOAD_COLLECTIONS",
    "CollectionSettings",
    "DatastoreSettings",
    "DeploymentSettings",
    "PipelineSettings",
    "WorkspaceSettings",
    "default_workspace",
    "load_deployment",
    "load_workspace",
    "make_deployment",
    "parse_datastore_uri",
    "parse_retention",
]

DEFAULT_DATASTORE = "workspaceblobstore"
ENV_WORKSPACE = "MODELTAP_WORKSPACE"
DEFAULT_WORKSPACE = "modeltap-workspace"
PAYLOAD_COLLECTIONS = ("request", "response")
OVERFLOW_POLICIES = ("block", "drop", "raise")
DURABILITY_MODES = ("memory", "spool")
_TRUE = {"true"}
_FALSE = {"false"}

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


@dataclass(frozen=True)
class PipelineSettings:
    """How the background writer batches and commits (see docs/pipeline.md)."""

    flush_interval: float = 5.0  # seconds between commits: bounds freshness and file count
    batch_window: float = 0.05  # seconds the writer waits to gather a batch
    batch_records: int = 500  # most records encoded at once
    batch_bytes: int = 4 * 1024 * 1024  # most estimated data encoded at once
    buffer_records: int = 5000  # records waiting in memory before overflow applies
    buffer_bytes: int = 256 * 1024 * 1024  # estimated bytes waiting in memory
    object_bytes: int = 64 * 1024 * 1024  # commit early when pending lines reach this
    overflow: Literal["block", "drop", "raise"] = "block"
    block_timeout: float = 5.0  # seconds "block" waits before it drops and reports
    blob_threshold: int = 4 * 1024 * 1024  # payloads larger than this go to their own object
    # "memory": records wait in memory (a crash loses up to flush_interval of them);
    # "spool": each record is on local disk before collect() returns (see docs/durability.md)
    durability: Literal["memory", "spool"] = "memory"
    spool_dir: str = ""  # default: WORKSPACE/spool/ENDPOINT/DEPLOYMENT
    spool_bytes: int = 1024 * 1024 * 1024  # disk the spool may use; past it overflow applies


@dataclass(frozen=True)
class CollectionSettings:
    name: str
    datastore: str
    path: str  # folder in the datastore that holds {partition}/{instance_id}.jsonl
    asset_name: str
    asset_version: str
    is_payload: bool


@dataclass(frozen=True)
class DatastoreSettings:
    type: str
    path: str = ""
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkspaceSettings:
    root: Path
    datastores: dict[str, DatastoreSettings]


@dataclass(frozen=True)
class DeploymentSettings:
    endpoint: str
    deployment: str
    collections: dict[str, CollectionSettings]
    rolling_rate: RollingRate = RollingRate.HOUR
    sampling_rate: float = 1.0
    source: str = ""
    model_version: str = "default"
    pipeline: PipelineSettings = PipelineSettings()
    model_path: Path | None = None  # the local model file or folder (`model` or `model.path`)
    model_type: str = "custom_model"  # `model.type`: custom_model | mlflow_model | triton_model
    code_dir: Path | None = None
    scoring_script: str | None = None
    file: Path | None = None
    notes: tuple[str, ...] = ()
    redact: RedactSettings = field(default_factory=RedactSettings)  # docs/privacy.md
    retention: timedelta | None = None  # data_collector.modeltap.retention


def _suggest(key: str, allowed: set[str] | list[str]) -> str:
    close = difflib.get_close_matches(key, list(allowed), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_keys(obj: dict[str, Any], allowed: set[str], where: str, src: str | None) -> None:
    for key in obj:
        if key not in allowed:
            raise ConfigError(
                f"unknown key{_suggest(str(key), allowed)}; allowed: {', '.join(sorted(allowed))}",
                field=f"{where}.{key}",
                source=src,
            )


def _mapping(value: Any, where: str, src: str | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"must be a mapping, got {type(value).__name__}", field=where, source=src)
    return value


def parse_bool(value: Any, where: str, src: str | None = None) -> bool:
    """'True', 'true' and true are on; 'False', 'false' and false are off (R2.2)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigError(
        f"{value!r} is not a boolean; allowed: true, false, 'True', 'False'",
        field=where,
        source=src,
    )


def parse_sampling_rate(
    value: Any, where: str = "data_collector.sampling_rate", src: str | None = None
) -> float:
    try:
        rate = float(value)
    except (TypeError, ValueError):
        rate = float("nan")
    if isinstance(value, bool) or not 0.0 <= rate <= 1.0:
        raise ConfigError(
            f"{value!r} is not a fraction; allowed: a number from 0.0 to 1.0",
            field=where,
            source=src,
        )
    return rate


_URI = re.compile(
    r"^azureml://(?:subscriptions/[^/]+/resource[gG]roups/[^/]+/"
    r"(?:providers/Microsoft\.MachineLearningServices/)?workspaces/[^/]+/)?"
    r"datastores/(?P<ds>[^/]+)/paths/(?P<path>.*)$"
)


def parse_datastore_uri(
    uri: str, where: str = "data.path", src: str | None = None
) -> tuple[str, str]:
    """(datastore, path) from azureml://datastores/<ds>/paths/<p> (workspace part ignored)."""
    match = _URI.match(uri.strip()) if isinstance(uri, str) else None
    if not match:
        raise ConfigError(
            f"{uri!r} is not a datastore URI; allowed: azureml://datastores/<datastore>/paths/<path>"
            " (optionally azureml://subscriptions/.../workspaces/<ws>/datastores/...)",
            field=where,
            source=src,
        )
    path = match["path"].strip("/")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise ConfigError(
                f"{uri!r} has an empty, '.' or '..' path segment", field=where, source=src
            )
    return match["ds"], path


# Bounds that keep every setting usable as a timeout or a size (1e300 seconds overflows
# every clock): a day for durations, 2**50 (a pebibyte) for counts and bytes.
_MOST_SECONDS = 86400.0
_MOST_COUNT = 2**50
_MOST_RETRIES = 100


def _pipeline(raw: dict[str, Any], src: str | None) -> PipelineSettings:
    defaults = PipelineSettings()
    allowed = set(PipelineSettings.__dataclass_fields__)
    _check_keys(raw, allowed, "data_collector.modeltap", src)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"data_collector.modeltap.{key}"
        if key in ("overflow", "durability"):
            allowed_values = OVERFLOW_POLICIES if key == "overflow" else DURABILITY_MODES
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
        most = _MOST_SECONDS if kind is float else _MOST_COUNT
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
    result: dict[str, CollectionSettings] = {}
    for name, raw in _mapping(collections, "data_collector.collections", src).items():
        where = f"data_collector.collections.{name}"
        validate_name(str(name), where)
        raw = _mapping(raw, where, src)
        _check_keys(raw, _COLLECTION_KEYS, where, src)
        if not parse_bool(raw.get("enabled", False), f"{where}.enabled", src):
            continue
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
                f"defined: {', '.join(sorted(known))} "
                f"(add it to {workspace_file or 'the workspace file'})",
                field=f"{where}.data.path",
                source=src,
            )
        _check_spoolable(datastore, path, f"{where}.data.path", src)
        asset = str(data.get("name") or f"{endpoint}-{deployment}-{name}")
        validate_name(asset, f"{where}.data.name")
        version = str(data.get("version", 1))
        validate_name(version, f"{where}.data.version")
        result[name] = CollectionSettings(
            name, datastore, path, asset, version, name in PAYLOAD_COLLECTIONS
        )
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


def parse_retention(value: Any, src: str | None = None) -> timedelta | None:
    """data_collector.modeltap.retention: a positive ISO 8601 duration (P90D, P12W, PT36H;
    a month counts 30 days, a year 365)."""
    if value is None:
        return None
    from pydantic import TypeAdapter, ValidationError

    where = "data_collector.modeltap.retention"
    text = value.strip().upper() if isinstance(value, str) else ""
    try:
        age = TypeAdapter(timedelta).validate_python(text) if text.startswith("P") else None
    except ValidationError:
        age = None
    if age is None or age <= timedelta(0):
        raise ConfigError(
            f"{value!r} is not a positive ISO 8601 duration; e.g. P90D, P12W, PT36H, P1Y",
            field=where,
            source=src,
        )
    return age


MODEL_TYPES = ("custom_model", "mlflow_model", "triton_model")
MODEL_DATA = ("model_inputs", "model_outputs")
ENV_COLLECT_MODEL_DATA = "MODELTAP_COLLECT_MODEL_DATA"  # set by `modeltap serve --collect`
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
    notes = []
    for key in raw:
        if key in _IGNORED_TOP:
            notes.append(f"{key}: not used by a local deployment, ignored")
        elif key not in _KNOWN_TOP:
            notes.append(f"{key}: unknown field, ignored{_suggest(str(key), _KNOWN_TOP)}")
    for key in ("endpoint_name", "name"):
        if raw.get(key) in (None, ""):
            raise ConfigError("is required", field=key, source=src)
    dc = _mapping(raw.get("data_collector"), "data_collector", src)
    _check_keys(dc, _DATA_COLLECTOR_KEYS, "data_collector", src)
    if "request_logging" in dc:
        notes.append("data_collector.request_logging: header capture is not implemented, ignored")
    code = _mapping(raw.get("code_configuration"), "code_configuration", src)
    base = path.parent
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
    extra_pipeline = _mapping(dc.get("modeltap"), "data_collector.modeltap", src)
    model_version = extra_pipeline.pop("model_version", "default")
    source = extra_pipeline.pop("source", None)
    privacy = {key: extra_pipeline.pop(key, None) for key in ("redact", "retention")}
    datastores = set(workspace.datastores) if workspace else None
    workspace_file = str(workspace.root / "workspace.yml") if workspace else None
    model = _model_dir(raw.get("model"), base, notes)
    return make_deployment(
        endpoint=str(raw["endpoint_name"]),
        deployment=str(raw["name"]),
        collections=_model_data_switch(
            _mapping(dc.get("collections"), "data_collector.collections", src)
        ),
        rolling_rate=dc.get("rolling_rate", "Hour"),
        sampling_rate=dc.get("sampling_rate", 1.0),
        pipeline=extra_pipeline,
        model_version=str(model_version),
        source=source,
        datastores=datastores,
        src=src,
        workspace_file=workspace_file,
        **model,
        code_dir=code_dir,
        scoring_script=str(script) if script else None,
        file=path,
        notes=tuple(notes),
        **privacy,
    )


_DATASTORE_TYPES = ("local", "azure_blob", "s3")
# Request settings every cloud datastore accepts (seconds, and retries before an error).
_CLIENT_KEYS = {"timeout", "connect_timeout", "max_retries", "retry_timeout"}
_DATASTORE_KEYS = {
    "local": {"path"},
    "azure_blob": {"container", "account_url", "connection_string_env", "prefix", "use_azure_cli"}
    | _CLIENT_KEYS,
    "s3": {"bucket", "region", "endpoint_url", "prefix"} | _CLIENT_KEYS,
}
_CONTAINER = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(?:-[a-z0-9]+)*$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _text(spec: dict[str, Any], key: str, where: str, src: str, what: str) -> str:
    value = spec.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"needs {what}", field=f"{where}.{key}", source=src)
    return value.strip()


def _url(spec: dict[str, Any], key: str, where: str, src: str) -> str:
    """An http(s) base URL without credentials in it (they come from the environment)."""
    value = _text(spec, key, where, src, "an http:// or https:// URL")
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = f"{parts.scheme}://{parts.hostname}" if parts.hostname else "the value"
        raise ConfigError(
            f"{shown} is not an http:// or https:// URL", field=f"{where}.{key}", source=src
        )
    if parts.query or parts.fragment or ";" in parts.path or parts.username or parts.password:
        # A SAS token or a password in the file would be a secret in clear (SPEC R7.2),
        # wherever in the URL it hides: ?sig=, #sig=, ;sig=.
        raise ConfigError(
            "must not carry credentials (a query string, #fragment, ;parameters or "
            "user:password); give them through the environment",
            field=f"{where}.{key}",
            source=src,
        )
    return value.rstrip("/")


def _cloud_datastore(kind: str, spec: dict[str, Any], where: str, src: str) -> dict[str, Any]:
    """Validated options of an azure_blob or s3 datastore (secrets stay in the environment)."""
    options: dict[str, Any] = {}
    if kind == "azure_blob":
        container = _text(spec, "container", where, src, "a container name")
        if not _CONTAINER.match(container):
            raise ConfigError(
                f"{container!r} is not a container name; "
                "use 3-63 lowercase letters, digits and single hyphens",
                field=f"{where}.container",
                source=src,
            )
        options["container"] = container
        given = [key for key in ("account_url", "connection_string_env") if key in spec]
        if len(given) != 1:
            raise ConfigError(
                "give exactly one of account_url (credentials from the Azure credential chain) "
                "or connection_string_env (the name of an environment variable)",
                field=f"{where}.{given[1] if given else 'account_url'}",
                source=src,
            )
        if "account_url" in spec:
            options["account_url"] = _url(spec, "account_url", where, src)
        else:
            env = spec["connection_string_env"]
            if not isinstance(env, str) or not _ENV_NAME.match(env):
                # Never echo the value: it may be the connection string itself.
                raise ConfigError(
                    "must be the name of an environment variable (like "
                    "AZURE_STORAGE_CONNECTION_STRING), not the connection string",
                    field=f"{where}.connection_string_env",
                    source=src,
                )
            options["connection_string_env"] = env
        if "use_azure_cli" in spec:
            options["use_azure_cli"] = parse_bool(
                spec["use_azure_cli"], f"{where}.use_azure_cli", src
            )
    else:
        bucket = _text(spec, "bucket", where, src, "a bucket name")
        if not _BUCKET.match(bucket) or ".." in bucket:
            raise ConfigError(
                f"{bucket!r} is not a bucket name; "
                "use 3-63 lowercase letters, digits, dots and hyphens",
                field=f"{where}.bucket",
                source=src,
            )
        options["bucket"] = bucket
        if "region" in spec:
            options["region"] = _text(spec, "region", where, src, "a region name")
        if "endpoint_url" in spec:
            options["endpoint_url"] = _url(spec, "endpoint_url", where, src)
    if "prefix" in spec:
        prefix = spec["prefix"]
        parts = prefix.strip("/").split("/") if isinstance(prefix, str) else [""]
        if any(part in ("", ".", "..") for part in parts):
            raise ConfigError(
                f"{prefix!r} is not a folder; use names separated by '/', without '.' or '..'",
                field=f"{where}.prefix",
                source=src,
            )
        options["prefix"] = "/".join(parts)
    for key in sorted(_CLIENT_KEYS & set(spec)):
        value = spec[key]
        integer = key == "max_retries"
        most = _MOST_RETRIES if integer else _MOST_SECONDS
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        ok = ok and math.isfinite(value) and (value >= 0 if integer else value > 0)
        if not ok or value > most or (integer and not isinstance(value, int)):
            raise ConfigError(
                f"{value!r} is not allowed; use "
                + (
                    f"a whole number from 0 up to {most:g}"
                    if integer
                    else f"a positive number of seconds up to {most:g}"
                ),
                field=f"{where}.{key}",
                source=src,
            )
        options[key] = value
    return options


def default_workspace() -> Path:
    """$MODELTAP_WORKSPACE, else ./modeltap-workspace."""
    return Path(os.environ.get(ENV_WORKSPACE) or DEFAULT_WORKSPACE).resolve()


def load_workspace(root: str | os.PathLike[str] | None = None) -> WorkspaceSettings:
    """The workspace folder and its datastores (DIR/workspace.yml, optional; SPEC R7).

    root None: the default workspace (see default_workspace)."""
    root = Path(root).resolve() if root is not None else default_workspace()
    default = DatastoreSettings("local", f"datastores/{DEFAULT_DATASTORE}")
    stores: dict[str, DatastoreSettings] = {DEFAULT_DATASTORE: default}
    file = root / "workspace.yml"
    if file.exists():
        try:
            stores.update(_datastores(file))
        except ConfigError as exc:
            if exc.source is None:  # name the file in every error
                raise ConfigError(exc.message, field=exc.field, source=str(file)) from None
            raise
    return WorkspaceSettings(root, stores)


def _datastores(file: Path) -> dict[str, DatastoreSettings]:
    """The datastores a workspace file defines."""
    stores: dict[str, DatastoreSettings] = {}
    src = str(file)
    raw = read_yaml(file, "workspace file")
    _check_keys(raw, {"datastores", "smtp"}, "workspace", src)  # smtp: monitor alerts
    for name, spec in _mapping(raw.get("datastores"), "datastores", src).items():
        where = f"datastores.{name}"
        validate_name(str(name), where)
        spec = dict(_mapping(spec, where, src))
        kind = spec.pop("type", None)
        if kind not in _DATASTORE_TYPES:
            raise ConfigError(
                f"{kind!r} is not a datastore type; allowed: {', '.join(_DATASTORE_TYPES)}",
                field=f"{where}.type",
                source=src,
            )
        _check_keys(spec, _DATASTORE_KEYS[kind], where, src)
        if kind == "local":
            if not isinstance(spec.get("path"), str) or not spec["path"]:
                raise ConfigError(
                    "a local datastore needs a folder path", field=f"{where}.path", source=src
                )
            stores[str(name)] = DatastoreSettings(kind, str(spec.pop("path")), spec)
        else:
            stores[str(name)] = DatastoreSettings(
                kind, options=_cloud_datastore(kind, spec, where, src)
            )
    return stores
