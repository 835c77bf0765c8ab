"""Hashing vs collisionless dynamic ids at equal memory: progressive AUC on generator family members.

    python bench/dynamic_ids.py --members family-0 family-2 --events 100000 --bits 14 16

Each member is featurized once with 31-bit ids (``features.hash_bits=31``: distinct values
practically never share an id). "hash 2^k" takes the low k bits of those ids (exactly what
``hash_bits=k`` gives) into a table of 2^k rows; "dynamic 2^k" (``model.name: dynamic``) gives
admitted ids rows of their own in a table of 2^k − F rows (F = one fallback row per field, so both
tables hold 2^k rows), evicting the least recently used; ``admit k`` admits an id at its k-th
occurrence. Same model (the job's DeepFM settings), same events, same order; the hashed run is
the baseline of each ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from family import family_config, with_sets
from streams import featurize, generator_raw

from flinkdl.config.loader import load_config
from flinkdl.evaluation.metrics import auc_from_arrays
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.models import build_model


def run(cfg, layout: FeatureLayout, ids: np.ndarray, dense: np.ndarray, labels: np.ndarray,
        batch: int) -> tuple[float, float, object]:
    model = build_model(layout, cfg.model)
    scores, t = np.empty(len(labels), np.float32), time.perf_counter()
    for a in range(0, len(labels), batch):
        scores[a:a + batch] = model.predict_then_train(ids[a:a + batch], dense[a:a + batch],
                                                       labels[a:a + batch]).numpy()
    return auc_from_arrays(labels, scores), time.perf_counter() - t, model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--members", nargs="+", default=["family-0", "family-2"])
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--bits", nargs="+", type=int, default=[14, 16])
    p.add_argument("--admit", nargs="+", type=int, default=[1, 2])
    args = p.parse_args()
    rows = []
    for member in args.members:
        cfg = family_config(load_config("jobs/click_stream.yaml", ["features.hash_bits=31"]), member, args.events)
        ids, dense, labels = featurize(cfg, list(generator_raw(cfg, args.events)))
        n_ids, batch = ids.shape[1], cfg.source.generator.batch_size
        distinct = len(np.unique(ids))
        for bits in args.bits:
            lay = FeatureLayout(n_ids=n_ids, n_dense=dense.shape[1], buckets=1 << bits)
            base_auc, secs, _ = run(cfg, lay, ids & ((1 << bits) - 1), dense, labels, batch)
            rows.append({"member": member, "rows": 1 << bits, "kind": "hash", "auc": base_auc, "seconds": secs,
                         "distinct_ids": distinct})
            for admit in args.admit:
                dcfg = with_sets(cfg, ["model.name=dynamic", f"model.dynamic.base={cfg.model.name}",
                                       f"model.dynamic.capacity={(1 << bits) - n_ids}",
                                       f"model.dynamic.admit_after={admit}"])
                wide = FeatureLayout(n_ids=n_ids, n_dense=dense.shape[1], buckets=1 << 31)
                auc, secs, model = run(dcfg, wide, ids, dense, labels, batch)
                rows.append({"member": member, "rows": 1 << bits, "kind": f"dynamic, admit {admit}", "auc": auc,
                             "auc_minus_hash": auc - base_auc, "seconds": secs, "distinct_ids": distinct,
                             "admitted": model.ids.admitted, "evicted": model.ids.evicted})
            for r in rows[-1 - len(args.admit):]:
                print(json.dumps(r), flush=True)
    print("\n| member | table rows | kind | progressive AUC | AUC − hash | admitted | evicted | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['member']} | {r['rows']:,} | {r['kind']} | {r['auc']:.4f} | {r.get('auc_minus_hash', 0):+.4f} | "
              f"{r.get('admitted', '-')} | {r.get('evicted', '-')} | {r['seconds']:.1f} |")
    print(json.dumps({"bench": "dynamic_ids", "rows": rows}))


if __name__ == "__main__":
    main()
