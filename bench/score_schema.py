"""Schema-decorated scoring script (inference-schema), the same file for both servers.

Body: {"data": [{"col1": 1, "col2": 0.5}, ...]} -> col1 * 2 + col2 for each row. The
PandasParameterType converts the records into a DataFrame before run() sees them.
"""

import numpy as np
import pandas as pd
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.schema_decorators import input_schema, output_schema

SAMPLE = pd.DataFrame({"col1": [1], "col2": [0.5]})


def init():
    pass


@input_schema("data", PandasParameterType(SAMPLE, enforce_shape=False))
@output_schema(NumpyParameterType(np.array([2.5])))
def run(data):
    return (data["col1"] * 2 + data["col2"]).tolist()
