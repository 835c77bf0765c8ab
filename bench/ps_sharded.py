"""A sharded PS of N processes vs one process holding N shards: push, pull and commit over loopback.

    python bench/ps_sharded.py [--shards 2] [--rows 200000] [--dim 16] [--changed 20000] [--repeat 5]

Both set-ups hold the same N partitions; the baseline is one ``ps serve --shards N`` process, the
candidate N ``ps serve --cluster ... --shard-index K`` processes (shard 0 coordinating a two-phase
commit). Measured in the same run: push and pull of ``--rows`` random ids × ``--dim`` float32 (best
of ``--repeat``) and a commit after ``--changed`` rows changed (median). Prints the ratios
candidate / baseline and a final JSON line. On a 2-core machine N processes share the cores with
the client, so this measures the protocol's overhead, not a scale-out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.ps.conftest

from bench.ps import best_time
from flinkdl.ps.client import PsClient
from tests.ps.conftest import PsProcess, ShardedPs


def measure(address: str, rows: int, dim: int, changed: int, repeat: int) -> dict:
    c = PsClient(address)
    c.create_table("bench", dim)
    rng = np.random.default_rng(0)
    ids = np.sort(rng.integers(0, 1 << 62, rows, dtype=np.int64))
    delta = rng.standard_normal((rows, dim)).astype(np.float32)
    c.push("bench", ids, delta)
    c.commit()  # the first version: a snapshot of every row
    push_s = best_time(lambda: c.push("bench", ids, delta), repeat)
    pull_s = best_time(lambda: c.pull("bench", ids), repeat)
    commits = []
    for k in range(repeat):
        part = ids[k * changed % rows:][:changed]
        c.push("bench", part, delta[:len(part)])
        t0 = time.perf_counter()
        c.commit()
        commits.append(time.perf_counter() - t0)
    c.close()
    return {"push_rows_per_s": rows / push_s, "pull_rows_per_s": rows / pull_s,
            "commit_s": statistics.median(commits)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--changed", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        one = PsProcess(Path(d) / "one", "--shards", str(a.shards))
        try:
            base = measure(one.address, a.rows, a.dim, a.changed, a.repeat)
        finally:
            one.stop()
        many = ShardedPs(a.shards, Path(d) / "many")
        try:
            cand = measure(many.address, a.rows, a.dim, a.changed, a.repeat)
        finally:
            many.stop()
    ratios = {k: cand[k] / base[k] for k in base}
    for k in base:
        print(f"{k:18s} one process {base[k]:14,.3f}   {a.shards} processes {cand[k]:14,.3f}   ratio {ratios[k]:.2f}")
    print(json.dumps({"bench": "ps_sharded", "shards": a.shards, "rows": a.rows, "dim": a.dim,
                      "changed": a.changed, "one_process": base, "processes": cand, "ratio": ratios}))


if __name__ == "__main__":
    main()
