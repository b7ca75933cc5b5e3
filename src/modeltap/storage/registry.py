"""The datastore table (as fsspec's registry): each `type:` of a workspace file, one row.

A row (storage/datastore_type.py) lives beside its backend: local.py for `local`,
cloud.py for `azure_blob` and `s3`. It holds the options the type takes and their
checks, how to open it, and the extra that installs its SDK; the SDK is imported only
when a datastore is opened, so `import modeltap` and reading a workspace file need none.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from modeltap.errors import ConfigError
from modeltap.storage.cloud import AZURE_BLOB, S3
from modeltap.storage.datastore_type import DatastoreType
from modeltap.storage.local import LOCAL

if TYPE_CHECKING:
    from modeltap.config import DatastoreSettings
    from modeltap.storage.base import Storage

__all__ = ["DATASTORE_TYPES", "DatastoreType", "open_datastore"]

DATASTORE_TYPES: dict[str, DatastoreType] = {row.name: row for row in (LOCAL, AZURE_BLOB, S3)}


def open_datastore(name: str, settings: DatastoreSettings, workspace: Path) -> Storage:
    """The Storage for one datastore of the workspace file.

    Cloud credentials are looked up here, not when the file is read, so a workspace file
    naming a cloud datastore still serves the others where its secrets are not set."""
    row = DATASTORE_TYPES.get(settings.type)
    if row is None:
        raise ConfigError(
            f"datastore type {settings.type!r} is not supported; "
            f"allowed: {', '.join(DATASTORE_TYPES)}",
            field=f"datastores.{name}.type",
        )
    try:
        return row.open(name, settings, workspace)
    except ImportError as exc:
        if not row.sdk or not (exc.name or "").startswith(row.sdk):
            raise
        raise ConfigError(
            f"a {row.name} datastore needs the {row.sdk} package: "
            f"pip install 'modeltap[{row.extra}]'",
            field=f"datastores.{name}.type",
            source=str(workspace / "workspace.yml"),
        ) from None
