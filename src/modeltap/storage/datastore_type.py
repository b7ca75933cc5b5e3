"""One row of the datastore table (storage/registry.py): what a backend tells the registry.

A row lives beside its backend and imports no cloud SDK: the workspace file is checked
with `check` whether or not the SDK is installed; `open` imports it when a datastore of
the type is opened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modeltap.config import DatastoreSettings
    from modeltap.storage.base import Storage

__all__ = ["DatastoreType"]


@dataclass(frozen=True)
class DatastoreType:
    name: str  # the `type:` of a datastore in the workspace file
    keys: frozenset[str]  # the options it may give besides `type`
    # (options, "datastores.NAME", workspace file) -> validated options; a ConfigError
    # names the bad option. A "path" among them becomes DatastoreSettings.path.
    check: Callable[[dict[str, Any], str, str], dict[str, Any]]
    # (datastore name, its settings, workspace folder) -> its Storage
    open: Callable[[str, DatastoreSettings, Path], Storage]
    extra: str = ""  # pip install 'modeltap[EXTRA]' installs what `open` imports ...
    sdk: str = ""  # ... this package: an ImportError of it gives that install hint
