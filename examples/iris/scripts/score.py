"""Score iris flowers, logging inputs and outputs with modeltap.

Written exactly as for the source platform's SDK; only the import differs.
Send: {"data": [[5.1, 3.5, 1.4, 0.2], ...]} or {"data": {"sepal length (cm)": [...], ...}}
"""

import json
import os

import joblib
import pandas as pd

from modeltap import Collector


def init():
    global model, features, classes, inputs_collector, outputs_collector
    # AZUREML_MODEL_DIR holds the model folder under its own name, as on the platform.
    bundle = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "model.joblib"))
    model, features, classes = bundle["model"], bundle["features"], bundle["classes"]
    inputs_collector = Collector(name="model_inputs")
    outputs_collector = Collector(name="model_outputs")


def run(raw_data):
    data = json.loads(raw_data)["data"]
    input_df = (
        pd.DataFrame(data, columns=features)
        if isinstance(data, list)
        else pd.DataFrame(data)[features]
    )
    # collect inputs; the returned context carries the correlation id
    context = inputs_collector.collect(input_df)
    output_df = pd.DataFrame(
        {
            "prediction": [classes[i] for i in model.predict(input_df)],
            "probability": model.predict_proba(input_df).max(axis=1),
        }
    )
    # same context: inputs and outputs of this call share one correlationid
    outputs_collector.collect(output_df, context)
    return output_df.to_dict(orient="records")
