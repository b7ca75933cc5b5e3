import pandas as pd

import modeltap
from tests.conftest import read_lines, store_root


def test_collect_lands_a_line(workspace):
    modeltap.configure(
        workspace=workspace, endpoint="ep", deployment="blue", collections=["model_inputs"]
    )
    modeltap.Collector(name="model_inputs").collect(pd.DataFrame({"a": [1]}))
    assert modeltap.flush()
    [line] = read_lines(store_root(workspace))
    assert line["data"] == [{"a": 1}]
