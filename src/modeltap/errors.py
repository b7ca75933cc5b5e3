"""The one exception tree of modeltap.

    ModeltapError
    ├── ConfigError          a setting, argument or file is wrong; names the field and the
    │                        allowed values (also a ValueError)
    ├── BadRequestError      a scoring request run() or the model cannot take (400, 405, 415)
    ├── CollectionError      collect() could not accept a record
    │   ├── CollectionDisabledError   no configuration, or the collection is not enabled
    │   ├── CollectorLimitError       a sixth collector in one process
    │   └── BufferFullError           the buffer is full and the overflow policy is "raise"
    ├── NotFoundError        a data asset, folder, collection or column asked for does not
    │                        exist; names it and suggests the closest existing names
    └── StorageError         reading or writing a datastore failed; names the path
        └── ObjectExistsError         a create-only write found the object already there

`TypeError` (not a ModeltapError) is raised for data that cannot be collected, as the
source platform's SDK does; a frame with repeated column names is a `ValueError`.
ConfigError is a ValueError too, so code that caught the ValueError a bad argument gave
before (`read.load(..., start=...)` after `end`, ...) still catches it.
"""

from __future__ import annotations

__all__ = [
    "BadRequestError",
    "BufferFullError",
    "CollectionDisabledError",
    "CollectionError",
    "CollectorLimitError",
    "ConfigError",
    "ModeltapError",
    "NotFoundError",
    "ObjectExistsError",
    "StorageError",
]


class ModeltapError(Exception):
    """Base of every error modeltap raises on purpose."""


class ConfigError(ModeltapError, ValueError):
    """A configuration value or an argument is wrong. The message names the field."""

    def __init__(self, message: str, *, field: str | None = None, source: str | None = None):
        self.message = message
        self.field = field
        self.source = source
        where = f"{source}: " if source else ""
        at = f"{field}: " if field else ""
        super().__init__(f"{where}{at}{message}")


class BadRequestError(ModeltapError):
    """A scoring request that run() or the model cannot take; `status` is its HTTP status."""

    def __init__(self, message: str, status: int = 400):
        self.message = message
        self.status = status
        super().__init__(message)


class CollectionError(ModeltapError):
    """collect() could not accept a record."""


class CollectionDisabledError(CollectionError):
    """Collection is not configured, or this collection is not enabled."""


class CollectorLimitError(CollectionError):
    """More collectors than a process may declare."""


class BufferFullError(CollectionError):
    """The in-memory buffer is full and the overflow policy is "raise"."""


class NotFoundError(ModeltapError):
    """A data asset, folder, collection or column that was asked for does not exist.

    The message names what was asked for and suggests the closest existing names."""


class StorageError(ModeltapError):
    """A datastore read or write failed. The message names the path."""

    def __init__(self, message: str, *, path: str | None = None):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class ObjectExistsError(StorageError):
    """A create-only write (`put(..., overwrite=False)`) found the object already there.

    Retried uploads use it to land an object exactly once."""
