"""The cloud datastore types' rows of the datastore table: azure_blob and s3.

Their options are checked when the workspace file is read, without the cloud SDK;
objectstore.py, which imports it (obstore, the azure and s3 extras), is imported only
when such a datastore is opened. Secrets never appear in the file: a connection string
is named by its environment variable, and URLs carrying credentials are refused
(SPEC R7.2).
"""

from __future__ import annotations

import math
import re
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modeltap.config._fields import MOST_SECONDS, parse_bool
from modeltap.errors import ConfigError
from modeltap.storage.datastore_type import DatastoreType

if TYPE_CHECKING:
    from modeltap.config import DatastoreSettings
    from modeltap.storage.base import Storage

__all__ = ["AZURE_BLOB", "CLIENT_KEYS", "S3"]

# Request settings every cloud datastore accepts (seconds, and retries before an error);
# objectstore.py holds their defaults.
CLIENT_KEYS = frozenset({"timeout", "connect_timeout", "max_retries", "retry_timeout"})
_MOST_RETRIES = 100
# The clouds' naming rules for a container and a bucket, and how an error states them.
_NAMES = {
    "container": (
        re.compile(r"^(?=.{3,63}$)[a-z0-9]+(?:-[a-z0-9]+)*$"),
        "3-63 lowercase letters, digits and single hyphens",
    ),
    "bucket": (
        re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"),
        "3-63 lowercase letters, digits, dots and hyphens",
    ),
}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_azure_blob(spec: dict[str, Any], where: str, src: str) -> dict[str, Any]:
    """The options of an azure_blob datastore: a container, and an account URL (credentials
    from the Azure credential chain) or the environment variable of a connection string."""
    options: dict[str, Any] = {"container": _name(spec, "container", where, src)}
    options.update(_azure_account(spec, where, src))
    if "use_azure_cli" in spec:
        options["use_azure_cli"] = parse_bool(spec["use_azure_cli"], f"{where}.use_azure_cli", src)
    return options | _common(spec, where, src)


def check_s3(spec: dict[str, Any], where: str, src: str) -> dict[str, Any]:
    """The options of an s3 datastore: a bucket, optionally its region and the endpoint of
    an S3-compatible service (credentials from the AWS environment)."""
    options: dict[str, Any] = {"bucket": _name(spec, "bucket", where, src)}
    if "region" in spec:
        options["region"] = _text(spec, "region", where, src, "a region name")
    if "endpoint_url" in spec:
        options["endpoint_url"] = _url(spec, "endpoint_url", where, src)
    return options | _common(spec, where, src)


def _name(spec: dict[str, Any], key: str, where: str, src: str) -> str:
    """A container or bucket name (`key`) that follows its cloud's rule."""
    name = _text(spec, key, where, src, f"a {key} name")
    pattern, rule = _NAMES[key]
    if not pattern.match(name) or ".." in name:
        raise ConfigError(
            f"{name!r} is not a {key} name; use {rule}", field=f"{where}.{key}", source=src
        )
    return name


def _azure_account(spec: dict[str, Any], where: str, src: str) -> dict[str, str]:
    given = [key for key in ("account_url", "connection_string_env") if key in spec]
    if len(given) != 1:
        raise ConfigError(
            "give exactly one of account_url (credentials from the Azure credential chain) "
            "or connection_string_env (the name of an environment variable)",
            field=f"{where}.{given[1] if given else 'account_url'}",
            source=src,
        )
    if "account_url" in spec:
        return {"account_url": _url(spec, "account_url", where, src)}
    env = spec["connection_string_env"]
    if not isinstance(env, str) or not _ENV_NAME.match(env):
        # Never echo the value: it may be the connection string itself.
        raise ConfigError(
            "must be the name of an environment variable (like "
            "AZURE_STORAGE_CONNECTION_STRING), not the connection string",
            field=f"{where}.connection_string_env",
            source=src,
        )
    return {"connection_string_env": env}


def _common(spec: dict[str, Any], where: str, src: str) -> dict[str, Any]:
    """The options both cloud types take: a folder `prefix` and the client's settings."""
    options: dict[str, Any] = {}
    if "prefix" in spec:
        prefix = spec["prefix"]
        parts = prefix.strip("/").split("/") if isinstance(prefix, str) else [""]
        if any(part in ("", ".", "..") for part in parts):
            raise ConfigError(
                f"{prefix!r} is not a folder; use names separated by '/', without '.' or '..'",
                field=f"{where}.prefix",
                source=src,
            )
        options["prefix"] = "/".join(parts)
    for key in sorted(CLIENT_KEYS & set(spec)):
        options[key] = _client_setting(spec[key], f"{where}.{key}", src, key == "max_retries")
    return options


def _client_setting(value: Any, field: str, src: str, integer: bool) -> int | float:
    """A positive number of seconds, or (integer) a whole number of retries from 0."""
    most = _MOST_RETRIES if integer else MOST_SECONDS
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and (value >= 0 if integer else value > 0)
    if not ok or value > most or (integer and not isinstance(value, int)):
        allowed = (
            f"a whole number from 0 up to {most:g}"
            if integer
            else f"a positive number of seconds up to {most:g}"
        )
        raise ConfigError(f"{value!r} is not allowed; use {allowed}", field=field, source=src)
    number: int | float = value
    return number


def _text(spec: dict[str, Any], key: str, where: str, src: str, what: str) -> str:
    value = spec.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"needs {what}", field=f"{where}.{key}", source=src)
    return value.strip()


def _url(spec: dict[str, Any], key: str, where: str, src: str) -> str:
    """An http(s) base URL without credentials in it (they come from the environment)."""
    value = _text(spec, key, where, src, "an http:// or https:// URL")
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = f"{parts.scheme}://{parts.hostname}" if parts.hostname else "the value"
        raise ConfigError(
            f"{shown} is not an http:// or https:// URL", field=f"{where}.{key}", source=src
        )
    if parts.query or parts.fragment or ";" in parts.path or parts.username or parts.password:
        # A SAS token or a password in the file would be a secret in clear (SPEC R7.2),
        # wherever in the URL it hides: ?sig=, #sig=, ;sig=.
        raise ConfigError(
            "must not carry credentials (a query string, #fragment, ;parameters or "
            "user:password); give them through the environment",
            field=f"{where}.{key}",
            source=src,
        )
    return value.rstrip("/")


def _open_azure_blob(name: str, settings: DatastoreSettings, workspace: Path) -> Storage:
    from modeltap.storage.objectstore import open_azure_blob  # obstore: the azure extra

    return open_azure_blob(name, settings.options, str(workspace / "workspace.yml"))


def _open_s3(name: str, settings: DatastoreSettings, workspace: Path) -> Storage:
    from modeltap.storage.objectstore import open_s3  # obstore: the s3 extra

    return open_s3(name, settings.options, str(workspace / "workspace.yml"))


_AZURE_KEYS = {"container", "account_url", "connection_string_env", "prefix", "use_azure_cli"}
_S3_KEYS = {"bucket", "region", "endpoint_url", "prefix"}

# The datastore table's rows (storage/registry.py).
AZURE_BLOB = DatastoreType(
    "azure_blob",
    frozenset(_AZURE_KEYS | CLIENT_KEYS),
    check_azure_blob,
    _open_azure_blob,
    extra="azure",
    sdk="obstore",
)
S3 = DatastoreType(
    "s3", frozenset(_S3_KEYS | CLIENT_KEYS), check_s3, _open_s3, extra="s3", sdk="obstore"
)
