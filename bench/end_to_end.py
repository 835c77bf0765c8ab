"""End-to-end events/s of the Flink job vs the raw-TF ceiling of the same model, same run.

    python bench/end_to_end.py                          # lr, fm, deepfm; 300k generated events
    python bench/end_to_end.py --models deepfm --events 1000000

For each model: (1) the job (`flinkdl.runner.run`: mini-cluster, generator → parse + hash →
Arrow IPC → TF worker → evaluation + prediction file) and its stream throughput (first to last
batch at the sink, Flink start-up excluded); (2) the same model trained from the same events,
featurized in advance into numpy arrays in this process (no framework: the raw-TF ceiling).
Prints a Markdown table with the ratio job / ceiling.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

import numpy as np

from flinkdl.config.loader import load_config
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.features.transform import Featurizer
from flinkdl.sources.generator import ClickStream


def featurized(cfg, events: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The generator's first ``events`` events as (ids, dense, labels) arrays."""
    gen, lay = cfg.source.generator, FeatureLayout.from_config(cfg.features)
    stream, fz = ClickStream.from_config(gen), Featurizer(cfg.features)
    parts = []
    for i in range(-(-events // gen.batch_size)):
        raw = stream.batch(i, gen.batch_size).slice(0, events - i * gen.batch_size)
        parts.append(np.stack([c.to_numpy() for c in fz.transform(raw)[0].columns[1:]], axis=1))
    m = np.concatenate(parts)
    return m[:, 1:1 + lay.n_ids].astype(np.int64), m[:, 1 + lay.n_ids:].astype(np.float32), m[:, 0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="jobs/click_stream.yaml")
    p.add_argument("--models", nargs="+", default=["lr", "fm", "deepfm"])
    p.add_argument("--events", type=int, default=300_000)
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--json", help="also write the rows as JSON here")
    args = p.parse_args()

    import tensorflow as tf
    from raw_tf import raw_tf_ceiling  # bench/raw_tf.py, beside this file

    from flinkdl.runner import run

    rows = []
    for model in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = load_config(args.config, [*args.set, f"model.name={model}", f"job.run_dir={tmp}/run",
                                            "sinks.predictions=null"])
            threads = cfg.worker.intra_op_threads
            if threads:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
            ids, dense, labels = featurized(cfg, args.events)
            ceiling = raw_tf_ceiling(cfg.model, FeatureLayout.from_config(cfg.features), ids, dense, labels,
                                     cfg.source.generator.batch_size)
            job = run(cfg, args.events, oracle=False)
        rows.append({"model": model, "events": args.events, "job_rows_per_s": job["rows_per_s"],
                     "job_auc": job["auc"], "ceiling_rows_per_s": ceiling["rows_per_s"],
                     "ceiling_auc": ceiling["auc"], "ratio": job["rows_per_s"] / ceiling["rows_per_s"],
                     "job_elapsed_s": job["elapsed_s"]})
        print(json.dumps(rows[-1]), flush=True)
    report(rows, ["model", "events", "job ev/s", "raw-TF ceiling ev/s", "job / ceiling", "job AUC", "ceiling AUC"],
           lambda r: [r["model"], f"{r['events']:,}", f"{r['job_rows_per_s']:,.0f}",
                      f"{r['ceiling_rows_per_s']:,.0f}", f"{r['ratio']:.2f}", f"{r['job_auc']:.4f}",
                      f"{r['ceiling_auc']:.4f}"], args.json)


def report(rows: list[dict], headers: list[str], cells, json_path: str | None) -> None:
    """Print ``rows`` as a Markdown table (``cells(row)`` → strings) and the machine; dump JSON."""
    print("\n| " + " | ".join(headers) + " |")
    print("|" + "---|" * len(headers))
    for r in rows:
        print("| " + " | ".join(cells(r)) + " |")
    print(f"\nmachine: {os.cpu_count()} cores")
    if json_path:
        with open(json_path, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
