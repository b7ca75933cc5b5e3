"""A reverse proxy that logs request/response payloads in front of any HTTP model server (R3.3).

    modeltap proxy --upstream http://127.0.0.1:8080 --port 5002 -f deployment.yml

Bodies stream through in both directions; headers and status codes pass unchanged
(less hop-by-hop headers). When the upstream cannot be reached the caller gets a
502 naming it. The proxy answers two paths itself, never forwarded or logged:
`/-/modeltap/health` and `/-/modeltap/metrics` (Prometheus; `/metrics` is the upstream's).

Only scoring calls are logged, as serve logs only `/score`: by default the scoring paths
of common model servers (DEFAULT_LOG_PATHS); `--log-path` names others (`*` matches any
characters, `/` too), so health checks and `GET /swagger.json` stay out of the data.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator

import httpx
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

import modeltap
from modeltap import runtime
from modeltap.metrics import PROXY_METRICS_PATH, MetricsApp
from modeltap.serving.payload import PayloadLogger
from modeltap.serving.shutdown import drain_seconds

__all__ = [
    "DEFAULT_LOG_PATHS",
    "ENV_LOG_PATHS",
    "ENV_UPSTREAM",
    "HEALTH_PATH",
    "ProxyApp",
    "create_proxy_app",
]

log = logging.getLogger(__name__)

ENV_UPSTREAM = "MODELTAP_UPSTREAM"
ENV_LOG_PATHS = "MODELTAP_PROXY_LOG_PATHS"  # one pattern a line
# Scoring calls of the source platform's server, KServe v1/v2 (MLServer, Triton, ...),
# TorchServe and MLflow/SageMaker-style servers.
DEFAULT_LOG_PATHS = (
    "/score",
    "/v1/models/*:predict",
    "/v2/models/*/infer",
    "/predictions/*",
    "/invocations",
)
HEALTH_PATH = "/-/modeltap/health"  # answered by the proxy itself, never forwarded or logged
_HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
    b"host",
    b"content-length",
}
_HEALTHY = PlainTextResponse("Healthy")


class ProxyApp:
    """Forwards every call to `upstream` (a pure ASGI app; PayloadLogger wraps it)."""

    def __init__(self, upstream: str, timeout: float = 300.0):
        self.upstream = upstream.rstrip("/")
        self.timeout = timeout
        self.client: httpx.AsyncClient | None = None
        self.metrics = MetricsApp()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] != "http":
            return
        elif scope["path"] == HEALTH_PATH:
            await _HEALTHY(scope, receive, send)
        elif scope["path"] == PROXY_METRICS_PATH:  # Prometheus; /metrics goes upstream
            await self.metrics(scope, receive, send)
        else:
            await self._forward(scope, receive, send)

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The call sent upstream; its answer streamed back, or a 502 naming the upstream."""
        try:
            upstream = await self._send_upstream(scope, receive)
        except httpx.HTTPError as exc:
            message = f"upstream {self.upstream} unreachable: {type(exc).__name__}: {exc}"
            log.warning("%s", message)
            await JSONResponse({"error": message}, 502)(scope, receive, send)
            return
        try:
            await _passed_back(upstream)(scope, receive, send)
        finally:
            await upstream.aclose()

    async def _send_upstream(self, scope: Scope, receive: Receive) -> httpx.Response:
        """The same call to the upstream, once its headers are back: path and query as
        they came, headers less hop-by-hop ones, the body streamed from `receive`."""
        if self.client is None:  # no lifespan (some test harnesses)
            self.client = httpx.AsyncClient(timeout=self.timeout)
        url = self.upstream + scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _HOP_BY_HOP]
        has_body = scope["method"] not in ("GET", "HEAD", "OPTIONS")
        request = self.client.build_request(
            scope["method"], url, headers=headers, content=_body(receive) if has_body else None
        )
        return await self.client.send(request, stream=True)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.client = httpx.AsyncClient(timeout=self.timeout)
                if os.environ.get(runtime.ENV_DEPLOYMENT):
                    runtime.current()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.client is not None:
                    await self.client.aclose()
                with contextlib.suppress(Exception):
                    modeltap.shutdown(drain_seconds())
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    """The request body as it arrives (to the end, or until the client leaves)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


def _passed_back(upstream: httpx.Response) -> StreamingResponse:
    """The upstream's answer as it streams in: its status, its headers as they came
    (repeated ones too, less hop-by-hop ones but with its content-length), raw body."""
    response = StreamingResponse(upstream.aiter_raw(), upstream.status_code)
    response.raw_headers = [
        (k, v)
        for k, v in upstream.headers.raw
        if k.lower() not in _HOP_BY_HOP or k.lower() == b"content-length"
    ]
    return response


def create_proxy_app() -> PayloadLogger:
    """The proxy for `modeltap proxy` (uvicorn factory): settings from the environment."""
    upstream = os.environ.get(ENV_UPSTREAM)
    if not upstream:
        raise RuntimeError(f"{ENV_UPSTREAM} is not set: start the proxy with `modeltap proxy`")
    given = [p for p in os.environ.get(ENV_LOG_PATHS, "").splitlines() if p]
    paths = tuple(given) if given else DEFAULT_LOG_PATHS
    return PayloadLogger(ProxyApp(upstream), paths=paths, skip=(HEALTH_PATH, PROXY_METRICS_PATH))
