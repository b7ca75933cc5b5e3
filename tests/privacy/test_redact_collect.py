"""collect() with redaction rules (SPEC R13.1): a frame with every kind of field goes in;
the files, the spool and the logs hold none of its raw values, and hashes still join."""

from __future__ import annotations

import logging

import orjson
import pandas as pd
import pyarrow as pa
import pytest

import modeltap
from modeltap import read
from modeltap.redact import hash_value
from tests.conftest import read_lines, store_root
from tests.privacy.common import (
    CUSTOMER,
    EMAIL,
    KEY,
    KEY_ENV,
    RULES,
    frame,
    leaks,
    leaks_in_text,
    record,
)

H = lambda value: hash_value(value, KEY.encode())  # noqa: E731


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)


def configure(workspace, **pipeline):
    return modeltap.configure(
        workspace=workspace,
        endpoint="ep",
        deployment="blue",
        collections=["model_inputs", "model_outputs"],
        redact={
            "hash_key_env": KEY_ENV,
            "collections": {"model_inputs": RULES, "model_outputs": {"hash": ["customer_id"]}},
        },
        **pipeline,
    )


@pytest.mark.parametrize("durability", ["memory", "spool"])
def test_no_raw_value_reaches_the_files_the_spool_or_the_log(
    tmp_path, workspace, durability, caplog
):
    caplog.set_level(logging.DEBUG)
    configure(workspace, durability=durability, flush_interval=60.0)
    inputs = modeltap.Collector(name="model_inputs")
    outputs = modeltap.Collector(name="model_outputs")
    small, large = frame(1), frame(40)  # collect() encodes small frames itself
    for df in (small, large):
        ctx = inputs.collect(df)
        outputs.collect(pd.DataFrame({"customer_id": [CUSTOMER], "y": [1]}), ctx)
    inputs.collect(pa.Table.from_pylist([record(7)]))
    if durability == "spool":  # before the upload: the lines wait in the spool, redacted
        assert list((workspace / "spool").rglob("*.open"))
        assert leaks(workspace) == []
    assert modeltap.flush(30)
    assert leaks(workspace) == []
    assert leaks_in_text(caplog.text) == []
    modeltap.shutdown()

    lines = read_lines(store_root(workspace), "model_inputs")
    rows = [row for line in lines for row in line["data"]]
    assert len(rows) == 1 + 40 + 1
    first = rows[0]
    assert first == {
        "customer_id": H(CUSTOMER),
        "email": H(EMAIL),
        "card_number": "************1111",
        "notes": "case 0: write to [redacted:email], card [redacted:credit_card], "
        "call [redacted:phone]",
        "profile": {"tier": "gold"},
        "age": 41,
        "score": 0.25,
        "when": "2026-01-02T03:04:05",
    }
    assert all("ssn" not in row and "address" not in row["profile"] for row in rows)
    assert [line["collectdatatype"] for line in lines][-1] == "pyarrow.lib.Table"
    # contentrange still counts the bytes of the data as stored
    for line in lines:
        n = len(orjson.dumps(line["data"]))
        assert line["contentrange"] == f"bytes 0-{n - 1}/{n}"


def test_hashed_ids_still_join_inputs_outputs_and_ground_truth(workspace):
    configure(workspace)
    inputs = modeltap.Collector(name="model_inputs")
    outputs = modeltap.Collector(name="model_outputs")
    ctx = inputs.collect(frame(1))
    outputs.collect(pd.DataFrame({"customer_id": [CUSTOMER], "y": [1]}), ctx)
    assert modeltap.flush(30)
    modeltap.shutdown()
    ins = read.load("ep-blue-model_inputs", workspace=workspace)
    outs = read.load("ep-blue-model_outputs", workspace=workspace)
    # ground truth from elsewhere is hashed with the same key to join
    labels = pd.DataFrame({"customer_id": [H(CUSTOMER)], "label": [1]})
    joined = ins.merge(outs, on="customer_id").merge(labels, on="customer_id")
    assert len(joined) == 1 and joined["label"].tolist() == [1]
    assert (ins["correlationid"] == outs["correlationid"]).all()


def test_columns_no_rule_names_are_collected_as_before(workspace):
    configure(workspace)
    plain = pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5]})
    modeltap.Collector(name="model_outputs").collect(plain)
    modeltap.Collector(name="model_inputs").collect(plain)
    assert modeltap.flush(30)
    for name in ("model_outputs", "model_inputs"):
        [line] = read_lines(store_root(workspace), name)
        assert line["data"] == [{"a": 1, "b": 0.5}, {"a": 2, "b": 1.5}]
