"""JSON paths inside bodies (`paths: ["$.customer.address"]`), through python-jsonpath
(RFC 9535). Imported only when a deployment has path rules (the library takes ~0.1 s)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["apply_path", "compile_path"]


def compile_path(text: str) -> Any:
    """The compiled path, or ValueError with the parser's first line."""
    import jsonpath

    try:
        return jsonpath.compile(text)
    except jsonpath.JSONPathError as exc:
        raise ValueError(str(exc).strip().splitlines()[0]) from None


def apply_path(path: Any, data: Any, action: Callable[[Any], Any] | None) -> Any:
    """data with every value the path selects dropped (action None) or replaced by
    action(value); the root itself, when selected, becomes None or action(root)."""
    if not isinstance(data, dict | list):  # a text or number: nothing inside to select
        # (and the library would parse a str as JSON text)
        selects_root = str(path).strip() == "$"
        return data if not selects_root else None if action is None else action(data)
    matches = list(path.finditer(data))
    if not matches:
        return data
    # List items are removed from the highest index down, so the others keep their place.
    removals: list[tuple[Any, Any]] = []
    for match in matches:
        if match.parent is None or not match.parts:  # the root
            return None if action is None else action(data)
        container, key = match.parent.obj, match.parts[-1]
        if action is None:
            removals.append((container, key))
        else:
            container[key] = action(container[key])
    for container, key in sorted(
        removals, key=lambda item: item[1] if isinstance(item[1], int) else 0, reverse=True
    ):
        if isinstance(container, dict):
            container.pop(key, None)
        elif isinstance(container, list) and isinstance(key, int) and key < len(container):
            del container[key]
    return data
