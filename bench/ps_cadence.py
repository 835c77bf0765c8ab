"""A single writer's PS cost by push interval, A/B in one run: CPU µs/event of the worker and of the server.

DeepFM (or ``--model``) steps of the built-in stream in this process, a real ``flinkdl ps serve`` on
127.0.0.1 per variant; each variant's ``PsSync`` (single writer) pushes every
``ps.single_writer_push_every_batches`` = B batches (``--every``, the first is the baseline) or every
``ps.push_every_s``. The variants alternate, ``--rounds`` times over the same ``--batches`` batches;
"worker" is this process's CPU (step, sync and push thread), "sync" what it adds over the same steps
without a PS, "server" the server process's CPU. Prints ratios to the first variant and a final JSON line.

    PYTHONPATH=. python bench/ps_cadence.py [--batches 130] [--every 10 100] [--checkpoint]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import psutil
import tensorflow as tf
from ps_push_overlap import batches

from flinkdl.config.loader import load_config
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.models.registry import build_model
from flinkdl.worker.ps_sync import PsSync
from tests.ps.conftest import PsProcess

WARM = 10


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, default=130)
    p.add_argument("--every", type=int, nargs="+", default=[10, 100], help="single_writer_push_every_batches")
    p.add_argument("--model", default="deepfm")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--checkpoint", action="store_true", help="servers with a checkpoint directory: the sync "
                   "commits versions as a job does (every push_every_batches x commit_every_pushes batches)")
    args = p.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(2)
    tmp = Path(tempfile.mkdtemp())
    servers = {e: PsProcess(tmp / f"ckpt-{e}" if args.checkpoint else None) for e in args.every}
    try:
        base = ["sinks.predictions=null", f"job.run_dir={tmp}", f"model.name={args.model}"]
        cfg = load_config("jobs/click_stream.yaml", base)
        data = batches(cfg, args.batches)
        events = sum(int(b[2].shape[0]) for b in data[WARM:])
        runs = {}
        for e, server in servers.items():
            c = load_config("jobs/click_stream.yaml", [*base, "ps.enabled=true", f"ps.address={server.address}",
                                                      f"ps.single_writer_push_every_batches={e}"])
            model = build_model(FeatureLayout.from_config(c.features), c.model)
            runs[e] = (model, PsSync(model, c.ps, c.features.buckets, single_writer=True),
                       psutil.Process(server.proc.pid))
        plain = build_model(FeatureLayout.from_config(cfg.features), cfg.model)

        def run(e: int | None, part: list) -> dict[str, float]:
            model, sync, srv = runs[e] if e is not None else (plain, None, None)
            cpu, s0 = time.process_time(), sum(srv.cpu_times()[:2]) if srv else 0.0
            for ids, dense, label in part:
                if sync is not None:
                    sync.before_step(ids.numpy())
                model.predict_then_train(ids, dense, label).numpy()
                if sync is not None:
                    sync.after_step()
            if sync is not None:
                sync.drain()
            return {"worker": 1e6 * (time.process_time() - cpu) / events,
                    "server": 1e6 * (sum(srv.cpu_times()[:2]) - s0) / events if srv else 0.0,
                    "pushes": sync.pushes if sync else 0, "commits": (sync.committed or 0) if sync else 0}

        for e in [None, *args.every]:
            run(e, data[:WARM])
        out: dict[str, list[dict[str, float]]] = {str(k): [] for k in [None, *args.every]}
        for _ in range(args.rounds):
            for e in [None, *args.every]:
                out[str(e)].append(run(e, data[WARM:]))
                print(f"every={e}", {k: round(v, 3) for k, v in out[str(e)][-1].items()}, flush=True)
        for _, sync, _ in runs.values():
            sync.close(commit=False)
    finally:
        for s in servers.values():
            s.stop()
    no_ps = min(r["worker"] for r in out["None"])
    best = {e: {"worker": min(r["worker"] for r in out[str(e)]), "server": min(r["server"] for r in out[str(e)])}
            for e in args.every}
    first = best[args.every[0]]
    for e, b in best.items():
        print(f"every {e}: sync {b['worker'] - no_ps:.2f} + server {b['server']:.2f} µs/event; worker + server "
              f"{(b['worker'] + b['server']) / (first['worker'] + first['server']):.2f}x of every {args.every[0]}")
    print(json.dumps({"ps_cadence": out, "no_ps_worker_us": no_ps, "events": events}))


if __name__ == "__main__":
    main()
