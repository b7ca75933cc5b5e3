"""Fixtures of the serving tests."""

from __future__ import annotations

import sys
import textwrap
import types
from collections.abc import Callable
from pathlib import Path

import pytest

from modeltap.serving import ScoreScript


@pytest.fixture
def load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., ScoreScript]:
    """load(source, model_dir=None) -> ScoreScript; its imports don't leak into other tests."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setitem(sys.modules, "score", types.ModuleType("score"))
    monkeypatch.setenv("AZUREML_MODEL_DIR", "placeholder")  # restored (unset) afterwards
    monkeypatch.delenv("AZUREML_MODEL_DIR")
    count = 0

    def _load(source: str, model_dir: Path | None = None) -> ScoreScript:
        nonlocal count
        count += 1
        # inference-schema registers schemas by "module.function": every run() here is
        # score.run, so forget earlier ones (a server process loads one script only).
        util = sys.modules.get("inference_schema.schema_util")
        if util is not None:
            util.__functions_schema__.clear()
            util.__versions__.clear()
        folder = tmp_path / f"code{count}"
        folder.mkdir()
        (folder / "score.py").write_text(textwrap.dedent(source))
        return ScoreScript(folder / "score.py", model_dir)

    return _load
