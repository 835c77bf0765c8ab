"""Kafka → job → Kafka events/s, row messages vs Arrow-batch messages, next to the raw-TF ceiling.

    python bench/kafka.py                                  # deepfm, 300k events, csv and arrow
    python bench/kafka.py --models lr deepfm --events 500000 --formats csv arrow json

Starts a local broker (tansu), and per format produces the built-in stream's first ``--events``
events into a fresh topic (before the job starts: the job reads a backlog), then runs
``jobs/click_stream_kafka.yaml`` (Flink's Kafka source → parse + hash → TF worker → predictions
topic, acknowledged before evaluation) until it has seen them all. Reported per run: the job's
stream throughput (first to last batch at the evaluator, Flink start-up excluded), the
predictions topic's rate (events / span of ``processing_ts``), and that every event came back.
The raw-TF ceiling is the same model trained in this process on the same events, featurized in
advance (bench/raw_tf.py), measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="jobs/click_stream_kafka.yaml")
    p.add_argument("--models", nargs="+", default=["deepfm"])
    p.add_argument("--formats", nargs="+", default=["csv", "arrow"], choices=["csv", "json", "arrow"])
    p.add_argument("--events", type=int, default=300_000)
    p.add_argument("--arrow-batch", type=int, default=4096, help="events per Arrow message")
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--json", help="also write the rows as JSON here")
    args = p.parse_args()

    import tensorflow as tf
    from end_to_end import featurized, report  # bench/, beside this file
    from raw_tf import raw_tf_ceiling

    from flinkdl.config.loader import load_config
    from flinkdl.devtools import broker
    from flinkdl.devtools.produce import generator_batches, produce, read_topic
    from flinkdl.exchange.schema import FeatureLayout
    from flinkdl.runner import run

    rows = []
    with tempfile.TemporaryDirectory() as tmp, broker.running(Path(tmp) / "tansu.log") as b:
        for model in args.models:
            base = load_config(args.config, [*args.set, f"model.name={model}"])
            if base.worker.intra_op_threads:
                tf.config.threading.set_intra_op_parallelism_threads(base.worker.intra_op_threads)
            ids, dense, labels = featurized(base, args.events)
            ceiling = raw_tf_ceiling(base.model, FeatureLayout.from_config(base.features), ids, dense, labels,
                                     base.source.generator.batch_size)
            for fmt in args.formats:
                name = f"{model}-{fmt}"
                broker.create_topics(b.bootstrap, [f"in-{name}", f"out-{name}"])
                t0 = time.time()
                size = args.arrow_batch if fmt == "arrow" else 4096
                produce(b.bootstrap, f"in-{name}", generator_batches(args.events, size), fmt, progress=False)
                produce_s = time.time() - t0
                cfg = load_config(args.config, [
                    *args.set, f"model.name={model}", f"job.run_dir={tmp}/{name}",
                    f"source.kafka.bootstrap_servers={b.bootstrap}", f"source.kafka.topic=in-{name}",
                    f"source.kafka.format={fmt}", f"source.kafka.group_id=bench-{name}",
                    f"sinks.kafka.topic=out-{name}"])
                job = run(cfg, args.events, oracle=False)
                out = read_topic(b.bootstrap, f"out-{name}", expect=args.events, idle_s=10)
                ts = [json.loads(m.value())["processing_ts"] for m in out]
                topic_rate = len(out) / max((max(ts) - min(ts)) / 1000, 1e-3) if ts else 0.0
                rows.append({
                    "model": model, "format": fmt, "events": args.events, "produce_s": produce_s,
                    "job_rows_per_s": job["rows_per_s"], "topic_rows_per_s": topic_rate,
                    "messages_out": len(out), "distinct_keys_out": len({m.key() for m in out}),
                    "job_auc": job["auc"], "ceiling_rows_per_s": ceiling["rows_per_s"], "ceiling_auc": ceiling["auc"],
                    "ratio": job["rows_per_s"] / ceiling["rows_per_s"], "job_elapsed_s": job["elapsed_s"]})
                print(json.dumps(rows[-1]), flush=True)
    report(rows, ["model", "messages", "events", "job ev/s", "predictions topic ev/s", "raw-TF ceiling ev/s",
                  "job / ceiling", "predictions back", "job AUC", "ceiling AUC"],
           lambda r: [r["model"],
                      f"Arrow ({args.arrow_batch} ev/msg)" if r["format"] == "arrow" else f"{r['format']} rows",
                      f"{r['events']:,}", f"{r['job_rows_per_s']:,.0f}", f"{r['topic_rows_per_s']:,.0f}",
                      f"{r['ceiling_rows_per_s']:,.0f}", f"{r['ratio']:.2f}", f"{r['distinct_keys_out']:,}",
                      f"{r['job_auc']:.4f}", f"{r['ceiling_auc']:.4f}"], args.json)

if __name__ == "__main__":
    main()
