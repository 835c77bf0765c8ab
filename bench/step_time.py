"""Wall time of one prequential step (score then train) vs batch size: the TF worker's share of latency.

    python bench/step_time.py                       # DeepFM of jobs/click_stream_kafka.yaml
    python bench/step_time.py --sizes 50 500 1000 2000

The worker answers a batch only after its training step (scores and step are one graph), so a
prediction waits for the step of its own batch; this measures that step in this process, on the
built-in stream's events featurized in advance, with the job's ``worker.intra_op_threads``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="jobs/click_stream_kafka.yaml")
    p.add_argument("--sizes", nargs="+", type=int, default=[50, 200, 500, 1000, 2000])
    p.add_argument("--steps", type=int, default=40, help="timed steps per size (after 5 warm-up steps)")
    args = p.parse_args()

    import tensorflow as tf
    from end_to_end import featurized  # bench/, beside this file

    from flinkdl.config.loader import load_config
    from flinkdl.exchange.schema import FeatureLayout
    from flinkdl.models import build_model

    cfg = load_config(args.config, [])
    if cfg.worker.intra_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(cfg.worker.intra_op_threads)
    ids, dense, labels = featurized(cfg, max(args.sizes) * (args.steps + 5))
    model = build_model(FeatureLayout.from_config(cfg.features), cfg.model)
    rows = []
    for size in args.sizes:
        times = []
        for i in range(args.steps + 5):
            sl = slice(i * size, (i + 1) * size)
            t0 = time.perf_counter()
            model.predict_then_train(ids[sl], dense[sl], labels[sl]).numpy()
            if i >= 5:
                times.append((time.perf_counter() - t0) * 1000)
        p50, p99 = np.percentile(times, [50, 99])
        rows.append({"rows": size, "step_p50_ms": float(p50), "step_p99_ms": float(p99)})
        print(f"{size:>6} rows: step p50 {p50:.1f} ms  p99 {p99:.1f} ms", flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
