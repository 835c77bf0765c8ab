"""The PS sync's table reads and writes: RSS growth and CPU per read + write pair, against the earlier
version (``tf.constant`` per call, numpy ids to eager ops, ``tf.concat`` of the slots), A/B in one run.

    PYTHONPATH=. python bench/ps_table_memory.py [--calls 20000]

Prints one line per variant and round, then a JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import psutil
import tensorflow as tf

from flinkdl.worker.ps_sync import _SparseTable

ROWS, DIM, TOUCHED = 100_000, 16, 2000


class Before:
    """The earlier ``_SparseTable`` read/write."""

    def __init__(self, var: tf.Variable, slot: tf.Variable) -> None:
        self.vars = (var, slot)

    def read(self, ids: np.ndarray) -> np.ndarray:
        return tf.concat([tf.gather(v, ids) for v in self.vars], axis=1).numpy()

    def write(self, ids: np.ndarray, rows: np.ndarray) -> None:
        idx = tf.constant(ids, tf.int64)
        for k, v in enumerate(self.vars):
            v.scatter_update(tf.IndexedSlices(tf.constant(rows[:, k * DIM:(k + 1) * DIM]), idx))


def measure(table, calls: int, rng: np.random.Generator) -> dict[str, float]:
    def pair() -> None:
        ids = np.unique(rng.integers(0, ROWS, TOUCHED))
        table.write(ids, table.read(ids) + 1)

    for _ in range(300):  # warm up (allocator arenas)
        pair()
    proc = psutil.Process()
    rss, cpu = proc.memory_info().rss, time.process_time()
    for _ in range(calls):
        pair()
    return {"bytes_per_pair": (proc.memory_info().rss - rss) / calls,
            "cpu_us_per_pair": 1e6 * (time.process_time() - cpu) / calls}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=20_000)
    args = p.parse_args()
    var, slot = tf.Variable(tf.zeros([ROWS, DIM])), tf.Variable(tf.zeros([ROWS, DIM]))
    variants = {"before": Before(var, slot), "now": _SparseTable("t", var, [("acc", slot)])}
    rng = np.random.default_rng(0)
    out: dict[str, list[dict[str, float]]] = {k: [] for k in variants}
    for _ in range(2):
        for name, table in variants.items():
            out[name].append(measure(table, args.calls, rng))
            print(name, {k: round(v, 1) for k, v in out[name][-1].items()}, flush=True)
    best = {k: min(r["cpu_us_per_pair"] for r in v) for k, v in out.items()}
    print(f"CPU now / before: {best['now'] / best['before']:.2f}")
    print(json.dumps({"ps_table_memory": out}))


if __name__ == "__main__":
    main()
