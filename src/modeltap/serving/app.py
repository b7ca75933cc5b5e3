"""The scoring server's ASGI app: `GET /` health, `/score` -> run(), `GET /swagger.json`,
`GET /metrics`. `/score` takes GET, POST and OPTIONS, and passes the request to run() in
the form the script declares (runforms.py), or to an MLflow model (mlflow_model.py).

Each request gets an id: the caller's `x-request-id` header, else a new UUID. It is
echoed in the response header and is the correlation id of every record collected
while the request runs, so inputs and outputs join without any code in score.py.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Lifespan

from modeltap import runtime
from modeltap.context import current_request_id, new_id
from modeltap.errors import BadRequestError
from modeltap.metrics import METRICS_PATH, MetricsApp
from modeltap.serving.limits import BodyLimit
from modeltap.serving.payload import (
    SCOPE_REQUEST_ID,
    PayloadLogger,
    decode_request_id,
    header_text,
)
from modeltap.serving.relay import ENV_RELAY_SOCKET
from modeltap.serving.scoring import Scorer, ScoreScript
from modeltap.serving.shutdown import finish_worker, watch_platform_sdk
from modeltap.tabular import dumps

__all__ = ["REQUEST_ID_HEADER", "create_app", "error_response"]

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"
ENV_SCRIPT = "MODELTAP_SCORING_SCRIPT"
ENV_MODEL_DIR = "MODELTAP_MODEL_DIR"
ENV_MLFLOW_MODEL = "MODELTAP_MLFLOW_MODEL"
ENV_THREADS = "MODELTAP_RUN_IN_THREADS"


def _request_id(request: Request) -> str:
    chosen = request.scope.get(SCOPE_REQUEST_ID)
    if chosen is not None:  # payload logging already chose it (and checked it)
        return str(chosen)
    raw = dict(request.scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"")
    return decode_request_id(raw) or new_id()  # UTF-8 (else ISO-8859-1), printable, bounded


def _call_with_id(scorer: Scorer, request_id: str, arguments: dict[str, Any]) -> Any:
    token = current_request_id.set(request_id)
    try:
        return scorer.call(arguments)
    finally:
        current_request_id.reset(token)


def _to_response(result: Any, request_id: str) -> Response:
    headers = {REQUEST_ID_HEADER: header_text(request_id)}  # echoed as UTF-8
    if type(result) in _JSON_TYPES:  # the common case first
        return Response(dumps(result), media_type="application/json", headers=headers)
    if isinstance(result, Response):
        result.headers[REQUEST_ID_HEADER] = header_text(request_id)
        return result
    if _is_werkzeug_response(result):  # AMLResponse, or a Flask response
        from modeltap.serving.aml_api import to_starlette

        response = to_starlette(result)
        response.headers[REQUEST_ID_HEADER] = header_text(request_id)
        return response
    if isinstance(result, bytes | bytearray):
        return Response(bytes(result), media_type="application/octet-stream", headers=headers)
    return Response(dumps(result), media_type="application/json", headers=headers)


_JSON_TYPES = {dict, list, str, int, float, bool, type(None)}


def _is_werkzeug_response(result: Any) -> bool:
    werkzeug = sys.modules.get("werkzeug.wrappers")
    return werkzeug is not None and isinstance(result, werkzeug.Response)


def error_response(status: int, message: str, request_id: str | None = None) -> Response:
    """`{"message": ..., "error": ...}`: the platform's field and modeltap's, same text."""
    headers = {REQUEST_ID_HEADER: header_text(request_id)} if request_id else None
    body = orjson.dumps({"message": message, "error": message})
    return Response(body, status, media_type="application/json", headers=headers)


def _scorer_from_environment() -> Scorer:
    mlflow_model = os.environ.get(ENV_MLFLOW_MODEL)
    if mlflow_model:
        from modeltap.serving.mlflow_model import MlflowModel

        return MlflowModel(mlflow_model, os.environ.get(ENV_MODEL_DIR) or None)
    path = os.environ.get(ENV_SCRIPT)
    if not path:
        raise RuntimeError(f"{ENV_SCRIPT} is not set: start the server with `modeltap serve`")
    return ScoreScript(path, os.environ.get(ENV_MODEL_DIR) or None)


def create_app(script: Scorer | None = None, *, configure: bool = True) -> Starlette:
    """The app for one worker process; settings come from the environment `serve` sets.

    script: a ScoreScript, or an MLflow model (serving/mlflow_model.py).
    configure: set collection up from the environment at startup, and shut it down."""
    scorer = script if script is not None else _scorer_from_environment()
    endpoints = _Endpoints(scorer, in_threads=os.environ.get(ENV_THREADS, "") == "1")
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
            Route("/", _health, methods=["GET"]),
            Route("/score", endpoints.score, methods=["GET", "POST", "OPTIONS"]),
            Route("/swagger.json", endpoints.swagger, methods=["GET"]),
            Route(METRICS_PATH, MetricsApp(), methods=["GET"]),  # Prometheus
        ],
        lifespan=_lifespan(scorer, configure),
    )


def _lifespan(scorer: Scorer, configure: bool) -> Lifespan[Starlette]:
    """The worker's start (collection, then init()) and end (deliver what it collected)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if configure and os.environ.get(runtime.ENV_DEPLOYMENT):
            runtime.current()  # configure collection before init() makes collectors
        scorer.load()
        watch_platform_sdk()  # count the posts of azureml.ai.monitoring that fail
        # The model, pandas and everything init() made live as long as the worker: keep
        # them out of the cyclic GC's full passes, which otherwise stall requests (5-50 ms).
        gc.freeze()
        log.info("modeltap: %s ready (pid %d)", scorer.path, os.getpid())
        try:
            yield
        finally:
            if configure:  # the SDK's queue into the sidecar, then modeltap's pipeline
                finish_worker()

    return lifespan


async def _health(request: Request) -> Response:
    return PlainTextResponse("Healthy")


class _Endpoints:
    """/score and /swagger.json over one scorer."""

    def __init__(self, scorer: Scorer, in_threads: bool):
        self.scorer = scorer
        self.in_threads = in_threads  # a sync run() in the thread pool, not on the loop

    async def score(self, request: Request) -> Response:
        request_id = _request_id(request)
        body = await request.body()
        try:
            arguments = self.scorer.arguments(request.scope, body)
            if arguments is None:  # OPTIONS: the platform answers 200, empty
                return Response(b"", headers={REQUEST_ID_HEADER: header_text(request_id)})
            result = await self._run(arguments, request_id)
            return _to_response(result, request_id)
        except BadRequestError as exc:  # the request, not run(): the platform's 4xx
            return error_response(exc.status, exc.message, request_id)
        except Exception as exc:  # in run(), or a result that is not JSON
            log.exception("run() failed for request %s", request_id)
            return error_response(500, f"{type(exc).__name__}: {exc}", request_id)

    async def _run(self, arguments: dict[str, Any], request_id: str) -> Any:
        """run()'s result, with the request id as the correlation id of what it collects."""
        if self.scorer.run_is_async:
            token = current_request_id.set(request_id)
            try:
                return await self.scorer.call(arguments)
            finally:
                current_request_id.reset(token)
        if self.in_threads:
            return await run_in_threadpool(_call_with_id, self.scorer, request_id, arguments)
        # Like the source platform's sync workers: one run() at a time per process, on
        # the event loop; a thread hop would cost more than a small model's run().
        return _call_with_id(self.scorer, request_id, arguments)

    async def swagger(self, request: Request) -> Response:
        try:
            document = self.scorer.swagger().get(request.query_params.get("version"))
        except BadRequestError as exc:
            return error_response(exc.status, exc.message)
        return Response(orjson.dumps(document), media_type="application/json")
