"""Erasure (SPEC R13.2): one correlation id's lines, or one id column value's rows, taken
out of local folders, Azure Blob (Azurite) and S3 (moto) objects; crash-safe."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter

import orjson
import pandas as pd
import pytest
from click.testing import CliRunner

import modeltap
from modeltap import ConfigError, erase, read
from modeltap.cli import main
from modeltap.record import BLOB, JSON, Record
from modeltap.redact import hash_value
from tests.privacy.common import KEY, KEY_ENV

DEPLOYMENT = """\
name: blue
endpoint_name: ep
data_collector:
  rolling_rate: Hour
  collections:
    model_inputs:
      enabled: 'True'
      data: {path: azureml://datastores/lake/paths/c/inputs}
    request:
      enabled: 'True'
      data: {path: azureml://datastores/lake/paths/c/request}
  modeltap:
    redact:
      hash_key_env: MODELTAP_TEST_HASH_KEY
      collections:
        model_inputs: {hash: [email]}
"""
INPUTS, REQUEST = "ep-blue-model_inputs", "ep-blue-request"


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)


def collect(lake, tmp_path) -> None:
    """Five calls c0..c4, each in its own object: three rows of inputs (customers 100+i, 200
    and 300), a JSON request naming its customer; c3 also sent a binary body (its own
    object)."""
    (tmp_path / "deployment.yml").write_text(DEPLOYMENT)
    rt = modeltap.configure(deployment_file=tmp_path / "deployment.yml", workspace=lake.workspace)
    inputs = modeltap.Collector(name="model_inputs")
    for i in range(5):
        ctx = modeltap.BasicCorrelationContext(id=f"c{i}")
        inputs.collect(
            pd.DataFrame(
                {"customer_id": [100 + i, 200, 300], "email": [f"p{i}@x.example", "q@x", "r@x"]}
            ),
            ctx,
        )
        body = f'{{"customer": {{"customer_id": {100 + i}}}, "x": [1, 2]}}'.encode()
        rt.pipeline.submit(Record("request", body, kind=JSON, correlation_id=f"c{i}"))
        if i == 3:
            rt.pipeline.submit(
                Record(
                    "request",
                    b"\x00PNG\xff",
                    kind=BLOB,
                    correlation_id="c3",
                    content_type="image/png",
                )
            )
        assert modeltap.flush(30)  # one object per call
    modeltap.shutdown()


def rows(lake, source: str) -> Counter[tuple[str, int]]:
    df = read.load(source, workspace=lake.workspace)
    if "customer_id" not in df:
        return Counter((cid, -1) for cid in df["correlationid"])
    return Counter(zip(df["correlationid"], df["customer_id"].astype(int), strict=True))


def names(lake, prefix: str) -> list[str]:
    return [info.path.rsplit("/", 1)[-1] for info in lake.storage.list(prefix)]


def read_lines(lake, prefix: str) -> list[dict]:
    return [
        orjson.loads(line)
        for info in lake.storage.list(prefix)
        for line in lake.storage.get(info.path).splitlines()
    ]


def cli(lake, *args: str):
    result = CliRunner().invoke(main, ["erase", *args, "--workspace", str(lake.workspace)])
    assert result.exit_code == 0, result.output
    return result


def test_erase_a_correlation_id_everywhere(lake, tmp_path):
    collect(lake, tmp_path)
    blobs = [n for n in names(lake, "c/request") if not n.endswith(".jsonl")]
    assert len(blobs) == 1  # c3's binary body
    dry = cli(lake, "--correlation-id", "c3", "--dry-run", INPUTS, REQUEST)
    assert "would erase 1 line" in dry.stderr
    assert dry.stdout.startswith(f"{INPUTS}:1: would delete c/inputs/")
    assert rows(lake, INPUTS)[("c3", 103)] == 1  # a dry run changes nothing

    done = cli(lake, "--correlation-id", "c3", INPUTS, REQUEST)
    assert f"{INPUTS}:1: erased 1 line and 0 rows in 1 object (of 5 line files read)" in done.stderr
    assert "(-2 lines, 1 payload object: nothing left)" in done.stdout
    inputs = rows(lake, INPUTS)
    assert "c3" not in {cid for cid, _ in inputs}
    assert sum(inputs.values()) == 12 and set(inputs.values()) == {1}
    assert "c3" not in {cid for cid, _ in rows(lake, REQUEST)}
    assert blobs[0] not in names(lake, "c/request")  # the payload object went first
    # c3's inputs object was alone in its file: it is gone, not rewritten empty
    assert len(names(lake, "c/inputs")) == 4
    assert not any(".erased-" in n for n in names(lake, "c/inputs"))


def test_erase_an_id_column_value_from_the_rows(lake, tmp_path):
    collect(lake, tmp_path)
    done = cli(lake, "--id-column", "customer_id", "--value", "200", INPUTS, REQUEST)
    assert f"{INPUTS}:1: erased 0 lines and 5 rows in 5 objects" in done.stderr
    inputs = rows(lake, INPUTS)
    assert sorted(inputs) == sorted(  # each once
        [(f"c{i}", 100 + i) for i in range(5)] + [(f"c{i}", 300) for i in range(5)]
    )
    assert sorted(n.split(".", 1)[1] for n in names(lake, "c/inputs")) == ["erased-1.jsonl"] * 5
    # a request body holding the value goes whole
    cli(lake, "--id-column", "customer_id", "--value", "102", REQUEST)
    assert "c2" not in {cid for cid, _ in rows(lake, REQUEST)}
    # a rewritten line is a valid line: its content range counts its data
    for line in read_lines(lake, "c/inputs"):
        n = len(orjson.dumps(line["data"]))
        assert line["contentrange"] == f"bytes 0-{n - 1}/{n}"
    # erasing again rewrites the rewritten objects under the next name
    cli(lake, "--id-column", "customer_id", "--value", "300", INPUTS)
    assert sorted(n.split(".", 1)[1] for n in names(lake, "c/inputs")) == ["erased-2.jsonl"] * 5
    assert sorted(rows(lake, INPUTS)) == [(f"c{i}", 100 + i) for i in range(5)]


def test_erase_a_hashed_column_by_its_raw_value(lake, tmp_path):
    collect(lake, tmp_path)
    stored = read.load(INPUTS, workspace=lake.workspace)
    assert hash_value("p2@x.example", KEY.encode()) in set(stored["email"])
    cli(lake, "--id-column", "email", "--value", "p2@x.example", "--hash-key-env", KEY_ENV, INPUTS)
    assert ("c2", 102) not in rows(lake, INPUTS) and ("c2", 200) in rows(lake, INPUTS)


CRASH = textwrap.dedent("""
    import os, signal, sys
    from modeltap import erase
    from modeltap.read._source import resolve

    source, workspace, step = sys.argv[1:4]
    src = resolve(source, workspace)
    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)
    setattr(src.storage, step, die)   # the process dies at this step, the first time
    erase.erase(src.storage, src.prefix, erase.Target(frozenset({"c1"}), "customer_id",
                                                      frozenset({"200"})))
""")


@pytest.mark.parametrize("step", ["put", "delete"])
def test_a_crash_in_the_middle_leaves_old_or_new_and_a_rerun_finishes(lake, tmp_path, step):
    collect(lake, tmp_path)
    before = names(lake, "c/inputs")
    killed = subprocess.run(
        [sys.executable, "-c", CRASH, INPUTS, str(lake.workspace), step],
        env=os.environ.copy(),
        capture_output=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    after = names(lake, "c/inputs")
    if step == "put":  # killed before the first copy was written: nothing changed
        assert after == before
    else:  # killed after writing the first copy: the old object and its copy are both there
        assert len(after) == len(before) + 1
        assert sum(".erased-1." in n for n in after) == 1
    # Readers never see a row twice, and not the erased ones of an object already copied.
    seen = rows(lake, INPUTS)
    assert set(seen.values()) == {1}
    assert len(seen) == (15 if step == "put" else 14)

    report = next(
        erase.erase_sources(
            [INPUTS],
            erase.Target(frozenset({"c1"}), "customer_id", frozenset({"200"})),
            workspace=lake.workspace,
        )
    )
    assert len(report.cleaned) == (0 if step == "put" else 1)
    assert sorted(rows(lake, INPUTS)) == sorted(
        [(f"c{i}", c) for i in (0, 2, 3, 4) for c in (100 + i, 300)]
    )
    assert len(names(lake, "c/inputs")) == 4  # no leftover copies or originals


def test_target_needs_something_to_erase():
    nothing = "give correlation ids, or an id column and its values"
    with pytest.raises(ConfigError, match=nothing):
        erase.Target()
    with pytest.raises(ConfigError, match=nothing):
        erase.Target(column="customer_id")
    # with ids to erase, a column still needs its values and values their column
    half = "an id column needs the values to erase, and values their column"
    with pytest.raises(ConfigError, match=half):
        erase.Target(correlation_ids=["r1"], column="customer_id")
    with pytest.raises(ConfigError, match=half):
        erase.Target(correlation_ids=["r1"], values=["42"])
    result = CliRunner().invoke(main, ["erase", "x"])
    assert result.exit_code == 2 and "--correlation-id" in result.output
