"""The platform's raw-HTTP API for score.py: `rawhttp`, `AMLRequest`, `AMLResponse` (R1.7).

A score.py for the source platform imports them from
`azureml_inference_server_http.api.aml_request` / `.aml_response` (the inference
server) or `azureml.contrib.services.aml_request` / `.aml_response` (the older SDK).
When those modules are installed, the script gets them, untouched; when they are not,
`provide_platform_modules()` makes these names importable from this module, so such
scripts run without the platform's server or Flask.

As on the platform, AMLRequest is a Werkzeug request (method, headers, args,
get_data(), json, files, form) and AMLResponse a Werkzeug response with the
platform's constructor. `@rawhttp` marks the script as wanting the request: the
platform keeps that in a module flag, and so does this module.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import io
import json
import sys
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, TypeVar

from starlette.responses import Response
from starlette.types import Scope
from werkzeug.wrappers import Request as _WerkzeugRequest
from werkzeug.wrappers import Response as _WerkzeugResponse

__all__ = [
    "PLATFORM_REQUEST_MODULES",
    "AMLRequest",
    "AMLResponse",
    "make_request",
    "provide_platform_modules",
    "rawhttp",
    "rawhttp_requested",
    "reset_rawhttp",
    "to_starlette",
]

F = TypeVar("F", bound=Callable[..., Any])

_rawHttpRequested = False  # the platform's name for it, kept for scripts that read it

# Where a score.py imports these names from, in the platform's packages.
PLATFORM_REQUEST_MODULES = (
    "azureml_inference_server_http.api.aml_request",
    "azureml.contrib.services.aml_request",
)
_RESPONSE_MODULES = (
    "azureml_inference_server_http.api.aml_response",
    "azureml.contrib.services.aml_response",
)


def rawhttp(func: F) -> F:
    """Decorate run() to receive the HTTP request itself (an AMLRequest)."""
    global _rawHttpRequested
    _rawHttpRequested = True
    return func


def rawhttp_requested() -> bool:
    """Whether a loaded score.py used @rawhttp, from these shims or the platform's modules."""
    if _rawHttpRequested:
        return True
    return any(
        getattr(sys.modules.get(name), "_rawHttpRequested", False) is True
        for name in PLATFORM_REQUEST_MODULES
    )


def reset_rawhttp() -> None:
    """Before a score.py is loaded: the flag describes that script only."""
    global _rawHttpRequested
    _rawHttpRequested = False
    for name in PLATFORM_REQUEST_MODULES:
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "_rawHttpRequested"):
            module._rawHttpRequested = False  # type: ignore[attr-defined]


class AMLRequest(_WerkzeugRequest):
    """The request a @rawhttp run() gets: a Werkzeug request, as Flask's is on the platform."""


class AMLResponse(_WerkzeugResponse):
    """A response run() returns to be sent as it is (the platform's constructor)."""

    def __init__(
        self,
        message: Any,
        status_code: int,
        response_headers: Mapping[str, str] | None = None,
        json_str: bool = False,
        run_function_failed: bool = False,
    ) -> None:
        headers = dict(response_headers or {})
        if message is None:  # an empty JSON object, as the platform sends
            super().__init__(json.dumps({}), status=status_code, mimetype="application/json")
        elif json_str:
            super().__init__(json.dumps(message), status=status_code, mimetype="application/json")
        else:
            super().__init__(message, status=status_code)
            if "Content-Type" in headers:  # given below: do not send two
                self.headers.remove("Content-Type")
        self.headers["x-ms-run-function-failed"] = str(run_function_failed)
        # Repeated headers come comma-separated, as on the platform.
        for header, value in headers.items():
            for part in str(value).split(","):
                self.headers.add_header(header, part.strip())


def make_request(scope: Scope, body: bytes) -> AMLRequest:
    """An AMLRequest for an ASGI request whose body was already read."""
    server = scope.get("server") or ("127.0.0.1", 80)
    client = scope.get("client") or ("", 0)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", "").encode().decode("latin-1"),
        "PATH_INFO": scope["path"].encode().decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": str(client[0]),
        "REMOTE_PORT": str(client[1]),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        if name == "content-length":
            continue  # set from the body below (a chunked request has none)
        key = "CONTENT_TYPE" if name == "content-type" else "HTTP_" + name.upper().replace("-", "_")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    environ["CONTENT_LENGTH"] = str(len(body))
    return AMLRequest(environ)


def to_starlette(response: _WerkzeugResponse) -> Response:
    """A Werkzeug (or Flask, or AMLResponse) response as a Starlette one, headers kept."""
    body = response.get_data()
    out = Response(body, status_code=response.status_code)  # sets only content-length
    out.raw_headers.extend(
        (name.lower().encode("latin-1"), str(value).encode("latin-1"))
        for name, value in response.headers.items()
        if name.lower() != "content-length"
    )
    return out


# ----------------------------------------------------------------------------------------
# The platform's module names, for scripts that import them when they are not installed.

_PACKAGES = {
    "azureml_inference_server_http",
    "azureml_inference_server_http.api",
    "azureml",
    "azureml.contrib",
    "azureml.contrib.services",
}


class _PlatformModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Last on sys.meta_path: answers only for names no installed package provides."""

    def find_spec(
        self, fullname: str, path: Any = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        known = _PACKAGES | set(PLATFORM_REQUEST_MODULES) | set(_RESPONSE_MODULES)
        if fullname not in known:
            return None
        return importlib.machinery.ModuleSpec(
            fullname, self, is_package=fullname in _PACKAGES, origin="modeltap"
        )

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # the default module object

    def exec_module(self, module: ModuleType) -> None:
        name = module.__name__
        if name in _PACKAGES:
            module.__path__ = []
        elif name in PLATFORM_REQUEST_MODULES:
            module.rawhttp = rawhttp  # type: ignore[attr-defined]
            module.AMLRequest = AMLRequest  # type: ignore[attr-defined]
        else:
            module.AMLResponse = AMLResponse  # type: ignore[attr-defined]


_finder = _PlatformModules()


def provide_platform_modules() -> None:
    """Make the platform's request/response modules importable, unless installed (idempotent)."""
    if _finder not in sys.meta_path:
        sys.meta_path.append(_finder)
