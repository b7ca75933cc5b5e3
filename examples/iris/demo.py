"""The quick start: serve the iris example, send it traffic, show what was collected.

python examples/iris/demo.py [--workspace DIR] [--requests 20] [--port 5001]
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", default="modeltap-workspace")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    workspace = Path(args.workspace).resolve()

    if not (HERE / "model" / "model.joblib").exists():
        sys.path.insert(0, str(HERE))
        from train import train

        print(f"demo: trained the iris model -> {train()}")

    port = args.port or free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable,
        "-m",
        "modeltap.cli",
        "serve",
        "-f",
        str(HERE / "deployment.yml"),
        "--port",
        str(port),
        "--workspace",
        str(workspace),
        "--log-level",
        "warning",
    ]
    print("demo: $ modeltap " + " ".join(cmd[3:]))
    server = subprocess.Popen(cmd)
    try:
        wait_healthy(base + "/", server)
        rng = random.Random(7)
        for i in range(args.requests):
            rows = [
                [
                    round(rng.uniform(4.3, 7.9), 1),
                    round(rng.uniform(2.0, 4.4), 1),
                    round(rng.uniform(1.0, 6.9), 1),
                    round(rng.uniform(0.1, 2.5), 1),
                ]
                for _ in range(rng.randint(1, 3))
            ]
            req = urllib.request.Request(
                base + "/score",
                json.dumps({"data": rows}).encode(),
                {"content-type": "application/json", "x-request-id": f"demo-{i:04d}"},
            )
            with urllib.request.urlopen(req, timeout=10) as r:
                answer = json.loads(r.read())
            if i < 2:
                print(f"demo: POST /score {rows} -> {answer}")
        print(f"demo: sent {args.requests} requests; stopping the server (it flushes on SIGTERM)")
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=30)
    if code != 0:
        sys.exit(f"demo: the server exited with code {code}")

    files = sorted(workspace.glob("datastores/workspaceblobstore/modelDataCollector/**/*.jsonl"))
    print(f"\ndemo: {len(files)} files collected under {workspace}/datastores/workspaceblobstore:")
    for f in files[-4:]:
        print(f"  {f.relative_to(workspace)}")
    for collection in ("model_inputs", "model_outputs"):
        mine = [f for f in files if f"/{collection}/" in f.as_posix()]
        if not mine:
            sys.exit(f"demo: nothing was collected for {collection}")
        line = mine[-1].read_text().splitlines()[-1]
        print(f"\ndemo: last line of {collection}:\n  {line}")


if __name__ == "__main__":
    main()
