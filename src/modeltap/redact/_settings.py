"""The redaction rules of a deployment file, validated (SPEC R13.1).

    data_collector:
      modeltap:
        redact:
          hash_key_env: MODELTAP_HASH_KEY       # the variable holding the HMAC key
          collections:
            model_inputs:
              drop: [ssn]
              hash: [email, customer_id]
              mask: {card_number: last4}
              patterns: [email, credit_card, phone]
            request:
              paths: ["$.customer.address"]
              drop_bodies: ["image/*"]

Pure checking: every bad rule is one ConfigError naming its field; the key itself is
read from the environment when the rules are compiled (see _apply.py), never here.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from modeltap.errors import ConfigError

__all__ = ["DETECTORS", "CollectionRules", "RedactSettings", "parse_redact"]

WHERE = "data_collector.modeltap.redact"
DETECTORS = ("email", "credit_card", "phone")
_RULE_KEYS = ("drop", "hash", "mask", "patterns", "paths", "drop_bodies")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MASK = re.compile(r"^(?:(first|last)([1-9][0-9]?)|all)$")
_MEDIA = re.compile(r"^(?:\*/\*|[a-z0-9][a-z0-9!#$&^_.+-]*/(?:\*|[a-z0-9][a-z0-9!#$&^_.+-]*))$")


@dataclass(frozen=True)
class CollectionRules:
    """One collection's rules. Names match columns and JSON fields (any depth), in any case."""

    drop: tuple[str, ...] = ()
    hash: tuple[str, ...] = ()
    mask: tuple[tuple[str, str], ...] = ()  # (name, style): "last4", "first2", "all"
    patterns: tuple[str, ...] = ()  # detectors scrubbing free text
    paths: tuple[tuple[str, str], ...] = ()  # (JSONPath, action): "drop", "hash" or a mask
    drop_bodies: tuple[str, ...] = ()  # content types whose bodies are not kept

    @property
    def uses_key(self) -> bool:
        return bool(self.hash) or any(action == "hash" for _, action in self.paths)

    @property
    def field_rules(self) -> bool:
        """Rules that need to see fields: they cannot apply to a body that is not JSON."""
        return bool(self.drop or self.hash or self.mask or self.paths)


@dataclass(frozen=True)
class RedactSettings:
    hash_key_env: str | None = None
    collections: dict[str, CollectionRules] = field(default_factory=dict)


def _suggest(key: str, allowed: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(allowed), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _error(message: str, where: str, src: str | None) -> ConfigError:
    return ConfigError(message, field=where, source=src)


def _names(value: Any, where: str, src: str | None) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _error("must be a list of names, like [email, customer_id]", where, src)
    return tuple(v.strip() for v in value)


def _mask_style(value: Any, where: str, src: str | None) -> str:
    if not isinstance(value, str) or not _MASK.match(value):
        raise _error(
            f"{value!r} is not a mask; allowed: last<N> or first<N> (N 1-99, e.g. last4), all",
            where,
            src,
        )
    return value


def _paths(value: Any, where: str, src: str | None) -> tuple[tuple[str, str], ...]:
    if isinstance(value, list):
        items = [(path, "drop") for path in value]
    elif isinstance(value, dict):
        items = list(value.items())
    else:
        raise _error(
            "must be a list of JSON paths (dropped) or a mapping of JSON path to "
            "drop, hash or a mask like last4",
            where,
            src,
        )
    from modeltap.redact._paths import compile_path  # python-jsonpath, loaded only here

    out = []
    for path, action in items:
        at = f"{where}[{path!r}]" if isinstance(value, dict) else where
        if not isinstance(path, str) or not path.startswith("$"):
            raise _error(
                f"{path!r} is not a JSON path; write it from the root, like $.customer.address",
                at,
                src,
            )
        try:
            compile_path(path)
        except ValueError as exc:
            raise _error(f"{path!r} is not a JSON path: {exc}", at, src) from None
        if action not in ("drop", "hash"):
            _mask_style(action, at, src)
        out.append((path, str(action)))
    return tuple(out)


def _rules(raw: Any, where: str, src: str | None) -> CollectionRules:
    if raw is None:
        return CollectionRules()
    if not isinstance(raw, dict):
        raise _error(f"must be a mapping of rules ({', '.join(_RULE_KEYS)})", where, src)
    for key in raw:
        if key not in _RULE_KEYS:
            raise _error(
                f"unknown rule{_suggest(str(key), _RULE_KEYS)}; allowed: {', '.join(_RULE_KEYS)}",
                f"{where}.{key}",
                src,
            )
    values: dict[str, Any] = {}
    seen: dict[str, str] = {}  # lowercased name -> the rule that has it
    for rule in ("drop", "hash"):
        if rule in raw:
            values[rule] = _names(raw[rule], f"{where}.{rule}", src)
            for name in values[rule]:
                _once(name, rule, seen, f"{where}.{rule}", src)
    if "mask" in raw:
        mask = raw["mask"]
        if not isinstance(mask, dict) or not mask:
            raise _error(
                "must be a mapping of name to mask, like {card_number: last4}", f"{where}.mask", src
            )
        pairs = []
        for name, style in mask.items():
            at = f"{where}.mask.{name}"
            if not isinstance(name, str) or not name.strip():
                raise _error("must be a column or field name", at, src)
            pairs.append((name.strip(), _mask_style(style, at, src)))
            _once(name.strip(), "mask", seen, at, src)
        values["mask"] = tuple(pairs)
    if "patterns" in raw:
        found = raw["patterns"]
        at = f"{where}.patterns"
        if not isinstance(found, list) or not found:
            raise _error(f"must be a list of detectors; allowed: {', '.join(DETECTORS)}", at, src)
        for name in found:
            if name not in DETECTORS:
                raise _error(
                    f"unknown detector {name!r}{_suggest(str(name), DETECTORS)}; "
                    f"allowed: {', '.join(DETECTORS)}",
                    at,
                    src,
                )
        values["patterns"] = tuple(dict.fromkeys(found))
    if "paths" in raw:
        values["paths"] = _paths(raw["paths"], f"{where}.paths", src)
    if "drop_bodies" in raw:
        types = raw["drop_bodies"]
        at = f"{where}.drop_bodies"
        if not isinstance(types, list) or not all(
            isinstance(t, str) and _MEDIA.match(t.strip().lower()) for t in types
        ):
            raise _error(
                "must be a list of content types, like [image/*, application/octet-stream]",
                at,
                src,
            )
        values["drop_bodies"] = tuple(t.strip().lower() for t in types)
    return CollectionRules(**values)


def _once(name: str, rule: str, seen: dict[str, str], where: str, src: str | None) -> None:
    other = seen.setdefault(name.lower(), rule)
    if other != rule:
        raise _error(
            f"{name!r} is already in the {other} rule; give each name one rule", where, src
        )


def parse_redact(raw: Any, declared: Iterable[str], src: str | None = None) -> RedactSettings:
    """Validated rules from the `redact` block; `declared` are the collections of the file
    (a rule for a name that is not one would never apply: most likely a typo)."""
    if raw is None:
        return RedactSettings()
    if not isinstance(raw, dict):
        raise _error("must be a mapping with hash_key_env and collections", WHERE, src)
    allowed = ("hash_key_env", "collections")
    for key in raw:
        if key not in allowed:
            raise _error(
                f"unknown key{_suggest(str(key), allowed)}; allowed: {', '.join(allowed)}",
                f"{WHERE}.{key}",
                src,
            )
    env = raw.get("hash_key_env")
    if env is not None and (not isinstance(env, str) or not _ENV_NAME.match(env)):
        # Never echo the value: it may be the key itself.
        raise _error(
            "must be the name of an environment variable holding the key (like "
            "MODELTAP_HASH_KEY), never the key",
            f"{WHERE}.hash_key_env",
            src,
        )
    collections = raw.get("collections")
    if collections is None:
        collections = {}
    if not isinstance(collections, dict):
        raise _error("must be a mapping of collection name to rules", f"{WHERE}.collections", src)
    names = [str(name) for name in declared]
    rules: dict[str, CollectionRules] = {}
    for name, spec in collections.items():
        where = f"{WHERE}.collections.{name}"
        if str(name) not in names:
            raise _error(
                f"{name!r} is not a collection of data_collector.collections"
                f"{_suggest(str(name), names)}; declared: {', '.join(sorted(names)) or 'none'}",
                where,
                src,
            )
        rules[str(name)] = _rules(spec, where, src)
    users = [name for name, r in rules.items() if r.uses_key]
    if users and env is None:
        raise _error(
            f"is required by the hash rules of {', '.join(users)}: name the environment "
            "variable that holds the HMAC key",
            f"{WHERE}.hash_key_env",
            src,
        )
    return RedactSettings(env, rules)
