"""Serving: load a score.py, expose it over HTTP, and tie each request to its records."""

from modeltap import status as _status  # noqa: F401  # servers publish counters (ui)
from modeltap.serving.app import create_app
from modeltap.serving.scoring import ScoreScript

__all__ = ["ScoreScript", "create_app"]
