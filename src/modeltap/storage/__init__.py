"""Datastores: one small interface, one implementation per backend."""

from modeltap.storage.base import ObjectInfo, Storage
from modeltap.storage.local import LocalStorage
from modeltap.storage.registry import open_datastore

__all__ = ["LocalStorage", "ObjectInfo", "Storage", "open_datastore"]
