"""A collection's rules, compiled once, applied to what is collected before the pipeline
accepts it (SPEC R13.1): tables from collect(), JSON bodies from the agent and payload
logging, the text of a body, a query string, an error message.

Names in drop/hash/mask match columns, and JSON object fields at any depth, in any case;
a split table (`{"columns": [...], "data": [[...]]}`, MLflow's dataframe_split) has its
columns matched too. Values not named by a rule are left as they are, except that
`patterns` scrub every text value.
"""

from __future__ import annotations

import datetime as _dt
import hmac
import os
import re
import sys
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from modeltap.errors import ConfigError
from modeltap.record import JSON
from modeltap.redact._detect import scrubber
from modeltap.redact._settings import WHERE, CollectionRules, RedactSettings

__all__ = ["DROP", "MIN_KEY_LENGTH", "Redactor", "compile_rules", "hash_value", "load_key"]

MIN_KEY_LENGTH = 16
DROP: Any = object()  # the action of a dropped name
_MASK = re.compile(r"^(first|last)(\d+)$")
_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
Action = Callable[[Any], Any]
_NESTED = (str, dict, list)  # what the walk looks into (other values pass as they are)


def value_text(value: Any) -> str | None:
    """The text a value is hashed or masked as; None for a missing value. 42, 42.0 and
    "42" give the same text, so an id hashes alike whatever type a table gave it."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        if value != value:  # NaN
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if value is None:
        return None
    if kind is dict or kind is list:
        return orjson.dumps(value, option=_SORTED, default=str).decode()
    pd = sys.modules.get("pandas")
    if pd is not None and (value is pd.NA or value is pd.NaT):
        return None
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return value_text(item())
    return str(value)


def hash_value(value: Any, key: bytes) -> str | None:
    """HMAC-SHA256 of the value's text under key, as 64 hex digits (None stays None)."""
    text = value_text(value)
    if text is None:
        return None
    return hmac.digest(key, text.encode(), "sha256").hex()


def _masker(style: str) -> Action:
    match = _MASK.match(style)
    side, keep = (match[1], int(match[2])) if match else ("last", 0)  # "all"

    def mask(value: Any) -> Any:
        text = value_text(value)
        if text is None:
            return None
        if len(text) <= keep:  # a value no longer than what is kept is masked whole
            return "*" * len(text)
        if side == "last":
            return "*" * (len(text) - keep) + text[len(text) - keep :]
        return text[:keep] + "*" * (len(text) - keep)

    return mask


def load_key(env: str) -> bytes:
    """The HMAC key from the environment variable `env`, or a ConfigError (never showing it)."""
    value = os.environ.get(env, "")
    where = f"{WHERE}.hash_key_env"
    if not value.strip():
        raise ConfigError(
            f"environment variable {env} is not set; it must hold the key of the hash rules "
            "(the same on every replica, e.g. made once with `openssl rand -hex 32`)",
            field=where,
        )
    if len(value) < MIN_KEY_LENGTH:
        raise ConfigError(
            f"environment variable {env} holds a key of {len(value)} characters; "
            f"use at least {MIN_KEY_LENGTH} (e.g. `openssl rand -hex 32`)",
            field=where,
        )
    return value.encode()


def compile_rules(settings: RedactSettings | None) -> dict[str, Redactor]:
    """A Redactor for each collection with rules (the key read once, here)."""
    if settings is None or not settings.collections:
        return {}
    needs_key = any(rules.uses_key for rules in settings.collections.values())
    key = load_key(settings.hash_key_env) if needs_key and settings.hash_key_env else None
    return {name: Redactor(rules, key) for name, rules in settings.collections.items()}


class Redactor:
    """One collection's rules, compiled. Thread-safe: it keeps no state between calls
    other than a small cache of table layouts."""

    def __init__(self, rules: CollectionRules, key: bytes | None = None):
        if rules.uses_key and key is None:
            raise ValueError("hash rules need a key")
        self.rules = rules
        self._hmac = hmac.new(key or b"", digestmod="sha256")
        actions: dict[str, Any] = {}
        for name in rules.drop:
            actions[name.lower()] = DROP
        for name in rules.hash:
            actions[name.lower()] = self.hash
        for name, style in rules.mask:
            actions[name.lower()] = _masker(style)
        self._actions = actions
        self._scrub = scrubber(rules.patterns) if rules.patterns else None
        self._paths: list[tuple[Any, Action | None]] = []
        if rules.paths:
            from modeltap.redact._paths import compile_path

            for path, action in rules.paths:
                self._paths.append((compile_path(path), self._path_action(action)))
        self._walks = bool(actions or self._scrub)
        self.layouts: dict[tuple[Any, ...], Any] = {}  # frame columns -> their actions
        self._key_actions: dict[tuple[Any, ...], list[Any]] = {}  # JSON object keys -> actions

    def _path_action(self, action: str) -> Action | None:
        if action == "drop":
            return None
        return self.hash if action == "hash" else _masker(action)

    def hash(self, value: Any) -> Any:
        """hash_value(value, key), from an HMAC whose keyed state is made once (1.4x faster)."""
        text = value_text(value)
        if text is None:
            return None
        mac = self._hmac.copy()
        mac.update(text.encode())
        return mac.hexdigest()

    def scrub(self, text: str) -> str:
        """text with what the patterns find replaced (as it is without patterns)."""
        return self._scrub(text) if self._scrub is not None else text

    # -- JSON values ----------------------------------------------------------------------

    def value(self, obj: Any) -> Any:
        """A JSON-like value (dicts, lists, scalars) with the rules applied; containers
        are rebuilt, the value given is not changed."""
        out = self._walk(obj) if self._walks else _copy(obj) if self._paths else obj
        for path, action in self._paths:
            out = apply_path(path, out, action)
        return out

    def _walk(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is str:
            return self._scrub(obj) if self._scrub is not None else obj
        if kind is dict:
            return self._object(obj)
        if kind is list:
            walk = self._walk
            return [walk(item) if type(item) in _NESTED else item for item in obj]
        return obj

    def _object(self, obj: dict[Any, Any]) -> dict[Any, Any]:
        keys = tuple(obj)
        actions = self._key_actions.get(keys)
        if actions is None:  # rows of one table share their keys: looked up once
            actions = [self.action(key) for key in keys]
            if len(self._key_actions) < 256:
                self._key_actions[keys] = actions
        split = _split_columns(obj) if "columns" in obj and "data" in obj else None
        scrub, walk = self._scrub, self._walk
        out: dict[Any, Any] = {}
        for (key, value), action in zip(obj.items(), actions, strict=True):
            if action is None:
                kind = type(value)
                if split is not None and key in ("columns", "data"):
                    out[key] = self._split(split, key, value)
                elif kind is str:
                    out[key] = value if scrub is None else scrub(value)
                elif kind is dict or kind is list:
                    out[key] = walk(value)
                else:
                    out[key] = value
            elif action is not DROP:
                out[key] = action(value)
        return out

    def _split(self, columns: list[str], key: str, value: list[Any]) -> list[Any]:
        """The columns or rows of a split table, with the column rules applied."""
        actions = [self._actions.get(name.lower()) for name in columns]
        kept = [i for i, action in enumerate(actions) if action is not DROP]
        if key == "columns":
            return [columns[i] for i in kept]
        steps = [(i, actions[i] or self._walk) for i in kept]
        return [[step(row[i]) for i, step in steps if i < len(row)] for row in value]

    # -- bodies ---------------------------------------------------------------------------

    def drops(self, media: str) -> bool:
        """Whether drop_bodies names this content type."""
        if not self.rules.drop_bodies:
            return False
        media = media.split(";")[0].strip().lower()
        kind = media.split("/")[0] + "/*"
        return any(t in (media, kind, "*/*") for t in self.rules.drop_bodies)

    def body(self, data: bytes, media: str) -> bytes:
        """JSON bytes (a body, or a text held as a JSON string) with the rules applied;
        `null` when drop_bodies names the type, or when it cannot be read back."""
        if self.drops(media):
            return b"null"
        if not self._walks and not self._paths:
            return data
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:  # e.g. an integer beyond 64 bits: keep nothing
            return b"null"
        return orjson.dumps(self.value(parsed))

    def payload(
        self, data: Any, kind: str, media: str, extra: dict[str, Any]
    ) -> tuple[Any, str, dict[str, Any]]:
        """A logged request's or response's (data, kind, extra) with the rules applied:
        the body (see docs/privacy.md for which bodies), the query string, the error."""
        extra = dict(extra)
        if isinstance(extra.get("path"), str):
            extra["path"] = self.query(extra["path"])
        if isinstance(extra.get("error"), str):
            extra["error"] = self.scrub(extra["error"])
        if kind == JSON:
            if self.drops(media):
                return b"null", JSON, {**extra, "redacted": "body"}
            return self.body(data, media), kind, extra
        textual = _textual(media)
        on_disk = not isinstance(data, bytes | bytearray)
        unread = on_disk and textual and (self._walks or bool(self._paths))
        if self.drops(media) or unread:
            if on_disk:
                data.close()
            why = "body" if not unread else "body over blob_threshold, not inspected"
            return b"null", JSON, {**extra, "redacted": why}
        return data, kind, extra

    def query(self, path: str) -> str:
        """A path's query string with the rules applied to its parameters."""
        base, mark, query = path.partition("?")
        if not mark or not self._walks:
            return path
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        out = []
        for name, value in pairs:
            action = self._actions.get(name.lower())
            if action is DROP:
                continue
            new = self.scrub(value) if action is None else action(value)
            out.append((name, "" if new is None else str(new)))
        if out == pairs:
            return path
        return f"{base}?{urllib.parse.urlencode(out)}"

    # -- tables ---------------------------------------------------------------------------

    def table(self, data: Any) -> tuple[bytes, str] | None:
        """The rows of a table collect() was given, redacted, as JSON (and its data type),
        or None when no rule can touch it (the caller then collects it as usual).
        TypeError for what is not a table, as collect() gives."""
        from modeltap import tabular
        from modeltap.redact._tables import frame_rows

        pd = sys.modules.get("pandas")
        if pd is not None and isinstance(data, pd.DataFrame):
            rows = frame_rows(self, data)
            return None if rows is None else (tabular.dumps(rows), tabular.PANDAS_TYPE)
        if hasattr(data, "to_pylist") and type(data).__module__.startswith("pyarrow"):
            return tabular.dumps(self.value(data.to_pylist())), tabular.PYARROW_TYPE
        if hasattr(data, "to_dicts") and type(data).__module__.startswith("polars"):
            return tabular.dumps(self.value(data.to_dicts())), tabular.POLARS_TYPE
        tabular.snapshot(data)  # raises the TypeError naming the type
        raise AssertionError("unreachable")  # pragma: no cover

    # -- what the table code needs --------------------------------------------------------

    def action(self, name: Any) -> Any:
        """The action of a column name: None (no rule), DROP, or a function of the value."""
        return self._actions.get(name.lower() if type(name) is str else str(name).lower())

    @property
    def scans(self) -> bool:
        return self._scrub is not None

    @property
    def has_paths(self) -> bool:
        return bool(self._paths)

    def scan_column(self, values: list[Any]) -> list[Any]:
        """A column's values with text scrubbed and nested values walked."""
        scrub = self._scrub
        if scrub is not None and values and all(type(v) is str for v in values):
            # One scan of the joined column instead of one per value: a match cannot cross
            # the separator, which no detector's pattern takes.
            joined = "\x00".join(values)
            if joined.count("\x00") == len(values) - 1:
                return scrub(joined).split("\x00")
        walk = self._walk
        return [
            walk(v) if (type(v) is str and scrub is not None) or type(v) in (dict, list) else v
            for v in values
        ]

    def apply_paths(self, obj: Any) -> Any:
        for path, action in self._paths:
            obj = apply_path(path, obj, action)
        return obj


def _split_columns(obj: Mapping[Any, Any]) -> list[str] | None:
    columns, data = obj.get("columns"), obj.get("data")
    if (
        type(columns) is list
        and type(data) is list
        and all(type(name) is str for name in columns)
        and all(type(row) is list for row in data)
    ):
        return columns
    return None


def _textual(media: str) -> bool:
    media = media.split(";")[0].strip().lower()
    return media.startswith("text/") or media.endswith(("/json", "+json"))


def _copy(obj: Any) -> Any:
    kind = type(obj)
    if kind is dict:
        return {k: _copy(v) for k, v in obj.items()}
    if kind is list:
        return [_copy(v) for v in obj]
    return obj


def apply_path(path: Any, data: Any, action: Action | None) -> Any:
    from modeltap.redact._paths import apply_path as apply

    return apply(path, data, action)
