"""Generate collected-inputs trees exactly as modeltap writes them, fast (no pipeline).

    .venv/bin/python bench/gen_collections.py --out /tmp/modeltap-read-bench/data/1x10-200mb \
        --shape 1x10 --mb 200

Layout (the default local datastore of a workspace, SPEC R4.1):

    {out}/ws/datastores/workspaceblobstore/modelDataCollector/bench/blue/model_inputs/
        yyyy/MM/dd/HH/{instance}.jsonl

* 48 hourly partitions, 2026-11-23T00Z .. 2026-11-25T00Z.
* --writers writers (replicas) x --flushes-per-hour commits per hour: every commit is one
  object per partition, named like `layout.WriterId`: `{12 hex}-{pid}-{seq:08d}`. A file of
  flush k holds lines whose times fall in the k-th slice of the hour, in time order.
* Every line is the R4.2 envelope that `record._line` writes (same key order, same separators,
  `contentrange` = the byte length of `data`). Records of a frame shape RxC carry R rows; a
  share of lines (--merged, default 5 %) are merged lines (R4.5): 2 or 3 records of one
  correlation id whose rows are concatenated into one `data` list.
* Rows are the anchor frame's column kinds (`bench_collect.make_frame`: f* float64, i* int64,
  s* short str), drawn from a pool of pre-encoded rows (orjson), so lines are templated bytes.
* The generator checks a sample of its lines byte for byte against `modeltap.record._line`.

The asset is registered with `modeltap.configure(workspace=..., endpoint="bench",
deployment="blue", collections=["model_inputs"])` + `modeltap.shutdown()`: asset name
`bench-blue-model_inputs`. A `manifest.json` next to `ws/` lists files, lines and rows per hour.
Generation is deterministic for a given --seed.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
from common import FRAME_WORDS

ENDPOINT, DEPLOYMENT, COLLECTION = "bench", "blue", "model_inputs"
ASSET = f"{ENDPOINT}-{DEPLOYMENT}-{COLLECTION}"
COLL_DIR = (
    "datastores",
    "workspaceblobstore",
    "modelDataCollector",
    ENDPOINT,
    DEPLOYMENT,
    COLLECTION,
)
START = datetime(2026, 11, 23, tzinfo=UTC)
HOURS = 48
SHAPES = {"1x10": (1, 10), "10x20": (10, 20)}
POOL = 1 << 16
AGENT = "modeltap/0.1.0"
SOURCE = f"/endpoints/{ENDPOINT}/deployments/{DEPLOYMENT}"

# The envelope of record._line, field for field (collectdatatype of a pandas frame).
_HEAD = (
    b'{"specversion":"1.0","id":"%s","source":"'
    + SOURCE.encode()
    + b'","type":"azureml.inference.'
    + COLLECTION.encode()
    + b'","datacontenttype":"application/json","time":"%s","data":'
)
_TAIL = (
    b',"correlationid":"%s","xrequestid":"%s","modelversion":"default",'
    b'"collectdatatype":"pandas.core.frame.DataFrame","agent":"'
    + AGENT.encode()
    + b'","contentrange":"bytes 0-%d/%d"}\n'
)


def columns(ncols: int) -> list[tuple[str, str]]:
    """(name, kind) like bench_collect.make_frame: c % 10 < 4 float, < 7 int, else str."""
    out = []
    for c in range(ncols):
        kind = c % 10
        out.append((f"f{c}", "f") if kind < 4 else (f"i{c}", "i") if kind < 7 else (f"s{c}", "s"))
    return out


def row_pool(ncols: int, rng: np.random.Generator) -> tuple[list[bytes], dict[str, np.ndarray]]:
    """POOL distinct rows, each the JSON object tabular.encode_frames writes for one row."""
    cols = columns(ncols)
    values: dict[str, np.ndarray] = {}
    for name, kind in cols:
        if kind == "f":
            values[name] = rng.normal(size=POOL) * 1000
        elif kind == "i":
            values[name] = rng.integers(-(10**6), 10**6, size=POOL)
        else:
            values[name] = rng.choice(np.array(FRAME_WORDS, dtype=object), size=POOL)
    lists = {n: v.tolist() for n, v in values.items()}
    names = [n for n, _ in cols]
    rows = [
        orjson.dumps(dict(zip(names, (lists[n][i] for n in names), strict=True)))
        for i in range(POOL)
    ]
    return rows, values


def uuids(rnd: random.Random, n: int) -> list[bytes]:
    return [str(uuid.UUID(int=rnd.getrandbits(128), version=4)).encode() for _ in range(n)]


def make_line(rid: bytes, ts: bytes, data: bytes, cid: bytes) -> bytes:
    n = len(data)
    return _HEAD % (rid, ts) + data + _TAIL % (cid, cid, max(n - 1, 0), n)


def check_format(samples: list[tuple[bytes, bytes, bytes, bytes, float]]) -> None:
    """Byte-for-byte equality with modeltap.record._line on a sample of lines."""
    from modeltap.record import Record, _line

    for rid, ts, data, cid, epoch in samples:
        rec = Record(
            COLLECTION,
            None,
            correlation_id=cid.decode(),
            time_=epoch,
            collect_data_type="pandas.core.frame.DataFrame",
            id=rid.decode(),
        )
        want = _line(rec, data, SOURCE)
        got = make_line(rid, ts, data, cid)
        if got != want:
            raise SystemExit(
                f"generated line differs from record._line:\n got {got!r}\nwant {want!r}"
            )


def generate(
    out: Path, shape: str, mb: float, writers: int, flushes: int, merged: float, seed: int
) -> dict:
    rows_per_rec, ncols = SHAPES[shape]
    rng = np.random.default_rng(seed)
    rnd = random.Random(seed)
    pool, values = row_pool(ncols, rng)
    coll = out / "ws" / Path(*COLL_DIR)

    def record_rows(k: int) -> list[int]:
        return [rnd.randrange(POOL) for _ in range(k)]

    # Average line size from a sample, to size the files.
    sample = []
    for _ in range(2000):
        recs = rnd.choice((2, 3)) if rnd.random() < merged else 1
        idx = record_rows(rows_per_rec * recs)
        sample.append(
            len(
                make_line(
                    b"0" * 36,
                    b"2026-11-23T00:00:00Z",
                    b"[" + b",".join(pool[i] for i in idx) + b"]",
                    b"0" * 36,
                )
            )
        )
    avg = sum(sample) / len(sample)
    n_files = HOURS * writers * flushes
    per_file = max(1, round(mb * 2**20 / avg / n_files))

    writer_ids = [f"{rnd.getrandbits(48):012x}-{1000 + w}" for w in range(writers)]
    seq = [0] * writers
    hours = {}
    totals = {"files": 0, "lines": 0, "rows": 0, "merged_lines": 0, "bytes": 0}
    row_counts = np.zeros(POOL, dtype=np.int64)
    samples = []
    drawn: list[int] = []
    slice_s = 3600 / flushes
    for h in range(HOURS):
        hour = START + timedelta(hours=h)
        folder = coll / hour.strftime("%Y/%m/%d/%H")
        folder.mkdir(parents=True, exist_ok=True)
        h_files = h_rows = 0
        for k in range(flushes):
            for w in range(writers):
                seq[w] += 1
                name = f"{writer_ids[w]}-{seq[w]:08d}.jsonl"
                base = hour.timestamp() + k * slice_s
                secs = sorted(rnd.random() * slice_s for _ in range(per_file))
                ids = uuids(rnd, 2 * per_file)
                lines = []
                for j, s in enumerate(secs):
                    epoch = base + s
                    ts = datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                    recs = 1
                    if rnd.random() < merged:
                        recs = rnd.choice((2, 3))
                        totals["merged_lines"] += 1
                    idx = record_rows(rows_per_rec * recs)
                    data = b"[" + b",".join(pool[i] for i in idx) + b"]"
                    rid, cid = ids[2 * j], ids[2 * j + 1]
                    lines.append(make_line(rid, ts.encode(), data, cid))
                    drawn.extend(idx)
                    h_rows += len(idx)
                    if len(samples) < 200 and (recs > 1 or rnd.random() < 0.001):
                        samples.append((rid, ts.encode(), data, cid, epoch))
                row_counts += np.bincount(np.asarray(drawn, dtype=np.int64), minlength=POOL)
                drawn.clear()
                blob = b"".join(lines)
                (folder / name).write_bytes(blob)
                totals["bytes"] += len(blob)
                totals["lines"] += len(lines)
                h_files += 1
        hours[hour.strftime("%Y/%m/%d/%H")] = {"files": h_files, "rows": h_rows}
        totals["files"] += h_files
        totals["rows"] += h_rows
    f0_sum = float(np.dot(row_counts.astype(np.float64), values["f0"]))
    check_format(samples)
    return {
        **totals,
        "mb": round(totals["bytes"] / 2**20, 1),
        "f0_sum": f0_sum,
        "checked_lines": len(samples),
        "hours": hours,
    }


def register(ws: Path) -> None:
    import modeltap

    modeltap.configure(
        workspace=str(ws), endpoint=ENDPOINT, deployment=DEPLOYMENT, collections=[COLLECTION]
    )
    modeltap.shutdown()


def ensure(
    out: Path,
    shape: str,
    mb: float,
    *,
    writers: int = 2,
    flushes: int = 12,
    merged: float = 0.05,
    seed: int = 7,
    log=print,
) -> dict:
    """The manifest of {out}; (re)generates the tree when missing or made with other options."""
    params = {
        "shape": shape,
        "mb": mb,
        "writers": writers,
        "flushes_per_hour": flushes,
        "merged": merged,
        "seed": seed,
        "start": START.isoformat(),
        "hours": HOURS,
        "generator": 2,
    }
    man_file = out / "manifest.json"
    if man_file.exists():
        man = json.loads(man_file.read_text())
        if man.get("params") == params and (out / "ws" / Path(*COLL_DIR)).is_dir():
            return man
    if out.exists():
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True)
    t = time.time()
    log(f"generating {shape} {mb} MB -> {out}")
    info = generate(out, shape, mb, writers, flushes, merged, seed)
    register(out / "ws")
    man = {
        "params": params,
        "workspace": str(out / "ws"),
        "asset": ASSET,
        "collection_dir": str(out / "ws" / Path(*COLL_DIR)),
        **info,
        "gen_s": round(time.time() - t, 1),
    }
    man_file.write_text(json.dumps(man, indent=1))
    log(
        f"  {man['files']} files, {man['lines']} lines, {man['rows']} rows, {man['mb']} MB "
        f"in {man['gen_s']} s"
    )
    return man


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--shape", choices=list(SHAPES), default="1x10")
    ap.add_argument("--mb", type=float, default=200)
    ap.add_argument("--writers", type=int, default=2)
    ap.add_argument("--flushes-per-hour", type=int, default=12)
    ap.add_argument("--merged", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    man = ensure(
        Path(a.out),
        a.shape,
        a.mb,
        writers=a.writers,
        flushes=a.flushes_per_hour,
        merged=a.merged,
        seed=a.seed,
        log=lambda m: print(m, file=sys.stderr),
    )
    print(json.dumps({k: v for k, v in man.items() if k != "hours"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
