"""Streaming evaluator cost: updates/s on its own, and its share of an end-to-end job.

    python bench/evaluation.py [--slice-field C1]   # micro: 2M events; job: deepfm, 300k events
    python bench/evaluation.py --events 1000000 --model lr --skip-job

(1) Micro: what the sink does per prediction batch of 4096 (exact ProgressiveAUC + LogLoss for
the summary, and the StreamEvaluator of ``jobs/click_stream.yaml``'s ``evaluation:``: bounded
cumulative AUC, sliding 100k-event window, 60 s tumbling event-time window, calibration, one
slice field with 26 values when ``--slice-field`` is given), with a ``get()`` every 25 batches (the job
reports every 2 s).
(2) Job: ``flinkdl.runner.run`` on the generator; the sink times its metrics code
(``evaluation_s`` in the summary) and we divide by the stream time (first to last batch).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import pyarrow as pa

from flinkdl.config.loader import load_config
from flinkdl.evaluation.evaluator import StreamEvaluator
from flinkdl.evaluation.metrics import LogLoss, ProgressiveAUC


def micro(cfg, events: int, batch: int = 4096) -> dict:
    rng = np.random.default_rng(0)
    n_batches = events // batch
    data = []
    for _ in range(64):  # pre-generated and reused, so the clock sees only the metrics
        y = (rng.random(batch) < 0.25).astype(np.float32)
        s = (1 / (1 + np.exp(-(rng.normal(size=batch) + 1.2 * y - 1.5)))).astype(np.float32)
        data.append((y, s, pa.array(rng.integers(0, 26, batch).astype(str))))
    ev, auc, ll = StreamEvaluator(cfg.evaluation), ProgressiveAUC(), LogLoss()
    t0 = time.perf_counter()
    for i in range(n_batches):
        y, s, sl = data[i % 64]
        ts = 1_700_000_000_000 + (np.arange(i * batch, (i + 1) * batch) * 1000 // 1000)
        auc.update(y, s)
        ll.update(y, s)
        ev.update(y, s, ts, sl if cfg.evaluation.slice_field else None)
        if i % 25 == 24:
            ev.get()
            auc.get()
    ev.get()
    auc.get()
    dt = time.perf_counter() - t0
    return {"events": n_batches * batch, "seconds": dt, "events_per_s": n_batches * batch / dt,
            "us_per_batch": dt / n_batches * 1e6, "cumulative_auc_bytes": ev.total.auc.nbytes,
            "error_bound": ev.total.auc.error_bound}


def job(config: str, model: str, events: int, slice_field: str | None) -> dict:
    from flinkdl.runner import run

    with tempfile.TemporaryDirectory() as d:
        sets = [f"job.run_dir={d}/run", f"model.name={model}", "sinks.predictions=null"]
        cfg = load_config(config, sets + ([f"evaluation.slice_field={slice_field}"] if slice_field else []))
        s = run(cfg, events, oracle=False)
    return {k: s[k] for k in ("events_trained", "stream_s", "rows_per_s", "evaluation_s", "auc",
                              "auc_cumulative", "auc_error_bound")} | {
        "evaluation_share": s["evaluation_s"] / s["stream_s"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="jobs/click_stream.yaml")
    ap.add_argument("--events", type=int, default=2_000_000, help="micro benchmark events")
    ap.add_argument("--job-events", type=int, default=300_000)
    ap.add_argument("--model", default="deepfm")
    ap.add_argument("--skip-job", action="store_true")
    ap.add_argument("--slice-field", default=None, help="e.g. C1: also per-slice metrics")
    a = ap.parse_args()
    cfg = load_config(a.config, [f"evaluation.slice_field={a.slice_field}"] if a.slice_field else [])
    print(json.dumps({"micro": micro(cfg, a.events)}, indent=1), flush=True)
    if not a.skip_job:
        print(json.dumps({"job": job(a.config, a.model, a.job_events, a.slice_field)}, indent=1))


if __name__ == "__main__":
    main()
