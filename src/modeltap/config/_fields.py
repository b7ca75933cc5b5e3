"""Checks shared by every settings file (deployment, workspace, monitor specs, datastore
options): each bad value is one ConfigError naming the field and what is allowed."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from datetime import timedelta
from typing import Any

from modeltap.errors import ConfigError

__all__ = [
    "MOST_COUNT",
    "MOST_SECONDS",
    "parse_bool",
    "parse_datastore_uri",
    "parse_retention",
    "parse_sampling_rate",
]

# Bounds that keep every setting usable as a timeout or a size (1e300 seconds overflows
# every clock): a day for durations, 2**50 (a pebibyte) for counts and bytes.
MOST_SECONDS = 86400.0
MOST_COUNT = 2**50

_TRUE = {"true"}
_FALSE = {"false"}


def _suggest(key: str, allowed: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(allowed), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_keys(
    obj: dict[str, Any], allowed: AbstractSet[str], where: str, src: str | None
) -> None:
    for key in obj:
        if key not in allowed:
            raise ConfigError(
                f"unknown key{_suggest(str(key), allowed)}; allowed: {', '.join(sorted(allowed))}",
                field=f"{where}.{key}",
                source=src,
            )


def _mapping(value: Any, where: str, src: str | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"must be a mapping, got {type(value).__name__}", field=where, source=src)
    return value


def parse_bool(value: Any, where: str, src: str | None = None) -> bool:
    """'True', 'true' and true are on; 'False', 'false' and false are off (R2.2)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigError(
        f"{value!r} is not a boolean; allowed: true, false, 'True', 'False'",
        field=where,
        source=src,
    )


def parse_sampling_rate(
    value: Any, where: str = "data_collector.sampling_rate", src: str | None = None
) -> float:
    try:
        rate = float(value)
    except (TypeError, ValueError):
        rate = float("nan")
    if isinstance(value, bool) or not 0.0 <= rate <= 1.0:
        raise ConfigError(
            f"{value!r} is not a fraction; allowed: a number from 0.0 to 1.0",
            field=where,
            source=src,
        )
    return rate


_URI = re.compile(
    r"^azureml://(?:subscriptions/[^/]+/resource[gG]roups/[^/]+/"
    r"(?:providers/Microsoft\.MachineLearningServices/)?workspaces/[^/]+/)?"
    r"datastores/(?P<ds>[^/]+)/paths/(?P<path>.*)$"
)


def parse_datastore_uri(
    uri: str, where: str = "data.path", src: str | None = None
) -> tuple[str, str]:
    """(datastore, path) from azureml://datastores/<ds>/paths/<p> (workspace part ignored)."""
    match = _URI.match(uri.strip()) if isinstance(uri, str) else None
    if not match:
        raise ConfigError(
            f"{uri!r} is not a datastore URI; allowed: azureml://datastores/<datastore>/paths/<path>"
            " (optionally azureml://subscriptions/.../workspaces/<ws>/datastores/...)",
            field=where,
            source=src,
        )
    path = match["path"].strip("/")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise ConfigError(
                f"{uri!r} has an empty, '.' or '..' path segment", field=where, source=src
            )
    return match["ds"], path


# ISO 8601 durations PnYnMnWnDTnHnMnS: every part optional but one; the last part given
# may have a decimal fraction ('.' or ','). A year counts 365 days, a month 30
# (docs/privacy.md).
_NUMBER = r"[0-9]+(?:[.,][0-9]+)?"
_DURATION = re.compile(
    rf"P(?:(?P<years>{_NUMBER})Y)?(?:(?P<months>{_NUMBER})M)?"
    rf"(?:(?P<weeks>{_NUMBER})W)?(?:(?P<days>{_NUMBER})D)?"
    rf"(?:T(?=[0-9])(?:(?P<hours>{_NUMBER})H)?(?:(?P<minutes>{_NUMBER})M)?"
    rf"(?:(?P<seconds>{_NUMBER})S)?)?"
)
_DAYS_PER = {"years": 365, "months": 30, "weeks": 7, "days": 1}


def iso_duration(text: str) -> timedelta | None:
    """The timedelta an ISO 8601 duration stands for, or None when text is not one."""
    match = _DURATION.fullmatch(text)
    if match is None or not any(match.groups()):
        return None
    given = {unit: value for unit, value in match.groupdict().items() if value is not None}
    if any(not value.isdigit() for value in list(given.values())[:-1]):
        return None  # a fraction before the last part
    parts = {unit: float(value.replace(",", ".")) for unit, value in given.items()}
    days = sum(parts.pop(unit, 0.0) * count for unit, count in _DAYS_PER.items())
    try:
        return timedelta(days=days, **parts)
    except OverflowError:  # more days than a timedelta holds
        return None


def parse_retention(value: Any, src: str | None = None) -> timedelta | None:
    """data_collector.modeltap.retention: a positive ISO 8601 duration (P90D, P12W, PT36H;
    a month counts 30 days, a year 365)."""
    if value is None:
        return None
    text = value.strip().upper() if isinstance(value, str) else ""
    age = iso_duration(text)
    if age is None or age <= timedelta(0):
        raise ConfigError(
            f"{value!r} is not a positive ISO 8601 duration; e.g. P90D, P12W, PT36H, P1Y",
            field="data_collector.modeltap.retention",
            source=src,
        )
    return age
