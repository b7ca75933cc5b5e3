"""Read collected data back (SPEC R6.2, R6.3).

    from modeltap import read

    inputs = read.load("my_endpoint-blue-model_inputs", start="2026-11-25T10:00Z")
    outputs = read.load("my_endpoint-blue-model_outputs", start="2026-11-25T10:00Z")
    table = read.join(inputs, outputs, ground_truth=labels)

`load` resolves an asset (or a datastore URI, or a local folder) through the
workspace, lists only the partition folders that the time range touches, and reads
those objects with DuckDB (one parallel query, _duck.py; a regular dependency), or with
pyarrow's JSON reader (_parse.py) where DuckDB cannot, expanding the `data` lists into rows. See
docs/reading.md.

Everything else here is private; modeltap's other layers use the reader through
modeltap.read.shared (not user API).
"""

# _parse first: without pyarrow, its ImportError says how to install it.
from modeltap.read import _parse  # noqa: F401  # isort: skip
from modeltap.errors import NotFoundError
from modeltap.read._join import join
from modeltap.read._load import SKIPPED, load
from modeltap.read._spark import spark

__all__ = ["SKIPPED", "NotFoundError", "join", "load", "spark"]
