"""How far a learner that knows a family member's structure gets: per-id effects learnt online, the rest given.

    python bench/oracle_learner.py --dataset family-3 --events 300000 --windows 10

An upper bound for any model that has to learn the per-id effects from the stream (family-3's
dominant term, bench/oracle_terms.py). The true logit is split into the per-id terms of the 19
weighted ``C`` fields and the rest (intercept, drift shift, numeric effects, bags, crosses). Scorers:

- ``oracle``: the true logit;
- ``ids learnt, crosses given``: the rest exactly, each field's per-id effects learnt online from the
  labels, collisionless (one weight per true id), by a near-Bayes-optimal estimator that knows each
  field's true prior std: a Gaussian per id (online Laplace / diagonal Newton step: precision
  ``1/std² + Σ p(1-p)``, mean += ``Σ (y - p) / precision``), in prequential steps of ``--step`` rows;
  ``..., drift told``: also told which ids were re-drawn at the drift (reset to the prior there);
- ``ids and crosses learnt (one side given)``: also each cross learnt, as a Gaussian per id and
  component of its side with the smaller vocabulary, the other side's true latent vectors given (a
  bilinear term made linear: more than any factorization model knows);
- ``first order, ids learnt``: per-id effects learnt, no crosses (a first-order model, VW's class,
  with exact numeric transforms and collisionless per-id estimates); ``one prior std 0.3``: not
  told each field's std; ``by Adagrad 0.05 / 1.0``: the click-stream job's step rule on the same
  weights (steps that shrink as 1/√n where the Gaussian's shrink as 1/n: count-aware rates);
  ``steps afresh at the drift``: told when the drift comes (not which ids), every weight's step size
  starts afresh there, its value kept (what a perfect drift detector's faster per-id steps can give);
- ``first order, ids known``: the true logit without the crosses.

If ``ids and crosses learnt (one side given)`` stays below a target AUC, a real model is unlikely to reach
it on that stream at that length: it would have to estimate the same effects from the same labels with
less knowledge. Not a proof: the diagonal Laplace step is near-Bayes, not Bayes, and a model whose
steps re-learn faster after a drift than the Gaussian's (which only shrink) can gain there (``drift told``
bounds what that is worth).
Deterministic (no random draws beyond the stream's). Abrupt-drift and no-drift members only.
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


class Block:
    """Weights learnt on one table: event ``i`` adds ``w[r[i]] * x[i]`` to the logit (``x`` None: 1)."""

    def __init__(self, r: np.ndarray, x: np.ndarray | None, vocab: int, std: float, redrawn: np.ndarray) -> None:
        self.r, self.x, self.vocab, self.std, self.redrawn = r, x, vocab, std, redrawn


def decompose(s: ClickStream, events: int, size: int = 65536) -> tuple[dict[str, np.ndarray], list[Block],
                                                                       list[Block]]:
    """(``labels``, true logit ``z``, per-id term sum ``ids``, crosses term ``cross``), the per-id blocks
    of the weighted fields, and one block per cross component: the side with the smaller vocabulary
    learnt, the other side's true latent value given as ``x``, of the first ``events`` events."""
    weighted = [f for f, w in enumerate(s._w) if w is not None]
    parts: dict[str, list[np.ndarray]] = {}

    def add(key: str, v: np.ndarray) -> None:
        parts.setdefault(key, []).append(v)

    for i in range(-(-events // size)):
        batch, ranks = s.batch_and_ranks(i, size, with_truth=True)
        k = min(max(s.drift_at - i * size, 0), size)

        def gather(before: np.ndarray, after: np.ndarray, r: np.ndarray, k: int = k) -> np.ndarray:
            return np.concatenate([before[r[:k]], after[r[k:]]])

        p = batch.column("p_true").to_numpy()
        add("labels", batch.column("label").to_numpy().astype(np.float64))
        add("z", np.log(p) - np.log1p(-p))
        add("ids", sum((gather(*s._w[f], ranks[f]) for f in weighted), np.zeros(size)))  # type: ignore[misc]
        cross = np.zeros(size)
        for f in weighted:
            before, after = s._w[f]  # type: ignore[misc]
            add(f"r{f}", ranks[f])
            add(f"d{f}", before[ranks[f]] != after[ranks[f]])
        for j, ((a, b, rank, _), (u0, v0, u1, v1)) in enumerate(zip(s.crosses, s._cross, strict=True)):
            learnt, known = (b, a) if s._zipf[b][2] <= s._zipf[a][2] else (a, b)
            lt, kn = ((v0, v1), (u0, u1)) if learnt == b else ((u0, u1), (v0, v1))
            add(f"c{j}r", ranks[learnt])
            for c in range(rank):
                cross += gather(u0[c], u1[c], ranks[a]) * gather(v0[c], v1[c], ranks[b])
                add(f"c{j}x{c}", gather(kn[0][c], kn[1][c], ranks[known]))
                add(f"c{j}d{c}", lt[0][c][ranks[learnt]] != lt[1][c][ranks[learnt]])
        add("cross", cross)
    cat = {key: np.concatenate(v)[:events] for key, v in parts.items()}
    ids = [Block(cat[f"r{f}"], None, s._zipf[f][2], FIELDS[f][2], cat[f"d{f}"]) for f in weighted]
    crosses = []
    for j, (a, b, rank, std) in enumerate(s.crosses):
        learnt = b if s._zipf[b][2] <= s._zipf[a][2] else a
        crosses += [Block(cat[f"c{j}r"], cat[f"c{j}x{c}"], s._zipf[learnt][2], std * s.family.cross_strength,
                          cat[f"c{j}d{c}"]) for c in range(rank)]
    return cat, ids, crosses


def learn(labels: np.ndarray, offset: np.ndarray, blocks: list[Block], step: int, reset_at: int | None,
          adagrad: tuple[float, float] | None = None, prior_std: float | None = None,
          steps_only: bool = False) -> np.ndarray:
    """Prequential logits: ``offset`` + each block's Gaussian posterior means, updated every ``step`` rows
    (diagonal online Laplace, prior std each block's true one or ``prior_std``); at ``reset_at`` (a step
    boundary of its own) the weights whose truth was re-drawn go back to the prior. ``adagrad``:
    (learning rate, initial accumulator): the models' sparse Adagrad step on a summed loss instead.
    ``steps_only``: at ``reset_at`` every weight keeps its value and only its step size starts afresh
    (precision / accumulator back to the initial one: a perfect drift detector's faster steps)."""
    n = len(offset)
    mu = [np.zeros(bl.vocab) for bl in blocks]
    x0 = [adagrad[1] if adagrad else 1.0 / (prior_std or bl.std) ** 2 for bl in blocks]
    prec = [np.full(bl.vocab, x0[j]) for j, bl in enumerate(blocks)]
    out = np.empty(n)
    bounds = sorted({*range(0, n, step), n, *([reset_at] if reset_at is not None and reset_at < n else [])})
    for a, b in itertools.pairwise(bounds):
        if a == reset_at and steps_only:
            prec = [np.full_like(x, x0[j]) for j, x in enumerate(prec)]
        elif a == reset_at:
            for j, bl in enumerate(blocks):
                gone = np.unique(bl.r[a:][bl.redrawn[a:]])
                mu[j][gone], prec[j][gone] = 0.0, 1.0 / bl.std**2
        xs = [np.ones(b - a) if bl.x is None else bl.x[a:b] for bl in blocks]
        m = offset[a:b] + sum((mu[j][bl.r[a:b]] * xs[j] for j, bl in enumerate(blocks)), np.zeros(b - a))
        out[a:b] = m
        p = 1.0 / (1.0 + np.exp(-m))
        resid, h = labels[a:b] - p, p * (1.0 - p)
        for j, bl in enumerate(blocks):
            u, inv = np.unique(bl.r[a:b], return_inverse=True)
            g = np.bincount(inv, resid * xs[j])
            if adagrad:
                prec[j][u] += g**2
                mu[j][u] += adagrad[0] * g / np.sqrt(prec[j][u])
            else:
                prec[j][u] += np.bincount(inv, h * xs[j] ** 2)
                mu[j][u] += g / prec[j][u]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="family-3")
    p.add_argument("--events", type=int, default=300_000)
    p.add_argument("--step", type=int, default=128, help="rows per prequential step (the job's micro-batch)")
    p.add_argument("--windows", type=int, default=0)
    args = p.parse_args()
    cfg = family_config(load_config(JOB), args.dataset, args.events)
    gen = cfg.source.generator
    if gen.family.drift not in ("abrupt", "none"):
        raise SystemExit("only abrupt / no drift members")
    drift_at = gen.drift_at if gen.family.drift == "abrupt" else None
    d, ids, crosses = decompose(ClickStream.from_config(gen), args.events)
    y, rest = d["labels"], d["z"] - d["ids"]
    first = rest - d["cross"]  # intercept, drift shift, numeric effects, bags
    scorers = {
        "oracle": d["z"],
        "ids learnt, crosses given": learn(y, rest, ids, args.step, None),
        "ids learnt, crosses given, drift told": learn(y, rest, ids, args.step, drift_at),
        "ids and crosses learnt (one side given)": learn(y, first, ids + crosses, args.step, None),
        "ids and crosses learnt (one side given), drift told": learn(y, first, ids + crosses, args.step, drift_at),
        "first order, ids learnt": learn(y, first, ids, args.step, None),
        "first order, ids learnt, one prior std 0.3": learn(y, first, ids, args.step, None, prior_std=0.3),
        "first order, ids learnt by Adagrad 0.05 / 1.0": learn(y, first, ids, args.step, None, adagrad=(0.05, 1.0)),
        "first order, Gaussian, steps afresh at the drift": learn(y, first, ids, args.step, drift_at,
                                                                  steps_only=True),
        "first order, Adagrad, steps afresh at the drift": learn(y, first, ids, args.step, drift_at,
                                                                 adagrad=(0.05, 1.0), steps_only=True),
        "first order, ids known": d["z"] - d["cross"],
    }
    labels = y
    edges = np.linspace(0, len(labels), max(1, args.windows) + 1).astype(int).tolist()
    rows = {}
    print(f"{args.dataset}, {args.events} events, drift at {drift_at}, steps of {args.step}\n| scorer | AUC |"
          + (" per window |" if args.windows else ""))
    for name, z in scorers.items():
        auc = auc_from_arrays(labels, z.astype(np.float32))
        win = [auc_from_arrays(labels[a:b], z[a:b].astype(np.float32)) for a, b in itertools.pairwise(edges)]
        rows[name] = {"auc": auc, "windows": win if args.windows else None}
        print(f"| {name} | {auc:.4f} |" + (" " + " ".join(f"{x:.4f}" for x in win) + " |" if args.windows else ""))
    print(json.dumps({"bench": "oracle_learner", "dataset": args.dataset, "events": args.events,
                      "step": args.step, "windows": edges if args.windows else None, "scorers": rows}))


if __name__ == "__main__":
    main()
