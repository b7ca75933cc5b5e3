"""Trivial scoring script that also collects model_inputs and model_outputs with modeltap.

Same answer as the anchor's score_trivial.py ({"ok": true}); the inputs and outputs collected
are small frames made once in init(), so the per-request cost on top of the trivial script is
exactly two collect() calls (plus the writer's work in the background).
"""

import pandas as pd

from modeltap import Collector


def init():
    global inputs_collector, outputs_collector, input_df, output_df
    inputs_collector = Collector(name="model_inputs")
    outputs_collector = Collector(name="model_outputs")
    input_df = pd.DataFrame(
        {"col1": list(range(1, 11)), "col2": [i + 0.5 for i in range(10)]}
    )  # what body.json carries
    output_df = pd.DataFrame({"ok": [True]})


def run(data):
    context = inputs_collector.collect(input_df)
    outputs_collector.collect(output_df, context)
    return {"ok": True}
