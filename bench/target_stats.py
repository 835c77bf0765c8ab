"""Prototype: online smoothed per-id target statistics as extra dense inputs (issue 15, family-3).

    python bench/target_stats.py --datasets family-3 movielens --events 300000 \
        --variant plain= --variant te=prior=10 --variant te_n=prior=10,counts=1 \
        --variant model='@model.target_stats={prior: 10}'

For every single-valued id column, each row gets its id's click rate so far, smoothed towards
the running global rate (``prior`` pseudo-events), as log-odds against the global rate, and
(``counts=1``) ``log1p(count) / 5``: the classic CTR count features for rare ids. Computed
prequentially: a row sees the statistics of the steps *before* its own (its step's rows are
scored first, then counted), one step being ``model.micro_batch_rows`` rows (or the batch). The
statistics are appended to the dense columns of the job's own model (the default DeepFM of
``jobs/click_stream.yaml`` / ``jobs/movielens.yaml``), which learns them as any numeric input.
Same rows, order and seeds in every variant: the AUCs are deterministic. VW ``-b 20`` alongside.
Prints one JSON line per (stream, variant) and a final JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from defaults import featurized_with_vw
from family import with_sets
from quality import scored, train

from flinkdl.config.features import NumericField
from flinkdl.exchange.schema import FeatureLayout


def target_stats(ids: np.ndarray, labels: np.ndarray, step: int, prior: float, counts: bool,
                 n_single: int, cscale: float = 5.0, kind: str = "log") -> np.ndarray:
    """``[N, n_single * (1 + counts)]`` float32: each row's per-id statistics before its step."""
    n = len(labels)
    flat = ids[:, :n_single]
    uniq, inv = np.unique(flat, return_inverse=True)
    inv = inv.reshape(flat.shape)
    shows, clicks = np.zeros(len(uniq)), np.zeros(len(uniq))
    tot_n, tot_c = 0.0, 0.0
    out = np.zeros((n, n_single * (2 if counts else 1)), np.float32)
    for a in range(0, n, step):
        rows = inv[a:a + step]
        p = (tot_c + 1.0) / (tot_n + 2.0)
        s, c = shows[rows], clicks[rows]
        rate = (c + prior * p) / (s + prior)
        out[a:a + step, :n_single] = np.log(rate / (1 - rate)) - np.log(p / (1 - p))
        if counts:
            out[a:a + step, n_single:] = (np.log1p(s) / cscale if kind == "log" else prior / (s + prior)
                                          if kind == "rare" else np.log((s + 1) / (tot_n + 1)) / cscale)
        y = labels[a:a + step]
        np.add.at(shows, rows.ravel(), 1.0)
        np.add.at(clicks, rows.ravel(), np.repeat(y, rows.shape[1]))
        tot_n, tot_c = tot_n + len(y), tot_c + float(y.sum())
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["family-3"])
    p.add_argument("--events", type=int, default=300_000)
    p.add_argument("--variant", action="append", default=[], help="name=prior=P,counts=0|1[,cscale=C] (the "
                   "numpy prototype), name=@setting;setting (settings over the job's config, e.g. "
                   "model.target_stats={prior: 10}: the model's own), name= (neither)")
    p.add_argument("--set", action="append", default=[])
    args = p.parse_args()
    args.ml_events, args.ml_batch, args.bags = None, 4, True
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for d in args.datasets:
            base, ids, dense, labels, vw = featurized_with_vw(d, args, Path(tmp))
            row = {"VW": scored(labels, vw)["auc"]}
            print(json.dumps({"dataset": d, "variant": "VW", "auc": row["VW"]}), flush=True)
            batch = args.ml_batch if d.startswith("movielens") else base.source.generator.batch_size
            lay = FeatureLayout.from_config(base.features)
            for text in args.variant or ["plain="]:
                name, _, spec = text.partition("=")
                in_model = spec.startswith("@")  # '@a=1;b=2': settings only (model.target_stats in the model)
                opts = dict(kv.split("=", 1) for kv in spec.split(",") if kv) if spec and not in_model else {}
                sets = [s for s in spec[1:].split(";") if s] if in_model else []
                cfg = with_sets(base, sets)
                x = dense
                if opts:
                    step = min(batch, cfg.model.micro_batch_rows or batch)
                    te = target_stats(ids, labels, step, float(opts.get("prior", 10)),
                                      opts.get("counts", "0") == "1", lay.n_single,
                                      float(opts.get("cscale", 5)), opts.get("kind", "log"))
                    if te.shape[1] % 2:  # the layout counts two dense columns per numeric field
                        te = np.concatenate([te, np.zeros((len(te), 1), np.float32)], axis=1)
                    x = np.concatenate([dense, te], axis=1)
                    cfg = cfg.model_copy(deep=True)
                    cfg.features.numeric = [*cfg.features.numeric,
                                            *(NumericField(name=f"te{j}") for j in range(te.shape[1] // 2))]
                scores, secs, _ = train(cfg, ids, x, labels, batch)
                row[name] = scored(labels, scores)["auc"]
                print(json.dumps({"dataset": d, "variant": name, "auc": row[name], "minus_vw": row[name] - row["VW"],
                                  "seconds": round(secs, 1)}), flush=True)
            out[d] = row
    print(json.dumps({"bench": "target_stats", "events": args.events, "auc": out}))


if __name__ == "__main__":
    main()
