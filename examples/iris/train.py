"""Train a small classifier on the iris data that scikit-learn ships; save it in model/."""

from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

MODEL = Path(__file__).parent / "model" / "model.joblib"


def train(path: Path = MODEL) -> Path:
    iris = load_iris(as_frame=True)
    model = LogisticRegression(max_iter=500).fit(iris.data, iris.target)
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(
        {"model": model, "features": list(iris.data.columns), "classes": list(iris.target_names)},
        path,
    )
    return path


if __name__ == "__main__":
    print(f"saved {train()}")
