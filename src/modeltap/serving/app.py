"""The scoring server's ASGI app: `GET /` health, `POST /score` -> run(body), `GET /metrics`.

Each request gets an id: the caller's `x-request-id` header, else a new UUID. It is
echoed in the response header and is the correlation id of every record collected
while the request runs, so inputs and outputs join without any code in score.py.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from modeltap import runtime
from modeltap.context import current_request_id, new_id
from modeltap.metrics import METRICS_PATH, MetricsApp
from modeltap.serving.limits import BodyLimit
from modeltap.serving.payload import (
    SCOPE_REQUEST_ID,
    PayloadLogger,
    decode_request_id,
    header_text,
)
from modeltap.serving.relay import ENV_RELAY_SOCKET
from modeltap.serving.scoring import ScoreScript
from modeltap.serving.shutdown import finish_worker, watch_platform_sdk
from modeltap.tabular import dumps

__all__ = ["REQUEST_ID_HEADER", "create_app"]

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"
ENV_SCRIPT = "MODELTAP_SCORING_SCRIPT"
ENV_MODEL_DIR = "MODELTAP_MODEL_DIR"
ENV_THREADS = "MODELTAP_RUN_IN_THREADS"


def _request_id(request: Request) -> str:
    chosen = request.scope.get(SCOPE_REQUEST_ID)
    if chosen is not None:  # payload logging already chose it (and checked it)
        return str(chosen)
    raw = dict(request.scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"")
    return decode_request_id(raw) or new_id()  # UTF-8 (else ISO-8859-1), printable, bounded


def _run_with_id(script: ScoreScript, request_id: str, body: str) -> Any:
    token = current_request_id.set(request_id)
    try:
        return script.run(body)
    finally:
        current_request_id.reset(token)


def _to_response(result: Any, request_id: str) -> Response:
    headers = {REQUEST_ID_HEADER: header_text(request_id)}  # echoed as UTF-8
    if isinstance(result, Response):
        result.headers[REQUEST_ID_HEADER] = header_text(request_id)
        return result
    if isinstance(result, bytes | bytearray):
        return Response(bytes(result), media_type="application/octet-stream", headers=headers)
    return Response(dumps(result), media_type="application/json", headers=headers)


def create_app(script: ScoreScript | None = None, *, configure: bool = True) -> Starlette:
    """The app for one worker process; settings come from the environment `serve` sets."""
    if script is None:
        path = os.environ.get(ENV_SCRIPT)
        if not path:
            raise RuntimeError(f"{ENV_SCRIPT} is not set: start the server with `modeltap serve`")
        script = ScoreScript(path, os.environ.get(ENV_MODEL_DIR) or None)

    in_threads = os.environ.get(ENV_THREADS, "") == "1"

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if configure and os.environ.get(runtime.ENV_DEPLOYMENT):
            runtime.current()  # configure collection before init() makes collectors
        script.load()
        watch_platform_sdk()  # count the posts of azureml.ai.monitoring that fail
        # The model, pandas and everything init() made live as long as the worker: keep
        # them out of the cyclic GC's full passes, which otherwise stall requests (5-50 ms).
        gc.freeze()
        log.info("modeltap: score script %s ready (pid %d)", script.path, os.getpid())
        try:
            yield
        finally:
            if configure:  # the SDK's queue into the sidecar, then modeltap's pipeline
                finish_worker()

    async def health(request: Request) -> Response:
        return PlainTextResponse("Healthy")

    async def score(request: Request) -> Response:
        request_id = _request_id(request)
        raw = await request.body()
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            return JSONResponse(
                {"error": "request body is not UTF-8 text"},
                400,
                headers={REQUEST_ID_HEADER: header_text(request_id)},
            )
        try:
            if script.run_is_async:
                token = current_request_id.set(request_id)
                try:
                    result = await script.run(body)
                finally:
                    current_request_id.reset(token)
            elif in_threads:
                result = await run_in_threadpool(_run_with_id, script, request_id, body)
            else:
                # Like the source platform's sync workers: one run() at a time per process,
                # on the event loop; a thread hop would cost more than a small model's run().
                result = _run_with_id(script, request_id, body)
            return _to_response(result, request_id)
        except Exception as exc:  # in run(), or a result that is not JSON
            log.exception("run() failed for request %s", request_id)
            return Response(
                orjson.dumps({"error": f"{type(exc).__name__}: {exc}"}),
                500,
                media_type="application/json",
                headers={REQUEST_ID_HEADER: header_text(request_id)},
            )

    return Starlette(
        middleware=[
            Middleware(
                PayloadLogger,
                paths=("/score",),
                relay_socket=os.environ.get(ENV_RELAY_SOCKET) or None,
            ),
            Middleware(BodyLimit),  # inside payload logging: a 413 is logged too
        ],
        routes=[
            Route("/", health, methods=["GET"]),
            Route("/score", health, methods=["GET"]),
            Route("/score", score, methods=["POST"]),
            Route(METRICS_PATH, MetricsApp(), methods=["GET"]),  # Prometheus
        ],
        lifespan=lifespan,
    )
