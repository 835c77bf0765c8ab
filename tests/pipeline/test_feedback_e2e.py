"""End-to-end: impressions + delayed clicks on a real local broker → the feedback job (fake_negative).

One PyFlink job (the join in Flink SQL): every impression is scored once, trained as a negative at
once and again as a positive when its click arrives within the window; clicks outside the window are counted, and
positives that arrive after the watermark closed their window (within the grace) are trained
all the same and counted late. The join runs at ``feedback.sql_parallelism: 2``, the topics are read at 1.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pytest
from confluent_kafka import Producer

from flinkdl.config.feedback import DelayConfig
from flinkdl.devtools.broker import create_topics
from flinkdl.devtools.produce import produce, read_topic
from flinkdl.devtools.produce_feedback import end_ticks
from flinkdl.sources.delayed import CLICK_SCHEMA, DelayedStream
from flinkdl.sources.generator import ClickStream

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
N, W_S, G_S, LATE = 4000, 20, 600, 5
MARK = 10**9  # a click without impression: its orphan count says the watermark passed every window
START = 1_700_000_000_000  # the generator's first ts; one event per ms


def _last(path: Path) -> dict | None:
    lines = path.read_text().splitlines() if path.exists() else []
    return json.loads(lines[-1]) if lines else None


def _produce_raw(bootstrap: str, messages: list[tuple[str, bytes]]) -> None:
    p = Producer({"bootstrap.servers": bootstrap})
    for topic, value in messages:
        p.produce(topic, value)
    assert p.flush(30) == 0


def _clicks(rows: list[tuple[int, int]]) -> pa.RecordBatch:
    ids, ts = zip(*rows, strict=True)
    return pa.RecordBatch.from_pydict({"event_id": list(ids), "ts": list(ts), "label": [1] * len(ids)},
                                      schema=CLICK_SCHEMA)


@pytest.fixture(scope="module")
def feedback_run(kafka_broker, tmp_path_factory):
    b, run_dir = kafka_broker.bootstrap, tmp_path_factory.mktemp("feedback")
    create_topics(b, ["fb-imp", "fb-clicks", "fb-preds"])
    events = list(DelayedStream(ClickStream(seed=7), DelayConfig(scale=1 / 60)).events(N, 500))
    imps = [x for kind, x in events if kind == "impressions"]
    clicks = [(i, t) for kind, x in events if kind == "clicks"
              for i, t in zip(x.column("event_id").to_pylist(), x.column("ts").to_pylist(), strict=True)]
    delay = {i: t - (START + i) for i, t in clicks}
    attributed = {i for i, d in delay.items() if d <= W_S * 1000}
    outside = [(i, t) for i, t in clicks if W_S * 1000 < delay[i] <= 2 * W_S * 1000]
    late = sorted(set(range(N)) - set(delay))[:LATE]
    produce(b, "fb-imp", iter(imps), "json", progress=False)
    mark = [(MARK, START + N + 2 * W_S * 1000)]
    produce(b, "fb-clicks", iter([_clicks([(i, t) for i, t in clicks if i in attributed] + outside + mark)]), "json",
            progress=False)
    _produce_raw(b, end_ticks(START + N + 3 * W_S * 1000, "fb-imp", "fb-clicks"))  # past every window, not grace
    sets = {"source.kafka.bootstrap_servers": b, "source.kafka.topic": "fb-imp", "source.kafka.group_id": "g-fb",
            "source.kafka.starting_offsets": "earliest", "feedback.topic": "fb-clicks", "feedback.window_s": W_S,
            "feedback.grace_s": G_S, "feedback.count_clicks": "true", "feedback.sql_parallelism": 2,
            "feedback.out_of_orderness_s": 2, "feedback.idle_timeout_s": "null",
            "feedback.eval_window_s": 1, "feedback.batch_ms": 100, "feedback.strategy": "fake_negative",
            "feedback.coalesce_idle_s": 2,  # the last coalesced batch flushed soon
            "job.run_dir": run_dir, "model.name": "lr", "job.report_every_s": 0.5,
            "sinks.kafka.topic": "fb-preds"}
    args = ["run", "jobs/click_feedback.yaml", *(x for k, v in sets.items() for x in ("--set", f"{k}={v}"))]
    proc = subprocess.Popen([sys.executable, "-m", "flinkdl.cli", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    fb_log, metrics = run_dir / "feedback.jsonl", run_dir / "metrics.jsonl"

    def wait(cond, what: str, limit_s: float = 240) -> None:
        deadline = time.time() + limit_s
        while not cond():
            if proc.poll() is not None:
                raise AssertionError(f"job exited ({proc.returncode}) before {what}: {proc.stderr.read()[-3000:]}")
            if time.time() > deadline:
                raise AssertionError(f"no {what} within {limit_s}s: {_last(fb_log)}")
            time.sleep(0.3)

    try:
        wait(lambda: (_last(fb_log) or {}).get("join", {}).get("orphan") == 1, "the watermark past every window")
        produce(b, "fb-clicks", iter([_clicks([(i, START + i + W_S * 1000 - 1) for i in late])]), "json",
                progress=False)
        # then past every grace: the negatives settle at W + G
        _produce_raw(b, end_ticks(START + N + (3 * W_S + G_S) * 1000, "fb-imp", "fb-clicks"))
        trained = N + len(attributed) + LATE
        wait(lambda: (_last(metrics) or {}).get("events_trained") == trained
             and (_last(fb_log) or {}).get("join", {}).get("late_positive") == LATE
             and (_last(fb_log) or {}).get("settled") == N, "the late positives trained, every impression settled")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    values = [json.loads(m.value()) for m in read_topic(b, "fb-preds", expect=N + trained)]
    preds = {k: [v[k] for v in values] for k in ("event_id", "score", "label")}
    return {"feedback": _last(fb_log), "metrics": _last(metrics), "preds": preds,
            "attributed": attributed, "outside": len(outside), "late": set(late)}


def test_every_impression_is_served_once_and_settled(feedback_run):
    preds, fb = feedback_run["preds"], feedback_run["feedback"]
    served = [i for i, y in zip(preds["event_id"], preds["label"], strict=True) if y is None]
    assert sorted(served) == list(range(N))
    assert fb["served"] == N and fb["settled"] == N and fb["scores_pending"] == 0 and fb["labels_pending"] == 0
    assert max(preds["score"]) <= 0.999 + 1e-6  # FN-calibrated: b / (1 - b), clipped


def test_joined_examples_are_trained_with_the_right_labels(feedback_run):
    preds = feedback_run["preds"]
    labels: dict[int, list[float]] = defaultdict(list)
    for i, y in zip(preds["event_id"], preds["label"], strict=True):
        if y is not None:
            labels[i].append(y)
    positives = feedback_run["attributed"] | feedback_run["late"]
    assert set(labels) == set(range(N))
    # the fake negative and the positive leave the SQL join by different branches: when the click is
    # read before its impression (both topics are read at once here) the two may come in either order
    assert {i for i, ys in labels.items() if sorted(ys) == [0.0, 1.0]} == positives
    assert {i for i, ys in labels.items() if ys == [0.0]} == set(range(N)) - positives
    assert feedback_run["metrics"]["events_trained"] == N + len(positives)


def test_late_and_out_of_window_feedback_is_counted(feedback_run):
    fb = feedback_run["feedback"]
    join = fb["join"]
    assert join["late_positive"] == LATE and join["late_events"] >= LATE
    assert join.get("out_of_window", 0) == feedback_run["outside"]
    # each impressions tick has no id; the one orphan is the click without impression
    assert join["bad_message"] == 2 and join["orphan"] == 1
    total = fb["total"]
    assert total["events"] == N and total["auc"] is not None and total["calibration"] is not None
    assert total["observed_rate"] == pytest.approx(len(feedback_run["attributed"]) / N)
