"""What modeltap's other layers use of the reader: internal to modeltap, not user API.

summary and tail (listing, partitions, the newest lines), compact, erase and retention (the
Delta table side, the objects of a partition) and the web page build on the reader's pieces.
They import them from here, never from read's private modules, so those can change behind
this one list. Users read with `modeltap.read` (load, join, spark).
"""

from __future__ import annotations

from modeltap.read._delta import (
    APP_PREFIX,
    TABLE_ONLY,
    Snapshot,
    TableLocation,
    default_table_path,
    deltalake_module,
    folder_location,
    newest_partition,
    open_snapshot,
    partition_span,
)
from modeltap.read._delta import covered as covered_objects
from modeltap.read._delta import find as find_table
from modeltap.read._delta import location as table_location
from modeltap.read._lines import OLDEST, Key, Line, Reader, by_span, matches, order, time_range
from modeltap.read._load import read_objects
from modeltap.read._objects import THREADS, list_objects, progress_bar
from modeltap.read._parse import ENVELOPE, TIME_TYPE, py_time
from modeltap.read._range import (
    FUTURE_SLACK,
    MAX_PREFIXES,
    detect_depth,
    in_range,
    partition_of,
    plan_prefixes,
    to_utc,
)
from modeltap.read._source import Source, find_asset, open_storage, resolve, suggest
from modeltap.read._spark import ROW_KEY
from modeltap.read._tables import concat

__all__ = [
    "APP_PREFIX",
    "ENVELOPE",
    "FUTURE_SLACK",
    "MAX_PREFIXES",
    "OLDEST",
    "ROW_KEY",
    "TABLE_ONLY",
    "THREADS",
    "TIME_TYPE",
    "Key",
    "Line",
    "Reader",
    "Snapshot",
    "Source",
    "TableLocation",
    "by_span",
    "concat",
    "covered_objects",
    "default_table_path",
    "deltalake_module",
    "detect_depth",
    "find_asset",
    "find_table",
    "folder_location",
    "in_range",
    "list_objects",
    "matches",
    "newest_partition",
    "open_snapshot",
    "open_storage",
    "order",
    "partition_of",
    "partition_span",
    "plan_prefixes",
    "progress_bar",
    "py_time",
    "read_objects",
    "resolve",
    "suggest",
    "table_location",
    "time_range",
    "to_utc",
]
