"""azmlinfsrv's side of the MLflow case: an MLflow model served the way the platform's
no-code MLflow deployments serve one (written here, not the platform's file): the model's
pyfunc flavour loaded from AZUREML_MODEL_DIR/model, run() schema-decorated with a
PandasParameterType in the "split" orient built from the signature, so the body is
{"input_data": {"columns": [...], "index": [...], "data": [[...]]}}; the answer is the
predictions as a list. modeltap serves the same folder with no score.py at all.
"""

import os

import mlflow.pyfunc
import pandas as pd
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.schema_decorators import input_schema

model = mlflow.pyfunc.load_model(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model"))
_schema = model.metadata.get_input_schema()
_sample = pd.DataFrame(columns=_schema.input_names()).astype(
    dict(zip(_schema.input_names(), _schema.pandas_types(), strict=True))
)


def init():
    pass


@input_schema("input_data", PandasParameterType(_sample, enforce_shape=False, orient="split"))
def run(input_data):
    return model.predict(input_data).tolist()
