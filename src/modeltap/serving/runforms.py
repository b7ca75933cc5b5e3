"""How a request becomes run()'s arguments: the platform's input parsers (R1.7).

The source platform's inference server looks at run() once and picks a parser:

- `@rawhttp`: run(request) gets the request itself (an AMLRequest), for any method.
- `@input_schema(...)` (package `inference-schema`): the JSON body is an object whose
  keys are run()'s parameters; each is passed by name, and the decorator converts it
  with its parameter type (Standard, Numpy, Pandas). GET takes them from the query.
- undecorated `run(raw_data)`: the body as UTF-8 text; GET passes the query
  parameters as a JSON object text.

A parameter named `request_headers` gets the request's headers as a dict, whichever
parser is used. Query values are parsed as JSON when they are JSON (`?a=1` is 1), and
a repeated name gives a list, as on the platform. Errors use the platform's status
codes and words.
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from starlette.types import Scope

from modeltap.errors import BadRequestError, ConfigError

__all__ = ["HEADERS_PARAM", "RunForm", "analyze"]

HEADERS_PARAM = "request_headers"
_FIELD = "code_configuration.scoring_script"
_ALLOWED_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


@dataclass(frozen=True)
class RunForm:
    """The shape of one score.py's run(), and how to call it for a request."""

    kind: Literal["text", "schema", "rawhttp"]
    input_name: str  # the first parameter other than request_headers
    schema_params: tuple[inspect.Parameter, ...]  # for "schema": every such parameter
    wants_headers: bool

    def arguments(self, scope: Scope, body: bytes) -> dict[str, Any] | None:
        """run()'s keyword arguments for this request; None for a bare OPTIONS (answer 200).

        Raises BadRequestError with the platform's status and message."""
        method = scope["method"]
        if self.kind == "rawhttp":
            from modeltap.serving.aml_api import make_request

            args: dict[str, Any] = {self.input_name: make_request(scope, body)}
        elif method == "POST":
            args = self._post(scope, body)
        elif method in ("GET", "HEAD"):  # HEAD is a GET without the body, as in Flask
            query = _query(scope)
            if self.kind == "text":
                args = {self.input_name: json.dumps(query)}
            else:
                args = self._extract(query)
        elif method == "OPTIONS":
            return None
        else:
            raise BadRequestError("Method not allowed", 405)
        if self.wants_headers:
            args[HEADERS_PARAM] = headers_dict(scope)
        return args

    def _post(self, scope: Scope, body: bytes) -> dict[str, Any]:
        if self.kind == "text":
            try:
                return {self.input_name: body.decode("utf-8")}
            except UnicodeDecodeError as exc:
                raise BadRequestError(f"Input cannot be decoded as UTF-8: {exc}") from None
        if not _is_json(scope):
            raise BadRequestError("Expects Content-Type to be application/json", 415)
        try:
            parsed = json.loads(body)
        except ValueError as exc:  # JSONDecodeError, or bytes that are not text
            if body:
                raise BadRequestError(f"POST body could not be decoded as JSON: {exc}") from None
            raise BadRequestError("POST body is empty. Expecting a JSON dictionary.") from None
        if not isinstance(parsed, dict):
            raise BadRequestError("POST body should be a JSON dictionary.")
        return self._extract(parsed)

    def _extract(self, values: dict[str, Any]) -> dict[str, Any]:
        args: dict[str, Any] = {}
        for param in self.schema_params:
            value = values.get(param.name, param.default)
            if value is inspect.Parameter.empty:
                raise BadRequestError(f"A value is not provided for the {param.name!r} parameter.")
            args[param.name] = value
        return args


def analyze(run: Callable[..., Any], rawhttp: bool) -> RunForm:
    """The form of a loaded run(), checked as the platform checks it when it starts."""
    params = list(inspect.signature(run).parameters.values())
    if any(p.kind not in _ALLOWED_KINDS for p in params):
        raise ConfigError(
            "run() cannot accept positional-only arguments, *args, or **kwargs", field=_FIELD
        )
    wants_headers = any(p.name == HEADERS_PARAM for p in params)
    inputs = tuple(p for p in params if p.name != HEADERS_PARAM)
    if not inputs:
        raise ConfigError(
            'run() needs to accept an argument other than "request_headers"'
            if wants_headers
            else "run() needs to accept an argument for input data",
            field=_FIELD,
        )
    schema = _schema_decorated(run)
    if rawhttp and schema:
        raise ConfigError(
            "run() cannot be decorated with both @rawhttp and @input_schema", field=_FIELD
        )
    kind: Literal["text", "schema", "rawhttp"] = (
        "rawhttp" if rawhttp else "schema" if schema else "text"
    )
    return RunForm(kind, inputs[0].name, inputs if schema else (), wants_headers)


def _schema_decorated(run: Callable[..., Any]) -> bool:
    # Only a script that imported inference-schema can be decorated by it.
    util = sys.modules.get("inference_schema.schema_util")
    return util is not None and bool(util.is_schema_decorated(run))


def headers_dict(scope: Scope) -> dict[str, str]:
    """Headers as the platform's run() gets them: `X-Request-Id` names, repeats joined by ','."""
    out: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").title(), raw_value.decode("latin-1")
        out[name] = f"{out[name]},{value}" if name in out else value
    return out


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            mime: str = value.decode("latin-1").split(";", 1)[0].strip().lower()
            return mime == "application/json" or (
                mime.startswith("application/") and mime.endswith("+json")
            )
    return False


def _query(scope: Scope) -> dict[str, Any]:
    """Query parameters, each value parsed as JSON when it is JSON; repeats make a list."""
    from urllib.parse import parse_qsl

    pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    grouped: dict[str, list[Any]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(_json_or_text(value))
    return {key: values[0] if len(values) == 1 else values for key, values in grouped.items()}


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value
