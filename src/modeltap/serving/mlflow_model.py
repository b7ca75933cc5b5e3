"""Serve an MLflow model folder with no score.py, as the platform does (R9.1).

`POST /score` takes the platform's payload for MLflow deployments, or MLflow's own:

- `{"input_data": {"columns": [...], "index": [...], "data": [[...]]}}`: a table
  (pandas "split"; `index` may be left out); `input_data` as a list or an object of
  lists: tensors. The answer is the predictions as JSON, as the platform returns
  them (`[1, 0]`, or records for a table of predictions).
- `dataframe_split`, `dataframe_records`, `instances`, `inputs`: MLflow's scoring
  server's payloads, answered as that server does: `{"predictions": [...]}`.
- `params` beside either: passed to predict() when the model takes them.

The model's signature checks the input: a missing column or a value of the wrong
type is a 400 naming the column, never a 500. With the model_inputs / model_outputs
collections enabled (or `modeltap serve --collect`), the input table and the
predictions are collected under the request's id, with no user code. A request the
model refused is not collected as model data (payload logging still records it).
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import os
from pathlib import Path
from typing import Any

from starlette.types import Scope

from modeltap import runtime
from modeltap.collector import Collector
from modeltap.errors import BadRequestError, ConfigError
from modeltap.serving.runforms import RunForm
from modeltap.serving.scoring import MODEL_DIR_ENV
from modeltap.serving.swagger import Swagger

__all__ = ["MLFLOW_HINT", "MlflowModel", "require_mlflow"]

log = logging.getLogger(__name__)

MLFLOW_HINT = "serving an MLflow model needs the mlflow package: pip install 'modeltap[mlflow]'"
PLATFORM_KEY = "input_data"
MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
# The platform's MLflow run() is schema-decorated: its body parsing is runforms' "schema".
_BODY = RunForm(
    "schema",
    PLATFORM_KEY,
    tuple(
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None)
        for name in (PLATFORM_KEY, *MLFLOW_KEYS, "params")
    ),
    wants_headers=False,
)


def require_mlflow() -> None:
    """ConfigError with the install hint when mlflow is not installed."""
    if importlib.util.find_spec("mlflow") is None:
        raise ConfigError(MLFLOW_HINT, field="model.type")


class MlflowModel:
    """An MLflow model's pyfunc flavour behind the scoring app (see scoring.Scorer)."""

    run_is_async = False

    def __init__(self, model_path: str | Path, model_dir: str | Path | None = None):
        """model_dir: AZUREML_MODEL_DIR, the folder that holds the model folder."""
        self.path = Path(model_path).resolve()
        self.model_dir = Path(model_dir).resolve() if model_dir is not None else None
        self.model: Any = None
        self._swagger = Swagger({})

    def load(self) -> None:
        try:
            import mlflow.pyfunc
        except ImportError:
            raise ConfigError(MLFLOW_HINT, field="model.type") from None
        if self.model_dir is not None:  # as the platform sets them for its MLflow script
            os.environ[MODEL_DIR_ENV] = str(self.model_dir)
            os.environ["MLFLOW_MODEL_FOLDER"] = self.path.name
        self.model = mlflow.pyfunc.load_model(str(self.path))
        self.schema = self.model.metadata.get_input_schema()
        self.takes_params = "params" in inspect.signature(self.model.predict).parameters
        self.inputs = _collector("model_inputs")
        self.outputs = _collector("model_outputs")
        if self.schema is not None and not self.schema.is_tensor_spec():
            self._swagger = _table_swagger(self.schema.input_names())

    def arguments(self, scope: Scope, body: bytes) -> dict[str, Any] | None:
        """{"data": model input, "params": ..., "wrap": MLflow's answer shape}."""
        values = _BODY.arguments(scope, body)
        if values is None:
            return None
        given = [key for key in (PLATFORM_KEY, *MLFLOW_KEYS) if values[key] is not None]
        if not given:
            raise BadRequestError(f"A value is not provided for the {PLATFORM_KEY!r} parameter.")
        key = given[0]
        if key == PLATFORM_KEY:
            payload = values[key]
            table = isinstance(payload, dict) and {"columns", "data"} <= payload.keys()
            parse_as = {("dataframe_split" if table else "inputs"): payload}
        else:
            parse_as = {k: values[k] for k in given}  # MLflow rejects more than one
        from mlflow.pyfunc.scoring_server import infer_and_parse_data

        try:
            data = _mlflow_call(infer_and_parse_data, parse_as, self.schema)
        except (ValueError, TypeError, KeyError) as exc:  # a table pandas cannot build
            raise BadRequestError(f"{key}: {exc}") from None
        return {"data": data, "params": values["params"], "wrap": key != PLATFORM_KEY}

    def call(self, arguments: dict[str, Any]) -> Any:
        data, params = arguments["data"], arguments["params"]
        if self.takes_params:
            result = _mlflow_call(self.model.predict, data, params=params)
        else:
            result = _mlflow_call(self.model.predict, data)
        if self.inputs is not None or self.outputs is not None:
            self._collect(data, result)
        answer = _jsonable(result)
        return {"predictions": answer} if arguments["wrap"] else answer

    def _collect(self, data: Any, result: Any) -> None:
        import pandas as pd

        context = None
        if self.inputs is not None:
            frame = _as_frame(pd, data)
            if frame is not None:
                context = self.inputs.collect(frame)
        if self.outputs is not None:
            frame = _as_frame(pd, result)
            if frame is not None:
                self.outputs.collect(frame, context)

    def swagger(self) -> Swagger:
        return self._swagger


def _collector(name: str) -> Collector | None:
    rt = runtime.active()
    if rt is None or not rt.collection_enabled(name):
        return None
    return Collector(name=name, on_error=lambda exc: log.warning("%s: %s", name, exc))


def _mlflow_call(func: Any, *args: Any, **kwargs: Any) -> Any:
    """func(...), with MLflow's client errors (a bad payload, a signature the input does
    not meet) turned into a BadRequestError with MLflow's status and reason."""
    from mlflow.exceptions import MlflowException

    try:
        return func(*args, **kwargs)
    except MlflowException as exc:
        status = int(exc.get_http_status_code())  # type: ignore[no-untyped-call]
        if not 400 <= status < 500:
            raise
        reason = exc.message
        if reason.startswith("Failed to enforce schema of data"):
            # "... of data '<the whole frame>' with schema '...'. Error: <the reason>"
            reason = reason.rsplit("Error: ", 1)[-1].strip()
        raise BadRequestError(reason, status) from None


def _as_frame(pd: Any, value: Any) -> Any:
    """A DataFrame of a model input or output, or None when it is not tabular."""
    if isinstance(value, pd.DataFrame):
        return value
    try:
        return pd.DataFrame(value)
    except (ValueError, TypeError):
        log.debug("not collected: %s is not tabular", type(value).__name__)
        return None


def _jsonable(result: Any) -> Any:
    """Predictions as the platform answers them: arrays as lists, tables as records."""
    to_dict = getattr(result, "to_dict", None)
    if hasattr(result, "columns") and callable(to_dict):
        return to_dict(orient="records")
    if hasattr(result, "index") and hasattr(result, "to_numpy"):  # a Series
        return result.to_numpy()
    return result  # numpy arrays and scalars: tabular.dumps writes them


def _table_swagger(columns: list[str]) -> Swagger:
    split = {
        "type": "object",
        "properties": {
            "columns": {"type": "array", "items": {"type": "string"}},
            "index": {"type": "array", "items": {"type": "integer"}},
            "data": {"type": "array", "items": {"type": "array", "items": {}}},
        },
    }
    service_input = {
        "type": "object",
        "properties": {PLATFORM_KEY: split},
        "example": {PLATFORM_KEY: {"columns": columns, "index": [0], "data": [[]]}},
    }
    service_output = {"type": "array", "items": {}, "example": []}
    return Swagger.from_schemas(service_input, service_output, ["2", "3", "3.1"])
