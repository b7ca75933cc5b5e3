"""Serve an MLflow model with no score.py, send it a few requests, read back what was collected.

python examples/mlflow-credit/demo.py [--workspace DIR] [--requests 8] [--port 5001]

Trains the model first when model/ has none (train.py). The requests use the source
platform's payload (`input_data`) and MLflow's own (`dataframe_split`,
`dataframe_records`); one leaves out a column, to show the 400 the signature gives.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"demo: the server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"demo: the server did not answer {url} within {timeout:.0f} s")


def post(base: str, body: object, request_id: str) -> tuple[int, object]:
    req = urllib.request.Request(
        base + "/score",
        json.dumps(body).encode(),
        {"content-type": "application/json", "x-request-id": request_id},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def payloads(n: int) -> list[object]:
    """The platform's payload and MLflow's, in turn, for rows of made-up applicants."""
    sys.path.insert(0, str(HERE))
    from train import FEATURES, applicants

    out: list[object] = [json.loads((HERE / "sample-request.json").read_text())]
    for i in range(1, n):
        rows = applicants(1 + i % 3, seed=100 + i)[FEATURES]
        split = json.loads(rows.to_json(orient="split"))
        if i % 3 == 0:
            out.append({"dataframe_records": json.loads(rows.to_json(orient="records"))})
        elif i % 3 == 1:
            out.append({"input_data": split})
        else:
            out.append({"dataframe_split": split})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", default="modeltap-workspace")
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    workspace = Path(args.workspace).resolve()
    if not (HERE / "model" / "MLmodel").exists():
        sys.path.insert(0, str(HERE))
        from train import train

        print(f"demo: trained the credit model -> {train()}")

    port = args.port or free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "modeltap.cli", "serve", "-f", str(HERE / "deployment.yml")]
    cmd += ["--port", str(port), "--workspace", str(workspace), "--log-level", "warning"]
    print("demo: $ modeltap " + " ".join(cmd[3:]))
    server = subprocess.Popen(cmd)
    try:
        wait_healthy(base + "/", server)
        for i, body in enumerate(payloads(args.requests)):
            status, answer = post(base, body, f"credit-{i:04d}")
            print(f"demo: POST /score {next(iter(body))} -> {status} {answer}")  # type: ignore[call-overload]
        bad = {"input_data": {"columns": ["age", "income"], "data": [[30, 1000.0]]}}
        status, answer = post(base, bad, "credit-bad")
        print(f"demo: POST /score without debt_ratio and region -> {status} {answer}")
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
    if code != 0:
        sys.exit(f"demo: the server exited with code {code}")

    import modeltap

    inputs = modeltap.load("credit-blue-model_inputs", workspace=workspace)
    outputs = modeltap.load("credit-blue-model_outputs", workspace=workspace)
    table = modeltap.join(inputs, outputs)
    print(f"\ndemo: collected {len(inputs)} input rows and {len(outputs)} predictions; joined:")
    print(table.drop(columns=["time_input", "time_output"], errors="ignore").to_string())


if __name__ == "__main__":
    main()
