"""Settings files read safely: UTF-8, YAML's safe subset, no duplicate keys, and aliases
(`*name`) refused past a small budget instead of expanded (a "billion laughs" file).

Every problem is a ConfigError naming the file and, for YAML errors, the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from modeltap.errors import ConfigError

__all__ = ["MAX_YAML_VALUES", "read_yaml"]

# A file's values with every alias expanded: a deployment or workspace file has a few
# hundred. Aliases that expand past this (a "billion laughs" file) are refused unexpanded.
MAX_YAML_VALUES = 10_000


class _Loader(yaml.SafeLoader):
    """yaml.safe_load that refuses duplicate keys and aliases expanding past a budget."""

    def compose_document(self) -> Any:
        node = super().compose_document()
        _expanded_size(node)
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _value in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` then a key overrides it, as YAML says
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # unhashable: the base class reports it
            seen[key] = key_node.start_mark.line + 1
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {first})",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep)


def _expanded_size(root: Any) -> int:
    """How many values the node graph holds with aliases expanded; YAMLError past the
    budget or for an alias inside its own anchor (counted without expanding anything)."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Any) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise yaml.composer.ComposerError(
                None, None, "an alias refers to itself (a recursive anchor)", node.start_mark
            )
        active.add(key)
        children: list[Any] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_YAML_VALUES:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"aliases (*name) expand to more than {MAX_YAML_VALUES} values; "
                    "write the values out instead",
                    node.start_mark,
                )
        active.discard(key)
        sizes[key] = total
        return total

    return 0 if root is None else size(root)


def read_yaml(path: Path, what: str) -> dict[str, Any]:
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} not found", source=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror}", source=str(path)) from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{what} is not UTF-8 text: byte {exc.object[exc.start]:#04x} at line {line} "
            "(save it as UTF-8)",
            source=str(path),
        ) from None
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader
    except RecursionError:
        raise ConfigError("nested too deeply to be a settings file", source=str(path)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or exc
        raise ConfigError(f"not valid YAML{at}: {problem}", source=str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"must be a YAML mapping, got {type(data).__name__}", source=str(path))
    return data
