"""AZUREML_MODEL_DIR as the platform sets it: the folder the model was placed in (R1.7).

On the platform the registered model keeps its own name inside that folder: a
deployment with `model: ./model` gets `AZUREML_MODEL_DIR=<dir>` holding `model/`, so a
score.py opens `os.path.join(os.environ["AZUREML_MODEL_DIR"], "model/clf.pkl")`; a
single file (`model: ./clf.pkl`) is `<dir>/clf.pkl`. Nothing is copied: when the
model's own parent folder holds only the model, that folder is used; otherwise a
temporary folder of links is made (real folders, a link per file, so `os.walk`
descends into it as into the model), and removed when serving stops.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["ModelFolder"]


class ModelFolder:
    """`ModelFolder(model_path).open()` is the value of AZUREML_MODEL_DIR; close() cleans up."""

    def __init__(self, model_path: Path):
        self.model_path = model_path.resolve()
        self._made: Path | None = None

    def open(self) -> Path:
        parent = self.model_path.parent
        if [entry.name for entry in parent.iterdir()] == [self.model_path.name]:
            return parent
        self._made = Path(tempfile.mkdtemp(prefix="modeltap-model-dir-"))
        _link_tree(self.model_path, self._made / self.model_path.name)
        return self._made

    def close(self) -> None:
        if self._made is not None:
            shutil.rmtree(self._made, ignore_errors=True)  # the links, not the model
            self._made = None


def _link_tree(source: Path, target: Path) -> None:
    if not source.is_dir():
        target.symlink_to(source)
        return
    for folder, _, files in os.walk(source, followlinks=True):
        here = target / Path(folder).relative_to(source)
        here.mkdir(parents=True, exist_ok=True)
        for name in files:
            (here / name).symlink_to(Path(folder) / name)
