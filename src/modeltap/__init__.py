"""modeltap: capture what your models see and say in production.

from modeltap import Collector, BasicCorrelationContext

inputs = Collector(name="model_inputs")
ctx = inputs.collect(input_df)

modeltap.load(...) and modeltap.join(...) read collections back (modeltap.read); they
are imported on first use, so `import modeltap` stays light (no pyarrow or DuckDB).
"""

from typing import TYPE_CHECKING, Any

from modeltap.collector import Collector
from modeltap.context import BasicCorrelationContext, CorrelationContext
from modeltap.errors import (
    BadRequestError,
    BufferFullError,
    CollectionDisabledError,
    CollectionError,
    CollectorLimitError,
    ConfigError,
    ModeltapError,
    NotFoundError,
    ObjectExistsError,
    StorageError,
)
from modeltap.runtime import configure, flush, shutdown, stats
from modeltap.version import __version__

if TYPE_CHECKING:
    from modeltap.read import join, load

__all__ = [
    "BadRequestError",
    "BasicCorrelationContext",
    "BufferFullError",
    "CollectionDisabledError",
    "CollectionError",
    "Collector",
    "CollectorLimitError",
    "ConfigError",
    "CorrelationContext",
    "ModeltapError",
    "NotFoundError",
    "ObjectExistsError",
    "StorageError",
    "__version__",
    "configure",
    "flush",
    "join",
    "load",
    "shutdown",
    "stats",
]


_LAZY = {"load", "join"}  # from modeltap.read: pandas, pyarrow and DuckDB load with them


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from modeltap import read

        value = getattr(read, name)
        globals()[name] = value  # the next lookup does not come here
        return value
    raise AttributeError(f"module 'modeltap' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY)
