"""The typed settings a deployment file and a workspace file become (frozen dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from modeltap.layout import RollingRate
from modeltap.redact._settings import RedactSettings

__all__ = [
    "DEFAULT_DATASTORE",
    "PAYLOAD_COLLECTIONS",
    "CollectionSettings",
    "DatastoreSettings",
    "DeploymentSettings",
    "PipelineSettings",
    "WorkspaceSettings",
]

DEFAULT_DATASTORE = "workspaceblobstore"
PAYLOAD_COLLECTIONS = ("request", "response")


@dataclass(frozen=True)
class PipelineSettings:
    """How the background writer batches and commits (see docs/pipeline.md).

    Each field is a key of the deployment file's `data_collector.modeltap` block and a
    keyword of configure(); that block also takes model_version, source, redact and
    retention, which are DeploymentSettings fields."""

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
    # "process": large frames are encoded partly in a helper process, on another core;
    # "thread": all on the writer thread (see docs/pipeline.md)
    encoder: Literal["process", "thread"] = "process"


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
    type: str  # a row of the datastore table (modeltap.storage.registry)
    path: str = ""  # a local datastore's folder (relative: to the workspace)
    options: dict[str, Any] = field(default_factory=dict)  # checked by the type's row


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
