"""The workspace folder and its file, workspace.yml: the datastores it defines (SPEC R7)."""

from __future__ import annotations

import os
from pathlib import Path

from modeltap.config._fields import _check_keys, _mapping
from modeltap.config._settings import DEFAULT_DATASTORE, DatastoreSettings, WorkspaceSettings
from modeltap.errors import ConfigError
from modeltap.layout import validate_name
from modeltap.yamlfile import read_yaml

__all__ = ["DEFAULT_WORKSPACE", "ENV_WORKSPACE", "default_workspace", "load_workspace"]

ENV_WORKSPACE = "MODELTAP_WORKSPACE"
DEFAULT_WORKSPACE = "modeltap-workspace"


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
    """The datastores a workspace file defines, each checked by its type's row."""
    # Here, not at the top: the table's rows use this package's field checks.
    from modeltap.storage.registry import DATASTORE_TYPES

    stores: dict[str, DatastoreSettings] = {}
    src = str(file)
    raw = read_yaml(file, "workspace file")
    _check_keys(raw, {"datastores", "smtp"}, "workspace", src)  # smtp: monitor alerts
    for name, spec in _mapping(raw.get("datastores"), "datastores", src).items():
        where = f"datastores.{name}"
        validate_name(str(name), where)
        spec = dict(_mapping(spec, where, src))
        kind = spec.pop("type", None)
        row = DATASTORE_TYPES.get(kind) if isinstance(kind, str) else None
        if row is None:
            raise ConfigError(
                f"{kind!r} is not a datastore type; allowed: {', '.join(DATASTORE_TYPES)}",
                field=f"{where}.type",
                source=src,
            )
        _check_keys(spec, row.keys, where, src)
        options = row.check(spec, where, src)
        stores[str(name)] = DatastoreSettings(row.name, str(options.pop("path", "")), options)
    return stores
