"""The parallel evaluation's aggregator: its CPU per event at parallelism 1, 2, 4, 8 (no Flink).

    python bench/aggregator.py [--events 2000000] [--rate 50000] [--report-s 2]

The stream (``jobs/click_stream.yaml``'s ``evaluation:``: binned cumulative AUC, sliding 100k-event
window, 60 s tumbling event-time window) runs at ``--rate`` events/s in batches of 4096, dealt
round-robin to ``p`` subtasks; each subtask sends a partial every ``--report-s`` seconds of
stream. Timed: the subtasks' partial evaluation (spread over p processes in a job) and the
aggregator alone (decode + merge + one summary per report). Baseline, same run: the central
evaluator of parallelism 1 (``StreamEvaluator`` + exact ``ProgressiveAUC``), which sees every event.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from flinkdl.config.loader import load_config
from flinkdl.evaluation.evaluator import StreamEvaluator
from flinkdl.evaluation.metrics import ProgressiveAUC
from flinkdl.evaluation.partial import MergedEvaluator, Partial, PartialEvaluator

BATCH = 4096


def _batches(events: int, rate: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(events // BATCH):
        y = (rng.random(BATCH) < 0.25).astype(np.float32)
        s = (1 / (1 + np.exp(-(rng.normal(size=BATCH) + 1.2 * y - 1.5)))).astype(np.float32)
        ts = 1_700_000_000_000 + (i * BATCH + np.arange(BATCH)) * 1000.0 / rate
        out.append((y, s, ts))
    return out


def central(cfg, batches, per_report: int) -> float:
    """CPU seconds of the parallelism-1 evaluator over every batch (a summary per report)."""
    ev, auc = StreamEvaluator(cfg.evaluation), ProgressiveAUC()
    t0 = time.process_time()
    for i, (y, s, ts) in enumerate(batches):
        auc.update(y, s)
        ev.update(y, s, ts)
        if i % per_report == per_report - 1:
            ev.get()
            auc.get()
    ev.get()
    auc.get()
    return time.process_time() - t0


def parallel(cfg, batches, per_report: int, p: int) -> dict:
    """CPU seconds of the p subtasks (together) and of the aggregator; bytes of partials sent."""
    subs = [PartialEvaluator(cfg.evaluation) for _ in range(p)]
    merged = MergedEvaluator(cfg.evaluation, p)
    sub_s = agg_s = 0.0
    sent = partials = 0

    def report() -> None:
        nonlocal sub_s, agg_s, sent, partials
        for k, sub in enumerate(subs):
            t0 = time.process_time()
            data = sub.take(k).encode()
            sub_s += time.process_time() - t0
            t0 = time.process_time()
            merged.merge(Partial.decode(data))
            agg_s += time.process_time() - t0
            sent, partials = sent + len(data), partials + 1
        t0 = time.process_time()
        merged.get()
        agg_s += time.process_time() - t0

    for i, (y, s, ts) in enumerate(batches):
        t0 = time.process_time()
        subs[i % p].update(y, s, ts)
        sub_s += time.process_time() - t0
        if i % per_report == per_report - 1:
            report()
    report()
    return {"subtasks_s": sub_s, "aggregator_s": agg_s, "partials": partials, "partial_kib": sent / partials / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--rate", type=float, default=50_000.0, help="stream events per second (sets event times)")
    ap.add_argument("--report-s", type=float, default=2.0)
    a = ap.parse_args()
    cfg = load_config("jobs/click_stream.yaml", [])
    batches = _batches(a.events, a.rate)
    n = len(batches) * BATCH
    per_report = max(1, round(a.rate * a.report_s / BATCH))
    base = central(cfg, batches, per_report)
    print(f"central evaluator (p=1): {base / n * 1e9:.0f} ns CPU/event")
    rows = {}
    for p in (1, 2, 4, 8):
        r = parallel(cfg, batches, per_report, p)
        rows[p] = {"aggregator_ns_per_event": r["aggregator_s"] / n * 1e9,
                   "subtasks_ns_per_event": r["subtasks_s"] / n * 1e9,
                   "aggregator_vs_central": r["aggregator_s"] / base, "partial_kib": r["partial_kib"]}
        print(f"p={p}: aggregator {rows[p]['aggregator_ns_per_event']:.0f} ns/event "
              f"({rows[p]['aggregator_vs_central']:.3f} of central), subtasks together "
              f"{rows[p]['subtasks_ns_per_event']:.0f} ns/event, partial {r['partial_kib']:.0f} KiB")
    print(json.dumps({"bench": "aggregator", "events": n, "rate": a.rate, "report_s": a.report_s,
                      "central_ns_per_event": base / n * 1e9, "parallel": rows}))


if __name__ == "__main__":
    main()
