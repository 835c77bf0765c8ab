"""Streaming evaluator cost: updates/s on its own, and its share of an end-to-end job.

    python bench/evaluation.py [--slice-field C1]   # micro: 2M events; job: deepfm, 300k events
    python bench/evaluation.py --events 1000000 --model lr --skip-job
    python bench/evaluation.py --progress-auc --base /tmp/base   # the progress line's exact AUC, base vs this tree

(1) Micro: what the sink does per prediction batch of 4096 (exact ProgressiveAUC + LogLoss for
the summary, and the StreamEvaluator of ``jobs/click_stream.yaml``'s ``evaluation:``: bounded
cumulative AUC, sliding 100k-event window, 60 s tumbling event-time window, calibration, one
slice field with 26 values when ``--slice-field`` is given), with a ``get()`` every 25 batches (the job
reports every 2 s).
(2) Job: ``flinkdl.runner.run`` on the generator; the sink times its metrics code
(``evaluation_s`` in the summary) and we divide by the stream time (first to last batch).
(3) ``--progress-auc``: the exact ``ProgressiveAUC`` of the run log alone, as the sink drives it: 4096-row
batches of continuous (LR-like, mostly distinct) scores, a ``get()`` every ``--rate`` events (one report a
second at that rate; anchors' ``job.report_every_s=1``), over each of ``--auc-events``; the baseline is the
class in ``BASE/flinkdl/evaluation/metrics.py`` (e.g. ``git archive main flinkdl | tar -x -C /tmp/base``), fed
the same batches in the same process, alternating. Fails unless every report's value is the same to the bit.
Prints CPU µs per report and per event, base / new ratios, and a final JSON line.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
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


def _auc_class(tree: str) -> type:
    spec = importlib.util.spec_from_file_location("base_metrics", f"{tree}/flinkdl/evaluation/metrics.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ProgressiveAUC


def _feed(cls: type, y: np.ndarray, s: np.ndarray, every: int, batch: int) -> tuple[dict, list]:
    """Feed ``cls()`` as the sink does; its updates' and its get()s' CPU time apart (the thread's CPU, not
    the wall clock: on the shared 2 cores a wall clock counts other processes' time slices)."""
    m, values, t_update, t_get = cls(), [], 0.0, 0.0
    for i in range(0, y.size, batch):
        t0 = time.thread_time()
        m.update(y[i : i + batch], s[i : i + batch])
        t1 = time.thread_time()
        if (i + batch) // every > i // every or i + batch >= y.size:  # a report
            values.append(m.get())
            t_get += time.thread_time() - t1
        t_update += t1 - t0
    n = y.size
    return {"reports": len(values), "us_per_report": t_get / len(values) * 1e6, "get_us_per_event": t_get / n * 1e6,
            "update_us_per_event": t_update / n * 1e6, "us_per_event": (t_update + t_get) / n * 1e6,
            "distinct": int(m.n_distinct), "mib": m.nbytes / 2**20}, values


def progress_auc(base: str, sizes: list[int], rate: int, batch: int = 4096, rounds: int = 2) -> dict:
    classes = {"base": _auc_class(base), "new": ProgressiveAUC}
    rng = np.random.default_rng(0)
    n = max(sizes)
    y = (rng.random(n) < 0.25).astype(np.float32)  # LR-like scores: sigmoid of a noisy logit, float32
    s = (1 / (1 + np.exp(-(rng.normal(size=n) + 1.2 * y - 1.5)))).astype(np.float32)
    out: dict[str, dict] = {}
    for size in sizes:
        best: dict[str, dict] = {}
        for _ in range(rounds):  # alternating, best of rounds (the machine is shared)
            values = {}
            for name, cls in classes.items():
                r, values[name] = _feed(cls, y[:size], s[:size], rate, batch)
                if name not in best or r["us_per_event"] < best[name]["us_per_event"]:
                    best[name] = r
            if values["base"] != values["new"]:
                raise SystemExit(f"{size} events: the values differ from the baseline's")
        ratios = {k: best["base"][k] / best["new"][k] for k in ("us_per_report", "get_us_per_event", "us_per_event")}
        out[str(size)] = {**best, "base_over_new": ratios, "auc": values["new"][-1]}
        print(f"{size:,} events, {best['new']['reports']} reports: get() {best['base']['us_per_report']:,.0f} -> "
              f"{best['new']['us_per_report']:,.0f} us per report ({ratios['us_per_report']:.1f}x), update + get "
              f"{best['base']['us_per_event']:.3f} -> {best['new']['us_per_event']:.3f} us/event "
              f"({ratios['us_per_event']:.2f}x), bit-identical values", flush=True)
    return out


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
    ap.add_argument("--progress-auc", action="store_true", help="only (3): the exact AUC's reports, base vs new")
    ap.add_argument("--base", default=None, help="(3): a tree holding the baseline flinkdl/ package")
    ap.add_argument("--auc-events", type=int, nargs="+", default=[1_000_000, 5_000_000])
    ap.add_argument("--rate", type=int, default=300_000, help="(3): events between reports")
    a = ap.parse_args()
    if a.progress_auc:
        if not a.base:
            ap.error("--progress-auc needs --base")
        print(json.dumps({"progress_auc": progress_auc(a.base, a.auc_events, a.rate),
                          "load": list(os.getloadavg())}))
        return
    cfg = load_config(a.config, [f"evaluation.slice_field={a.slice_field}"] if a.slice_field else [])
    print(json.dumps({"micro": micro(cfg, a.events)}, indent=1), flush=True)
    if not a.skip_job:
        print(json.dumps({"job": job(a.config, a.model, a.job_events, a.slice_field)}, indent=1))


if __name__ == "__main__":
    main()
