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
from collections.abc import Iterable
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
from modeltap.read._parse import ENVELOPE, TIME_TYPE
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


def find(src_storage: Storage, prefix: str, workspace: str | os.PathLike[str]) -> Any:
    """(TableLocation, whole) for the compacted table of the collection read from this
    datastore folder, or None. `whole` is True when the folder is the table itself (the
    `{name}-delta` asset was named): then the table is all there is to read.

    The table is the one registered as `{name}-delta` for the collection's asset, else
    the one in the default place (`<folder>-delta`), if there is one."""
    from modeltap.assets import Catalog

    if isinstance(src_storage, LocalStorage) and src_storage.name == "folder":
        folder = Path(src_storage.url(prefix))
        beside = folder.with_name(f"{folder.name}-delta")
        return (folder_location(beside), False) if (beside / "_delta_log").is_dir() else None
    root = Path(workspace)
    assets = Catalog(root).list() if (root / "catalog.sqlite").is_file() else []
    here = [a for a in assets if a.datastore == src_storage.name and a.path == prefix]
    if any(a.type == DELTA_TYPE for a in here):
        return location(load_workspace(root), src_storage.name, prefix), True
    names = {a.name for a in here}
    tables = [a for a in assets if a.type == DELTA_TYPE and a.name.removesuffix("-delta") in names]
    if tables:
        table = max(tables, key=lambda a: a.created)
        return location(load_workspace(root), table.datastore, table.path), False
    if not prefix:
        return None
    path = default_table_path(prefix)
    if not _has_log(src_storage, path):
        return None
    return location(load_workspace(root), src_storage.name, path), False


def _has_log(storage: Storage, path: str) -> bool:
    log_folder = f"{path}/_delta_log"
    if isinstance(storage, LocalStorage):
        return Path(storage.url(log_folder)).is_dir()
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
        [start, end), pruned by the date (and hour) partition values."""
        actions = pa.table(self.table.get_add_actions(flatten=True))
        paths = actions.column("path").to_pylist()
        if (start is None and end is None) or "partition.date" not in actions.column_names:
            return [str(p) for p in paths]
        dates = actions.column("partition.date").to_pylist()
        hours = (
            actions.column("partition.hour").to_pylist()
            if "partition.hour" in actions.column_names
            else [None] * len(paths)
        )
        keep = []
        for path, day, hour in zip(paths, dates, hours, strict=True):
            if day is None:
                keep.append(path)
                continue
            lo, span = datetime(day.year, day.month, day.day, tzinfo=UTC), timedelta(days=1)
            if hour is not None:
                lo, span = lo + timedelta(hours=int(hour)), timedelta(hours=1)
            if (end is None or lo < end) and (start is None or lo + span > start):
                keep.append(path)
        return [str(p) for p in keep]

    def uri(self, path: str) -> str:
        return f"{self.where.uri.rstrip('/')}/{path}"

    def covers(self, path: str) -> bool:
        """Whether the rows of this object (relative to the collection) are in the table; a
        copy an erasure made (`a.erased-1.jsonl`) is covered when its original is."""
        return original_name(path) in self.covered


def open_snapshot(where: TableLocation, prefix_covered: bool = True) -> Snapshot | None:
    """The table's latest version and the objects it covers; None when there is no table."""
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
        snap.covered = covered(where, table)
    return snap


def is_payload_table(table: Any) -> bool:
    description = table.metadata().description or ""
    try:
        return bool(orjson.loads(description).get("kind") == "payload")
    except (orjson.JSONDecodeError, AttributeError):
        return False


def committed_manifests(where: TableLocation, table: Any) -> list[str]:
    """Paths of the manifests whose run's commit is in this version of the table."""
    base = _join(where.path, MANIFESTS)
    found = []
    runs: dict[str, bool] = {}
    for info in where.storage.list(base):
        name = posixpath.basename(info.path)
        if not name.endswith(".json"):
            continue
        run = name.removesuffix(".json")
        if run not in runs:
            runs[run] = table.transaction_version(APP_PREFIX + run) is not None
        if runs[run]:
            found.append(info.path)
    return found


def covered(where: TableLocation, table: Any, partitions: Iterable[str] | None = None) -> set[str]:
    """Objects (relative to the collection folder) in the committed manifests (of these
    partition folders only, when given)."""
    paths = committed_manifests(where, table)
    if partitions is not None:
        wanted = set(partitions)
        base = _join(where.path, MANIFESTS) + "/"
        paths = [p for p in paths if posixpath.dirname(p[len(base) :]) in wanted]

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


# -- rows ------------------------------------------------------------------------------------


def file_schema(snap: Snapshot) -> pa.Schema:
    """The columns the data files hold (the table's, less its partition columns)."""
    parts = set(snap.table.metadata().partition_columns)
    schema = snap.schema()
    return pa.schema([f for f in schema if f.name not in parts])


def read_rows(
    snap: Snapshot,
    start: datetime | None,
    end: datetime | None,
    columns: list[str] | None = None,
) -> pa.Table:
    """The table's rows in [start, end), with load's columns: the user's (or those asked
    for that the table has), then correlationid, time, record_id."""
    import pyarrow.dataset as ds

    schema = file_schema(snap)
    files = snap.files(start, end)
    if isinstance(snap.where.storage, LocalStorage):
        filesystem: Any = None
        paths = [str(Path(snap.where.uri, f)) for f in files]
    else:
        import pyarrow.fs as pa_fs
        from deltalake.fs import DeltaStorageHandler

        handler = DeltaStorageHandler(snap.where.uri, snap.where.storage_options)
        filesystem, paths = pa_fs.PyFileSystem(handler), list(files)
    user = [f.name for f in schema if f.name not in (*ENVELOPE, *TABLE_ONLY)]
    if columns is not None:
        stored = {_RENAMED.get(n, n): n for n in user}
        user = [stored[c] for c in columns if c in stored]
    names = [*user, *ENVELOPE]
    if not paths:
        return schema.empty_table().select(names).rename_columns(_shown(names))
    dataset = ds.dataset(paths, schema=schema, format="parquet", filesystem=filesystem)
    when = None
    if start is not None:
        when = ds.field("time") >= pa.scalar(start, TIME_TYPE)
    if end is not None:
        below = ds.field("time") < pa.scalar(end, TIME_TYPE)
        when = below if when is None else when & below
    table = dataset.to_table(columns=names, filter=when)
    return table.rename_columns(_shown(names))


def _shown(names: list[str]) -> list[str]:
    return [_RENAMED.get(n, n) for n in names]


def decode_payload(table: pa.Table) -> Any:
    """A payload table's rows as load gives them: `data` back from its JSON text, the
    payload fields as Python values (object columns), the envelope typed."""
    import pandas as pd

    columns: dict[str, Any] = {}
    for name in table.column_names:
        values = table.column(name)
        if name == "data":
            columns[name] = pd.Series(
                [None if v is None else orjson.loads(v) for v in values.to_pylist()], dtype=object
            )
        elif name in ENVELOPE:
            columns[name] = values.to_pandas()
        else:
            columns[name] = pd.Series(values.to_pylist(), dtype=object)
    return pd.DataFrame(columns)
