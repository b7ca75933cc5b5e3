"""Diagnostic launcher: run the `modeltap` CLI with gc.callbacks timing every collection.

Writes {generation: [count, total_ms, max_ms, pauses over 5 ms]} as JSON to $GCWATCH_OUT when the
process exits (serve with 1 worker runs the app in this process).  Used to tell whether the long
stalls seen at one connection are garbage-collection pauses.
usage: GCWATCH_OUT=/tmp/gc.json python serving_gcwatch.py serve -f dep.yml ...
"""

import atexit
import gc
import json
import os
import time

_t0 = {}
_stats = {0: [0, 0.0, 0.0, 0], 1: [0, 0.0, 0.0, 0], 2: [0, 0.0, 0.0, 0]}


def _cb(phase, info):
    g = info["generation"]
    if phase == "start":
        _t0[g] = time.perf_counter()
    elif g in _t0:
        ms = (time.perf_counter() - _t0.pop(g)) * 1000
        s = _stats[g]
        s[0] += 1
        s[1] += ms
        s[2] = max(s[2], ms)
        s[3] += ms > 5


gc.callbacks.append(_cb)


@atexit.register
def _dump():
    out = os.environ.get("GCWATCH_OUT")
    if out:
        with open(out, "w") as f:
            json.dump({str(k): v for k, v in _stats.items()}, f)


if __name__ == "__main__":
    from modeltap.cli import main

    main()
