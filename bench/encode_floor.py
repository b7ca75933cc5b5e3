"""The JSON encoding floor for the collect benchmark's frames: what one core can encode per
second, beside what modeltap's writer and the SDK's worker spend per frame.

  orjson floor    orjson.dumps of the rows, given as dicts already: the encoding alone
  rows + orjson   the same from the columns given as lists: a dict per row, then dumps
                  (what is left once the columns are out of pandas)
  modeltap        tabular.encode_frames([frame]) (what the writer and encoder process run)
  collect()       tabular.encode_small(frame) (small frames: encoded on the caller)
  SDK to_json     frame.to_json(orient="records") (the SDK's worker; 10 digits, not exact)
  handover        pickle.dumps(frame, protocol=5) (the writer's cost per frame it hands to
                  the encoder process)

usage: .venv/bin/python bench/encode_floor.py [--reps 7]  (median of reps; per-frame us)
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bench_collect import SHAPES, make_frame

from modeltap import tabular

OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def as_lists(frame) -> tuple[list[str], list[list]]:
    names = list(frame.columns)
    return names, [frame[name].tolist() for name in names]


def rows_orjson(lists) -> bytes:
    names, columns = lists
    rows = [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]
    return orjson.dumps(rows, option=OPTS)


def per_call_us(fn, frame, reps: int) -> float:
    fn(frame)
    number = max(1, int(0.2 / max(1e-6, _once(fn, frame))))  # ~0.2 s per rep
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(number):
            fn(frame)
        times.append((time.perf_counter() - start) / number * 1e6)
    return statistics.median(times)


def _once(fn, frame) -> float:
    start = time.perf_counter()
    fn(frame)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=7)
    a = ap.parse_args()
    cases = {
        "orjson floor": lambda rows: orjson.dumps(rows, option=OPTS),
        "rows + orjson": rows_orjson,
        "modeltap encode_frames": lambda f: tabular.encode_frames([f]),
        "collect() encode_small": tabular.encode_small,
        "SDK to_json": lambda f: f.to_json(orient="records"),
        "handover (pickle)": lambda f: pickle.dumps(f, protocol=5),
    }
    print("| frame | " + " | ".join(cases) + " | rows + orjson: frames/s on one core |")
    print("|---|" + "---|" * (len(cases) + 1))
    for shape in SHAPES:
        frame = make_frame(shape)
        lists = as_lists(frame)
        rows = [dict(zip(lists[0], r, strict=True)) for r in zip(*lists[1], strict=True)]
        assert tabular.encode_frames([frame])[0] == rows_orjson(lists)  # the same bytes
        inputs = {"orjson floor": rows, "rows + orjson": lists}
        cells = []
        for name, fn in cases.items():
            if name.startswith("collect()") and tabular.encode_small(frame) is None:
                cells.append("-")
                continue
            cells.append(f"{per_call_us(fn, inputs.get(name, frame), a.reps):.0f}")
        floor = float(cells[1])
        print(f"| {shape} | " + " | ".join(cells) + f" | {1e6 / floor:.0f} |")


if __name__ == "__main__":
    main()
