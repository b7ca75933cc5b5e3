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
import orjson
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


class ProxyApp:
    def __init__(self, upstream: str, timeout: float = 300.0):
        self.upstream = upstream.rstrip("/")
        self.timeout = timeout
        self.client: httpx.AsyncClient | None = None
        self.metrics = MetricsApp()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["path"] == HEALTH_PATH:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/plain")],
                }
            )
            await send({"type": "http.response.body", "body": b"Healthy"})
            return
        if scope["path"] == PROXY_METRICS_PATH:  # Prometheus; /metrics goes upstream
            await self.metrics(scope, receive, send)
            return
        if self.client is None:  # no lifespan (some test harnesses)
            self.client = httpx.AsyncClient(timeout=self.timeout)
        url = self.upstream + scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _HOP_BY_HOP]

        async def body() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                yield message.get("body", b"")
                if not message.get("more_body", False):
                    return

        has_body = scope["method"] not in ("GET", "HEAD", "OPTIONS")
        request = self.client.build_request(
            scope["method"], url, headers=headers, content=body() if has_body else None
        )
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            message = f"upstream {self.upstream} unreachable: {type(exc).__name__}: {exc}"
            log.warning("%s", message)
            data = orjson.dumps({"error": message})
            await send(
                {
                    "type": "http.response.start",
                    "status": 502,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(data)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": data})
            return
        try:
            out = [
                (k, v)
                for k, v in response.headers.raw
                if k.lower() not in _HOP_BY_HOP or k.lower() == b"content-length"
            ]
            await send(
                {"type": "http.response.start", "status": response.status_code, "headers": out}
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

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


def create_proxy_app() -> PayloadLogger:
    """The proxy for `modeltap proxy` (uvicorn factory): settings from the environment."""
    upstream = os.environ.get(ENV_UPSTREAM)
    if not upstream:
        raise RuntimeError(f"{ENV_UPSTREAM} is not set: start the proxy with `modeltap proxy`")
    given = [p for p in os.environ.get(ENV_LOG_PATHS, "").splitlines() if p]
    paths = tuple(given) if given else DEFAULT_LOG_PATHS
    return PayloadLogger(ProxyApp(upstream), paths=paths, skip=(HEALTH_PATH, PROXY_METRICS_PATH))
