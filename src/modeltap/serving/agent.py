"""The agent: an HTTP receiver that speaks the azureml-ai-monitoring SDK's protocol (R5.3).

A score.py written for the source platform imports `azureml.ai.monitoring` and its
worker thread posts every collected frame here:

    POST /modeldata/log
    content-type: application/json              (the frame's to_json(orient="records"))
    ce-type: azureml.inference.<collection>
    ce-time: <unix seconds>   ce-x-request-id: <correlation id>   ce-model-version: default
    ce-collect-data-type: pandas.DataFrame      ce-agent: azureml-ai-monitoring/1.0.0
    trace-id: <payload id>    ce-<other>: from the correlation context's headers

Each post becomes a Record in the same pipeline as Collector.collect(). Bad requests
get a 4xx naming the problem; the agent never dies from a request (R5.4). Memory stays
bounded: bodies over `max_body` get 413, headers over `max_header_bytes` 431, and both
count in the buffer's byte estimate.
"""

from __future__ import annotations

import logging
import math
import time

import orjson
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from modeltap import sampling
from modeltap.context import new_id
from modeltap.errors import BufferFullError, CollectionDisabledError
from modeltap.layout import validate_name
from modeltap.metrics import METRICS_PATH, MetricsApp, watch
from modeltap.record import JSON, Record, content_range
from modeltap.runtime import Runtime
from modeltap.serving.payload import json_body, record_call
from modeltap.serving.relay import ENV_RELAY_SOCKET, Call, RelayReceiver
from modeltap.serving.shutdown import drain_seconds

__all__ = [
    "AGENT_PATH",
    "DEFAULT_MAX_BODY",
    "DEFAULT_MAX_HEADER_BYTES",
    "ENV_MAX_BODY",
    "ENV_MAX_HEADER_BYTES",
    "AgentApp",
    "create_agent_app",
]

log = logging.getLogger(__name__)

AGENT_PATH = "/modeldata/log"
DEFAULT_MAX_BODY = 64 * 1024 * 1024
ENV_MAX_BODY = "MODELTAP_AGENT_MAX_BODY"
# The SDK sends ~10 short headers plus a context's own; 64 KiB leaves room for many.
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
ENV_MAX_HEADER_BYTES = "MODELTAP_AGENT_MAX_HEADER_BYTES"
_TYPE_PREFIX = "azureml.inference."
_OWN_HEADERS = {
    "ce-type",
    "ce-time",
    "ce-x-request-id",
    "ce-model-version",
    "ce-collect-data-type",
    "ce-agent",
}
# pandas 3 reports its frame type by its public name; the line format uses the full one.
_DATA_TYPES = {"pandas.DataFrame": "pandas.core.frame.DataFrame"}
# The accepted 200 stays hand-built (other answers are starlette Responses): an empty 200
# in two constant messages uvicorn only reads, so answering a post allocates nothing (the
# SDK reads only the status; the response leaves in one write). A shared Response() here
# measured slower in bench/bench_agent.py (1x10, 6 interleaved reps): median server CPU
# 231 vs 198 us per request (+17%), 1969 vs 2052 req/s.
_ACCEPTED_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-length", b"0")],
}
_ACCEPTED_BODY = {"type": "http.response.body", "body": b""}
_HEALTHY = JSONResponse({"status": "ok"})


class Rejected(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class AgentApp:
    """A pure ASGI app. `runtime` supplies the enabled collections and the pipeline."""

    def __init__(
        self,
        runtime: Runtime,
        max_body: int = DEFAULT_MAX_BODY,
        relay_socket: str | None = None,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    ):
        """relay_socket: also record the calls serve's workers relay there (serving/relay.py)."""
        self.runtime = runtime
        self.max_body = max_body
        self.max_header_bytes = max_header_bytes
        self.relay_socket = relay_socket
        self._relay: RelayReceiver | None = None
        self._collections: dict[str, str] = {}  # ce-type header -> its enabled collection
        self.metrics = MetricsApp()
        watch(runtime)  # commit latencies, also for a runtime made without configure()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            if scope["path"] == AGENT_PATH and scope["method"] == "POST":
                headers, header_bytes = self._headers(scope)
                body = await self._body(receive, headers)
                self._accept(headers, body, header_bytes)
                await send(_ACCEPTED_START)
                await send(_ACCEPTED_BODY)
                return
            response = self._not_a_post(scope)
        except Rejected as exc:
            response = _error(exc.status, exc.reason)
        except Exception as exc:  # never die from a request; the record it carried is counted
            log.exception("agent: unexpected error")
            self.runtime.pipeline.count_dropped(1, exc)
            response = _error(500, f"{type(exc).__name__}: {exc}")
        await response(scope, receive, send)

    def _not_a_post(self, scope: Scope) -> ASGIApp:
        """What answers a request that is not a post of a record: health, metrics, or
        Rejected with a reason."""
        if scope["path"] == "/" and scope["method"] in ("GET", "HEAD"):
            return _HEALTHY
        if scope["path"] == METRICS_PATH:  # Prometheus
            return self.metrics
        if scope["path"] != AGENT_PATH:
            raise Rejected(404, f"unknown path {scope['path']!r}; post to {AGENT_PATH}")
        raise Rejected(405, f"method {scope['method']} not allowed; use POST")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.relay_socket:
                    self._relay = RelayReceiver(
                        self.relay_socket, self._record_call, self._relayed_call_lost
                    )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._relay is not None:
                    self._relay.close()
                self.runtime.pipeline.close(drain_seconds())
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _record_call(self, call: Call) -> None:
        record_call(self.runtime, call)

    def _relayed_call_lost(self, exc: BaseException) -> None:
        names = self.runtime.deployment.collections
        self.runtime.pipeline.count_dropped(len({"request", "response"} & set(names)), exc)

    def _headers(self, scope: Scope) -> tuple[dict[str, str], int]:
        """The headers (names lowercased, as ASGI servers hand them over) and their size;
        431 past max_header_bytes: they are kept with the record, so they cost memory."""
        size = 0
        headers = {}
        for key, value in scope["headers"]:
            size += len(key) + len(value)
            headers[key.decode("latin-1")] = value.decode("latin-1")
        if size > self.max_header_bytes:
            raise Rejected(
                431, f"headers of {size} bytes are over the limit of {self.max_header_bytes}"
            )
        return headers, size

    async def _body(self, receive: Receive, headers: dict[str, str]) -> bytes:
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise Rejected(400, f"content-length {declared!r} is not a number")
            if int(declared) > self.max_body:
                raise Rejected(
                    413, f"body of {declared} bytes is over the limit of {self.max_body} bytes"
                )
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise Rejected(400, "client disconnected before the body was complete")
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise Rejected(413, f"body is over the limit of {self.max_body} bytes")
            if not message.get("more_body", False):
                if not chunks:
                    return chunk  # the usual case: one message, no copy
                chunks.append(chunk)
                return b"".join(chunks)
            chunks.append(chunk)

    def _accept(self, headers: dict[str, str], body: bytes, header_bytes: int = 0) -> None:
        event_type = headers.get("ce-type")
        deployment = self.runtime.deployment
        collection = self._collections.get(event_type) if event_type else None
        if collection is None:
            collection = self._collection(event_type)
        record_time = _time(headers.get("ce-time"))
        correlation_id = _text(headers.get("ce-x-request-id") or headers.get("trace-id"))
        if not correlation_id:
            correlation_id = new_id()
        if len(correlation_id) > 256 or not correlation_id.isprintable():
            raise Rejected(400, "header ce-x-request-id must be printable and at most 256 chars")
        given_type = headers.get("content-type", "application/octet-stream")
        content_type = given_type.split(";")[0].strip().lower()  # media types ignore case
        extra = {
            k[3:]: _text(v) for k, v in headers.items() if k[:3] == "ce-" and k not in _OWN_HEADERS
        }
        if content_type == "application/json" or content_type.endswith("+json"):
            data = _json(body)
        else:
            # The SDK's compact format (df.to_string()) and other bodies: keep them as text.
            data = orjson.dumps(body.decode("utf-8", "replace"))
        if not sampling.keep(correlation_id, deployment.sampling_rate):
            self.runtime.pipeline.count_sampled_out()
            return
        if (redactor := self.runtime.redactors.get(collection)) is not None:
            data = redactor.body(data, content_type)  # before a record holds it (R13.1)
        data_type = headers.get("ce-collect-data-type")
        record = Record(
            collection,
            data,
            kind=JSON,
            correlation_id=correlation_id,
            time_=record_time,
            collect_data_type=_DATA_TYPES.get(data_type, data_type) if data_type else None,
            model_version=headers.get("ce-model-version") or deployment.model_version,
            agent=headers.get("ce-agent") or "unknown",
            content_type=content_type,
            extra={"headers": extra} if extra else None,
        )
        if len(data) != len(body):  # stored escaped (text) or trimmed: the range of what came
            record.extra = {**(record.extra or {}), "contentrange": content_range(len(body))}
        try:
            # What the record holds in the buffer: its data and the headers it keeps.
            self.runtime.pipeline.submit(record, len(data) + 256 + header_bytes)
        except BufferFullError as exc:
            raise Rejected(503, str(exc)) from None
        except CollectionDisabledError as exc:
            raise Rejected(503, str(exc)) from None

    def _collection(self, event_type: str | None) -> str:
        """The enabled collection a ce-type names (remembered), or Rejected."""
        if not event_type or not event_type.startswith(_TYPE_PREFIX):
            raise Rejected(
                400, f"header ce-type must be '{_TYPE_PREFIX}<collection>', got {event_type!r}"
            )
        collection = event_type[len(_TYPE_PREFIX) :]
        try:
            validate_name(collection, "ce-type")
        except Exception as exc:
            raise Rejected(400, str(exc)) from None
        deployment = self.runtime.deployment
        if collection not in deployment.collections:
            raise Rejected(
                404,
                f"collection {collection!r} is not enabled in deployment "
                f"{deployment.endpoint}/{deployment.deployment}; enabled: "
                f"{', '.join(sorted(deployment.collections)) or 'none'}",
            )
        self._collections[event_type] = collection
        return collection


def _text(value: str | None) -> str | None:
    """A header value (read as ISO-8859-1) as the text meant: UTF-8 when its bytes are,
    as serve reads x-request-id, so ids join across collections."""
    if value is None or value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        return value


def _time(value: str | None) -> float:
    if value is None:
        return time.time()
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    # Sane range: 2000-01-01 .. 2100-01-01.
    if not 946684800 <= seconds < 4102444800:
        raise Rejected(400, f"header ce-time must be unix seconds, got {value!r}")
    return seconds


def _json(body: bytes) -> bytes:
    """The body as one line of JSON, or Rejected (400) when it is not valid JSON. Valid
    JSON too deep to read back inside a line (1024 levels) is kept as text."""
    data = json_body(body)
    if data is not None:
        return data
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Rejected(400, f"body is not valid JSON: {exc}") from None
    return orjson.dumps(body.decode())


def _error(status: int, reason: str) -> Response:
    return JSONResponse({"error": reason}, status)


def create_agent_app() -> AgentApp:
    """The agent for `modeltap agent` (uvicorn factory): settings from the environment."""
    import os

    from modeltap import runtime

    max_body = int(os.environ.get(ENV_MAX_BODY) or DEFAULT_MAX_BODY)
    max_headers = int(os.environ.get(ENV_MAX_HEADER_BYTES) or DEFAULT_MAX_HEADER_BYTES)
    relay_socket = os.environ.get(ENV_RELAY_SOCKET) or None
    return AgentApp(
        runtime.current(),
        max_body=max_body,
        relay_socket=relay_socket,
        max_header_bytes=max_headers,
    )
