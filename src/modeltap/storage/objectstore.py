"""Azure Blob Storage containers and S3 buckets as datastores, through obstore (SPEC R7).

Secrets (account keys, SAS tokens, AWS secret keys) come from the environment or the
cloud's credential chain, never from the workspace file, and never appear in an error.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import obstore
from obstore.exceptions import AlreadyExistsError, PreconditionError
from obstore.store import AzureStore, S3Store

from modeltap.errors import ConfigError, ModeltapError, ObjectExistsError, StorageError
from modeltap.storage.base import ObjectInfo, Storage

if TYPE_CHECKING:
    from obstore.store import AzureConfig, ClientConfig, ObjectStore, RetryConfig, S3Config

__all__ = [
    "AZURITE_ACCOUNT",
    "AZURITE_KEY",
    "ObjectStoreStorage",
    "open_azure_blob",
    "open_s3",
    "parse_connection_string",
    "redact",
]

# The storage emulator's well-known development account (public, documented by Azure).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
_AZURITE_ENDPOINT = f"http://127.0.0.1:10000/{AZURITE_ACCOUNT}"

# Environment variables the clouds' credential chains read that hold secrets.
_SECRET_ENV = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_MASTER_KEY",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_CLIENT_SECRET",
    "AZURE_CLIENT_SECRET",
    "AZURE_STORAGE_TOKEN",
)
_SECRET_FIELD = re.compile(
    r"(?i)\b(AccountKey|SharedAccessSignature|SharedAccessKey|sig|X-Amz-Signature"
    r"|X-Amz-Credential|X-Amz-Security-Token|(?:aws_)?secret_access_key|session_token"
    r"|account_key|access_key|sas_key|sas_token|client_secret|password|token)"
    r"(\"?\s*[=:]\s*\"?)[^\s;&\"',}]+"
)
_AUTH_HEADER = re.compile(r"(?i)\b(SharedKey(?:Lite)?\s+[^:\s]+:|Bearer\s+|Signature=)[^\s,;&\"']+")
_XML_CODE = re.compile(r"<Code>([^<]{1,80})</Code>")

# Short retries: the pipeline retries failed commits with its own backoff, and its shutdown
# deadline must not wait out a client's minutes of retrying (obstore's default is 180 s).
_DEFAULTS = {"timeout": 60.0, "connect_timeout": 5.0, "max_retries": 3, "retry_timeout": 20.0}


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """text with known secret values and anything shaped like a credential replaced by ***."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            for form in {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote(secret)}:
                text = text.replace(form, "***")
    text = _SECRET_FIELD.sub(lambda m: f"{m[1]}{m[2]}***", text)
    return _AUTH_HEADER.sub(lambda m: f"{m[1]}***", text)


def _env_secrets() -> list[str]:
    return [os.environ[name] for name in _SECRET_ENV if os.environ.get(name)]


def parse_connection_string(text: str, where: str = "connection string") -> dict[str, str]:
    """Key=Value;... of an Azure Storage connection string, keys as Azure spells them.

    UseDevelopmentStorage=true stands for the local emulator's account. Errors name
    where the string came from and never echo it."""
    known = {
        key.lower(): key
        for key in (
            "DefaultEndpointsProtocol",
            "AccountName",
            "AccountKey",
            "SharedAccessSignature",
            "BlobEndpoint",
            "EndpointSuffix",
            "UseDevelopmentStorage",
        )
    }
    fields: dict[str, str] = {}
    for number, part in enumerate(text.strip().strip(";").split(";"), 1):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise ValueError(
                f"{where} is not a connection string: part {number} is not Key=Value "
                "(expected AccountName=...;AccountKey=...;BlobEndpoint=...)"
            )
        name = known.get(key.strip().lower())
        if name:
            fields[name] = value.strip()
    if fields.get("UseDevelopmentStorage", "").lower() == "true":
        fields = {
            "AccountName": AZURITE_ACCOUNT,
            "AccountKey": AZURITE_KEY,
            "BlobEndpoint": _AZURITE_ENDPOINT,
            **{k: v for k, v in fields.items() if k != "UseDevelopmentStorage"},
        }
    if not fields.get("AccountKey") and not fields.get("SharedAccessSignature"):
        raise ValueError(f"{where} has neither AccountKey nor SharedAccessSignature")
    if fields.get("AccountKey"):
        try:
            base64.b64decode(fields["AccountKey"], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{where}: AccountKey is not base64") from None
    if not fields.get("AccountName") and not fields.get("BlobEndpoint"):
        raise ValueError(f"{where} has neither AccountName nor BlobEndpoint")
    if not fields.get("BlobEndpoint"):
        protocol = fields.get("DefaultEndpointsProtocol", "https")
        suffix = fields.get("EndpointSuffix", "core.windows.net")
        fields["BlobEndpoint"] = f"{protocol}://{fields['AccountName']}.blob.{suffix}"
    fields["BlobEndpoint"] = fields["BlobEndpoint"].rstrip("/")
    if not fields.get("AccountName"):
        fields["AccountName"] = _account_of(fields["BlobEndpoint"])
    return fields


def _account_of(url: str) -> str:
    """The account of https://ACCOUNT.blob.core.windows.net or http://host:port/ACCOUNT."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path.strip("/")
    if path:  # an emulator or a custom domain: the account is the first path segment
        return path.split("/")[0]
    return (parts.hostname or "").split(".")[0]


def _client(options: Mapping[str, Any], url: str) -> tuple[ClientConfig, RetryConfig]:
    values = {**_DEFAULTS, **{k: v for k, v in options.items() if k in _DEFAULTS}}
    client: ClientConfig = {
        "timeout": timedelta(seconds=values["timeout"]),
        "connect_timeout": timedelta(seconds=values["connect_timeout"]),
        "allow_http": url.startswith("http://"),
    }
    retry: RetryConfig = {
        "max_retries": int(values["max_retries"]),
        "retry_timeout": timedelta(seconds=values["retry_timeout"]),
    }
    return client, retry


def open_azure_blob(name: str, options: Mapping[str, Any], src: str | None = None) -> Storage:
    """A container of Azure Blob Storage (or Azurite), from a workspace file's options."""
    where = f"datastores.{name}"
    container = str(options["container"])
    secrets = _env_secrets()
    config: AzureConfig = {}
    if "connection_string_env" in options:
        env = str(options["connection_string_env"])
        value = os.environ.get(env, "")
        if not value.strip():
            raise ConfigError(
                f"environment variable {env} is not set",
                field=f"{where}.connection_string_env",
                source=src,
            )
        secrets.append(value)
        try:
            fields = parse_connection_string(value, f"environment variable {env}")
        except ValueError as exc:
            raise ConfigError(
                redact(str(exc), secrets), field=f"{where}.connection_string_env", source=src
            ) from None
        endpoint = fields["BlobEndpoint"]
        config["account_name"] = fields["AccountName"]
        if fields.get("AccountKey"):
            config["account_key"] = fields["AccountKey"]
            secrets.append(fields["AccountKey"])
        else:
            config["sas_key"] = fields["SharedAccessSignature"].lstrip("?")
            secrets.append(config["sas_key"])
    else:
        endpoint = str(options["account_url"])
        config["account_name"] = _account_of(endpoint)
        if options.get("use_azure_cli"):
            config["use_azure_cli"] = True
    client, retry = _client(options, endpoint)
    prefix = options.get("prefix") or None
    try:
        store = AzureStore(
            container,
            prefix=prefix,
            config={**config, "endpoint": endpoint},
            client_options=client,
            retry_config=retry,
        )
    except Exception as exc:
        raise ConfigError(
            f"cannot set up the Azure client: {_summary(exc, secrets)}", field=where, source=src
        ) from None
    return ObjectStoreStorage(store, name, f"{endpoint}/{container}", prefix, secrets)


def open_s3(name: str, options: Mapping[str, Any], src: str | None = None) -> Storage:
    """A bucket of S3 or an S3-compatible service; credentials from the AWS environment."""
    bucket = str(options["bucket"])
    endpoint = options.get("endpoint_url")
    secrets = _env_secrets()
    client, retry = _client(options, str(endpoint or "https://"))
    config: S3Config = {}
    if options.get("region"):
        config["region"] = str(options["region"])
    if endpoint:
        config["endpoint"] = str(endpoint)
    prefix = options.get("prefix") or None
    try:
        store = S3Store(
            bucket,
            prefix=prefix,
            config=config,
            client_options=client,
            retry_config=retry,
        )
    except Exception as exc:
        raise ConfigError(
            f"cannot set up the S3 client: {_summary(exc, secrets)}",
            field=f"datastores.{name}",
            source=src,
        ) from None
    return ObjectStoreStorage(store, name, f"s3://{bucket}", prefix, secrets)


def _summary(exc: BaseException, secrets: Iterable[str]) -> str:
    """One redacted line from an obstore error (which carries a long debug dump)."""
    text = redact(str(exc), secrets)  # before cutting: a cut secret would not match
    first = text.strip().split("\n", 1)[0].split(": <?xml", 1)[0]
    code = _XML_CODE.search(text)
    if code and code[1] not in first:
        first = f"{first} ({code[1]})"
    if len(first) > 400:
        first = first[:400] + "..."
    return f"{type(exc).__name__}: {first}"


class ObjectStoreStorage(Storage):
    """One container or bucket (optionally a folder in it) as a Storage.

    The obstore client is thread-safe and keeps its connections, so one instance serves
    the pipeline's writer and the reader's threads alike."""

    def __init__(
        self,
        store: ObjectStore,
        name: str,
        base_url: str,
        prefix: str | None = None,
        secrets: Iterable[str] = (),
    ):
        self._store = store
        self.name = name
        self._base = base_url.rstrip("/")
        self._prefix = prefix.strip("/") if prefix else ""
        self._secrets = tuple(s for s in secrets if s)

    def _key(self, path: str, *, allow_empty: bool = False) -> str:
        parts = [p for p in path.split("/") if p]
        if any(p in (".", "..") or "\\" in p or "\x00" in p for p in parts):
            raise StorageError("path escapes the datastore root", path=redact(path, self._secrets))
        if not parts and not allow_empty:
            raise StorageError("empty path", path=self.url(""))
        return "/".join(parts)

    def _error(self, exc: Exception, action: str, key: str) -> StorageError:
        where = self.url(key)
        if isinstance(exc, AlreadyExistsError | PreconditionError) and action == "create":
            return ObjectExistsError("already exists", path=where)
        if isinstance(exc, FileNotFoundError):
            what = "not found" if action == "read" else "container or bucket not found"
            return StorageError(what, path=where)
        verb = {"create": "write", "write": "write", "read": "read", "list": "list"}.get(
            action, action
        )
        return StorageError(f"{verb} failed: {_summary(exc, self._secrets)}", path=where)

    def put(self, path: str, data: bytes, *, overwrite: bool = True) -> None:
        key = self._key(path)
        action = "write" if overwrite else "create"
        try:
            obstore.put(self._store, key, data, mode="overwrite" if overwrite else "create")
        except ModeltapError:
            raise
        except Exception as exc:
            raise self._error(exc, action, key) from None

    def get(self, path: str) -> bytes:
        key = self._key(path)
        try:
            return bytes(obstore.get(self._store, key).bytes())
        except Exception as exc:
            raise self._error(exc, "read", key) from None

    def delete(self, path: str) -> None:
        key = self._key(path)
        try:
            obstore.delete(self._store, key)
        except FileNotFoundError:  # Azure says so for a missing blob; S3 does not
            return
        except Exception as exc:
            raise self._error(exc, "delete", key) from None

    def delete_many(self, paths: Iterable[str]) -> None:
        """In bulk requests (S3 DeleteObjects, Azure Blob Batch); when a batch fails (a
        blob already gone fails Azure's), one by one."""
        keys: Sequence[str] = [self._key(path) for path in paths]
        if not keys:
            return
        try:
            obstore.delete(self._store, keys)
        except Exception:
            for key in keys:
                self.delete(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Lazily, page by page: both services list in UTF-8 byte order, which is the order
        of Python strings, so stopping early (as the reader does) costs one page."""
        key = self._key(prefix, allow_empty=True)
        try:
            for page in obstore.list(self._store, key or None, chunk_size=1000):
                for meta in sorted(page, key=lambda m: m["path"]):
                    yield ObjectInfo(meta["path"], int(meta["size"]))
        except Exception as exc:
            raise self._error(exc, "list", key) from None

    def url(self, path: str) -> str:
        parts = [p for p in (self._prefix, path.strip("/")) if p]
        return redact("/".join([self._base, *parts]), self._secrets)

    def close(self) -> None:
        """obstore keeps no open files; connections go with the client."""
