"""The data asset catalog (R6.1): a small SQLite file in the workspace.

Each enabled collection is registered as a `uri_folder` asset: a name, a version,
and the datastore folder its files land in.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from modeltap.errors import StorageError

__all__ = ["Asset", "Catalog"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS assets (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    type TEXT NOT NULL DEFAULT 'uri_folder',
    endpoint TEXT NOT NULL,
    deployment TEXT NOT NULL,
    collection TEXT NOT NULL,
    datastore TEXT NOT NULL,
    path TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (name, version)
)
"""


@dataclass(frozen=True)
class Asset:
    name: str
    version: str
    type: str
    endpoint: str
    deployment: str
    collection: str
    datastore: str
    path: str
    created: float

    @property
    def uri(self) -> str:
        return f"azureml://datastores/{self.datastore}/paths/{self.path}"


class Catalog:
    def __init__(self, workspace: str | Path):
        self.file = Path(workspace) / "catalog.sqlite"

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            # Several worker processes register at start-up: wait for the lock.
            with closing(sqlite3.connect(self.file, timeout=30)) as db, db:
                db.execute(_SCHEMA)
                yield db
        except sqlite3.Error as exc:
            raise StorageError(f"asset catalog: {exc}", path=str(self.file)) from exc

    def register(self, asset: Asset) -> None:
        """Add the asset, or refresh it when name:version already exists."""
        with self._db() as db:
            db.execute(
                "INSERT INTO assets VALUES (?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(name, version) DO UPDATE SET endpoint=excluded.endpoint, "
                "deployment=excluded.deployment, "
                "collection=excluded.collection, datastore=excluded.datastore, path=excluded.path",
                (
                    asset.name,
                    asset.version,
                    asset.type,
                    asset.endpoint,
                    asset.deployment,
                    asset.collection,
                    asset.datastore,
                    asset.path,
                    asset.created,
                ),
            )

    def list(self) -> list[Asset]:
        if not self.file.exists():
            return []
        with self._db() as db:
            rows = db.execute("SELECT * FROM assets ORDER BY name, version").fetchall()
        return [Asset(*row) for row in rows]

    def get(self, name: str, version: str | None = None) -> Asset | None:
        found = [a for a in self.list() if a.name == name and version in (None, a.version)]
        if not found:
            return None
        return max(
            found,
            key=lambda a: (
                a.version.isdigit(),
                int(a.version) if a.version.isdigit() else 0,
                a.version,
            ),
        )

    @staticmethod
    def make(
        name: str,
        version: str,
        endpoint: str,
        deployment: str,
        collection: str,
        datastore: str,
        path: str,
        type: str = "uri_folder",
    ) -> Asset:
        """type: "uri_folder" for a collection, "delta" for its compacted table."""
        return Asset(
            name,
            version,
            type,
            endpoint,
            deployment,
            collection,
            datastore,
            path,
            time.time(),
        )
