"""Compacted collections: where a collection's Delta Lake table is, which objects it
covers, and its rows read back with the columns `load` gives.

`modeltap compact` (modeltap.compact) writes the table; this module is the read side, shared
by `load`, `spark` and the compactor itself:

* A table lives in a datastore folder (`{collection path}-delta` unless chosen) and is
  registered as the data asset `{name}-delta`; `location()` turns the datastore's workspace
  settings into what the `deltalake` package needs (a URI and storage options).
* Which source objects the table covers is recorded with each commit: the commit carries
  an application transaction `modeltap-compact-<run>` (kept in the table's state and its
  checkpoints), and a manifest per partition, `_modeltap/manifests/<partition>/<run>.json`
  (written before the commit), lists the objects. A manifest counts only once its run's
  transaction is in the table: a run killed before its commit leaves a manifest that
  nothing refers to. `covered()` reads the committed manifests of one table snapshot, and
  the rows of that same snapshot are read, so a reader never counts an object twice.
"""

from __future__ import annotations

import logging
import os
import posixpath
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from modeltap.config import DatastoreSettings, WorkspaceSettings, load_workspace
from modeltap.errors import ConfigError, ModeltapError, StorageError
from modeltap.layout import original_name
from modeltap.read._range import period
from modeltap.storage.base import Storage
from modeltap.storage.local import LocalStorage
from modeltap.storage.registry import open_datastore

__all__ = [
    "APP_PREFIX",
    "MANIFESTS",
    "TABLE_ONLY",
    "Snapshot",
    "TableLocation",
    "deltalake_module",
    "find",
    "location",
    "open_snapshot",
]

log = logging.getLogger(__name__)

MANIFESTS = "_modeltap/manifests"  # '_' hides it from Delta readers and VACUUM
APP_PREFIX = "modeltap-compact-"  # application transaction id of a compaction commit
# Columns only the table has: partition columns and the row's index in its line's `data`.
TABLE_ONLY = ("date", "hour", "row_index")
# A user column with one of these names is stored as `data.<name>` and given back as is.
_RENAMED = {f"data.{n}": n for n in TABLE_ONLY}
_THREADS = 8


def deltalake_module() -> Any:
    try:
        import deltalake
    except ImportError:
        raise ImportError(
            "compacted collections need the deltalake package: pip install 'modeltap[delta]'"
        ) from None
    return deltalake


@dataclass(frozen=True)
class TableLocation:
    """A Delta table's folder: for deltalake (uri, storage_options) and for modeltap's own
    storage (the manifests)."""

    uri: str
    storage_options: dict[str, str]
    storage: Storage
    path: str  # the table folder inside `storage`
    label: str  # for messages

    def manifest_path(self, partition: str, run: str) -> str:
        return _join(self.path, MANIFESTS, partition, f"{run}.json")


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def location(ws: WorkspaceSettings, datastore: str, path: str) -> TableLocation:
    """The table at `path` in a datastore of the workspace file, with the datastore's
    credentials as the workspace resolves them (SPEC R7.2) translated for deltalake."""
    settings = ws.datastores.get(datastore)
    if settings is None:
        raise ConfigError(f"unknown datastore {datastore!r}", field="datastores")
    storage = open_datastore(datastore, settings, ws.root)
    label = f"azureml://datastores/{datastore}/paths/{path}"
    if settings.type == "local":
        folder = Path(storage.url(path))
        return TableLocation(str(folder), {}, storage, path, label)
    uri, options = _cloud(datastore, settings, path, str(ws.root / "workspace.yml"))
    return TableLocation(uri, options, storage, path, label)


def folder_location(folder: Path) -> TableLocation:
    """A table in a plain local folder."""
    folder = folder.expanduser().resolve()
    return TableLocation(str(folder), {}, LocalStorage(folder, name="folder"), "", str(folder))


def _cloud(
    name: str, settings: DatastoreSettings, path: str, src: str
) -> tuple[str, dict[str, str]]:
    opts = settings.options
    inside = _join(str(opts.get("prefix") or ""), path)
    options: dict[str, str] = {}
    if settings.type == "s3":
        for key, env in (
            ("aws_access_key_id", "AWS_ACCESS_KEY_ID"),
            ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
            ("aws_session_token", "AWS_SESSION_TOKEN"),
        ):
            if os.environ.get(env):
                options[key] = os.environ[env]
        if opts.get("region"):
            options["aws_region"] = str(opts["region"])
        if opts.get("endpoint_url"):
            options["aws_endpoint"] = str(opts["endpoint_url"])
            options["aws_allow_http"] = str(str(opts["endpoint_url"]).startswith("http://")).lower()
        # commits are created with a conditional put: safe for concurrent writers, no lock table
        options["aws_conditional_put"] = "etag"
        return f"s3://{opts['bucket']}/{inside}", options
    # azure_blob: the same credentials the datastore's own client uses
    from modeltap.storage.objectstore import _account_of, parse_connection_string

    where = f"datastores.{name}.connection_string_env"
    if "connection_string_env" in opts:
        env = str(opts["connection_string_env"])
        try:
            fields = parse_connection_string(os.environ.get(env, ""), f"environment variable {env}")
        except ValueError as exc:
            raise ConfigError(str(exc), field=where, source=src) from None
        endpoint = fields["BlobEndpoint"]
        options["azure_storage_account_name"] = fields["AccountName"]
        if fields.get("AccountKey"):
            options["azure_storage_account_key"] = fields["AccountKey"]
        else:
            options["azure_storage_sas_key"] = fields["SharedAccessSignature"].lstrip("?")
    else:
        endpoint = str(opts["account_url"]).rstrip("/")
        options["azure_storage_account_name"] = _account_of(endpoint)
        if opts.get("use_azure_cli"):
            options["azure_use_azure_cli"] = "true"
    if not endpoint.endswith(".blob.core.windows.net"):  # an emulator or a custom domain
        options["azure_storage_endpoint"] = endpoint
        options["azure_allow_http"] = str(endpoint.startswith("http://")).lower()
    return f"az://{opts['container']}/{inside}", options


def default_table_path(path: str) -> str:
    """Where a collection's table goes unless told: beside its folder, `<folder>-delta`."""
    return f"{path.rstrip('/')}-delta"


def find(src: Any, workspace: str | os.PathLike[str]) -> Any:
    """(TableLocation, whole) for the compacted table of a collection (a read._source
    Source), or None. `whole` is True when the source is the table itself (the
    `{name}-delta` asset was named): then the table is all there is to read.

    For an asset, its table is the asset `{name}-delta` that compaction registered; for a
    URI, that of the asset with this path if there is one, else the table in the default
    place (`<folder>-delta`); for a folder, `<folder>-delta` beside it."""
    from modeltap.assets import Catalog

    storage, prefix = src.storage, src.prefix
    folder = storage.local_path(prefix) if storage.name == "folder" else None
    if folder is not None:  # a folder named as the source
        beside = folder.with_name(f"{folder.name}-delta")
        return (folder_location(beside), False) if (beside / "_delta_log").is_dir() else None
    root = Path(workspace)
    catalog = Catalog(root)
    asset = src.asset
    if asset is None and (root / "catalog.sqlite").is_file():
        here = [a for a in catalog.list() if a.datastore == storage.name and a.path == prefix]
        asset = max(here, key=lambda a: a.created) if here else None
    if asset is not None:
        if asset.type == DELTA_TYPE:
            return location(load_workspace(root), asset.datastore, asset.path), True
        table = catalog.get(f"{asset.name}-delta")
        if table is None or table.type != DELTA_TYPE:
            return None  # never compacted (a compaction registers its table)
        return location(load_workspace(root), table.datastore, table.path), False
    if not prefix:
        return None
    path = default_table_path(prefix)
    if not _has_log(storage, path):
        return None
    return location(load_workspace(root), storage.name, path), False


def _has_log(storage: Storage, path: str) -> bool:
    log_folder = f"{path}/_delta_log"
    folder = storage.local_path(log_folder)
    if folder is not None:
        return folder.is_dir()
    return next(iter(storage.list(log_folder)), None) is not None


DELTA_TYPE = "delta"  # the asset type of a compacted table


# -- one snapshot of a table ---------------------------------------------------------------


@dataclass
class Snapshot:
    """One version of a table: its rows and the source objects they came from."""

    where: TableLocation
    table: Any  # deltalake.DeltaTable, loaded at one version
    covered: set[str] = field(default_factory=set)  # object paths relative to the collection
    payload: bool = False  # a request/response collection (a `data` column of JSON text)

    @property
    def version(self) -> int:
        return int(self.table.version())

    def schema(self) -> pa.Schema:
        return pa.schema(self.table.schema().to_arrow())

    def files(self, start: datetime | None = None, end: datetime | None = None) -> list[str]:
        """Paths (relative to the table) of the active data files that may hold rows in
        [start, end), pruned by the date (and hour) partition values; in partition order,
        then in the order they were written (so rows come in about the JSON lines' order)."""
        actions = pa.table(self.table.get_add_actions(flatten=True))
        paths = [str(p) for p in actions.column("path").to_pylist()]
        written = actions.column("modification_time").to_pylist()
        if "partition.date" not in actions.column_names:
            return [p for _, p in sorted(zip(written, paths, strict=True))]
        dates = actions.column("partition.date").to_pylist()
        hours = (
            actions.column("partition.hour").to_pylist()
            if "partition.hour" in actions.column_names
            else [None] * len(paths)
        )
        keep = []
        for path, when, day, hour in zip(paths, written, dates, hours, strict=True):
            if day is None:
                keep.append((datetime.min.replace(tzinfo=UTC), when, path))
                continue
            lo, span = datetime(day.year, day.month, day.day, tzinfo=UTC), timedelta(days=1)
            if hour is not None:
                lo, span = lo + timedelta(hours=int(hour)), timedelta(hours=1)
            if (end is None or lo < end) and (start is None or lo + span > start):
                keep.append((lo, when, path))
        return [path for _, _, path in sorted(keep)]

    def uri(self, path: str) -> str:
        return f"{self.where.uri.rstrip('/')}/{path}"

    def covers(self, path: str) -> bool:
        """Whether the rows of this object (relative to the collection) are in the table; a
        copy an erasure made (`a.erased-1.jsonl`) is covered when its original is."""
        return original_name(path) in self.covered


def open_snapshot(
    where: TableLocation,
    prefix_covered: bool = True,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Snapshot | None:
    """The table's latest version and the objects it covers (those of partitions that
    overlap [start, end) only, when given); None when there is no table."""
    deltalake = deltalake_module()
    try:
        if not deltalake.DeltaTable.is_deltatable(where.uri, storage_options=where.storage_options):
            return None
        table = deltalake.DeltaTable(where.uri, storage_options=where.storage_options)
    except Exception as exc:
        raise StorageError(f"cannot open the Delta table: {exc}", path=where.label) from None
    snap = Snapshot(where, table, payload=is_payload_table(table))
    if prefix_covered:
        # after the snapshot is loaded: a manifest committed later is not counted
        snap.covered = covered(where, table, start, end)
    return snap


def is_payload_table(table: Any) -> bool:
    description = table.metadata().description or ""
    try:
        return bool(orjson.loads(description).get("kind") == "payload")
    except (orjson.JSONDecodeError, AttributeError):
        return False


def committed_manifests(
    where: TableLocation, table: Any, start: datetime | None = None, end: datetime | None = None
) -> list[str]:
    """Paths of the manifests whose run's commit is in this version of the table (of the
    partitions that overlap [start, end), when given)."""
    base = _join(where.path, MANIFESTS)
    found = []
    runs: dict[str, bool] = {}
    for info in where.storage.list(base):
        name = posixpath.basename(info.path)
        if not name.endswith(".json"):
            continue
        if start is not None or end is not None:
            span = partition_span(posixpath.dirname(info.path[len(base) + 1 :]))
            if span is not None and (
                (end is not None and span[0] >= end) or (start is not None and span[1] <= start)
            ):
                continue
        run = name.removesuffix(".json")
        if run not in runs:
            runs[run] = table.transaction_version(APP_PREFIX + run) is not None
        if runs[run]:
            found.append(info.path)
    return found


def newest_partition(where: TableLocation, table: Any) -> str | None:
    """The newest partition folder (yyyy/MM/dd/HH...) that a committed manifest names."""
    base = _join(where.path, MANIFESTS)
    names = [posixpath.dirname(p[len(base) + 1 :]) for p in committed_manifests(where, table)]
    return max(names) if names else None


def covered(
    where: TableLocation, table: Any, start: datetime | None = None, end: datetime | None = None
) -> set[str]:
    """Objects (relative to the collection folder) in the committed manifests (of the
    partitions that overlap [start, end), when given)."""
    paths = committed_manifests(where, table, start, end)

    def read(path: str) -> list[str]:
        try:
            return list(orjson.loads(where.storage.get(path))["objects"])
        except (ModeltapError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise StorageError(f"unreadable compaction manifest: {exc}", path=path) from None

    out: set[str] = set()
    if len(paths) <= 1:
        for path in paths:
            out.update(map(original_name, read(path)))
        return out
    with ThreadPoolExecutor(min(_THREADS, len(paths))) as pool:
        for objects in pool.map(read, paths):
            out.update(map(original_name, objects))  # an erasure's copies: see covers()
    return out


def partition_span(partition: str) -> tuple[datetime, datetime] | None:
    return period(partition.split("/")) if partition else None
