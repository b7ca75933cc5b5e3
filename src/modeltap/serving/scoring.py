"""Load a score.py and call it by the platform's scoring contract (R1.7).

`init()` runs once per process, then run() once per request, in whichever form the
script declares (runforms.py: plain text, inference-schema decorated, @rawhttp, with
or without `request_headers`). `AZUREML_MODEL_DIR` is set before the script loads.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from starlette.types import Scope

from modeltap.errors import ConfigError
from modeltap.serving import aml_api
from modeltap.serving.runforms import RunForm, analyze
from modeltap.serving.swagger import Swagger

__all__ = ["MODEL_DIR_ENV", "ScoreScript", "Scorer"]

MODEL_DIR_ENV = "AZUREML_MODEL_DIR"
_FIELD = "code_configuration.scoring_script"


class Scorer(Protocol):
    """What the scoring app serves: a score.py (ScoreScript) or an MLflow model."""

    path: Path
    run_is_async: bool  # run() is a coroutine function (known once loaded)

    def load(self) -> None: ...

    def arguments(self, scope: Scope, body: bytes) -> dict[str, Any] | None: ...

    def call(self, arguments: dict[str, Any]) -> Any: ...

    def swagger(self) -> Swagger: ...


class ScoreScript:
    """A user's scoring script, served as the platform's inference server serves it."""

    def __init__(self, path: str | Path, model_dir: str | Path | None = None):
        """model_dir: the value of AZUREML_MODEL_DIR, the folder that holds the model."""
        self.path = Path(path).resolve()
        self.model_dir = Path(model_dir).resolve() if model_dir is not None else None
        self.module: ModuleType | None = None
        self.form: RunForm | None = None
        self._run: Any = None
        self._swagger: Swagger | None = None
        self.run_is_async = False

    def load(self) -> None:
        if not self.path.is_file():
            raise ConfigError(f"scoring script {str(self.path)!r} does not exist", field=_FIELD)
        if self.model_dir is not None:
            os.environ[MODEL_DIR_ENV] = str(self.model_dir)
        folder = str(self.path.parent)
        if folder not in sys.path:  # score.py imports its neighbours, as on the platform
            sys.path.insert(0, folder)
        aml_api.provide_platform_modules()
        aml_api.reset_rawhttp()
        spec = importlib.util.spec_from_file_location("score", self.path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"cannot load {str(self.path)!r} as Python", field=_FIELD)
        module = importlib.util.module_from_spec(spec)
        sys.modules["score"] = module
        spec.loader.exec_module(module)
        run = getattr(module, "run", None)
        if not callable(run):
            raise ConfigError(f"{str(self.path)!r} has no run(raw_data) function", field=_FIELD)
        self.form = analyze(run, aml_api.rawhttp_requested())
        self.module, self._run = module, run
        self.run_is_async = inspect.iscoroutinefunction(run)  # asked on every request
        init = getattr(module, "init", None)
        if callable(init):
            init()
        self._swagger = Swagger.for_script(run, self.path.parent)

    def arguments(self, scope: Scope, body: bytes) -> dict[str, Any] | None:
        """run()'s keyword arguments for a request (runforms.RunForm.arguments)."""
        if self.form is None:
            raise RuntimeError("score script is not loaded")
        return self.form.arguments(scope, body)

    def call(self, arguments: dict[str, Any]) -> Any:
        return self._run(**arguments)

    def run(self, raw_data: str) -> Any:
        """run() with a text body, as a plain `run(raw_data)` takes it."""
        if self._run is None or self.form is None:
            raise RuntimeError("score script is not loaded")
        return self._run(**{self.form.input_name: raw_data})

    def swagger(self) -> Swagger:
        if self._swagger is None:
            raise RuntimeError("score script is not loaded")
        return self._swagger
