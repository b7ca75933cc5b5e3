"""`GET /swagger.json`: the OpenAPI document of the scoring API, as the platform builds it.

`?version=` picks 2 (the default; also `2.0`), 3 (`3.0`) or 3.1. For each version the
document is the user's own file beside score.py when there is one (`swagger.json` or
`swagger2.json`, `swagger3.json`, `swagger3.1.json`), else one generated from run()'s
`@input_schema` / `@output_schema` (package `inference-schema`), in the shape of the
platform's templates: `ServiceInput` and `ServiceOutput` are the schemas. A run()
without schemas has no generated document (404), and neither has a version its
parameter types do not support. `SERVICE_NAME`, `SERVICE_VERSION` and
`SERVICE_PATH_PREFIX` fill the title, version and paths, as on the platform.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modeltap.errors import BadRequestError

__all__ = ["Swagger"]

log = logging.getLogger(__name__)

# Each version and the names that ask for it.
_ALIASES = {"2": "2", "2.0": "2", "3": "3", "3.0": "3", "3.1": "3.1"}
_USER_FILES = {
    "2": ("swagger.json", "swagger2.json"),
    "3": ("swagger3.json",),
    "3.1": ("swagger3.1.json",),
}


class Swagger:
    """The documents of one deployment, made once when the worker starts."""

    def __init__(self, documents: dict[str, dict[str, Any]]):
        self.documents = documents  # "2" | "3" | "3.1" -> document

    @classmethod
    def for_script(cls, run: Callable[..., Any], code_dir: Path) -> Swagger:
        """Users' files beside score.py, else documents from run()'s inference-schema schemas."""
        util = sys.modules.get("inference_schema.schema_util")
        generated: dict[str, dict[str, Any]] = {}
        if util is not None and util.is_schema_decorated(run):
            supported = set(util.get_supported_versions(run))
            versions = [v for v in _USER_FILES if _names_of(v) & supported]
            generated = cls.from_schemas(
                util.get_input_schema(run), util.get_output_schema(run), versions
            ).documents
        documents = {}
        for version, names in _USER_FILES.items():
            user = _read_user_file(code_dir, names)
            if user is not None:
                documents[version] = user
            elif version in generated:
                documents[version] = generated[version]
        return cls(documents)

    @classmethod
    def from_schemas(
        cls, input_schema: dict[str, Any], output_schema: dict[str, Any], versions: list[str]
    ) -> Swagger:
        return cls({v: _document(v, input_schema, output_schema) for v in versions})

    def get(self, version: str | None) -> dict[str, Any]:
        """The document for `?version=` (default 2); BadRequestError 404 with the platform's
        words for a version that is not valid or not available."""
        asked = "2" if version is None else version
        supported = ", ".join(sorted(self.documents))
        if asked not in _ALIASES:
            raise BadRequestError(
                f"Swagger version [{asked}] is not valid. Supported versions: [{supported}].", 404
            )
        document = self.documents.get(_ALIASES[asked])
        if document is None:
            raise BadRequestError(
                f"Swagger version [{asked}] is not supported for the scoring script. "
                f"Supported swagger versions: [{supported}].",
                404,
            )
        return document


def _names_of(version: str) -> set[str]:
    return {name for name, target in _ALIASES.items() if target == version}


def _read_user_file(folder: Path, names: tuple[str, ...]) -> dict[str, Any] | None:
    for name in names:
        path = folder / name
        if path.is_file():
            log.info("swagger: serving the user's %s", path)
            loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return loaded
    return None


def _document(version: str, service_input: Any, service_output: Any) -> dict[str, Any]:
    """The platform's swagger2/swagger3 template with the run()'s schemas in it."""
    name = os.environ.get("SERVICE_NAME", "ML service")
    prefix = os.environ.get("SERVICE_PATH_PREFIX", "").strip("/")
    prefix = f"/{prefix}" if prefix else ""
    info = {
        "title": name,
        "description": f"API specification for the Azure Machine Learning service {name}",
        "version": os.environ.get("SERVICE_VERSION", "1.0"),
    }
    error = {"type": "object", "properties": {"message": {"type": "string"}}}
    if version == "2":
        return _swagger2(info, prefix, service_input, service_output, error)
    openapi = _openapi3(info, prefix, service_input, service_output, error)
    openapi["openapi"] = "3.1.0" if version == "3.1" else "3.0.3"
    return openapi


_HEALTH = "Simple health check endpoint to ensure the service is up at any given point."
_HEALTHY = "If service is up and running, this response will be returned with the content 'Healthy'"
_SCORE = "Run web service's model and get the prediction output"
_PAYLOAD = "The input payload for executing the real-time machine learning service."
_SCORED = (
    "The service processed the input correctly and provided a result prediction, if applicable."
)
_FAILED = "The service failed to execute due to an error."
_BEARER = {
    "type": "apiKey",
    "name": "Authorization",
    "in": "header",
    "description": "For example: Bearer abc123",
}
_VERSION_PARAM = {"name": "version", "in": "query", "required": False}


def _swagger2(info: Any, prefix: str, inp: Any, out: Any, error: Any) -> dict[str, Any]:
    failed = {"description": _FAILED, "schema": {"$ref": "#/definitions/ErrorResponse"}}
    return {
        "swagger": "2.0",
        "info": info,
        "schemes": ["https"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "securityDefinitions": {"Bearer": _BEARER},
        "paths": {
            f"{prefix}/": {
                "get": {
                    "operationId": "ServiceHealthCheck",
                    "description": _HEALTH,
                    "responses": {
                        "200": {
                            "description": _HEALTHY,
                            "schema": {"type": "string"},
                            "examples": {"application/json": "Healthy"},
                        },
                        "default": failed,
                    },
                }
            },
            f"{prefix}/score": {
                "post": {
                    "operationId": "RunMLService",
                    "description": _SCORE,
                    "security": [{"Bearer": []}],
                    "parameters": [
                        {
                            "name": "serviceInputPayload",
                            "in": "body",
                            "description": _PAYLOAD,
                            "schema": {"$ref": "#/definitions/ServiceInput"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": _SCORED,
                            "schema": {"$ref": "#/definitions/ServiceOutput"},
                        },
                        "default": failed,
                    },
                }
            },
            f"{prefix}/swagger.json": {
                "get": {
                    "operationId": "GetSwaggerSpec",
                    "description": "Get the Swagger specification.",
                    "parameters": [{**_VERSION_PARAM, "type": "integer", "enum": [2, 3]}],
                    "responses": {
                        "200": {
                            "description": "The Swagger specification.",
                            "schema": {"type": "string"},
                        },
                        "default": failed,
                    },
                }
            },
        },
        "definitions": {"ServiceInput": inp, "ServiceOutput": out, "ErrorResponse": error},
    }


def _openapi3(info: Any, prefix: str, inp: Any, out: Any, error: Any) -> dict[str, Any]:
    def content(mime: str, schema: Any) -> dict[str, Any]:
        return {mime: {"schema": schema}}

    failed = {
        "description": _FAILED,
        "content": content("application/json", {"$ref": "#/components/schemas/ErrorResponse"}),
    }
    return {
        "openapi": "3.0.3",
        "info": info,
        "security": [{"Bearer": []}],
        "paths": {
            f"{prefix}/": {
                "get": {
                    "operationId": "ServiceHealthCheck",
                    "description": _HEALTH,
                    "responses": {
                        "200": {
                            "description": _HEALTHY,
                            "content": content(
                                "text/plain", {"type": "string", "example": "Healthy"}
                            ),
                        },
                        "default": failed,
                    },
                }
            },
            f"{prefix}/score": {
                "post": {
                    "operationId": "RunMLService",
                    "description": _SCORE,
                    "security": [{"Bearer": []}],
                    "requestBody": {
                        "description": _PAYLOAD,
                        "content": content(
                            "application/json", {"$ref": "#/components/schemas/ServiceInput"}
                        ),
                    },
                    "responses": {
                        "200": {
                            "description": _SCORED,
                            "content": content(
                                "application/json", {"$ref": "#/components/schemas/ServiceOutput"}
                            ),
                        },
                        "default": failed,
                    },
                }
            },
            f"{prefix}/swagger.json": {
                "get": {
                    "operationId": "GetSwaggerSpec",
                    "description": "Get the Swagger specification.",
                    "parameters": [
                        {**_VERSION_PARAM, "schema": {"type": "integer", "enum": [2, 3]}}
                    ],
                    "responses": {
                        "200": {
                            "description": "The Swagger specification.",
                            "content": content("text/plain", {"type": "string"}),
                        },
                        "default": failed,
                    },
                }
            },
        },
        "components": {
            "schemas": {"ServiceInput": inp, "ServiceOutput": out, "ErrorResponse": error},
            "securitySchemes": {"Bearer": _BEARER},
        },
    }
