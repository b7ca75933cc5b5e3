"""Serving: load a score.py, expose it over HTTP, and tie each request to its records."""

from modeltap.serving.app import create_app
from modeltap.serving.scoring import ScoreScript

__all__ = ["ScoreScript", "create_app"]
