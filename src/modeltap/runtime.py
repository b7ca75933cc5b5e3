"""The process's collection runtime: settings, storage routes and the pipeline.

`configure()` sets it up; collectors find it here. Under `modeltap serve` it is
configured from environment variables the server sets for every worker.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modeltap import retention
from modeltap.assets import Catalog
from modeltap.config import (
    ENV_WORKSPACE,
    DeploymentSettings,
    WorkspaceSettings,
    default_workspace,
    load_deployment,
    load_workspace,
    make_deployment,
)
from modeltap.errors import CollectionDisabledError, ConfigError
from modeltap.pipeline import Pipeline, Route
from modeltap.redact import compile_rules
from modeltap.storage.base import Storage
from modeltap.storage.registry import open_datastore

__all__ = [
    "ENV_DEPLOYMENT",
    "ENV_WORKSPACE",
    "Runtime",
    "active",
    "configure",
    "current",
    "default_workspace",
    "flush",
    "reporting",
    "shutdown",
    "stats",
]

log = logging.getLogger(__name__)

ENV_DEPLOYMENT = "MODELTAP_DEPLOYMENT_FILE"

_lock = threading.Lock()
_runtime: Runtime | None = None
_last: Runtime | None = None  # kept after shutdown() so stats() still answers
_atexit_registered = False
# Called with every runtime configure() makes, before it collects (modeltap.metrics).
on_configure: list[Callable[[Runtime], None]] = []
# Called with the runtime shutdown() has stopped (modeltap.status).
on_shutdown: list[Callable[[Runtime], None]] = []


class Runtime:
    def __init__(self, deployment: DeploymentSettings, workspace: WorkspaceSettings):
        self.deployment = deployment
        self.workspace = workspace
        self.redactors = compile_rules(deployment.redact)  # collection -> its rules (R13.1)
        self._drop_listeners: list[Callable[[int, BaseException], None]] = []
        stores: dict[str, Storage] = {}
        routes: dict[str, Route] = {}
        catalog = Catalog(workspace.root)
        for name, coll in deployment.collections.items():
            if coll.datastore not in stores:
                stores[coll.datastore] = open_datastore(
                    coll.datastore, workspace.datastores[coll.datastore], workspace.root
                )
            routes[name] = Route(stores[coll.datastore], coll.path, deployment.source)
            catalog.register(
                Catalog.make(
                    coll.asset_name,
                    coll.asset_version,
                    deployment.endpoint,
                    deployment.deployment,
                    name,
                    coll.datastore,
                    coll.path,
                )
            )
        self.stores = stores
        retention.remember(workspace.root, deployment)  # for `modeltap retention apply`
        spool_dir = Path(deployment.pipeline.spool_dir or "spool")
        if not spool_dir.is_absolute():
            spool_dir = workspace.root / spool_dir
        if not deployment.pipeline.spool_dir:
            spool_dir = spool_dir / deployment.endpoint / deployment.deployment
        self.pipeline = Pipeline(
            routes,
            deployment.pipeline,
            deployment.rolling_rate,
            on_drop=self._dropped,
            spool_dir=spool_dir,
        )

    def _dropped(self, count: int, exc: BaseException) -> None:
        for listener in list(self._drop_listeners):
            listener(count, exc)

    def add_drop_listener(self, listener: Callable[[int, BaseException], None]) -> None:
        self._drop_listeners.append(listener)

    def collection_enabled(self, name: str) -> bool:
        return name in self.deployment.collections

    def location(self, collection: str) -> str:
        """Where a collection's files land, for people to read."""
        coll = self.deployment.collections[collection]
        return self.stores[coll.datastore].url(coll.path)


def configure(
    deployment_file: str | os.PathLike[str] | None = None,
    workspace: str | os.PathLike[str] | None = None,
    *,
    endpoint: str | None = None,
    deployment: str | None = None,
    collections: list[str] | dict[str, dict[str, Any]] | None = None,
    rolling_rate: str = "Hour",
    sampling_rate: float = 1.0,
    model_version: str = "default",
    **pipeline: Any,
) -> Runtime:
    """Set up collection in this process (replacing any earlier setup, which is flushed).

    Either from a deployment file in the source platform's shape::

        modeltap.configure(deployment_file="deployment.yml", workspace="ws")

    or from keywords::

        modeltap.configure(workspace="ws", endpoint="my_endpoint", deployment="blue",
                           collections=["model_inputs", "model_outputs"],
                           flush_interval=1.0, overflow="block")

    Pipeline keywords (a deployment file's `data_collector.modeltap`, docs/pipeline.md):
    flush_interval, batch_window, batch_records, batch_bytes, buffer_records, buffer_bytes,
    object_bytes, overflow ("block" | "drop" | "raise"), block_timeout, blob_threshold,
    durability ("memory" | "spool"), spool_dir, spool_bytes, encoder ("process" | "thread").
    Without a deployment file, redact= and retention= take the privacy rules it would hold
    (docs/privacy.md).
    """
    global _runtime, _atexit_registered
    ws = load_workspace(workspace)
    if deployment_file is not None:
        if endpoint or deployment or collections:
            raise ConfigError(
                "give either deployment_file or endpoint/deployment/collections, not both",
                field="configure",
            )
        settings = load_deployment(deployment_file, ws)
        if pipeline:
            from dataclasses import replace

            from modeltap.config import _pipeline

            merged = {**settings.pipeline.__dict__, **pipeline}
            settings = replace(settings, pipeline=_pipeline(merged, None))
    else:
        if not endpoint or not deployment or collections is None:
            raise ConfigError(
                "needs deployment_file, or endpoint, deployment and collections", field="configure"
            )
        settings = make_deployment(
            endpoint=endpoint,
            deployment=deployment,
            collections=collections,
            rolling_rate=rolling_rate,
            sampling_rate=sampling_rate,
            model_version=model_version,
            redact=pipeline.pop("redact", None),
            retention=pipeline.pop("retention", None),
            pipeline=pipeline,
            datastores=set(ws.datastores),
        )
    runtime = Runtime(settings, ws)
    for hook in list(on_configure):
        hook(runtime)
    with _lock:
        old, _runtime = _runtime, runtime
        if not _atexit_registered:
            atexit.register(shutdown)
            _atexit_registered = True
    if old is not None:
        old.pipeline.close()
    return runtime


def current() -> Runtime:
    """The configured runtime; configures from the environment when serve set it up."""
    runtime = _runtime
    if runtime is not None:
        return runtime
    file = os.environ.get(ENV_DEPLOYMENT)
    if file:
        with _lock:
            if _runtime is not None:
                return _runtime
        return configure(file, os.environ.get(ENV_WORKSPACE) or None)
    raise CollectionDisabledError(
        "collection is not configured: call modeltap.configure(deployment_file=..., "
        "workspace=...) or run the script with `modeltap serve -f deployment.yml`"
    )


def flush(timeout: float | None = 30.0) -> bool:
    """Write everything collected so far. True when it all landed within timeout."""
    runtime = _runtime
    return True if runtime is None else runtime.pipeline.flush(timeout)


def shutdown(timeout: float = 30.0) -> bool:
    """Flush and stop collection. Collectors report CollectionDisabledError afterwards."""
    global _runtime, _last
    with _lock:
        runtime, _runtime = _runtime, None
    if runtime is None:
        return True
    done = runtime.pipeline.close(timeout)
    _last = runtime
    for hook in list(on_shutdown):
        hook(runtime)
    return done


def reporting() -> Runtime | None:
    """The runtime stats() reports on: the current one, else the last one shut down."""
    return _runtime or _last


def active() -> Runtime | None:
    """The configured runtime, if any (without configuring one from the environment)."""
    return _runtime


def stats() -> dict[str, int]:
    """Counters of the current runtime (or of the last one, after shutdown):
    accepted, written, dropped, sampled_out, ..."""
    runtime = reporting()
    if runtime is None:
        return {}
    counts = runtime.pipeline.counters.snapshot()
    counts["buffered"] = runtime.pipeline.buffered()
    counts["spool_bytes"] = runtime.pipeline.spooled_bytes()
    return counts
