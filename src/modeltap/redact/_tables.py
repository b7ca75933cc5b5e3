"""pandas DataFrames through the rules, column by column: a column no rule names is taken
as it is (a list of its values), one named is mapped value by value, a text column is
scrubbed in one scan. The rows come out as the writer would make them
(`tabular.encode_frames`), so a redacted frame's line differs only where a rule applies.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from modeltap.redact._apply import DROP

if TYPE_CHECKING:
    from modeltap.redact._apply import Redactor

__all__ = ["frame_rows"]

_PLAIN = "biufcmM"  # numpy kinds that hold no text: numbers, booleans, times


def frame_rows(redactor: Redactor, frame: Any) -> list[Any] | None:
    """The frame's rows (dicts) with the rules applied, or None when no rule can apply:
    no column is named, there are no path rules, and no column can hold text or nested
    values."""
    names = _names(frame.columns)
    actions = redactor.layouts.get(names)
    if actions is None:
        if len(set(names)) < len(names):
            from modeltap import tabular

            tabular.snapshot(frame)  # raises the error naming the repeated columns
        actions = [redactor.action(name) for name in names]
        if len(redactor.layouts) < 64:
            redactor.layouts[names] = actions
    columns = _columns(frame)
    named = any(action is not None for action in actions) or redactor.has_paths
    if not named and not any(text for _, text in columns):
        return None
    kept_names, kept = [], []
    for name, action, (values, text) in zip(names, actions, columns, strict=True):
        if action is DROP:
            continue
        if action is not None:
            values = [action(value) for value in values]
        elif text:
            values = redactor.scan_column(values)
        kept_names.append(name)
        kept.append(values)
    if kept:
        rows = [dict(zip(kept_names, row, strict=True)) for row in zip(*kept, strict=True)]
    else:
        rows = [{} for _ in range(len(frame))]
    return rows if not redactor.has_paths else redactor.apply_paths(rows)


def _names(columns: Any) -> tuple[Any, ...]:
    """The column names; pandas 3's str Index iterates slowly (~3 us a name), its arrow
    array converts at once."""
    array: Any = getattr(columns, "array", None)
    strings = sys.modules["pandas"].StringDtype
    if isinstance(getattr(array, "dtype", None), strings) and hasattr(array, "__arrow_array__"):
        return tuple(array.__arrow_array__().to_pylist())
    return tuple(columns)


def _columns(frame: Any) -> list[tuple[list[Any], bool]]:
    """Each column's values as Python objects (those `to_numpy(dtype=object)` gives the
    writer) and whether it can hold text or nested values. Block by block: a block of
    numbers converts all its columns in one call."""
    numpy = sys.modules["numpy"]  # pandas is loaded, so numpy is
    strings = sys.modules["pandas"].StringDtype
    out: list[Any] = [None] * frame.shape[1]
    try:
        blocks = [(block.values, block.mgr_locs.as_array.tolist()) for block in frame._mgr.blocks]
    except AttributeError:  # pragma: no cover - other pandas versions
        blocks = [(None, list(range(frame.shape[1])))]
    for values, places in blocks:
        kind = getattr(getattr(values, "dtype", None), "kind", "O")
        text = kind not in _PLAIN
        if isinstance(values, numpy.ndarray) and values.ndim == 2 and kind not in "mM":
            for place, column in zip(places, values.tolist(), strict=True):
                out[place] = (column, text)
        elif (
            len(places) == 1
            and isinstance(getattr(values, "dtype", None), strings)
            and (hasattr(values, "__arrow_array__"))
        ):  # pandas 3's str columns: 7x faster than their tolist()
            out[places[0]] = (values.__arrow_array__().to_pylist(), text)
        elif len(places) == 1 and kind not in "mM" and hasattr(values, "tolist"):
            out[places[0]] = (values.tolist(), text)  # categories, nullable types: NA kept
        else:  # times (Timestamps, as the writer gets them), fallbacks
            for place in places:
                out[place] = (frame.iloc[:, place].tolist(), text)
    return out
