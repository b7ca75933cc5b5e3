"""Train a small credit-default classifier with scikit-learn; save it with MLflow in model/.

The data is made up here (no download): age, income, debt ratio and region of an
applicant, and whether they defaulted. The saved MLflow model carries its signature
(the columns and their types), which the server checks every request against.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

MODEL = Path(__file__).parent / "model"
FEATURES = ["age", "income", "debt_ratio", "region"]


def applicants(n: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(21, 70, n),
            "income": rng.normal(52_000, 15_000, n).round(2),
            "debt_ratio": rng.uniform(0.0, 1.2, n).round(3),
            "region": rng.choice(["north", "south", "east", "west"], n),
        }
    )


def train(path: Path = MODEL) -> Path:
    X = applicants(500)
    risk = 2.5 * X["debt_ratio"] - X["income"] / 40_000 - (X["age"] - 40) / 50
    y = (risk + np.random.default_rng(1).normal(0, 0.3, len(X)) > 0.6).astype(int)
    model = make_pipeline(
        make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore"), ["region"]),
            (StandardScaler(), ["age", "income", "debt_ratio"]),
        ),
        LogisticRegression(),
    ).fit(X[FEATURES], y)
    shutil.rmtree(path, ignore_errors=True)  # MLflow saves into a new folder only
    mlflow.sklearn.save_model(
        model,
        str(path),
        signature=infer_signature(X[FEATURES], model.predict(X[FEATURES])),
        input_example=X[FEATURES].head(2),
        serialization_format="cloudpickle",
    )
    return path


if __name__ == "__main__":
    print(f"saved {train()}")
