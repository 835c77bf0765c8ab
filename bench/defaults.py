"""Candidate default settings on every family member vs Vowpal Wabbit, each stream featurized once.

    python bench/defaults.py --events 300000 \
        --variant base= --variant steps128=model.micro_batch_rows=128 \
        --variant acc1=model.optimizer.initial_accumulator=1.0

A variant is ``name=setting;setting;...`` (``--set`` syntax, ``;``-separated, empty = the job config
as it is), applied over each stream's own job config (``jobs/click_stream.yaml`` on the family
members, as bench/quality.py builds them): a setting that a job file leaves out is a change of the
model defaults (``flinkdl/config/model.py``). Every variant learns the same featurized events in the
same order (bench/quality.py's ``train``: predict, then learn), so its progressive AUC is
deterministic; its CPU µs per event (all threads) is indicative under load. VW ``-b 20
--loss_function logistic`` on the same events. Prints one JSON line per (stream, variant), a table
of AUC − VW, and a final JSON line.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from family import with_sets
from quality import oracle_scores, run_vw, scored, stream, train
from streams import featurize, write_vw

from flinkdl.config.generator_family import PRESETS
from flinkdl.evaluation.metrics import auc_from_arrays


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``name=a=1;b=2`` → (``name``, [``a=1``, ``b=2``])."""
    name, _, sets = text.partition("=")
    return name, [s for s in sets.split(";") if s.strip()]


def print_windows(dataset: str, labels: np.ndarray, scores: dict[str, np.ndarray], n: int, drift_at: int) -> None:
    """AUC per window (``n`` equal windows) of each scorer, as a table and a JSON line."""
    edges = np.linspace(0, len(labels), n + 1).astype(int)
    pairs = list(itertools.pairwise(edges.tolist()))
    table = {k: [auc_from_arrays(labels[a:b], v[a:b].astype(np.float32)) for a, b in pairs]
             for k, v in scores.items()}
    print(f"\n{dataset}: AUC per window (drift at {drift_at})\n| scorer | "
          + " | ".join(f"{a // 1000}k-{b // 1000}k" for a, b in pairs) + " |")
    for k, aucs in table.items():
        print(f"| {k} | " + " | ".join(f"{x:.4f}" for x in aucs) + " |")
    print(json.dumps({"dataset": dataset, "windows": edges.tolist(), "auc": table}), flush=True)


def train_reset_at(cfg, ids: np.ndarray, dense: np.ndarray, labels: np.ndarray, batch: int,
                   at: int) -> tuple[np.ndarray, float, dict]:
    """bench/quality.py's ``train``, with every table's Adagrad accumulator set back to its initial value at
    event ``at`` (its own batch boundary): the step sizes a perfect drift detector could restart."""
    import tensorflow as tf

    from flinkdl.exchange.schema import FeatureLayout
    from flinkdl.models import build_model

    model = build_model(FeatureLayout.from_config(cfg.features), cfg.model)
    n, t, scores = len(labels), time.perf_counter(), np.empty(len(labels), np.float32)
    bounds = sorted({*range(0, n, batch), n, at})
    for a, b in itertools.pairwise(bounds):
        if a == at:
            for name, slot in model.slot_variables().items():
                table, _, kind = name.rpartition("/")
                if kind == "accumulator" and table in model._sparse:
                    slot.assign(tf.fill(tf.shape(slot), tf.cast(cfg.model.optimizer.initial_accumulator, slot.dtype)))
        scores[a:b] = model.predict_then_train(ids[a:b], dense[a:b], labels[a:b]).numpy()
    return scores, time.perf_counter() - t, {}


def featurized_with_vw(dataset: str, args: argparse.Namespace, tmp: Path) -> tuple:
    """(job config, ids, dense, labels, VW's progressive scores) of ``dataset``, featurized once."""
    base, raw, _ = stream(dataset, args)
    ids, dense, labels = featurize(base, raw)
    write_vw(base, raw, tmp / f"{dataset}.vw")
    return base, ids, dense, labels, run_vw(tmp / f"{dataset}.vw", tmp)[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["family-1", "family-3"], choices=sorted(PRESETS))
    p.add_argument("--events", type=int, default=300_000)
    p.add_argument("--variant", action="append", default=[], help="name=setting;setting (repeatable)")
    p.add_argument("--set", action="append", default=[], help="over every stream's config (and VW's features)")
    p.add_argument("--opaque", dest="bags", action="store_false", help="multi-valued fields as one string each")
    p.add_argument("--reset-at-drift", action="store_true", help="every variant: the tables' Adagrad "
                   "accumulators back to their initial value at the drift point (a perfect drift detector)")
    p.add_argument("--windows", type=int, default=0, help="also print the AUC of this many consecutive windows "
                   "of each stream (VW, the generator's oracle, each variant): where a gap comes from")
    args = p.parse_args()
    args.ml_events, args.ml_batch = None, 4
    variants = [parse_variant(v) for v in args.variant] or [("base", [])]
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for d in args.datasets:
            base, ids, dense, labels, vw = featurized_with_vw(d, args, Path(tmp))
            row = {"VW": scored(labels, vw)["auc"]}
            per = {"VW": vw, "oracle": oracle_scores(base, len(labels))} if args.windows else {}
            print(json.dumps({"dataset": d, "variant": "VW", "auc": row["VW"]}), flush=True)
            for name, sets in variants:
                cfg = with_sets(base, sets)
                cpu = time.process_time()
                gen = base.source.generator
                scores, secs, _ = (train_reset_at(cfg, ids, dense, labels, gen.batch_size, gen.drift_at)
                                   if args.reset_at_drift else train(cfg, ids, dense, labels, gen.batch_size))
                cpu = time.process_time() - cpu
                row[name] = scored(labels, scores)["auc"]
                if args.windows:
                    per[name] = scores
                print(json.dumps({"dataset": d, "variant": name, "auc": row[name], "minus_vw": row[name] - row["VW"],
                                  "seconds": round(secs, 1), "cpu_us_per_event": round(cpu / len(labels) * 1e6, 1)}),
                      flush=True)
            out[d] = row
            if args.windows:
                print_windows(d, labels, per, args.windows, base.source.generator.drift_at)
    names = [n for n, _ in variants]
    print("\n| stream | VW | " + " | ".join(names) + " |\n" + "|---" * (len(names) + 2) + "|")
    for d, row in out.items():
        cells = [f"{row[n]:.4f} ({row[n] - row['VW']:+.4f})" for n in names]
        print(f"| {d} | {row['VW']:.4f} | " + " | ".join(cells) + " |")
    print(json.dumps({"bench": "defaults", "events": args.events, "auc": out}))


if __name__ == "__main__":
    main()
