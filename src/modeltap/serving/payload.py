"""Payload logging (R3): record every HTTP request and response without touching score.py.

A pure ASGI middleware, shaped like starlette's GZipMiddleware: it wraps `receive`
to copy the request body and `send` to copy the response, passing both through
unchanged. When the response is complete it hands two Records (collections
`request` and `response`) to the pipeline:

- JSON bodies are stored as JSON, text bodies as text, anything else as a raw object
  of its own (R4.4); bodies over `blob_threshold` (default 4 MB) always go to their
  own object and the line carries the location with `datainblob: "true"` (R4.3).
- Bodies are copied into spooled temporary files: past `blob_threshold` they wait on
  disk, so memory stays bounded with many large requests in flight.
- Both records carry the call's correlation id: the caller's `x-request-id` (read as
  UTF-8, else ISO-8859-1), or a new UUID, which is added to the request (so the app
  sees it) and echoed in the response, as UTF-8.
- Beyond the source: the response also records the status code and latency, and
  failed calls (4xx/5xx, exceptions in the app) are captured too; a client that left
  before sending its whole body is recorded as such (no status: nothing was sent).
- With durability "spool" both records are on the spool before the last chunk of the
  response is released: a 200 means they survive a crash (docs/durability.md).
"""

from __future__ import annotations

import fnmatch
import logging
import tempfile
import time
from collections.abc import Callable
from typing import IO, Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modeltap import runtime, sampling
from modeltap.context import new_id
from modeltap.errors import CollectionDisabledError, ModeltapError
from modeltap.jsoncheck import nests_in_a_line
from modeltap.record import BLOB, JSON, Record, content_range, one_line_json
from modeltap.serving.relay import Call, RelaySender

__all__ = [
    "DEFAULT_BLOB_THRESHOLD",
    "SCOPE_CLIENT_LEFT",
    "SCOPE_REFUSED",
    "SCOPE_REQUEST_ID",
    "PayloadLogger",
    "decode_request_id",
    "header_text",
    "json_body",
    "record_call",
]

log = logging.getLogger(__name__)

DEFAULT_BLOB_THRESHOLD = 4 * 1024 * 1024
REQUEST_ID = b"x-request-id"
SCOPE_REQUEST_ID = "modeltap.request_id"  # scope key: the id this middleware chose
SCOPE_REFUSED = "modeltap.refused"  # scope key: why the request body was refused (413)
SCOPE_CLIENT_LEFT = "modeltap.client_left"  # scope key: the client left mid-body
_LEFT = "client disconnected before the request body was complete"


class _Body:
    """A body copied as it streams by: in memory up to the threshold, then on disk."""

    __slots__ = ("chunks", "file", "size", "threshold")

    def __init__(self, threshold: int):
        self.threshold = threshold
        self.chunks: list[bytes] = []
        self.file: IO[bytes] | None = None
        self.size = 0

    def write(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.size += len(chunk)
        if self.file is None and self.size <= self.threshold:
            self.chunks.append(chunk)
            return
        if self.file is None:  # past the threshold: move to disk
            self.file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the writer
            self.file.writelines(self.chunks)
            self.chunks = []
        self.file.write(chunk)

    def small(self) -> bytes | None:
        """The body, when it stayed in memory."""
        return b"".join(self.chunks) if self.file is None else None

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


class PayloadLogger:
    def __init__(
        self,
        app: ASGIApp,
        *,
        paths: tuple[str, ...] | None = ("/score",),
        skip: tuple[str, ...] = (),
        blob_threshold: int | None = None,
        get_runtime: Callable[[], runtime.Runtime] = runtime.current,
        relay_socket: str | None = None,
    ) -> None:
        """relay_socket: the sidecar's payload relay (serve sets ENV_RELAY_SOCKET); calls
        are recorded in this process when it is None or cannot take them."""
        self.app = app
        self.paths = paths  # None: every path; an entry with * is a pattern (fnmatch)
        self.skip = skip
        self.blob_threshold = blob_threshold  # None: the deployment's setting
        self.get_runtime = get_runtime
        self.relay_socket = relay_socket
        self._relay: RelaySender | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._on_shutdown(receive), send)
            return
        if scope["type"] != "http" or not self._logs(scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            rt = self.get_runtime()
        except CollectionDisabledError:  # collection not configured in this process
            await self.app(scope, receive, send)
            return
        names = rt.deployment.collections
        if "request" not in names and "response" not in names:
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope[SCOPE_REQUEST_ID] = request_id  # the app reads it instead of parsing headers
        started = time.monotonic()
        threshold = self.blob_threshold or rt.deployment.pipeline.blob_threshold
        request_body = _Body(threshold)
        response_body = _Body(threshold)
        response: dict[str, Any] = {"status": None, "content_type": "", "done": False}
        body_complete = False
        echo = request_id.encode()
        # Under "spool" the records go to disk before the response's last chunk is released.
        durable = rt.deployment.pipeline.durability == "spool"
        recorded = False

        def record(error: str | None) -> None:
            nonlocal recorded
            if recorded:
                return
            recorded = True
            if error is None and not response["done"]:
                left = scope.get(SCOPE_CLIENT_LEFT)
                error = _LEFT if left else "response incomplete (client disconnected)"
            status = response["status"]
            if status is None and error is not None and not scope.get(SCOPE_CLIENT_LEFT):
                status = 500  # an exception in the app: the server answers 500
            try:
                latency = round((time.monotonic() - started) * 1000, 3)
                bodies = (request_body, response_body)
                self._record(rt, scope, request_id, bodies, response, status, latency, error)
            except Exception as exc:  # logging must never break serving; counted
                log.exception("payload logging failed for request %s", request_id)
                lost = len({"request", "response"} & set(rt.deployment.collections))
                rt.pipeline.count_dropped(lost, exc)

        async def receive_copy() -> Message:
            nonlocal body_complete
            message = await receive()
            if message["type"] == "http.request":
                request_body.write(message.get("body", b""))
                body_complete = not message.get("more_body", False)
            elif message["type"] == "http.disconnect" and not body_complete:
                scope[SCOPE_CLIENT_LEFT] = True  # mid-body: no response will be sent
            return message

        async def send_copy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                if _raw_header(headers, REQUEST_ID) != echo:  # none or another: set ours
                    headers = [(k, v) for k, v in headers if k.lower() != REQUEST_ID]
                    headers.append((REQUEST_ID, echo))
                    message = {**message, "headers": headers}
                response["status"] = message["status"]
                response["content_type"] = _header(headers, b"content-type")
            elif message["type"] == "http.response.body":
                response_body.write(message.get("body", b""))
                if not message.get("more_body", False):
                    response["done"] = True
                    if durable:
                        record(None)
            await send(message)

        try:
            await self.app(scope, receive_copy, send_copy)
        except BaseException as exc:
            record(f"{type(exc).__name__}: {exc}")
            raise
        record(None)

    def _logs(self, path: str) -> bool:
        if path in self.skip:
            return False
        if self.paths is None or path in self.paths:
            return True
        return any("*" in p and fnmatch.fnmatchcase(path, p) for p in self.paths)

    def _record(
        self,
        rt: runtime.Runtime,
        scope: Scope,
        request_id: str,
        bodies: tuple[_Body, _Body],
        response: dict[str, Any],
        status: int | None,
        latency_ms: float,
        error: str | None,
    ) -> None:
        request_body, response_body = bodies
        if not sampling.keep(request_id, rt.deployment.sampling_rate):
            for name in ("request", "response"):
                if name in rt.deployment.collections:
                    rt.pipeline.count_sampled_out()
            request_body.close()
            response_body.close()
            return
        query = scope.get("query_string")
        refused = scope.get(SCOPE_REFUSED)
        if refused is not None:  # a body over the limit is not stored, the attempt is
            request_body.close()
            request_body = _Body(0)
        request_raw, response_raw = request_body.small(), response_body.small()
        call = Call(
            request_id,
            time.time(),
            scope["path"] + ("?" + query.decode("latin-1") if query else ""),
            scope["method"],
            _header(scope["headers"], b"content-type"),
            status,
            response["content_type"],
            latency_ms,
            error,
            b"" if request_raw is None else request_raw,
            b"" if response_raw is None else response_raw,
            refused,
        )
        if request_raw is None or response_raw is None:  # a body waits on disk: record here
            record_call(rt, call, request_body.file, response_body.file)
            return
        relay = self._relay
        if relay is None and self.relay_socket and rt.deployment.pipeline.durability == "memory":
            relay = self._relay = RelaySender(self.relay_socket, self._record_here)
        if relay is not None:
            relay.add(call)
        else:
            record_call(rt, call)

    def _record_here(self, call: Call) -> None:
        record_call(self.get_runtime(), call)

    def _on_shutdown(self, receive: Receive) -> Receive:
        """Lifespan: hand over the relay's last calls before the app stops collection."""

        async def receive_lifespan() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown" and self._relay is not None:
                relay, self._relay = self._relay, None
                relay.close()
            return message

        return receive_lifespan


def record_call(
    rt: runtime.Runtime,
    call: Call,
    request_file: IO[bytes] | None = None,
    response_file: IO[bytes] | None = None,
) -> None:
    """Submit the request and response Records of a call (sampling already decided).
    A body given as a file (it was over the threshold) is stored as its own object."""
    names = rt.deployment.collections
    common: dict[str, Any] = {"path": call.path, "method": call.method}
    if "request" in names:
        asked = {**common, "error": call.refused} if call.refused else common
        _submit(rt, "request", call.request_body, request_file, call.request_type, call, asked)
    elif request_file is not None:
        request_file.close()
    if "response" in names:
        # None: no response was sent (the client left before the request was complete)
        extra = {**common, "statuscode": call.status, "latencyms": call.latency_ms}
        if call.error is not None:
            extra["error"] = call.error
        _submit(rt, "response", call.response_body, response_file, call.response_type, call, extra)
    elif response_file is not None:
        response_file.close()


def _submit(
    rt: runtime.Runtime,
    collection: str,
    raw: bytes,
    file: IO[bytes] | None,
    content_type: str,
    call: Call,
    extra: dict[str, Any],
) -> None:
    media = content_type.split(";")[0].strip().lower() or "application/octet-stream"
    kind, data = BLOB, file  # type: tuple[str, IO[bytes] | bytes | None]
    size = 256
    if file is None:
        data, kind = raw, BLOB
        if not raw:  # no body (a GET, a 204): nothing to store
            data, kind = b"null", JSON
        if media == "application/json" or media.endswith("+json"):
            encoded = json_body(raw)
            if encoded is not None:
                data, kind = encoded, JSON
        if kind == BLOB and (media.startswith("text/") or media == "application/json"):
            data, kind = orjson.dumps(raw.decode("utf-8", "replace")), JSON
        if kind == JSON and len(data) != len(raw):  # stored escaped or trimmed: the range
            extra = {**extra, "contentrange": content_range(len(raw))}  # of what came
        size += len(raw)
    if (redactor := rt.redactors.get(collection)) is not None:  # before a record holds it
        data, kind, extra = redactor.payload(data, kind, media, extra)
    record = Record(
        collection,
        data,
        kind=kind,
        correlation_id=call.request_id,
        time_=call.time,
        content_type=media,
        collect_data_type=None,
        extra=extra,
    )
    try:
        rt.pipeline.submit(record, size)
    except ModeltapError as exc:  # counted by the pipeline; serving goes on
        if file is not None:
            file.close()
        log.warning("payload of %s not recorded: %s", call.request_id, exc)


def decode_request_id(raw: bytes) -> str | None:
    """A caller's x-request-id as text: UTF-8 when it is (how clients and the platform's
    server send non-ASCII ids), else ISO-8859-1, HTTP's historical charset. None when it
    is empty, over 200 characters or not printable (ids become JSON values and headers)."""
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        text = raw.decode("latin-1").strip()
    return text if text and len(text) <= 200 and text.isprintable() else None


def header_text(request_id: str) -> str:
    """The id as a value for Starlette's headers, which encode text as ISO-8859-1: the text
    whose ISO-8859-1 bytes are the id's UTF-8, so the caller gets `café` back as sent."""
    return request_id.encode().decode("latin-1")


def _request_id(scope: Scope) -> str:
    """The caller's x-request-id, or a new one added to the request so the app sees it."""
    for key, value in scope["headers"]:
        if key.lower() == REQUEST_ID:
            given = decode_request_id(bytes(value))
            if given is not None:
                return given
    new = new_id()
    scope["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() != REQUEST_ID]
    scope["headers"].append((REQUEST_ID, new.encode()))
    return new


def _header(headers: Any, name: bytes) -> str:
    value = _raw_header(headers, name)
    return "" if value is None else value.decode("latin-1")


def _raw_header(headers: Any, name: bytes) -> bytes | None:
    for key, value in headers:
        if key.lower() == name:
            return bytes(value)
    return None


def json_body(raw: bytes) -> bytes | None:
    """A body that is valid JSON as one line (see one_line_json), or None when it is not
    JSON or is nested too deeply to be read back inside a line (1023 levels at most: the
    line is one more, and orjson reads 1024)."""
    return one_line_json(raw) if nests_in_a_line(raw) else None
