"""Datastore types by name, imported only when used (cloud SDKs are optional extras)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from modeltap.errors import ConfigError

if TYPE_CHECKING:
    from modeltap.config import DatastoreSettings
    from modeltap.storage.base import Storage

__all__ = ["open_datastore"]


def open_datastore(name: str, settings: DatastoreSettings, workspace: Path) -> Storage:
    """The Storage for one datastore of the workspace file."""
    if settings.type == "local":
        from modeltap.storage.local import LocalStorage

        root = Path(settings.path)
        if not root.is_absolute():
            root = workspace / root
        return LocalStorage(root, name=name)
    raise ConfigError(
        f"datastore type {settings.type!r} is not supported yet; allowed: local",
        field=f"datastores.{name}.type",
    )
