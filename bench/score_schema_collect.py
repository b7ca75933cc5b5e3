"""score_schema.py, also collecting its input and output frames with modeltap (same answer)."""

import numpy as np
import pandas as pd
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.schema_decorators import input_schema, output_schema

from modeltap import Collector

SAMPLE = pd.DataFrame({"col1": [1], "col2": [0.5]})


def init():
    global inputs_collector, outputs_collector
    inputs_collector = Collector(name="model_inputs")
    outputs_collector = Collector(name="model_outputs")


@input_schema("data", PandasParameterType(SAMPLE, enforce_shape=False))
@output_schema(NumpyParameterType(np.array([2.5])))
def run(data):
    context = inputs_collector.collect(data)
    out = data["col1"] * 2 + data["col2"]
    outputs_collector.collect(out.to_frame("prediction"), context)
    return out.tolist()
