"""The platform's run() forms, in-process: how each request becomes run()'s arguments,
and the platform's status codes and words when it cannot (R1.7).

The same forms under a real `modeltap serve`, with collection on, are in
test_platform_scripts.py.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from modeltap.errors import ConfigError
from modeltap.serving import create_app
from tests.serving.appclient import AppClient

SCHEMA_SCRIPT = """
import numpy as np
import pandas as pd
from inference_schema.schema_decorators import input_schema, output_schema
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.parameter_types.standard_py_parameter_type import (
    StandardPythonParameterType,
)

numpy_sample = NumpyParameterType(np.array([[1.0, 2.0, 3.0]]))
pandas_sample = PandasParameterType(pd.DataFrame({"name": ["Sarah"], "age": [25]}))
standard_sample = StandardPythonParameterType(0.0)
inputs = StandardPythonParameterType(
    {"input1": numpy_sample, "input2": pandas_sample, "input3": standard_sample}
)

def init():
    pass

@input_schema("Inputs", inputs)
@input_schema("GlobalParameters", StandardPythonParameterType(1.0))
@output_schema(StandardPythonParameterType({"sums": [6.0], "ages": [26], "scale": 1.0}))
def run(Inputs, GlobalParameters):
    assert isinstance(Inputs["input1"], np.ndarray), type(Inputs["input1"])
    assert isinstance(Inputs["input2"], pd.DataFrame), type(Inputs["input2"])
    return {
        "sums": (Inputs["input1"].sum(axis=1) * GlobalParameters).tolist(),
        "ages": (Inputs["input2"]["age"] + 1).tolist(),
        "scale": Inputs["input3"] * GlobalParameters,
    }
"""

SCHEMA_BODY = {
    "Inputs": {
        "input1": [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]],
        "input2": [{"name": "Ann", "age": 30}],
        "input3": 2.0,
    },
    "GlobalParameters": 10.0,
}

NUMPY_SCRIPT = """
import numpy as np
from inference_schema.schema_decorators import input_schema, output_schema
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType

@input_schema("data", NumpyParameterType(np.array([[1.0, 2.0]])))
@output_schema(NumpyParameterType(np.array([3.0])))
def run(data, scale=1):
    return (data.sum(axis=1) * scale).tolist()
"""


def test_schema_parameters_are_converted_by_their_types(load):
    with AppClient(create_app(load(SCHEMA_SCRIPT))) as client:
        r = client.post("/score", json=SCHEMA_BODY)
    assert r.status_code == 200, r.text
    assert r.json() == {"sums": [60.0, 150.0], "ages": [31], "scale": 20.0}


def test_schema_errors_are_the_platforms(load):
    with AppClient(create_app(load(SCHEMA_SCRIPT))) as client:
        missing = client.post("/score", json={"Inputs": SCHEMA_BODY["Inputs"]})
        not_json = client.post(
            "/score", content=b"{not json", headers={"content-type": "application/json"}
        )
        empty = client.post("/score", content=b"", headers={"content-type": "application/json"})
        a_list = client.post("/score", json=[1, 2])
        text = client.post("/score", content=b"{}", headers={"content-type": "text/plain"})
    assert missing.status_code == 400
    assert (
        missing.json()["message"] == "A value is not provided for the 'GlobalParameters' parameter."
    )
    assert not_json.status_code == 400
    assert not_json.json()["message"].startswith("POST body could not be decoded as JSON")
    assert empty.status_code == 400
    assert empty.json()["message"] == "POST body is empty. Expecting a JSON dictionary."
    assert a_list.status_code == 400
    assert a_list.json()["message"] == "POST body should be a JSON dictionary."
    assert text.status_code == 415
    assert text.json()["error"] == "Expects Content-Type to be application/json"


def test_schema_defaults_and_get_query_parameters(load):
    with AppClient(create_app(load(NUMPY_SCRIPT))) as client:
        posted = client.post(
            "/score", json={"data": [[1, 2], [3, 4]]}, headers={"x-request-id": "p-1"}
        )
        by_get = client.get("/score", params={"data": "[[1, 1]]", "scale": "3"})
        json_subtype = client.post(
            "/score",
            content=json.dumps({"data": [[2, 2]]}),
            headers={"content-type": "application/vnd.api+json; charset=utf-8"},
        )
    assert posted.json() == [3.0, 7.0]
    assert posted.headers["x-request-id"] == "p-1"
    assert by_get.json() == [6.0]  # ?scale=3 is the number 3, as on the platform
    assert json_subtype.json() == [4.0]


def test_undecorated_get_passes_the_query_as_json_text(load):
    with AppClient(create_app(load("def run(raw_data):\n    return raw_data\n"))) as client:
        r = client.get("/score?a=1&b=[1,2]&c=a&d=null&foo=x&foo=2")
        bare = client.get("/score")
        options = client.request("OPTIONS", "/score")
        put = client.request("PUT", "/score", content=b"{}")
    assert json.loads(r.json()) == {"a": 1, "b": [1, 2], "c": "a", "d": None, "foo": ["x", 2]}
    assert bare.json() == "{}"
    assert options.status_code == 200 and options.content == b""
    assert put.status_code == 405


def test_request_headers_parameter(load):
    source = """
    def run(raw_data, request_headers):
        return {"data": raw_data, "headers": request_headers}
    """
    with AppClient(create_app(load(source))) as client:
        r = client.post(
            "/score",
            content=b"hi",
            headers=[
                ("x-custom", "a"),
                ("x-custom", "b"),
                ("content-type", "text/plain"),
                ("x-request-id", "rid-1"),
            ],
        )
    headers = r.json()["headers"]
    assert r.json()["data"] == "hi"
    assert headers["X-Custom"] == "a,b"  # repeats joined, names as the platform's dict has them
    assert headers["Content-Type"] == "text/plain"
    assert headers["X-Request-Id"] == "rid-1"


RAW_SCRIPT = """
from azureml_inference_server_http.api.aml_request import AMLRequest, rawhttp
from azureml_inference_server_http.api.aml_response import AMLResponse

def init():
    pass

@rawhttp
def run(request):
    if request.method == "GET":
        return {"args": request.args.getlist("k"), "path": request.path}
    if request.files:
        upload = request.files["image"]
        return {"file": upload.filename, "size": len(upload.read()), "form": request.form["note"]}
    if request.is_json:
        return AMLResponse({"echo": request.json}, 201, json_str=True)
    data = request.get_data()
    return AMLResponse(data[::-1], 200, {"Content-Type": "image/png", "X-Tags": "a, b"})
"""


def test_rawhttp_gets_the_request_and_its_response_is_sent_as_is(load):
    with AppClient(create_app(load(RAW_SCRIPT))) as client:
        image = client.post(
            "/score", content=b"\x89PNG\x00\xff", headers={"content-type": "image/png"}
        )
        as_json = client.post("/score", json={"a": 1})
        query = client.get("/score?k=1&k=2")
        upload = client.post(
            "/score",
            files={"image": ("cat.png", b"\x00\x01\x02")},
            data={"note": "hello"},
        )
    assert image.status_code == 200
    assert image.content == b"\xff\x00GNP\x89"
    assert image.headers["content-type"] == "image/png"
    assert image.headers.get_list("x-tags") == ["a", "b"]  # comma-split, as the platform does
    assert image.headers["x-ms-run-function-failed"] == "False"
    assert image.headers["x-request-id"]
    assert as_json.status_code == 201 and as_json.json() == {"echo": {"a": 1}}
    assert query.json() == {"args": ["1", "2"], "path": "/score"}
    assert upload.json() == {"file": "cat.png", "size": 3, "form": "hello"}


def test_rawhttp_from_the_older_sdk_module_names(load):
    source = RAW_SCRIPT.replace(
        "azureml_inference_server_http.api.aml_request", "azureml.contrib.services.aml_request"
    ).replace(
        "azureml_inference_server_http.api.aml_response", "azureml.contrib.services.aml_response"
    )
    with AppClient(create_app(load(source))) as client:
        r = client.post("/score", content=b"abc", headers={"content-type": "text/plain"})
    assert r.content == b"cba"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def run(*args):\n    return 1\n", "cannot accept positional-only arguments"),
        ("def run(request_headers):\n    return 1\n", 'other than "request_headers"'),
        ("def run():\n    return 1\n", "needs to accept an argument for input data"),
    ],
)
def test_run_signatures_the_platform_refuses_fail_at_startup(load, source, message):
    with pytest.raises(ConfigError, match=message), AppClient(create_app(load(source))):
        pass


def test_swagger_from_the_schemas(load):
    with AppClient(create_app(load(NUMPY_SCRIPT))) as client:
        v2 = client.get("/swagger.json").json()
        v3 = client.get("/swagger.json?version=3").json()
        v31 = client.get("/swagger.json?version=3.1").json()
        bad = client.get("/swagger.json?version=7")
    assert v2["swagger"] == "2.0"
    data_schema = v2["definitions"]["ServiceInput"]["properties"]["data"]
    assert data_schema["type"] == "array"
    assert v2["definitions"]["ServiceInput"]["example"]["data"] == [[1.0, 2.0]]
    assert v2["definitions"]["ServiceOutput"]["example"] == [3.0]
    assert "/score" in v2["paths"]
    assert v3["openapi"] == "3.0.3" and "ServiceInput" in v3["components"]["schemas"]
    assert v31["openapi"] == "3.1.0"
    assert bad.status_code == 404
    assert bad.json()["message"].startswith("Swagger version [7] is not valid.")


def test_swagger_is_404_without_schemas_and_serves_the_users_file(load, tmp_path):
    with AppClient(create_app(load("def run(data):\n    return data\n"))) as client:
        none = client.get("/swagger.json")
    assert none.status_code == 404
    assert "not supported for the scoring script" in none.json()["message"]
    script = load("def run(data):\n    return data\n")
    (script.path.parent / "swagger.json").write_text('{"swagger": "2.0", "mine": true}')
    with AppClient(create_app(script)) as client:
        assert client.get("/swagger.json").json() == {"swagger": "2.0", "mine": True}
        assert client.get("/swagger.json?version=3").status_code == 404


def test_numpy_results_are_json(load):
    source = "import numpy as np\ndef run(data):\n    return np.arange(3)\n"
    with AppClient(create_app(load(source))) as client:
        assert client.post("/score", content=b"{}").json() == list(np.arange(3))


def test_installed_platform_modules_are_not_shadowed(load, tmp_path, monkeypatch):
    """With the platform's package installed, score.py gets its modules, not modeltap's."""
    package = tmp_path / "site" / "azureml_inference_server_http" / "api"
    package.mkdir(parents=True)
    (package.parent / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "aml_request.py").write_text(
        "_rawHttpRequested = False\n"
        "def rawhttp(func):\n"
        "    global _rawHttpRequested\n"
        "    _rawHttpRequested = True\n"
        "    return func\n"
        "class AMLRequest:\n"
        "    installed = True\n"
    )
    (package / "aml_response.py").write_text(
        "from werkzeug.wrappers import Response\n"
        "class AMLResponse(Response):\n"
        "    def __init__(self, message, status_code, response_headers={}, json_str=False):\n"
        "        super().__init__(message, status=status_code, headers=response_headers)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    for name in list(sys.modules):
        if name.startswith("azureml_inference_server_http"):
            monkeypatch.delitem(sys.modules, name)
    source = """
    from azureml_inference_server_http.api.aml_request import AMLRequest, rawhttp
    from azureml_inference_server_http.api.aml_response import AMLResponse

    @rawhttp
    def run(request):
        return AMLResponse(AMLRequest.__module__ + " " + request.method, 202, {"X-Real": "1"})
    """
    try:
        with AppClient(create_app(load(source))) as client:
            r = client.post("/score", content=b"x")
    finally:
        for name in list(sys.modules):
            if name.startswith("azureml_inference_server_http"):
                del sys.modules[name]
    assert r.status_code == 202
    assert r.text == "azureml_inference_server_http.api.aml_request POST"
    assert r.headers["x-real"] == "1"
