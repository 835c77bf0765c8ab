"""The feedback job (the SQL label join, docs/FEEDBACK.md) with its TaskManager killed with SIGKILL
mid-stream on a standalone cluster, against a clean run of the same stream (``job.exactly_once``).

Both runs read the same impressions and delayed clicks (produced at a paced rate while the job
runs). After the kill a new TaskManager joins and Flink restores the last checkpoint: the join's
state (pending impressions), the Kafka offsets, the trainer's PS anchor and the settled
evaluation's snapshot. Nothing is lost or counted twice: every impression served and settled once,
the same examples trained (the sink's count, the PS's feature rows), the same join counters. With
``feedback.event_time_batches`` the trainer's batches are event-time windows, coalesced (held in keyed
state) and sorted, the same in every run: the killed run ends with the clean run's model (serving AUC
and PS rows within the tolerances below). The job runs ``feedback.strategy: es_dfm`` (the fake_negative
join's rows plus the real negatives, weighted): its elapsed-time model is on the PS and rolls back with
the main model, so its tables and dense variables are compared too.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from flinkdl.config.feedback import DelayConfig
from flinkdl.devtools.broker import create_topics
from flinkdl.devtools.produce import produce
from flinkdl.devtools.produce_feedback import end_ticks
from flinkdl.ps.client import PsClient
from flinkdl.sources.delayed import DelayedStream
from flinkdl.sources.generator import ClickStream
from tests import faults
from tests.pipeline.test_feedback_e2e import START, _clicks, _last, _produce_raw
from tests.ps.conftest import PsProcess

pytestmark = pytest.mark.e2e
N, W_S, BATCH, IMP_RATE, RATE = 3000, 20, 100, 300, 600
STRATEGY = "es_dfm"
GRACE_S = 600
#: The killed run's model against the clean run's: serving AUC (absolute) and every PS value (relative to
#: max(|clean value|, 1e-3)). The batches are the same; what is left is float summation order on restore.
AUC_TOL, PS_TOL = 1e-3, 1e-3


def _stream() -> tuple[list, set[int], int]:
    """The events to produce (impressions; clicks within 2 windows), the attributed ids, the clicks outside."""
    events, attributed, outside = [], set(), 0
    for kind, x in DelayedStream(ClickStream(seed=7), DelayConfig(scale=1 / 60)).events(N, BATCH):
        if kind == "impressions":
            events.append((kind, x))
            continue
        rows = [(i, t) for i, t in zip(x.column("event_id").to_pylist(), x.column("ts").to_pylist(), strict=True)
                if t - (START + i) <= 2 * W_S * 1000]
        attributed |= {i for i, t in rows if t - (START + i) <= W_S * 1000}
        outside += sum(t - (START + i) > W_S * 1000 for i, t in rows)
        if rows:
            events.append((kind, _clicks(rows)))
    return events, attributed, outside


def _produce_paced(bootstrap: str, name: str, events: list) -> None:
    t0 = time.time()
    for kind, batch in events:
        produce(bootstrap, f"fb-{kind}-{name}", iter([batch]), "json", progress=False)
        if kind == "impressions":
            time.sleep(max(0.0, BATCH / IMP_RATE - (time.time() - t0)))
            t0 = time.time()
    # past every window and grace: the join settles a negative at W + G
    _produce_raw(bootstrap, end_ticks(START + N + (3 * W_S + GRACE_S) * 1000, f"fb-impressions-{name}",
                                      f"fb-clicks-{name}"))


def _rel_gaps(a: dict, b: dict) -> np.ndarray:
    """Relative gaps of every value of every table's rows (by id) and of the dense variables, ``a`` vs ``b``."""
    gaps = []
    for name, (ids, rows) in b["tables"].items():
        ids_a, rows_a = a["tables"][name]
        va, vb = rows_a[np.argsort(ids_a)], rows[np.argsort(ids)]
        gaps.append((np.abs(va - vb) / np.maximum(np.abs(vb), 1e-3)).ravel())
    for name, vb in b["dense"].items():
        va, vb = np.asarray(a["dense"][name], np.float64), np.asarray(vb, np.float64)
        gaps.append((np.abs(va - vb) / np.maximum(np.abs(vb), 1e-3)).ravel())
    return np.concatenate(gaps)


def _run(cluster, bootstrap: str, base: Path, name: str, kill: bool, events: list, expect_trained: int) -> dict:
    # versions kept: the anchor of the last completed checkpoint must be among them; with event-time
    # batches a burst of windows can hold checkpoints back while the trainer commits on
    run_dir, ps = base / name, PsProcess(base / f"{name}-ps-versions", "--retain", "50")
    create_topics(bootstrap, [f"fb-impressions-{name}", f"fb-clicks-{name}", f"fb-preds-{name}"])
    sets = {"source.kafka.bootstrap_servers": bootstrap, "source.kafka.topic": f"fb-impressions-{name}",
            "source.kafka.group_id": f"g-{name}", "source.kafka.starting_offsets": "earliest",
            "feedback.topic": f"fb-clicks-{name}", "feedback.window_s": W_S, "feedback.grace_s": GRACE_S,
            "feedback.out_of_orderness_s": 2, "feedback.idle_timeout_s": "null", "feedback.eval_window_s": 1,
            "feedback.batch_ms": 100, "feedback.count_clicks": "true", "feedback.event_time_batches": "true",
            "feedback.strategy": STRATEGY,
            # the weights from the elapsed-time model from the first rows: its state at the kill counts
            "feedback.es_dfm.warmup_labels": 0,
            "feedback.coalesce_rows": 500,  # ~3 windows per batch: the held windows are restored too
            "feedback.coalesce_idle_s": 2,  # as measured; the last batch flushed soon
            "sinks.kafka.topic": f"fb-preds-{name}",
            "job.run_dir": run_dir,
            "model.name": "lr", "job.report_every_s": 0.5, "features.hash_bits": 16,
            "worker.intra_op_threads": 1, "worker.max_rows_per_s": RATE, "job.bundle_size": 1,
            "ps.enabled": "true", "ps.address": ps.address, "ps.push_every_batches": 1, "ps.push_every_s": 1000,
            "job.exactly_once": "true", "job.checkpoint_interval_s": 0.5, "job.snapshot_every_s": 1,
            "job.python_harness": "process"}
    fb_log, metrics = run_dir / "feedback.jsonl", run_dir / "metrics.jsonl"

    def wait(cond, what: str, limit_s: float = 300) -> None:
        deadline = time.time() + limit_s
        while not cond():
            assert time.time() < deadline, f"no {what} within {limit_s}s: {_last(fb_log)} {_last(metrics)}\n" \
                                           f"{faults.flink_log_excerpt()}"
            time.sleep(0.3)

    job, tm = None, None
    try:
        job = cluster.submit(faults.ROOT / "jobs" / "click_feedback.yaml", [f"{k}={v}" for k, v in sets.items()])
        assert cluster.rest.wait_for_state(job, {"RUNNING"}) == "RUNNING"
        producer = threading.Thread(target=_produce_paced, args=(bootstrap, name, events))
        producer.start()
        if kill:
            wait(lambda: (_last(fb_log) or {}).get("served", 0) >= N // 3, "a third served")
            served = _last(fb_log)["served"]
            assert served < N, f"the stream was over ({served} served) before the fault"
            (tm,) = cluster.taskmanager_pids()
            os.kill(tm, signal.SIGKILL)
            cluster.add_taskmanager()  # what Kubernetes or a supervisor does for a lost pod
        producer.join(120)
        wait(lambda: (_last(fb_log) or {}).get("settled") == N and (_last(fb_log) or {}).get("served") == N
             and (_last(metrics) or {}).get("events_trained", 0) >= expect_trained, "every impression settled")
        time.sleep(2 * 0.5 + 1)  # a report interval more: a double count would show now
        with PsClient(ps.address) as c:
            tables, dense = {t: c.pull_all(t) for t in c.list_tables()}, c.dense_get()
        return {"feedback": _last(fb_log), "metrics": _last(metrics), "tables": tables, "dense": dense,
                "restarts": cluster.rest.job(job).get("status-counts"), "killed": tm}
    finally:
        if job is not None:
            cluster.rest.stop_with_savepoint(job, str(base / "savepoints"))
        ps.stop()


def test_taskmanager_killed_mid_stream_loses_no_label_and_counts_none_twice(cluster, kafka_broker, tmp_path):
    events, attributed, outside = _stream()
    # each impression as a negative, each positive once more (es_dfm's real negatives are not trained)
    trained = N + len(attributed)
    clean = _run(cluster, kafka_broker.bootstrap, tmp_path, "clean", False, events, trained)
    run = _run(cluster, kafka_broker.bootstrap, tmp_path, "killed", True, events, trained)
    assert not psutil.pid_exists(run["killed"])
    for r in (clean, run):
        fb = r["feedback"]
        assert fb["served"] == fb["settled"] == fb["total"]["events"] == N
        assert fb["scores_pending"] == fb["labels_pending"] == 0
        assert fb["total"]["observed_rate"] == pytest.approx(len(attributed) / N)
        assert fb["join"].get("out_of_window", 0) == outside and fb["join"]["bad_message"] == 1
        assert r["metrics"]["events_trained"] == trained
        assert "unordered" not in fb["join"], fb["join"]  # every row in an event-time batch
    for name, (ids, _) in clean["tables"].items():  # the same examples trained: the same feature rows
        assert np.array_equal(np.sort(run["tables"][name][0]), np.sort(ids)), name
    assert run["dense"].keys() == clean["dense"].keys()
    # the same model: event-time batches, the same in both runs (docs/EXACTLY_ONCE.md, "Feedback join")
    gaps = _rel_gaps(run, clean)
    gap = {"serving_auc": abs(run["feedback"]["total"]["auc"] - clean["feedback"]["total"]["auc"]),
           "ps_median_rel": float(np.median(gaps)), "ps_max_rel": float(gaps.max())}
    print(f"\nfeedback taskmanager kill: restarts {run['restarts']}, model vs clean run {gap}")
    assert gap["serving_auc"] <= AUC_TOL and gap["ps_max_rel"] <= PS_TOL, gap
