"""modeltap: capture what your models see and say in production.

from modeltap import Collector, BasicCorrelationContext

inputs = Collector(name="model_inputs")
ctx = inputs.collect(input_df)
"""

from modeltap.collector import Collector
from modeltap.context import BasicCorrelationContext, CorrelationContext
from modeltap.errors import (
    BufferFullError,
    CollectionDisabledError,
    CollectionError,
    CollectorLimitError,
    ConfigError,
    ModeltapError,
    StorageError,
)
from modeltap.runtime import configure, flush, shutdown, stats
from modeltap.version import __version__

__all__ = [
    "BasicCorrelationContext",
    "BufferFullError",
    "CollectionDisabledError",
    "CollectionError",
    "Collector",
    "CollectorLimitError",
    "ConfigError",
    "CorrelationContext",
    "ModeltapError",
    "StorageError",
    "__version__",
    "configure",
    "flush",
    "shutdown",
    "stats",
]
