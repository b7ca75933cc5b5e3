"""Serving: load a score.py (or an MLflow model), expose it over HTTP, tie each request to
its records."""

from modeltap import status as _status  # noqa: F401  # servers publish counters (ui)
from modeltap.serving.app import create_app
from modeltap.serving.mlflow_model import MlflowModel
from modeltap.serving.scoring import ScoreScript

__all__ = ["MlflowModel", "ScoreScript", "create_app"]
