"""The SDK face (R1): contexts, errors, the collector limit, sampling, snapshots, shutdown."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import threading
import uuid

import pandas as pd
import pyarrow as pa
import pytest

import modeltap
from modeltap import BasicCorrelationContext, Collector
from modeltap.config import PipelineSettings
from tests.conftest import read_lines, store_root


def configure(workspace, **kw):
    kw.setdefault("collections", ["model_inputs", "model_outputs"])
    return modeltap.configure(workspace=workspace, endpoint="ep", deployment="blue", **kw)


def test_context_links_inputs_and_outputs(workspace):
    configure(workspace)
    inputs, outputs = Collector(name="model_inputs"), Collector(name="model_outputs")
    ctx = inputs.collect(pd.DataFrame({"x": [1, 2]}))
    assert outputs.collect(pd.DataFrame({"y": [3, 4]}), ctx) is ctx
    uuid.UUID(ctx.get_id())  # a generated id is a UUID
    custom = inputs.collect(pd.DataFrame({"x": [5]}), BasicCorrelationContext(id="test"))
    assert custom.get_id() == "test"
    assert modeltap.flush()
    root = store_root(workspace)
    ins, outs = read_lines(root, "model_inputs"), read_lines(root, "model_outputs")
    assert [line["correlationid"] for line in ins] == [ctx.get_id(), "test"]
    assert outs[0]["correlationid"] == outs[0]["xrequestid"] == ctx.get_id()
    assert outs[0]["data"] == [{"y": 3}, {"y": 4}]


def test_source_sdk_keyword_is_accepted(workspace):
    configure(workspace)
    ctx = Collector(name="model_inputs").collect(
        pd.DataFrame({"x": [1]}), correlation_context=BasicCorrelationContext(id="kw")
    )
    assert ctx.get_id() == "kw"


def test_five_collectors_at_most():
    names = [f"c{i}" for i in range(5)]
    for name in names:
        Collector(name=name)
    Collector(name="c0")  # declaring a name again is not a new collector
    with pytest.raises(modeltap.CollectorLimitError, match="at most 5 collectors"):
        Collector(name="sixth")


def test_name_is_keyword_only_and_validated():
    with pytest.raises(TypeError):
        Collector("model_inputs")  # type: ignore[misc]
    with pytest.raises(modeltap.ConfigError, match="Collector name"):
        Collector(name="../escape")


def test_not_configured_is_a_clear_error():
    collector = Collector(name="model_inputs")
    with pytest.raises(modeltap.CollectionDisabledError, match=r"modeltap\.configure"):
        collector.collect(pd.DataFrame({"x": [1]}))
    seen: list[Exception] = []
    ctx = Collector(name="model_outputs", on_error=seen.append).collect(pd.DataFrame({"x": [1]}))
    assert [type(e) for e in seen] == [modeltap.CollectionDisabledError]
    uuid.UUID(ctx.get_id())  # a new context is returned even when nothing was collected
    given = BasicCorrelationContext(id="r1")
    assert Collector(name="model_outputs", on_error=seen.append).collect([1], given) is given
    assert len(seen) == 2


def test_a_sampled_out_record_still_returns_its_context(workspace):
    configure(workspace, sampling_rate=0.0)
    given = BasicCorrelationContext(id="r1")
    assert Collector(name="model_inputs").collect(pd.DataFrame({"x": [1]}), given) is given
    assert modeltap.stats()["sampled_out"] == 1


def test_disabled_collection_names_it(workspace):
    configure(workspace, collections=["model_inputs"])
    with pytest.raises(modeltap.CollectionDisabledError, match="'model_outputs' is not enabled"):
        Collector(name="model_outputs").collect(pd.DataFrame({"x": [1]}))


@pytest.mark.parametrize(
    ("value", "named"),
    [([1, 2], "builtins.list"), ({"a": [1]}, "builtins.dict"), (pd.Series([1]), "Series")],
)
def test_non_tables_are_type_errors_naming_the_type(workspace, value, named):
    configure(workspace)
    with pytest.raises(TypeError, match=named):
        Collector(name="model_inputs").collect(value)
    seen: list[Exception] = []
    Collector(name="model_outputs", on_error=seen.append).collect(value)
    assert [type(e) for e in seen] == [TypeError]
    assert modeltap.flush()
    assert modeltap.stats()["accepted"] == 0


def test_pyarrow_table_is_collected(workspace):
    configure(workspace)
    Collector(name="model_inputs").collect(pa.table({"a": [1, 2], "b": ["x", "y"]}))
    assert modeltap.flush()
    [line] = read_lines(store_root(workspace))
    assert line["collectdatatype"] == "pyarrow.lib.Table"
    assert line["data"] == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]


def test_snapshot_is_taken_at_collect_time(workspace):
    configure(workspace, flush_interval=60)
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    collector = Collector(name="model_inputs")
    for i in range(50):
        collector.collect(df, BasicCorrelationContext(id=f"r{i}"))
        df.loc[0, "a"] = 1000 + i  # the caller reuses and mutates its frame
        df["b"] = df["b"].str.upper()
        df.loc[1, "b"] = "y"
    assert modeltap.flush()
    lines = read_lines(store_root(workspace))
    assert len(lines) == 50
    for i, line in enumerate(lines):
        expected_a = 1 if i == 0 else 1000 + i - 1
        expected_b = "x" if i == 0 else "X"
        assert line["data"] == [{"a": expected_a, "b": expected_b}, {"a": 2, "b": "y"}]


def test_sampling_keeps_a_requests_records_together_under_threads(workspace):
    configure(workspace, sampling_rate=0.5, flush_interval=60)
    inputs, outputs = Collector(name="model_inputs"), Collector(name="model_outputs")
    per_thread = 250

    def serve_requests(thread: int) -> None:
        for i in range(per_thread):
            ctx = inputs.collect(pd.DataFrame({"t": [thread], "i": [i]}))
            outputs.collect(pd.DataFrame({"y": [i * 2]}), ctx)

    threads = [threading.Thread(target=serve_requests, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert modeltap.flush()
    root = store_root(workspace)
    ins = {line["correlationid"] for line in read_lines(root, "model_inputs")}
    outs = {line["correlationid"] for line in read_lines(root, "model_outputs")}
    assert ins == outs  # never one without the other
    total = 8 * per_thread
    assert 0.4 * total < len(ins) < 0.6 * total
    stats = modeltap.stats()
    assert stats["written"] == 2 * len(ins)
    assert stats["sampled_out"] == 2 * (total - len(ins))
    assert stats["dropped"] == 0


def test_shutdown_flushes_everything(workspace):
    configure(workspace, flush_interval=3600)
    collector = Collector(name="model_inputs")
    for i in range(300):
        collector.collect(pd.DataFrame({"i": [i]}))
    assert modeltap.shutdown()
    lines = read_lines(store_root(workspace))
    assert sorted(line["data"][0]["i"] for line in lines) == list(range(300))
    with pytest.raises(modeltap.CollectionDisabledError):
        collector.collect(pd.DataFrame({"i": [0]}))


def test_interpreter_exit_flushes(workspace):
    script = textwrap.dedent(f"""
        import pandas as pd, modeltap
        modeltap.configure(workspace={str(workspace)!r}, endpoint="ep", deployment="blue",
                           collections=["model_inputs"], flush_interval=3600)
        c = modeltap.Collector(name="model_inputs")
        for i in range(100):
            c.collect(pd.DataFrame({{"i": [i]}}))
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert len(read_lines(store_root(workspace))) == 100


def test_configure_from_deployment_file(tmp_path, workspace):
    file = tmp_path / "deployment.yml"
    file.write_text(
        "name: blue\nendpoint_name: my_endpoint\n"
        "data_collector:\n  rolling_rate: Day\n  collections:\n"
        "    model_inputs:\n      enabled: 'True'\n"
    )
    modeltap.configure(deployment_file=file, workspace=workspace)
    Collector(name="model_inputs").collect(pd.DataFrame({"a": [1]}))
    assert modeltap.flush()
    [path] = list(store_root(workspace).rglob("*.jsonl"))
    rel = path.relative_to(store_root(workspace)).parts
    assert rel[:4] == ("modelDataCollector", "my_endpoint", "blue", "model_inputs")
    assert len(rel) == 4 + 3 + 1  # yyyy/MM/dd + file


def test_public_api_is_complete():
    exported = set(modeltap.__all__)
    assert {"Collector", "BasicCorrelationContext", "configure", "flush", "shutdown"} <= exported
    for name in exported:
        assert getattr(modeltap, name) is not None


def test_configure_names_every_pipeline_key():
    # Its docstring is where a caller looks the keywords up: a new setting must be listed.
    words = set(re.findall(r"\w+", modeltap.configure.__doc__ or ""))
    assert [key for key in vars(PipelineSettings()) if key not in words] == []
