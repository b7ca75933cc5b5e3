"""The encoder process's side (see pipeline/encoder.py): pickled frames in on stdin, their
JSON rows out on stdout, until stdin closes. Apart from the pipeline, which knows no pandas."""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys

from modeltap import tabular

__all__ = ["CPUS_ENV", "READY", "serve"]

CPUS_ENV = "MODELTAP_ENCODER_CPUS"  # "1" or "1,2": the helper's CPUs (like taskset)
READY = b"R"  # written once the helper can take frames


def serve() -> None:
    """The helper's loop: frames in, their JSON out, until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group; its parent decides
    cpus = os.environ.get(CPUS_ENV)
    if cpus:
        os.sched_setaffinity(0, {int(cpu) for cpu in cpus.split(",")})
    # What unpickling the frames needs, imported before saying ready (~1 s)
    import pandas  # noqa: F401

    with contextlib.suppress(ImportError):
        import pyarrow  # noqa: F401  # pandas' str columns

    inp, out = sys.stdin.buffer, sys.stdout.buffer
    out.write(READY)
    out.flush()
    while True:
        head = inp.read(8)
        if len(head) < 8:
            return
        frames = pickle.loads(inp.read(int.from_bytes(head, "little")))
        try:
            results: list[bytes | None] = list(tabular.encode_frames(frames))
        except Exception:  # one by one: a frame that cannot be encoded goes back as None
            results = []
            for frame in frames:
                try:
                    results.append(tabular.encode_frames([frame])[0])
                except Exception:
                    results.append(None)
        answer = pickle.dumps(results, protocol=5)
        out.write(len(answer).to_bytes(8, "little"))
        out.write(answer)
        out.flush()
