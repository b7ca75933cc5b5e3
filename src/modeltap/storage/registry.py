"""Datastore types by name, imported only when used (cloud SDKs are optional extras)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from modeltap.errors import ConfigError

if TYPE_CHECKING:
    from modeltap.config import DatastoreSettings
    from modeltap.storage.base import Storage

__all__ = ["open_datastore"]

_EXTRAS = {"azure_blob": "azure", "s3": "s3"}


def open_datastore(name: str, settings: DatastoreSettings, workspace: Path) -> Storage:
    """The Storage for one datastore of the workspace file.

    Cloud credentials are looked up here, not when the file is read, so a workspace file
    naming a cloud datastore still serves the others where its secrets are not set."""
    if settings.type == "local":
        from modeltap.storage.local import LocalStorage

        root = Path(settings.path)
        if not root.is_absolute():
            root = workspace / root
        return LocalStorage(root, name=name)
    if settings.type in _EXTRAS:
        src = str(workspace / "workspace.yml")
        try:
            from modeltap.storage import objectstore
        except ImportError as exc:
            if not (exc.name or "").startswith("obstore"):
                raise
            raise ConfigError(
                f"a {settings.type} datastore needs the obstore package: "
                f"pip install 'modeltap[{_EXTRAS[settings.type]}]'",
                field=f"datastores.{name}.type",
                source=src,
            ) from None
        if settings.type == "azure_blob":
            return objectstore.open_azure_blob(name, settings.options, src)
        return objectstore.open_s3(name, settings.options, src)
    raise ConfigError(
        f"datastore type {settings.type!r} is not supported; allowed: local, azure_blob, s3",
        field=f"datastores.{name}.type",
    )
