"""docs/serving.md's run() forms and MLflow section, served and called as the page shows.

Each section's score.py (a `py` block) or MLflow deployment (a `yaml` block) is served by a
real `modeltap serve`; each `$ curl ...` line of its `console` block is run against it and
its output compared with the lines the page shows under it (as JSON when they are JSON).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serving.server import Served

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "serving.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def sections() -> dict[str, dict[str, str]]:
    """heading -> {fence language: block} for the page's sections with a console block."""
    found = {}
    for part in re.split(r"^(?=#{2,3} )", PAGE.read_text(), flags=re.M):
        fences = dict((lang, body) for lang, body in FENCE.findall(part))
        if "console" in fences:
            found[part.splitlines()[0].lstrip("# ")] = fences
    return found


SECTIONS = sections()


def exchanges(console: str) -> list[tuple[str, str]]:
    """(command, the output the page shows) for each `$ ` line."""
    pairs: list[tuple[str, list[str]]] = []
    for line in console.splitlines():
        if line.startswith("$ "):
            pairs.append((line[2:], []))
        else:
            pairs[-1][1].append(line)
    return [(command, "\n".join(out)) for command, out in pairs]


def same(shown: str, got: str) -> bool:
    try:
        return bool(json.loads(shown) == json.loads(got))
    except ValueError:
        return shown.strip() == got.strip()


def check_console(server: Served, console: str) -> None:
    for command, shown in exchanges(console):
        done = subprocess.run(
            command.replace("localhost:5001", f"127.0.0.1:{server.port}"),
            shell=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, (command, done.stderr)
        assert same(shown, done.stdout), (command, shown, done.stdout)


def test_the_page_has_every_run_form():
    forms = [name for name, fences in SECTIONS.items() if "py" in fences]
    assert len(forms) == 4, forms
    assert any("MLflow" in name for name in SECTIONS)


@pytest.mark.parametrize("section", [n for n, f in SECTIONS.items() if "py" in f])
def test_run_form_example(tmp_path, section):
    fences = SECTIONS[section]
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "score.py").write_text(fences["py"])
    (tmp_path / "deployment.yml").write_text(
        "name: blue\nendpoint_name: docs\n"
        "code_configuration:\n  code: scripts\n  scoring_script: score.py\n"
    )
    server = Served(tmp_path / "deployment.yml", tmp_path / "ws", tmp_path)
    try:
        check_console(server, fences["console"])
    finally:
        assert server.stop()[0] == 0, server.stderr()


def test_mlflow_example(tmp_path):
    [fences] = [f for name, f in SECTIONS.items() if "MLflow" in name]
    example = ROOT / "examples" / "mlflow-credit"
    shutil.copy(example / "train.py", tmp_path / "train.py")
    subprocess.run(
        [sys.executable, "-W", "ignore", "-c", "from train import train; train()"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=120,
    )
    (tmp_path / "deployment.yml").write_text(fences["yaml"])
    server = Served(tmp_path / "deployment.yml", tmp_path / "ws", tmp_path)
    try:
        check_console(server, fences["console"])
    finally:
        assert server.stop()[0] == 0, server.stderr()
    lines = list((tmp_path / "ws").rglob("model_inputs/**/*.jsonl"))
    assert lines  # the yaml block's collections took the two good requests
