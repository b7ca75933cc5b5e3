"""docs/privacy.md: its deployment file loads, its error is the loader's, and its commands
run against the workspace its Python examples fill."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from modeltap.cli import main
from modeltap.config import load_deployment
from modeltap.errors import ConfigError
from tests.test_docs import blocks

PAGE = Path(__file__).resolve().parents[2] / "docs" / "privacy.md"


def test_the_deployment_file_on_the_page_loads(tmp_path, monkeypatch):
    [deployment] = blocks(PAGE, "yaml")
    (tmp_path / "deployment.yml").write_text(deployment)
    settings = load_deployment(tmp_path / "deployment.yml")
    rules = settings.redact.collections
    assert rules["request"].drop == rules["model_inputs"].drop == ("ssn",)  # the YAML merge
    assert rules["request"].paths == (("$.customer.address", "drop"),)
    assert settings.retention is not None and settings.retention.days == 90
    # the error the page shows is the loader's
    shown = re.search(
        r"`(data_collector\.modeltap\.redact\.collections\.model_input: [^`]*)`",
        " ".join(PAGE.read_text().split()),
    )
    assert shown is not None
    (tmp_path / "deployment.yml").write_text(
        deployment.replace("        model_inputs: &person", "        model_input: &person")
    )
    with pytest.raises(ConfigError) as err:
        load_deployment(tmp_path / "deployment.yml")
    assert str(err.value).endswith(shown[1])


def test_the_commands_on_the_page_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for code in blocks(PAGE, "python"):
        exec(compile(code, str(PAGE), "exec"), namespace)
    outputs = []
    for text in blocks(PAGE, "bash"):
        for line in text.strip().splitlines():
            args = shlex.split(line)
            assert args[0] == "modeltap"
            result = CliRunner().invoke(main, args[1:])
            assert result.exit_code == 0, (line, result.output)
            outputs.append(result.output)
    assert "shop/blue/model_inputs  P90D" in outputs[0]
    assert "would remove 0 partitions" in outputs[1]
    assert "erased 1 line and 0 rows" in outputs[4]  # C-1001's row of order-1
