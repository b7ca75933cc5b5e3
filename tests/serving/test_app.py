"""The scoring app in-process (create_app), and modeltap inside a user's own app.

Quick checks of the HTTP contract of `POST /score`; the same app under a real
`modeltap serve` process is in test_serve_cli.py.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pandas as pd
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import modeltap
from modeltap import BasicCorrelationContext, CollectionDisabledError, Collector, ConfigError
from modeltap.serving import create_app
from modeltap.serving.app import ENV_SCRIPT
from tests.conftest import SOURCE_DEPLOYMENT, read_lines, store_root
from tests.serving.appclient import AppClient

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

COLLECTING = """
import json
import pandas as pd
from modeltap import Collector

def init():
    global inputs_collector, outputs_collector
    inputs_collector = Collector(name='model_inputs')
    outputs_collector = Collector(name='model_outputs')

def run(data):
    input_df = pd.DataFrame(json.loads(data)["data"])
    context = inputs_collector.collect(input_df)
    output_df = input_df.sum(axis=1).to_frame("total")
    outputs_collector.collect(output_df, context)
    return output_df.to_dict(orient="records")
"""

# The source's example deployment without a scoring script: the app is the user's own.
DEPLOYMENT = SOURCE_DEPLOYMENT.replace("  conda_file: model/conda.yaml\n", "").replace(
    "code_configuration:\n  code: scripts\n  scoring_script: score.py\n", ""
)


def configure_collection(workspace: Path) -> None:
    modeltap.configure(
        workspace=workspace,
        endpoint="my_endpoint",
        deployment="blue",
        collections=["model_inputs", "model_outputs"],
    )


def test_health_and_get_score(load):
    with AppClient(create_app(load("def run(data):\n    return data\n"))) as client:
        root = client.get("/")
        assert root.status_code == 200
        assert root.text == "Healthy"
        assert client.get("/score").status_code == 200


def test_request_id_is_echoed_and_is_the_correlation_id(load, workspace):
    configure_collection(workspace)
    with AppClient(create_app(load(COLLECTING))) as client:
        given = client.post(
            "/score", json={"data": {"a": [1, 2], "b": [3, 4]}}, headers={"x-request-id": "abc"}
        )
        made = client.post("/score", json={"data": {"a": [7], "b": [1]}})
    # Leaving the `with` ran the lifespan's shutdown, which flushes.
    assert given.status_code == 200
    assert given.headers["content-type"] == "application/json"
    assert given.json() == [{"total": 4}, {"total": 6}]
    assert given.headers["x-request-id"] == "abc"
    generated = made.headers["x-request-id"]
    assert UUID.match(generated)
    root = store_root(workspace)
    for collection in ("model_inputs", "model_outputs"):
        lines = read_lines(root, collection)
        assert sorted(line["correlationid"] for line in lines) == sorted(["abc", generated])
        assert all(line["xrequestid"] == line["correlationid"] for line in lines)
    by_id = {line["correlationid"]: line for line in read_lines(root, "model_outputs")}
    assert by_id["abc"]["data"] == [{"total": 4}, {"total": 6}]
    assert by_id[generated]["data"] == [{"total": 8}]


@pytest.mark.parametrize("bad", ["", "x" * 201, "   "], ids=["empty", "too-long", "blank"])
def test_unusable_request_ids_are_replaced(load, bad):
    with AppClient(create_app(load("def run(data):\n    return 1\n"))) as client:
        r = client.post("/score", content=b"{}", headers={"x-request-id": bad})
    assert r.status_code == 200
    assert UUID.match(r.headers["x-request-id"])


def test_async_run_gets_the_request_id(load, workspace):
    configure_collection(workspace)
    source = COLLECTING.replace("def run(data):", "async def run(data):")
    with AppClient(create_app(load(source))) as client:
        r = client.post("/score", json={"data": {"a": [1]}}, headers={"x-request-id": "async-1"})
    assert r.status_code == 200, r.text
    lines = read_lines(store_root(workspace))
    assert [line["correlationid"] for line in lines] == ["async-1", "async-1"]


def test_body_that_is_not_utf8_is_400_and_run_is_not_called(load):
    source = """
    calls = []
    def run(data):
        calls.append(data)
        return "ran"
    """
    script = load(source)
    with AppClient(create_app(script)) as client:
        r = client.post("/score", content=b"\xff\xfe\x00bad", headers={"x-request-id": "u8"})
    assert r.status_code == 400
    assert "UTF-8" in r.json()["error"]
    assert r.headers["x-request-id"] == "u8"
    assert script.module is not None and script.module.calls == []


def test_run_gets_the_body_as_text(load):
    with AppClient(create_app(load("def run(data):\n    return {'got': data}\n"))) as client:
        r = client.post("/score", content="héllo wörld".encode())
    assert r.json() == {"got": "héllo wörld"}


@pytest.mark.parametrize("kind", ["bytes", "bytearray"])
def test_bytes_result_is_octet_stream(load, kind):
    with AppClient(create_app(load(f"def run(data):\n    return {kind}(b'\\x00\\x01raw')\n"))) as c:
        r = c.post("/score", content=b"{}")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.content == b"\x00\x01raw"
    assert UUID.match(r.headers["x-request-id"])


def test_response_result_passes_through_with_the_request_id(load):
    source = """
    from starlette.responses import PlainTextResponse
    def run(data):
        return PlainTextResponse("teapot", status_code=418, headers={"x-model": "m1"})
    """
    with AppClient(create_app(load(source))) as client:
        r = client.post("/score", content=b"{}", headers={"x-request-id": "r-1"})
    assert r.status_code == 418
    assert r.text == "teapot"
    assert r.headers["x-model"] == "m1"
    assert r.headers["x-request-id"] == "r-1"


def test_none_and_dataframe_results_are_json(load):
    source = """
    import pandas as pd
    def run(data):
        if data == "none":
            return None
        return pd.DataFrame({"a": [1, 2]}).to_dict(orient="records")
    """
    with AppClient(create_app(load(source))) as client:
        none = client.post("/score", content=b"none")
        table = client.post("/score", content=b"{}")
    assert none.status_code == 200 and none.json() is None
    assert table.json() == [{"a": 1}, {"a": 2}]


def test_run_raising_is_500_with_the_error_and_the_app_keeps_serving(load):
    source = """
    import json
    def run(data):
        return {"label": json.loads(data)["label"]}
    """
    with AppClient(create_app(load(source))) as client:
        failed = client.post("/score", json={"no": "label"}, headers={"x-request-id": "e-1"})
        ok = client.post("/score", json={"label": "setosa"})
    assert failed.status_code == 500
    assert failed.json() == {"error": "KeyError: 'label'", "message": "KeyError: 'label'"}
    assert failed.headers["x-request-id"] == "e-1"
    assert ok.status_code == 200 and ok.json() == {"label": "setosa"}


def test_result_that_cannot_be_json_is_500_with_the_error_and_request_id(load):
    # A dict with tuple keys has no JSON form: the failure is run()'s result, reported like
    # a failure inside run(), with the request id the caller needs to find the records.
    source = """
    def run(data):
        return {(1, 2): "pair"}
    """
    with AppClient(create_app(load(source))) as client:
        r = client.post("/score", content=b"{}", headers={"x-request-id": "j-1"})
        ok = client.get("/")
    assert r.status_code == 500
    assert r.headers.get("x-request-id") == "j-1", r.headers
    assert r.headers["content-type"] == "application/json", r.text
    assert "TypeError" in r.json()["error"]
    assert ok.status_code == 200


def test_init_runs_once_with_the_model_dir(load, tmp_path):
    model = tmp_path / "holder" / "model"
    model.mkdir(parents=True)
    (model / "weights.txt").write_text("42")
    source = """
    import os
    inits = 0
    def init():
        global inits, weights
        inits += 1
        with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "weights.txt")) as f:
            weights = f.read()
    def run(data):
        return {"inits": inits, "weights": weights, "dir": os.environ["AZUREML_MODEL_DIR"]}
    """
    with AppClient(create_app(load(source, model.parent))) as client:
        answers = [client.post("/score", content=b"{}").json() for _ in range(3)]
    assert answers == [{"inits": 1, "weights": "42", "dir": str(model.parent.resolve())}] * 3


def test_script_without_run_fails_at_startup(load):
    app = create_app(load("def init():\n    pass\n"))
    with pytest.raises(ConfigError, match=r"run\(raw_data\)"), AppClient(app):
        pass


def test_create_app_without_a_script_says_how_to_start(monkeypatch):
    monkeypatch.delenv(ENV_SCRIPT, raising=False)
    with pytest.raises(RuntimeError, match=ENV_SCRIPT):
        create_app()


# -- modeltap inside the user's own ASGI app (no `modeltap serve`) ------------------------


def deployment_file(tmp_path: Path) -> Path:
    file = tmp_path / "deployment.yml"
    file.write_text(DEPLOYMENT)
    return file


def users_app() -> Starlette:
    inputs = Collector(name="model_inputs")
    outputs = Collector(name="model_outputs")

    async def predict(request: Request) -> Response:
        input_df = pd.DataFrame(await request.json())
        given = request.headers.get("x-order-id")
        context = inputs.collect(input_df, BasicCorrelationContext(id=given) if given else None)
        output_df = input_df.sum(axis=1).to_frame("total")
        outputs.collect(output_df, context)
        return JSONResponse({"id": context.get_id(), "total": output_df["total"].tolist()})

    return Starlette(routes=[Route("/predict", predict, methods=["POST"])])


def test_configure_inside_a_users_own_asgi_app(tmp_path, workspace):
    rt = modeltap.configure(deployment_file=deployment_file(tmp_path), workspace=workspace)
    assert set(rt.deployment.collections) == {"model_inputs", "model_outputs"}
    app = users_app()

    async def drive() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            first = [await client.post("/predict", json={"a": [i], "b": [1]}) for i in range(3)]
            custom = await client.post(
                "/predict", json={"a": [10]}, headers={"x-order-id": "order-7"}
            )
            return [*first, custom]

    responses = asyncio.run(drive())
    assert [r.status_code for r in responses] == [200] * 4
    made = [r.json()["id"] for r in responses]
    assert all(UUID.match(i) for i in made[:3]) and len(set(made[:3])) == 3
    assert made[3] == "order-7"

    assert modeltap.flush(10) is True
    root = store_root(workspace)
    for collection in ("model_inputs", "model_outputs"):
        lines = read_lines(root, collection)
        assert sorted(line["correlationid"] for line in lines) == sorted(made)
    inputs = {line["correlationid"]: line["data"] for line in read_lines(root, "model_inputs")}
    assert inputs["order-7"] == [{"a": 10}]
    assert inputs[made[0]] == [{"a": 0, "b": 1}]

    # After more traffic, shutdown lands it; then collection is off, reported, not silent.
    late = asyncio.run(drive())
    assert modeltap.shutdown(10) is True
    assert len(read_lines(root, "model_inputs")) == 8
    assert {r.json()["id"] for r in late[:3]} <= {
        line["correlationid"] for line in read_lines(root, "model_outputs")
    }
    with pytest.raises(CollectionDisabledError):
        Collector(name="model_inputs").collect(pd.DataFrame({"a": [1]}))
    errors: list[Exception] = []
    Collector(name="model_outputs", on_error=errors.append).collect(pd.DataFrame({"a": [1]}))
    assert len(errors) == 1 and isinstance(errors[0], CollectionDisabledError)


@pytest.mark.slow
def test_collectors_flush_at_interpreter_exit(tmp_path, workspace):
    script = textwrap.dedent(
        f"""
        import pandas as pd
        import modeltap
        from modeltap import BasicCorrelationContext, Collector

        modeltap.configure(deployment_file={str(deployment_file(tmp_path))!r},
                           workspace={str(workspace)!r})
        inputs = Collector(name="model_inputs")
        inputs.collect(pd.DataFrame({{"a": [1, 2]}}), BasicCorrelationContext(id="at-exit"))
        print("collected; exiting without flush")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "collected" in done.stdout
    lines = read_lines(store_root(workspace), "model_inputs")
    assert [line["correlationid"] for line in lines] == ["at-exit"]
    assert lines[0]["data"] == [{"a": 1}, {"a": 2}]
