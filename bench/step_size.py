"""Progressive AUC against the step size (rows per training step), per model, stream and scoring rule.

    python bench/step_size.py                                        # MovieLens-100k, built-in stream, family-1
    python bench/step_size.py --datasets movielens --batches 4 64 512 4096 --models fm
    python bench/step_size.py --datasets drift family-2 --events 200000 --batches 64 512 4096

Offline (no Flink): each stream is featurized by the job's ``Featurizer`` and fed in order to a
fresh model built from the job config (``flinkdl.models.build_model``), ``predict_then_train`` on
consecutive batches of each size, one step per batch (``model.micro_batch_rows`` off). Every
(model, batch) runs with ``model.fresh_scores`` off (``per_batch``: every row scored by the model as
it was before the step; the baseline) and on (``fresh``: each row scored as if the step's earlier
rows had been learnt, flinkdl/models/in_batch.py). Streams: MovieLens-100k (``jobs/movielens.yaml``: user and
item ids, label rating >= 4, sorted by time), the built-in drift stream (``jobs/click_stream.yaml``)
and members of the generator family (``family-N``). Prints a table, each AUC's gap to the same
rule's smallest batch, and a final JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from family import family_config, with_sets
from streams import MODEL_SETTINGS, featurize, generator_raw, raw_batches

from flinkdl.config.loader import load_config
from flinkdl.config.schema import JobConfig
from flinkdl.evaluation.metrics import auc_from_arrays

CONFIGS = {"drift": "jobs/click_stream.yaml", "movielens": "jobs/movielens.yaml"}
RULES = {"per_batch": ["model.fresh_scores=false"], "fresh": ["model.fresh_scores=true"]}


def stream(dataset: str, events: int, sets: list[str]) -> tuple[JobConfig, list]:
    """(job config, raw batches) of ``movielens``, ``drift`` or ``family-N``."""
    if dataset.startswith("family-"):
        cfg = family_config(load_config(CONFIGS["drift"], sets), dataset, events)
        return cfg, list(generator_raw(cfg, events))
    cfg = load_config(CONFIGS[dataset], sets)
    return cfg, raw_batches(cfg, dataset, None if dataset == "movielens" else events)


def run(cfg: JobConfig, ids, dense, labels, batch: int) -> tuple[float, float]:
    """(progressive AUC, seconds) of a fresh ``cfg.model`` learning the rows in batches of ``batch``."""
    import numpy as np

    from flinkdl.exchange.schema import FeatureLayout
    from flinkdl.models import build_model

    model = build_model(FeatureLayout.from_config(cfg.features), cfg.model)
    scores, t = np.empty(len(labels), np.float32), time.perf_counter()
    for a in range(0, len(labels), batch):
        sl = slice(a, a + batch)
        scores[sl] = model.predict_then_train(ids[sl], dense[sl], labels[sl]).numpy()
    return auc_from_arrays(labels, scores), time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["movielens", "drift", "family-1"])
    p.add_argument("--models", nargs="+", default=["lr", "fm", "deepfm"])
    p.add_argument("--batches", nargs="+", type=int, default=[4, 64, 512, 4096],
                   help="MovieLens batch sizes (the generator streams skip those below --min-gen-batch)")
    p.add_argument("--min-gen-batch", type=int, default=64, help="smallest batch on generator streams (CPU)")
    p.add_argument("--events", type=int, default=200_000, help="events of a generator stream")
    p.add_argument("--set", action="append", default=[], help="config override for every run")
    args = p.parse_args()
    rows = []
    for dataset in args.datasets:
        base, raw = stream(dataset, args.events, args.set)
        ids, dense, labels = featurize(base, raw)
        batches = [b for b in args.batches if dataset == "movielens" or b >= args.min_gen_batch]
        for model in args.models:
            for rule in RULES:
                cfg = with_sets(base, [f"model.name={model}", *MODEL_SETTINGS.get(model, []),
                                       "model.micro_batch_rows=null", *RULES[rule]])
                for batch in batches:
                    auc, secs = run(cfg, ids, dense, labels, batch)
                    row = {"dataset": dataset, "model": model, "scores": rule, "batch": batch,
                           "events": len(labels), "auc": round(auc, 4), "seconds": round(secs, 1)}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    ref = {}
    for r in rows:  # gap to the same rule's smallest batch on that stream
        ref.setdefault((r["dataset"], r["model"], r["scores"]), r["auc"])
        r["minus_smallest"] = round(r["auc"] - ref[(r["dataset"], r["model"], r["scores"])], 4)
    print("\n| stream | model | batch | AUC per_batch | AUC fresh | fresh − per_batch |")
    print("|---|---|---|---|---|---|")
    by = {(r["dataset"], r["model"], r["batch"], r["scores"]): r["auc"] for r in rows}
    for d, m, b, rule in by:
        if rule == "per_batch" and (d, m, b, "fresh") in by:
            old, new = by[(d, m, b, rule)], by[(d, m, b, "fresh")]
            print(f"| {d} | {m} | {b} | {old:.4f} | {new:.4f} | {new - old:+.4f} |")
    print(json.dumps({"bench": "step_size", "rows": rows}))


if __name__ == "__main__":
    main()
