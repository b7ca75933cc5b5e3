"""AZUREML_MODEL_DIR holds the model under its own name, as on the platform (R1.7)."""

from __future__ import annotations

import os
from pathlib import Path

from modeltap.serving.model_dir import ModelFolder


def test_a_parent_holding_only_the_model_is_used_as_it_is(tmp_path):
    model = tmp_path / "registered" / "model"
    model.mkdir(parents=True)
    folder = ModelFolder(model)
    assert folder.open() == model.parent
    folder.close()
    assert model.is_dir()  # nothing of the user's is removed


def test_a_folder_beside_other_files_gets_a_folder_of_links(tmp_path):
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "clf.pkl").write_bytes(b"weights")
    (model / "sub" / "vocab.txt").write_text("a b")
    (tmp_path / "deployment.yml").write_text("name: blue\n")  # a neighbour: not the model's
    folder = ModelFolder(model)
    model_dir = folder.open()
    assert model_dir != tmp_path
    assert sorted(p.name for p in model_dir.iterdir()) == ["model"]
    assert (model_dir / "model" / "clf.pkl").read_bytes() == b"weights"
    # os.walk descends into it as into the model itself (links are files, folders real).
    walked = sorted(
        str(Path(root, name).relative_to(model_dir))
        for root, _, names in os.walk(model_dir)
        for name in names
    )
    assert walked == ["model/clf.pkl", "model/sub/vocab.txt"]
    folder.close()
    assert not model_dir.exists()
    assert (model / "clf.pkl").read_bytes() == b"weights"  # the model itself stays


def test_a_single_file_keeps_its_name(tmp_path):
    model = tmp_path / "sklearn_regression_model.pkl"
    model.write_bytes(b"w")
    (tmp_path / "score.py").write_text("")
    folder = ModelFolder(model)
    model_dir = folder.open()
    assert (model_dir / "sklearn_regression_model.pkl").read_bytes() == b"w"
    folder.close()
