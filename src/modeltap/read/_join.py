"""join(): inputs beside outputs beside ground truth, one row per request row (SPEC R6.3)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import pandas as pd

from modeltap.errors import ConfigError, NotFoundError
from modeltap.read._source import suggest

__all__ = ["join"]

log = logging.getLogger(__name__)

_ROW = "__modeltap_row__"  # a row's position among the rows of its correlation id
_TRUTH_ROW = "__modeltap_truth_row__"
_HOW = ("left", "inner", "outer", "right")


def join(
    inputs: Any,
    outputs: Any,
    ground_truth: Any = None,
    *,
    on: str = "correlationid",
    how: Literal["left", "inner", "outer", "right"] = "left",
    suffixes: Sequence[str] = ("_input", "_output", "_truth"),
) -> pd.DataFrame:
    """One table, one row per request row: inputs beside outputs, beside ground truth.

    Inputs and outputs pair by `correlationid` and by position within it: the n-th
    input row of a request pairs with its n-th output row (a request that scored three
    rows logged three input rows and three output rows under one id). Ground truth is
    matched by `on`: the correlation id, or an id column of your own that the inputs
    (or outputs) carry. When the ground truth has several rows per key, they pair by
    position too.

    how: which input/output rows to keep ("left": every input row, the default; "inner":
    only pairs; "outer"; "right"). Ground truth is always joined "left": rows whose
    label has not arrived keep NaN. suffixes: added to column names that appear in
    both inputs and outputs (such as `time` and `record_id`), and to ground-truth
    columns already present.
    """
    if how not in _HOW:
        raise ConfigError(f"how={how!r}; allowed: {', '.join(_HOW)}")
    if isinstance(suffixes, str) or len(suffixes) not in (2, 3):
        raise ConfigError(
            f"suffixes={suffixes!r}: give 2 or 3 strings (inputs, outputs[, ground truth])"
        )
    truth_suffix = suffixes[2] if len(suffixes) == 3 else "_truth"
    left = _frame(inputs, "inputs")
    right = _frame(outputs, "outputs")
    _require(left, "correlationid", "inputs")
    _require(right, "correlationid", "outputs")
    keys = ["correlationid", _ROW]
    if on != "correlationid" and on in left.columns and on in right.columns:
        keys.append(on)  # an id column both sides carry must match too
    left = left.assign(**{_ROW: _positions(left, "correlationid")})
    right = right.assign(**{_ROW: _positions(right, "correlationid")})
    merged = left.merge(right, on=keys, how=how, suffixes=(suffixes[0], suffixes[1]))
    unmatched = len(left) - int(
        left.set_index(keys[:2]).index.isin(right.set_index(keys[:2]).index).sum()
    )
    if unmatched:
        log.info("modeltap: %d of %d input rows have no output row", unmatched, len(left))
    if ground_truth is not None:
        merged = _with_truth(merged, _frame(ground_truth, "ground_truth"), on, truth_suffix)
    return merged.drop(columns=[c for c in (_ROW, _TRUTH_ROW) if c in merged.columns])


def _with_truth(merged: pd.DataFrame, truth: pd.DataFrame, on: str, suffix: str) -> pd.DataFrame:
    _require(truth, on, "ground_truth")
    if on not in merged.columns:
        known = [str(c) for c in merged.columns if c != _ROW]
        raise NotFoundError(
            f"ground truth is keyed by {on!r}, but neither inputs nor outputs have a column "
            f"{on!r}{suggest(on, known, 'columns')}"
        )
    keys = [on]
    if truth[on].duplicated().any():
        # Several labels per key: the n-th label goes with the n-th row of that key.
        truth = truth.assign(**{_TRUTH_ROW: _positions(truth, on)})
        rows = merged[_ROW] if on == "correlationid" else _positions(merged, on)
        merged = merged.assign(**{_TRUTH_ROW: rows})
        keys.append(_TRUTH_ROW)
    out = merged.merge(truth, on=keys, how="left", suffixes=("", suffix))
    found = merged.set_index(keys).index.isin(truth.set_index(keys).index)
    missing = len(merged) - int(found.sum())
    if missing:
        log.info("modeltap: %d of %d rows have no ground truth", missing, len(merged))
    return out


def _positions(frame: pd.DataFrame, key: str) -> pd.Series:
    return frame.groupby(key, sort=False, dropna=False).cumcount()


def _frame(value: Any, what: str) -> pd.DataFrame:
    if isinstance(value, pd.DataFrame):
        return value
    to_pandas = getattr(value, "to_pandas", None)  # a pyarrow Table
    if callable(to_pandas):
        frame = to_pandas()
        if isinstance(frame, pd.DataFrame):
            return frame
    raise TypeError(f"{what} must be a pandas DataFrame (or a pyarrow Table), got {type(value)}")


def _require(frame: pd.DataFrame, column: str, what: str) -> None:
    if column not in frame.columns:
        known = [str(c) for c in frame.columns]
        raise NotFoundError(f"{what} has no column {column!r}{suggest(column, known, 'columns')}")
