"""What to read: an asset name, `name:version`, a datastore URI or a local folder, resolved
to one Storage and the collection folder inside it."""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

from modeltap.assets import Asset, Catalog
from modeltap.config import WorkspaceSettings, load_workspace, parse_datastore_uri
from modeltap.errors import ConfigError, NotFoundError
from modeltap.storage.base import Storage
from modeltap.storage.local import LocalStorage
from modeltap.storage.registry import open_datastore

# NotFoundError lives in modeltap.errors; importable from here as it always was.
__all__ = ["NotFoundError", "Source", "find_asset", "open_storage", "resolve", "suggest"]


@dataclass(frozen=True)
class Source:
    storage: Storage
    prefix: str  # the collection folder inside the storage, "" for its root
    label: str  # for messages: the asset, URI or folder as the user named it
    asset: Asset | None = None  # the data asset, when the source named one


def suggest(name: str, known: list[str], what: str) -> str:
    """' (did you mean 'x'?); known <what>: a, b, c' for an error message."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
    if not known:
        return hint
    shown = ", ".join(known[:12]) + (f", ... ({len(known)} in all)" if len(known) > 12 else "")
    return f"{hint} Known {what}: {shown}"


def resolve(source: str | os.PathLike[str], workspace: str | os.PathLike[str]) -> Source:
    if isinstance(source, os.PathLike):
        return _folder(Path(source))
    if not isinstance(source, str) or not source.strip():
        raise TypeError(
            "source must be an asset name, 'name:version', an azureml://datastores/... URI "
            f"or a folder path, got {source!r}"
        )
    text = source.strip()
    if text.startswith("azureml://"):
        ws = load_workspace(workspace)
        datastore, path = parse_datastore_uri(text, where="source")
        return Source(open_storage(ws, datastore), path, text)
    if "/" in text or "\\" in text or text.startswith((".", "~")):
        return _folder(Path(text).expanduser())
    ws = load_workspace(workspace)
    catalog = Catalog(ws.root)
    name, _, version = text.partition(":")
    if catalog.get(name, version or None) is None and Path(text).is_dir():
        return _folder(Path(text))
    asset = find_asset(catalog, text, ws)
    label = f"{asset.name}:{asset.version}"
    return Source(open_storage(ws, asset.datastore), asset.path, label, asset)


def find_asset(catalog: Catalog, text: str, ws: WorkspaceSettings) -> Asset:
    """The asset NAME or NAME:VERSION names (its highest version without one), or a
    NotFoundError that lists its versions or suggests the closest names."""
    name, _, version = text.strip().partition(":")
    asset = catalog.get(name, version or None)
    if asset is not None:
        return asset
    assets = catalog.list()
    versions = [a.version for a in assets if a.name == name]
    if versions:
        raise NotFoundError(
            f"data asset {name!r} has no version {version!r}; versions: {', '.join(versions)}"
        )
    names = sorted({a.name for a in assets})
    where = f"workspace {str(ws.root)!r}"
    if not names:
        raise NotFoundError(
            f"no data asset {name!r}: {where} has no assets (collections are registered when "
            "modeltap.configure() or `modeltap serve` starts; name another workspace, or give "
            "a folder path or an azureml://datastores/... URI)"
        )
    raise NotFoundError(f"no data asset {name!r} in {where}{suggest(name, names, 'assets')}")


def _folder(path: Path) -> Source:
    if not path.is_dir():
        raise NotFoundError(f"folder {str(path)!r} does not exist")
    return Source(LocalStorage(path, name="folder"), "", str(path))


def open_storage(ws: WorkspaceSettings, datastore: str) -> Storage:
    """The workspace's datastore of that name, opened; a ConfigError naming the known ones."""
    settings = ws.datastores.get(datastore)
    if settings is None:
        known = sorted(ws.datastores)
        raise ConfigError(
            f"unknown datastore {datastore!r}{suggest(datastore, known, 'datastores')} "
            f"(define it in {str(ws.root / 'workspace.yml')!r})",
            field="datastores",
        )
    return open_datastore(datastore, settings, ws.root)
