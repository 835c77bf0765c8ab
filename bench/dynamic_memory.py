"""Memory of collisionless dynamic ids over a long stream whose ids churn, vs hashing at equal rows.

    python bench/dynamic_memory.py --events 20000000 --bits 16 --admit 1 2

A purpose-built stream (:class:`ChurnStream`, generated batch by batch, never held whole): each
of ``--fields`` fields draws one of ``--slots`` slots by a Zipf law; the id a slot holds changes
every ``--life`` events (each slot at its own phase), so new ids keep arriving and old ones stop
for good (about fields × slots × events / life distinct ids). The label is Bernoulli of the
sigmoid of a sum of per-id weights (a hash of the id): an id is learnable while it lives.

Each variant runs in a process of its own (so that RSS is its own): "hash" (the baseline) takes
the low ``bits`` bits of the ids into 2^bits rows; "dynamic, admit k" (``model.name: dynamic``)
gives ids rows of their own in 2^bits − fields rows plus one fallback row per field. Same model
(the job's DeepFM), same events, same order. RSS (psutil) is sampled every ``--sample`` events;
printed: RSS at the first and last sample, the slope over the second half (MiB per million
events), evictions and the tables' occupancy, the cumulative AUC (binned, fixed memory), and a
final JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))

M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a well-spread uint64 per uint64."""
    x = x.astype(np.uint64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class ChurnStream:
    """Batches of (ids int64 [B, F], labels float32 [B]) whose ids churn (see the module docstring)."""

    def __init__(self, fields: int, slots: int, life: int, zipf: float = 1.1, seed: int = 0) -> None:
        self.fields, self.slots, self.life = fields, slots, life
        self.rng = np.random.default_rng(seed)
        w = 1.0 / np.arange(1, slots + 1) ** zipf
        self.cdf = np.cumsum(w) / w.sum()
        self.phase = (mix(np.arange(fields * slots, dtype=np.uint64) + np.uint64(seed << 32)) % np.uint64(life))
        self.phase = self.phase.astype(np.int64).reshape(fields, slots)

    def batches(self, events: int, batch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, events, batch):
            n = min(batch, events - start)
            slot = np.minimum(np.searchsorted(self.cdf, self.rng.random((n, self.fields))), self.slots - 1)
            f = np.arange(self.fields)[None, :]
            at = start + np.arange(n)[:, None]
            gen = (at + self.phase[f, slot]) // self.life
            key = ((f * self.slots + slot).astype(np.uint64) << np.uint64(32)) + gen.astype(np.uint64)
            ids = (mix(key) >> np.uint64(2)).astype(np.int64)  # 62 bits: never -1 / -2 (the tables' markers)
            weight = (mix(ids.astype(np.uint64) ^ np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(11)) / float(1 << 53)
            logit = (weight - 0.5).sum(axis=1) * 2.0 - 1.0
            labels = (self.rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
            yield ids, labels


def child(args: argparse.Namespace) -> dict:
    """One variant over the whole stream in this process; its samples and summary as a dict."""
    import psutil
    import tensorflow as tf
    from family import with_sets

    from flinkdl.config.loader import load_config
    from flinkdl.evaluation.binned import BinnedAUC
    from flinkdl.exchange.schema import FeatureLayout
    from flinkdl.models import build_model

    cfg = load_config("jobs/click_stream.yaml")
    f, rows = args.fields, 1 << args.bits
    if args.kind == "hash":
        model = build_model(FeatureLayout(n_ids=f, n_dense=1, buckets=rows), cfg.model)
    else:
        cfg = with_sets(cfg, ["model.name=dynamic", f"model.dynamic.base={cfg.model.name}",
                              f"model.dynamic.capacity={rows - f}", f"model.dynamic.admit_after={args.kind}"])
        model = build_model(FeatureLayout(n_ids=f, n_dense=1, buckets=1 << 62), cfg.model)
    proc, auc = psutil.Process(), BinnedAUC(bins=1 << 16)
    stream = ChurnStream(f, args.slots, args.life, seed=args.seed)
    samples: list[tuple[int, float]] = []
    done, t, dense = 0, time.perf_counter(), np.zeros((args.batch, 1), np.float32)
    for ids, labels in stream.batches(args.events, args.batch):
        ids = ids & (rows - 1) if args.kind == "hash" else ids
        # tensors, as the worker passes them (numpy arrays into a tf.function hold a little memory per call)
        scores = model.predict_then_train(tf.constant(ids), tf.constant(dense[:len(ids)]), tf.constant(labels)).numpy()
        auc.update(labels, scores)
        done += len(labels)
        if not samples or done // args.sample > (done - len(labels)) // args.sample or done == args.events:
            samples.append((done, proc.memory_info().rss / 2**20))
    secs = time.perf_counter() - t
    out = {"kind": "hash" if args.kind == "hash" else f"dynamic, admit {args.kind}", "rows": rows,
           "auc": auc.get(), "auc_error_bound": auc.error_bound, "seconds": secs, "samples": samples}
    if args.kind != "hash":
        out["tables"] = model.ids.stats()
    return out


def slope(samples: list[tuple[int, float]]) -> float:
    """RSS growth over the second half of the run, MiB per million events (least squares)."""
    half = [(e, r) for e, r in samples if e >= samples[-1][0] / 2]
    if len(half) < 2:
        return float("nan")
    e, r = np.array(half, np.float64).T
    return float(np.polyfit(e / 1e6, r, 1)[0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=20_000_000)
    p.add_argument("--sample", type=int, default=500_000, help="sample RSS every this many events")
    p.add_argument("--bits", type=int, default=16, help="both tables hold 2^bits rows")
    p.add_argument("--admit", nargs="+", type=int, default=[1, 2])
    p.add_argument("--fields", type=int, default=8)
    p.add_argument("--slots", type=int, default=20_000, help="live ids per field")
    p.add_argument("--life", type=int, default=200_000, help="events an id lives")
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kind", help=argparse.SUPPRESS)  # internal: run one variant, print its JSON
    args = p.parse_args()
    if args.kind:
        print(json.dumps(child(args)), flush=True)
        return
    results = []
    for kind in ["hash", *map(str, args.admit)]:
        run = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--kind", kind], capture_output=True, text=True)
        if run.returncode:
            sys.exit(f"{kind}: exit {run.returncode}\n{run.stderr[-3000:]}")
        r = json.loads(run.stdout.strip().splitlines()[-1])
        r |= {"rss_start_mib": r["samples"][0][1], "rss_end_mib": r["samples"][-1][1],
              "slope_mib_per_m": slope(r["samples"])}
        results.append(r)
        print(json.dumps({k: v for k, v in r.items() if k != "samples"}), flush=True)
    base = results[0]
    print(f"\n{args.events:,} events, {args.fields} fields × {args.slots:,} live ids, life {args.life:,} events; "
          f"tables of {1 << args.bits:,} rows")
    print("| kind | AUC | AUC − hash | RSS start MiB | RSS end MiB | slope MiB/M events (2nd half) | evicted | "
          "rows used | rebuilds | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        t = r.get("tables", {})
        print(f"| {r['kind']} | {r['auc']:.4f} | {r['auc'] - base['auc']:+.4f} | {r['rss_start_mib']:.0f} | "
              f"{r['rss_end_mib']:.0f} | {r['slope_mib_per_m']:+.2f} | {t.get('evicted', '-')} | "
              f"{t.get('rows_used', '-')} | {t.get('rebuilds', '-')} | {r['seconds']:.0f} |")
    print(json.dumps({"bench": "dynamic_memory", "events": args.events, "rows": 1 << args.bits, "results": results}))


if __name__ == "__main__":
    main()
