"""Parallel quality: combined progressive AUC and throughput at parallelism 1, 2, 4 on one stream.

    python bench/parallel.py [--events 200000] [--variants base,push1,batch1024] [--parallelism 1,2,4]

Every run is ``flinkdl run jobs/click_stream.yaml`` (DeepFM, the built-in drift stream, seed 7,
``--max-events``) with the parameter server on (a fresh one per run, started by the runner), so
p=1 and p>1 differ only in the parallelism and the variant's settings. Variants (what the field
uses to close the gap of data-parallel online learning):

- ``base``: the defaults (``ps.push_every_batches: 10``);
- ``push1``: push and pull every batch (staleness bounded to one batch per worker);
- ``batch1024``: batches of 1024 rows (p workers then step on p × 1024 rows at once, about the
  4096 of one worker), pushing every 4 batches (the same events between syncs as ``base``'s p=1);
- ``push1_batch1024``: both;
- ``dense_avg``: ``push1`` with the dense optimizer's learning rate / p: the p workers' dense
  deltas add up on the server, so this steps as their average would (model averaging of the MLP);
- ``avg``: ``dense_avg`` and the tables' learning rate / p too;
- ``avg_sqrt``: ``avg`` with the learning rates / sqrt(p);
- ``avg_batch``: ``avg`` with batches of 4096 / p rows, so that the p workers' concurrent steps
  together cover the 4096 rows of one step at p=1;
- ``sync``: synchronous data-parallel steps (``parallel.sync_steps``): each 512-row step is the sum of
  the p workers' gradients on 512 / p rows each, so p>1 learns as p=1 does (p=1 is unchanged);
- ``sync_eo``: ``sync`` with ``job.exactly_once`` (checkpoints every 2 s; a PS commit at every push,
  announced to every rank: docs/EXACTLY_ONCE.md, "Synchronous steps with exactly-once").

Printed: per run the combined AUC (binned cumulative, the same estimator at every parallelism),
its gap to p=1 ``base``, events/s over the job's run time (start-up included: run enough events
for it to be small) and a final JSON line. ``--parallelism 2,4`` leaves out the p=1 variants
(p=1 ``base`` always runs: it is the baseline).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from flinkdl.devtools.net import free_port

ROOT = Path(__file__).resolve().parents[1]
#: Each variant's settings at parallelism p (the defaults: adagrad 0.05 on the tables, adam 0.003 dense).
VARIANTS: dict[str, Callable[[int], list[str]]] = {
    "base": lambda p: [],
    "push1": lambda p: ["ps.push_every_batches=1"],
    "batch1024": lambda p: ["source.generator.batch_size=1024", "ps.push_every_batches=4"],
    "push1_batch1024": lambda p: ["source.generator.batch_size=1024", "ps.push_every_batches=1"],
    "dense_avg": lambda p: ["ps.push_every_batches=1", f"model.dense_optimizer.learning_rate={0.003 / p}"],
    "avg": lambda p: ["ps.push_every_batches=1", f"model.dense_optimizer.learning_rate={0.003 / p}",
                      f"model.optimizer.learning_rate={0.05 / p}"],
    "avg_sqrt": lambda p: ["ps.push_every_batches=1", f"model.dense_optimizer.learning_rate={0.003 / p ** 0.5}",
                           f"model.optimizer.learning_rate={0.05 / p ** 0.5}"],
    "avg_batch": lambda p: [f"source.generator.batch_size={4096 // p}", "ps.push_every_batches=1",
                            f"model.dense_optimizer.learning_rate={0.003 / p}",
                            f"model.optimizer.learning_rate={0.05 / p}"],
    "sync": lambda p: ["parallel.sync_steps=true"],
    "sync_eo": lambda p: ["parallel.sync_steps=true", "job.exactly_once=true", "job.checkpoint_interval_s=2"],
}


def run(work: Path, events: int, parallelism: int, variant: str) -> dict:
    name = f"p{parallelism}-{variant}"
    run_dir = work / name
    sets = [f"job.parallelism={parallelism}", f"job.run_dir={run_dir}",
            f"sinks.predictions.path={run_dir}/predictions.csv", "ps.enabled=true",
            f"ps.address=grpc://127.0.0.1:{free_port()}", f"ps.checkpoint_dir={work / (name + '-ps')}",
            *VARIANTS[variant](parallelism)]
    cmd = [sys.executable, "-m", "flinkdl.cli", "run", "jobs/click_stream.yaml", "--max-events", str(events),
           "--summary", str(run_dir / "summary.json")]
    for s in sets:
        cmd += ["--set", s]
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed: {proc.stderr[-2000:]}")
    s = json.loads((run_dir / "summary.json").read_text())
    return {"parallelism": parallelism, "variant": variant, "auc": s["auc_cumulative"], "auc_exact": s["auc"]
            if s["auc_exact"] else None, "logloss": s["logloss"], "events_per_s": s["events_in"] / s["elapsed_s"],
            "sink_events_per_s": s["rows_per_s"], "wall_s": time.time() - t0, "events": s["events_in"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--variants", default="base,push1,batch1024")
    ap.add_argument("--parallelism", default="1,2,4")
    a = ap.parse_args()
    variants = a.variants.split(",")
    levels = [int(p) for p in a.parallelism.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-parallel-") as d:
        base = run(Path(d), a.events, 1, "base")
        rows.append(base)
        print(f"p=1 base: AUC {base['auc']:.4f}, {base['events_per_s']:,.0f} events/s", flush=True)
        for p in levels:
            for v in variants:
                if p == 1 and v == "base":
                    continue
                r = run(Path(d), a.events, p, v)
                r["gap"] = base["auc"] - r["auc"]
                r["speedup"] = r["events_per_s"] / base["events_per_s"]
                rows.append(r)
                print(f"p={p} {v}: AUC {r['auc']:.4f} (gap {r['gap']:+.4f}), {r['events_per_s']:,.0f} events/s "
                      f"({r['speedup']:.2f}x p=1)", flush=True)
    print(json.dumps({"bench": "parallel", "events": a.events, "runs": rows}))


if __name__ == "__main__":
    main()
