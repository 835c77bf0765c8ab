"""What a family member's true logit is made of: the oracle's AUC with each term removed.

    python bench/oracle_terms.py --dataset family-3 --events 300000 --windows 10

The generator's logit is a sum of terms (per-field id effects, low-rank crosses, numeric effects,
multi-valued bags, the drift's CTR shift). For each term this prints its std over the stream and
the progressive AUC (and, with ``--windows``, the AUC per window) of the true logit without it: how
much of the oracle's lead over a model comes from that term. Deterministic (no training).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from family import family_config

from flinkdl.config.loader import load_config
from flinkdl.evaluation.metrics import auc_from_arrays
from flinkdl.sources.generator import FIELDS, ClickStream

JOB = Path(__file__).resolve().parents[1] / "jobs" / "click_stream.yaml"


def terms(s: ClickStream, events: int, size: int = 65536) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(labels, true logit, {term: its logit contribution}) of the first ``events`` events (abrupt drift)."""
    labels, logit, parts = [], [], {}  # type: ignore[var-annotated]
    for i in range(-(-events // size)):
        batch, ranks = s.batch_and_ranks(i, size, with_truth=True)
        k = min(max(s.drift_at - i * size, 0), size)
        out: dict[str, np.ndarray] = {}

        def gather(before: np.ndarray, after: np.ndarray, r: np.ndarray, k: int = k) -> np.ndarray:
            return np.concatenate([before[r[:k]], after[r[k:]]])

        for f, w in enumerate(s._w):
            if w is not None:
                out[f"C{f + 1} (vocab {FIELDS[f][0]})"] = gather(*w, ranks[f])
        for (a, b, rank, _), (u0, v0, u1, v1) in zip(s.crosses, s._cross, strict=True):
            out[f"cross C{a + 1}xC{b + 1} (rank {rank})"] = sum(
                gather(u0[c], u1[c], ranks[a]) * gather(v0[c], v1[c], ranks[b]) for c in range(rank))
        if s.family.multi_valued:
            extra = s._extra(i * size, size)
            assert extra is not None
            out["bags M*"] = s.multi.columns(extra)[1]
        p = batch.column("p_true").to_numpy()
        z = np.log(p) - np.log1p(-p)
        out["numeric I* and drift shift (rest)"] = z - sum(out.values())
        labels.append(batch.column("label").to_numpy())
        logit.append(z)
        for key, v in out.items():
            parts.setdefault(key, []).append(v)
    cut = slice(0, events)
    return (np.concatenate(labels)[cut], np.concatenate(logit)[cut],
            {key: np.concatenate(v)[cut] for key, v in parts.items()})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="family-3")
    p.add_argument("--events", type=int, default=300_000)
    p.add_argument("--windows", type=int, default=0)
    args = p.parse_args()
    cfg = family_config(load_config(JOB), args.dataset, args.events)
    if cfg.source.generator.family.drift not in ("abrupt", "none"):
        raise SystemExit("only abrupt / no drift members are decomposed")
    labels, z, parts = terms(ClickStream.from_config(cfg.source.generator), args.events)
    edges = np.linspace(0, len(labels), max(1, args.windows) + 1).astype(int)

    def aucs(x: np.ndarray) -> list[float]:
        return [auc_from_arrays(labels[a:b], x[a:b]) for a, b in itertools.pairwise(edges.tolist())]

    full = auc_from_arrays(labels, z)
    print(f"{args.dataset}, {args.events} events: oracle AUC {full:.4f}\n| term | std | oracle without it | loss |"
          + (" per window without it |" if args.windows else ""))
    rows = {}
    for key, v in sorted(parts.items(), key=lambda kv: -float(np.std(kv[1]))):
        auc = auc_from_arrays(labels, z - v)
        rows[key] = {"std": float(np.std(v)), "auc_without": auc, "loss": full - auc}
        win = (" " + " ".join(f"{x:.3f}" for x in aucs(z - v)) + " |") if args.windows else ""
        print(f"| {key} | {np.std(v):.3f} | {auc:.4f} | {full - auc:+.4f} |{win}")
    crosses = sum(v for k, v in parts.items() if k.startswith("cross"))
    only_lin = auc_from_arrays(labels, z - crosses)
    print(f"| all crosses | {np.std(crosses):.3f} | {only_lin:.4f} | {full - only_lin:+.4f} |")
    print(json.dumps({"bench": "oracle_terms", "dataset": args.dataset, "events": args.events, "oracle": full,
                      "all_crosses_removed": only_lin, "terms": rows}))


if __name__ == "__main__":
    main()
