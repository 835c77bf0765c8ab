"""Delayed-feedback strategies in memory: es_dfm vs fake_negative vs wait_window vs an oracle (no Flink).

    python bench/feedback_sim.py                        # 30k impressions, 50/s, window 60 s, LR
    python bench/feedback_sim.py --events 100000 --model deepfm --elapsed-s 5

The built-in stream with delayed clicks (``flinkdl/sources/delayed.py``: the same impressions,
delays and 1024-row draws as ``flinkdl produce --generator --feedback-topic``), featurized by the job's
featurizer (``jobs/click_feedback.yaml``), replayed in event-time order in training steps of
``--batch`` impressions: step ``s`` happens at the event time ``T_s`` of its last impression and
trains what became known in ``(T_{s-1}, T_s]``. Every impression is scored (served) by the model as
it is before its step. The same model config in every run; no join, no Kafka, no Flink.

- ``oracle``: each impression trained in its own step with its settled label (delay 0);
- ``wait_window``: a positive at its click, a negative when its window closed (``ts + W``);
- ``fake_negative``: each impression a negative in its step, a positive (again) at its click;
  served scores through the FN calibration (``flinkdl/feedback/calibration.py``), as in the job;
- ``es_dfm``: ``flinkdl/feedback/esdfm.py``: an impression trained ``e`` after it (its step, or
  ``--elapsed-s`` later), once as a positive if clicked by then, else as a negative and again as
  a positive at its click; every row weighted with the elapsed-time model's ``p_dp``/``p_rn``,
  which learns online from the labels as they settle (``delayed`` at the click or at ``ts + W``);
- ``es_dfm_unweighted``: the same rows without the weights (the weights' share of the correction).

A click more than ``W`` after its impression is never trained (the join drops it); the settled
label of an impression is "clicked within ``W``". Metrics of the served scores against the settled
labels: exact AUC, log loss, calibration (mean score / observed rate), over all impressions and over
the second half (``second_half``: after the warm-up); then each strategy's AUC difference, log-loss
ratio and calibration difference against the oracle of this run (``vs_oracle``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from flinkdl.config.schema import ModelConfig  # noqa: E402
from flinkdl.evaluation.maths import log_losses  # noqa: E402
from flinkdl.evaluation.metrics import auc_from_arrays  # noqa: E402
from flinkdl.exchange.schema import FeatureLayout  # noqa: E402

CHUNK = 1024  # the delays' draw granularity of ``flinkdl produce`` (DelayedStream.batch's seed)
STRATEGIES = ("oracle", "wait_window", "fake_negative", "es_dfm", "es_dfm_unweighted")


@dataclass
class Stream:
    """The impressions, featurized, with their click delays (``inf``: no click within the window)."""

    ids: np.ndarray
    dense: np.ndarray
    ts: np.ndarray  # ms
    delay: np.ndarray  # ms, float
    window_ms: int

    @property
    def settled(self) -> np.ndarray:
        return (self.delay <= self.window_ms).astype(np.float32)


def make_stream(cfg: object, args: argparse.Namespace) -> Stream:
    from streams import featurize

    from flinkdl.config.feedback import DelayConfig
    from flinkdl.sources.delayed import DelayedStream
    from flinkdl.sources.generator import ClickStream

    stream = ClickStream(events_per_s=args.events_per_s)
    delayed = DelayedStream(stream, DelayConfig(scale=args.delay_scale))
    raw, delays = [], []
    for i in range(-(-args.events // CHUNK)):
        n = min(CHUNK, args.events - i * CHUNK)
        b = stream.batch(i, CHUNK).slice(0, n)
        _, clicks = delayed.batch(i, CHUNK)
        d = np.full(n, np.inf)
        at = clicks.column("event_id").to_numpy() - i * CHUNK
        keep = at < n
        d[at[keep]] = clicks.column("ts").to_numpy()[keep] - b.column("ts").to_numpy()[at[keep]]
        raw.append(b)
        delays.append(d)
    ids, dense, _ = featurize(cfg, raw)  # type: ignore[arg-type]
    ts = np.concatenate([b.column("ts").to_numpy() for b in raw])
    delay = np.concatenate(delays)
    window_ms = int(args.window_s * 1000)
    return Stream(ids, dense, ts, np.where(delay <= window_ms, delay, np.inf), window_ms)


def simulate(strategy: str, s: Stream, layout: FeatureLayout, model_cfg: ModelConfig,
             args: argparse.Namespace) -> np.ndarray:
    """The served score of every impression under ``strategy`` (see the module docstring)."""
    from flinkdl.config.esdfm import EsDfmConfig
    from flinkdl.feedback.calibration import fn_calibrate
    from flinkdl.feedback.esdfm import ElapsedTimeModel, esdfm_weights
    from flinkdl.models.registry import build_model

    model = build_model(layout, model_cfg)
    n, b = len(s.ts), args.batch
    ends = np.minimum(np.arange(b, n + b, b), n)  # step k serves impressions [ends[k-1], ends[k])
    step_t = s.ts[ends - 1].astype(np.float64)  # T_k
    click_t = s.ts + s.delay  # inf: none
    own = np.arange(n) // b

    def step_of(t: np.ndarray) -> np.ndarray:  # the first step with T >= t, not before the impression's own
        return np.maximum(np.searchsorted(step_t, t, side="left"), own)

    served = np.zeros(n, np.float32)
    # per impression: its step of observation (es_dfm), of click, of window close
    es_dfm = strategy.startswith("es_dfm")
    observe = step_of(s.ts + args.elapsed_s * 1000.0) if es_dfm else None
    at_click, at_close = step_of(click_t), step_of(s.ts + s.window_ms)
    elapsed = step_t[np.minimum(observe, len(ends) - 1)] - s.ts if observe is not None else None
    aux = ElapsedTimeModel(layout, EsDfmConfig(elapsed_s=args.elapsed_s)) if es_dfm else None
    by_step: dict[str, list[list[int]]] = {k: [[] for _ in ends] for k in ("click", "close", "observe")}
    for key, steps in (("click", at_click), ("close", at_close), ("observe", observe)):
        if steps is None:
            continue
        for i in np.flatnonzero(steps < len(ends)):
            by_step[key][steps[i]].append(int(i))
    start = 0
    for k, end in enumerate(ends):
        new = np.arange(start, end)
        scores = model.predict(s.ids[new], s.dense[new]).numpy()
        served[new] = fn_calibrate(scores) if strategy == "fake_negative" else scores
        clicks, closes = np.array(by_step["click"][k], int), np.array(by_step["close"][k], int)
        weights = None
        if strategy == "oracle":
            rows, labels = new, s.settled[new]
        elif strategy == "wait_window":
            negatives = closes[s.settled[closes] == 0]
            rows, labels = np.concatenate([clicks, negatives]), np.r_[np.ones(len(clicks)), np.zeros(len(negatives))]
        elif strategy == "fake_negative":
            rows, labels = np.concatenate([new, clicks]), np.r_[np.zeros(len(new)), np.ones(len(clicks))]
        else:
            assert aux is not None and elapsed is not None
            obs = np.array(by_step["observe"][k], int)
            early = s.delay[obs] <= elapsed[obs]  # clicked by e: trained once, as a positive
            dup = clicks[s.delay[clicks] > elapsed[clicks]]  # clicked after e: the duplicate positive
            rows = np.concatenate([obs, dup])
            labels = np.r_[early.astype(np.float64), np.ones(len(dup))]
            p_dp, p_rn = aux.predict(s.ids[rows], s.dense[rows], elapsed[rows])
            weights = esdfm_weights(labels, p_dp, p_rn) if strategy == "es_dfm" else None
            # then the labels that settled in this step train the elapsed-time model
            real_neg = closes[(s.settled[closes] == 0) & (observe[closes] <= k)]
            dp_rows = np.concatenate([obs[early], dup, real_neg])
            aux_labels = np.r_[np.zeros(int(early.sum())), np.ones(len(dup)), np.zeros(len(real_neg))]
            rn_rows = np.concatenate([dup, real_neg])
            rn_labels = np.r_[np.zeros(len(dup)), np.ones(len(real_neg))]
        if len(rows):
            model.predict_then_train(s.ids[rows], s.dense[rows], labels.astype(np.float32), weights=weights)
        if aux is not None:
            aux.train_dp(s.ids[dp_rows], s.dense[dp_rows], elapsed[dp_rows], aux_labels)
            aux.train_rn(s.ids[rn_rows], s.dense[rn_rows], elapsed[rn_rows], rn_labels)
        start = end
    return served


def metrics(y: np.ndarray, p: np.ndarray) -> dict:
    mean, rate = float(p.mean()), float(y.mean())
    return {"auc": auc_from_arrays(y, p), "logloss": float(log_losses(y > 0.5, p).mean()), "mean_score": mean,
            "observed_rate": rate, "calibration": mean / rate if rate else None}


def vs(r: dict, oracle: dict) -> dict:
    """AUC difference, log-loss ratio and calibration difference of ``r`` against the oracle's."""
    return {"auc_diff": r["auc"] - oracle["auc"], "logloss_ratio": r["logloss"] / oracle["logloss"],
            "calibration_diff": r["calibration"] - oracle["calibration"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=30_000)
    p.add_argument("--events-per-s", type=float, default=50.0, help="event-time rate of impressions")
    p.add_argument("--delay-scale", type=float, default=1 / 60)
    p.add_argument("--window-s", type=float, default=60.0, help="attribution window (event time)")
    p.add_argument("--elapsed-s", type=float, default=0.0, help="es_dfm: train an impression this long after it")
    p.add_argument("--batch", type=int, default=256, help="impressions per training step")
    p.add_argument("--model", default="lr")
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    args = p.parse_args()
    if args.elapsed_s >= args.window_s:
        p.error("--elapsed-s must be below --window-s")
    unknown = set(args.strategies.split(",")) - set(STRATEGIES)
    if unknown:
        p.error(f"unknown --strategies {sorted(unknown)} (known: {', '.join(STRATEGIES)})")

    from flinkdl.config.loader import load_config
    cfg = load_config(ROOT / "jobs/click_feedback.yaml", [f"model.name={args.model}"])
    layout = FeatureLayout.from_config(cfg.features)
    t0 = time.perf_counter()
    s = make_stream(cfg, args)
    y = s.settled
    print(f"{len(y):,} impressions, {int(np.isfinite(s.delay).sum()):,} clicked within {args.window_s:g} s "
          f"(settled rate {y.mean():.4f}); stream {time.perf_counter() - t0:.1f} s")
    out: dict[str, dict] = {}
    for name in args.strategies.split(","):
        t = time.perf_counter()
        served = simulate(name, s, layout, cfg.model, args)
        half = len(y) // 2
        out[name] = {**metrics(y, served), "second_half": metrics(y[half:], served[half:]),
                     "seconds": round(time.perf_counter() - t, 1)}
        print(name, json.dumps(out[name]))
    if "oracle" in out:
        o = out["oracle"]
        for r in out.values():
            r["vs_oracle"] = vs(r, o)
            r["second_half"]["vs_oracle"] = vs(r["second_half"], o["second_half"])
    print(json.dumps({"bench": "feedback_sim", "events": args.events, "events_per_s": args.events_per_s,
                      "window_s": args.window_s, "delay_scale": args.delay_scale, "elapsed_s": args.elapsed_s,
                      "batch": args.batch, "model": args.model, "settled_rate": float(y.mean()), "runs": out}))


if __name__ == "__main__":
    main()
