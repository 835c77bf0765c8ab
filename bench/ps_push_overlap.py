"""A single writer's PS pushes waited for vs sent in the background (``PsSync.sync(wait=False)``), one run.

DeepFM steps of the built-in stream in this process, a real ``flinkdl ps serve`` on 127.0.0.1, a sync
every ``--every`` batches; CPU µs/event of this process (the step, the sync and the push thread) and
events/s, alternating the two variants.

    PYTHONPATH=. python bench/ps_push_overlap.py [--batches 60]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import tensorflow as tf

from flinkdl.config.loader import load_config
from flinkdl.exchange.channel import unpack
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.models.registry import build_model
from flinkdl.pipeline.featurize import FeatureMaker
from flinkdl.pipeline.generate import BatchGenerator
from flinkdl.worker.ps_sync import PsSync
from tests.ps.conftest import PsProcess

WARM = 10


def batches(cfg, n: int) -> list[tuple[tf.Tensor, tf.Tensor, tf.Tensor]]:
    layout = FeatureLayout.from_config(cfg.features)
    gen, schema, out = BatchGenerator(cfg.source.generator, FeatureMaker.from_config(cfg)), layout.schema(), []
    for i in range(n):
        b = unpack(gen.make(i).payload, schema)
        cols = [b.column(k).to_numpy() for k in range(b.num_columns)]
        ids = np.stack(cols[2:2 + layout.n_ids], axis=1)
        dense = np.stack(cols[2 + layout.n_ids:], axis=1).astype(np.float32)
        out.append((tf.constant(ids), tf.constant(dense), tf.constant(cols[1].astype(np.float32))))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, default=60)
    p.add_argument("--every", type=int, default=5, help="ps.push_every_batches")
    p.add_argument("--model", default="deepfm")
    args = p.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(2)
    server = PsProcess(None)
    try:
        cfg = load_config("jobs/click_stream.yaml", [
            f"model.name={args.model}", "sinks.predictions=null", f"job.run_dir={tempfile.mkdtemp()}",
            "ps.enabled=true", f"ps.address={server.address}", f"ps.push_every_batches={args.every}"])
        data = batches(cfg, args.batches)
        model = build_model(FeatureLayout.from_config(cfg.features), cfg.model)
        sync = PsSync(model, cfg.ps, cfg.features.buckets, single_writer=True)
        events = sum(int(b[2].shape[0]) for b in data[WARM:])

        def run(background: bool, part: list) -> dict[str, float]:
            cpu, wall = time.process_time(), time.perf_counter()
            for ids, dense, label in part:
                sync.before_step(ids.numpy())
                model.predict_then_train(ids, dense, label).numpy()
                sync.batches += 1
                if sync.batches % args.every == 0:
                    sync.sync(wait=not background)
            sync.drain()
            return {"cpu_us_per_event": 1e6 * (time.process_time() - cpu) / events,
                    "events_per_s": events / (time.perf_counter() - wall)}

        run(False, data[:WARM])
        out: dict[str, list[dict[str, float]]] = {"waited": [], "background": []}
        for _ in range(2):
            for name in out:
                out[name].append(run(name == "background", data[WARM:]))
                print(name, {k: round(v, 2) for k, v in out[name][-1].items()}, flush=True)
        sync.close(commit=False)
    finally:
        server.stop()
    best = {k: max(r["events_per_s"] for r in v) for k, v in out.items()}
    print(f"events/s background / waited: {best['background'] / best['waited']:.2f}")
    print(json.dumps({"ps_push_overlap": out}))


if __name__ == "__main__":
    main()
