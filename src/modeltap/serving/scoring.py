"""Load a score.py and call it by the init() / run(raw_data) contract (R1.7)."""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from modeltap.errors import ConfigError

__all__ = ["ScoreScript"]

MODEL_DIR_ENV = "AZUREML_MODEL_DIR"


class ScoreScript:
    """A user's scoring script: `init()` once per process, then `run(raw_data)` per call."""

    def __init__(self, path: str | Path, model_dir: str | Path | None = None):
        self.path = Path(path).resolve()
        self.model_dir = Path(model_dir).resolve() if model_dir is not None else None
        self.module: ModuleType | None = None

    def load(self) -> None:
        if not self.path.is_file():
            raise ConfigError(
                f"scoring script {str(self.path)!r} does not exist",
                field="code_configuration.scoring_script",
            )
        if self.model_dir is not None:
            os.environ[MODEL_DIR_ENV] = str(self.model_dir)
        folder = str(self.path.parent)
        if folder not in sys.path:  # score.py imports its neighbours, as on the platform
            sys.path.insert(0, folder)
        spec = importlib.util.spec_from_file_location("score", self.path)
        if spec is None or spec.loader is None:
            raise ConfigError(
                f"cannot load {str(self.path)!r} as Python",
                field="code_configuration.scoring_script",
            )
        module = importlib.util.module_from_spec(spec)
        sys.modules["score"] = module
        spec.loader.exec_module(module)
        if not callable(getattr(module, "run", None)):
            raise ConfigError(
                f"{str(self.path)!r} has no run(raw_data) function",
                field="code_configuration.scoring_script",
            )
        self.module = module
        init = getattr(module, "init", None)
        if callable(init):
            init()

    @property
    def run_is_async(self) -> bool:
        return self.module is not None and inspect.iscoroutinefunction(self.module.run)

    def run(self, raw_data: str) -> Any:
        if self.module is None:
            raise RuntimeError("score script is not loaded")
        return self.module.run(raw_data)
