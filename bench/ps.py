"""Parameter-server benchmarks: push/pull over loopback Flight, incremental checkpoints, restore.

    python bench/ps.py [--rows 1000000] [--table-rows 10000000] [--dim 16] [--shards 1]

1. Push and pull throughput: a real ``flinkdl ps serve`` process on 127.0.0.1; ``--rows`` random
   int64 ids × ``--dim`` float32 per call (payload = 8 + 4·dim bytes per row); best of 5 calls.
2. Checkpoints (in process, local disk): a ``--table-rows`` table committed as a full snapshot,
   then 1 % of its rows changed and committed as a delta: bytes and seconds of each.
3. Restore: a server start on that checkpoint directory (snapshot + delta), timed.

The machine is shared (2 cores): numbers are noisy; the best of several calls is reported.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.ps.conftest

from flinkdl.ps.checkpoint import CheckpointStore
from flinkdl.ps.client import PsClient
from flinkdl.ps.service import ParameterService
from tests.ps.conftest import PsProcess


def best_time(fn, repeat: int = 5) -> float:
    """The shortest of ``repeat`` timed calls of ``fn``, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_transport(rows: int, dim: int, shards: int) -> dict:
    server = PsProcess(None, "--shards", str(shards))
    try:
        c = PsClient(server.address)
        c.create_table("bench", dim)
        rng = np.random.default_rng(0)
        ids = rng.integers(0, 1 << 62, rows, dtype=np.int64)
        delta = rng.standard_normal((rows, dim)).astype(np.float32)
        c.push("bench", ids, delta)  # creates the rows
        payload = rows * (8 + 4 * dim)
        out: dict = {"rows": rows, "dim": dim, "shards": shards}
        # A worker's touched set is sorted (np.unique); random order costs the client an argsort.
        for order, x in (("sorted", np.sort(ids)), ("random", ids)):
            push_s = best_time(lambda x=x: c.push("bench", x, delta))
            pull_s = best_time(lambda x=x: c.pull("bench", x))
            out[order] = {"push_rows_per_s": rows / push_s, "push_MB_per_s": payload / push_s / 1e6,
                          "pull_rows_per_s": rows / pull_s, "pull_MB_per_s": payload / pull_s / 1e6}
        c.close()
    finally:
        server.stop()
    return out


def bench_checkpoint(table_rows: int, dim: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="ps-bench-") as d:
        svc = ParameterService(1, CheckpointStore(d, compact_after=1000))
        svc.create_table("emb", dim)
        rng = np.random.default_rng(1)
        ids = np.unique(rng.integers(0, 1 << 62, table_rows + table_rows // 50, dtype=np.int64))[:table_rows]
        ids = rng.permutation(ids)
        for lo in range(0, table_rows, 1 << 21):  # build the table (delta-add from zeros)
            chunk = np.sort(ids[lo:lo + (1 << 21)])
            svc.push("emb", 0, chunk, rng.standard_normal((len(chunk), dim)).astype(np.float32))
        full = svc.commit()
        touched = np.sort(rng.choice(ids, table_rows // 100, replace=False))
        svc.push("emb", 0, touched, np.ones((len(touched), dim), np.float32))
        delta = svc.commit()
        del svc
        t0 = time.perf_counter()
        restored = ParameterService(1, CheckpointStore(d))
        restore_s = time.perf_counter() - t0
        assert restored.describe("emb")["rows"] == table_rows
        return {"table_rows": table_rows, "dim": dim,
                "full_bytes": full["bytes"], "full_s": full["seconds"],
                "delta_rows": delta["rows"], "delta_bytes": delta["bytes"], "delta_s": delta["seconds"],
                "delta_over_full_bytes": delta["bytes"] / full["bytes"],
                "restore_s": restore_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--table-rows", type=int, default=10_000_000)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--skip-checkpoint", action="store_true")
    args = ap.parse_args()
    out = {"transport": bench_transport(args.rows, args.dim, args.shards)}
    print(json.dumps(out["transport"]), flush=True)
    if not args.skip_checkpoint:
        out["checkpoint"] = bench_checkpoint(args.table_rows, args.dim)
        print(json.dumps(out["checkpoint"]), flush=True)


if __name__ == "__main__":
    main()
