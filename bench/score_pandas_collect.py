"""The anchor's score_pandas.py, collecting its input and output frames with modeltap.

Body: {"data": {"col1": [...], "col2": [...]}}  ->  {"0": col1*2+col2, "1": ...}  (same answer)
"""

import json

import pandas as pd

from modeltap import Collector


def init():
    global inputs_collector, outputs_collector
    inputs_collector = Collector(name="model_inputs")
    outputs_collector = Collector(name="model_outputs")


def run(data):
    df = pd.DataFrame(json.loads(data)["data"])
    context = inputs_collector.collect(df)
    out = df["col1"] * 2 + df["col2"]
    outputs_collector.collect(out.to_frame("prediction"), context)
    return out.to_dict()
