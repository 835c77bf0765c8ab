"""End-to-end over Kafka: a real local broker (tansu) → the Flink job → predictions topic.

Five PyFlink jobs in all (each costs ~15 s to start): one CSV run with bad and unlabelled
messages, and per reader (Flink's Kafka source; ``source.kafka.reader: python``) an Arrow run that
is killed after a checkpoint and restarted from it.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from flinkdl.devtools.broker import create_topics
from flinkdl.devtools.produce import generator_batches, produce, read_topic
from flinkdl.evaluation.metrics import auc_from_arrays

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
N = 20_000
BAD_CSV = [b"not,a,click", b"\xff\xfe" + b",1" * 41, b"5000000,0,x" + b",1" * 39]  # 42 fields, label 'x'
U = 50  #: unlabelled events (ids N .. N+U-1): scored and published, not trained on


def _args(bootstrap: str, name: str, run_dir: Path, fmt: str) -> list[str]:
    return ["run", "jobs/click_stream_kafka.yaml", "--set", f"source.kafka.bootstrap_servers={bootstrap}",
            "--set", f"source.kafka.topic=clicks-{name}", "--set", f"source.kafka.format={fmt}",
            "--set", f"source.kafka.group_id=g-{name}", "--set", f"source.kafka.dead_letter_topic=dead-{name}",
            "--set", f"sinks.kafka.topic=preds-{name}", "--set", f"job.run_dir={run_dir}",
            "--set", "model.name=lr", "--set", "job.report_every_s=0.5"]


def _produce_raw(bootstrap: str, topic: str, values: list[bytes]) -> None:
    p = Producer({"bootstrap.servers": bootstrap})
    for v in values:
        p.produce(topic, v)
    assert p.flush(30) == 0


def _halves(size: int):
    return list(generator_batches(N, batch_size=size))


def _unlabelled() -> pa.RecordBatch:
    """The built-in stream's events N .. N+U-1 with their label null (an empty csv field)."""
    *_, last = generator_batches(N + U, batch_size=U)
    at = last.schema.get_field_index("label")
    return last.set_column(at, "label", pa.nulls(U, last.schema.field("label").type))


@pytest.fixture(scope="module")
def csv_run(kafka_broker, tmp_path_factory):
    b, run_dir = kafka_broker.bootstrap, tmp_path_factory.mktemp("kafka-csv")
    create_topics(b, ["clicks-csv", "preds-csv", "dead-csv"])
    first, second = _halves(N // 2)
    unlabelled = _unlabelled()
    produce(b, "clicks-csv", iter([first]), "csv", progress=False)
    _produce_raw(b, "clicks-csv", BAD_CSV)
    produce(b, "clicks-csv", iter([unlabelled.slice(0, U // 2)]), "csv", progress=False)
    produce(b, "clicks-csv", iter([second]), "csv", progress=False)
    produce(b, "clicks-csv", iter([unlabelled.slice(U // 2)]), "csv", progress=False)
    proc = subprocess.run([sys.executable, "-m", "flinkdl.cli", *_args(b, "csv", run_dir, "csv"),
                           "--max-events", str(N + U + len(BAD_CSV)), "--summary", str(run_dir / "s.json")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    preds = read_topic(b, "preds-csv", expect=N + U)
    return json.loads((run_dir / "s.json").read_text()), preds, read_topic(b, "dead-csv", expect=len(BAD_CSV))


def test_every_produced_event_comes_back_once_keyed_by_its_id(csv_run):
    summary, preds, _ = csv_run
    assert summary["events_in"] == N + U + len(BAD_CSV)
    assert summary["events_scored"] == N + U and summary["events_trained"] == N
    keys = Counter(int(m.key()) for m in preds)
    assert sorted(keys) == list(range(N + U)) and set(keys.values()) == {1}


def test_unlabelled_events_are_scored_once_with_a_null_label_and_every_prediction_has_its_event_ts(csv_run):
    summary, preds, _ = csv_run
    values = {v["event_id"]: v for v in (json.loads(m.value()) for m in preds)}
    assert {i for i, v in values.items() if v["label"] is None} == set(range(N, N + U))
    assert "label_missing" not in summary["dead_letter_by_reason"]
    events = [*_halves(N // 2), _unlabelled()]
    ts = {i: t for b in events for i, t in zip(b.column("event_id").to_pylist(), b.column("ts").to_pylist(),
                                                strict=True)}
    assert {i: v["event_ts"] for i, v in values.items()} == ts


def test_every_prediction_carries_the_age_of_the_model_that_scored_it(csv_run):
    _, preds, _ = csv_run
    values = [json.loads(m.value()) for m in preds]
    labelled_ts = [t for b in _halves(N // 2) for t in b.column("ts").to_pylist()]
    aged = [v for v in values if v["model_age_ms"] is not None]  # null: scored before any training
    assert all("model_age_ms" in v for v in values) and len(aged) >= len(values) // 2
    # processing_ts − model_age_ms ≈ event time of the newest labelled event trained before scoring
    model_ts = [v["processing_ts"] - v["model_age_ms"] for v in aged]
    assert min(labelled_ts) <= min(model_ts) and max(model_ts) <= max(labelled_ts) + 60_000


def test_auc_recomputed_from_the_topic_equals_the_reported_auc(csv_run):
    summary, preds, _ = csv_run
    values = [json.loads(m.value()) for m in preds]
    assert {v["model"] for v in values} == {"lr"}
    labelled = [v for v in values if v["label"] is not None]  # the label metrics see these alone
    y = np.array([v["label"] for v in labelled])
    p = np.array([v["score"] for v in labelled])
    assert len(labelled) == N and auc_from_arrays(y, p) == pytest.approx(summary["auc"], abs=1e-9)


def test_bad_messages_go_to_the_dead_letter_topic_with_the_reason(csv_run):
    summary, _, dead = csv_run
    reasons = sorted(dict(m.headers())["reason"].decode() for m in dead)
    assert reasons == ["field_count", "label_invalid", "undecodable"]
    assert summary["dead_letter_by_reason"] == {r: 1 for r in reasons}
    assert b"not,a,click" in {m.value() for m in dead}


# --------------------------------------------------------------------------- restart


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flinkdl.cli", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)


def _kill(proc: subprocess.Popen) -> None:
    """The job's whole process group: CLI, Flink's JVM, Python workers, TF workers (a crash)."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _wait(cond, proc: subprocess.Popen, what: str, limit_s: float = 300) -> None:
    deadline = time.time() + limit_s
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(f"job exited ({proc.returncode}) before {what}: {proc.stderr.read()[-3000:]}")
        if time.time() > deadline:
            _kill(proc)
            raise AssertionError(f"no {what} within {limit_s}s")
        time.sleep(0.3)


class _Keys:
    """Event ids seen so far on a predictions topic (an assigned consumer, read incrementally)."""

    def __init__(self, bootstrap: str, topic: str):
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-keys", "enable.auto.commit": False})
        self.c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        self.keys: Counter[int] = Counter()

    def count(self) -> int:
        for m in self.c.consume(10_000, 0.5):
            if m.error() is None:
                self.keys[int(m.key())] += 1
        return len(self.keys)


def _checkpoints(root: Path) -> list[Path]:
    """Completed checkpoints (``chk-N`` with ``_metadata``), oldest first."""
    done = [p.parent for p in root.glob("*/chk-*/_metadata")]
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


@pytest.fixture(scope="module", params=["flink", "python"])
def restart_run(request, kafka_broker, tmp_path_factory):
    """Arrow messages: first half + a corrupt message → run 1, killed after a checkpoint taken
    once it had seen them; second half → run 2 restored from that checkpoint."""
    reader = request.param
    b, work, name = kafka_broker.bootstrap, tmp_path_factory.mktemp("kafka-restart"), f"arrow-{reader}"
    create_topics(b, [f"clicks-{name}", f"preds-{name}", f"dead-{name}"])
    batches = _halves(1000)
    produce(b, f"clicks-{name}", iter(batches[: len(batches) // 2]), "arrow", progress=False)
    _produce_raw(b, f"clicks-{name}", [b"ARROW1 but not really"])
    common = [*_args(b, name, work / "run1", "arrow"), "--set", "job.checkpoint_interval_s=1",
              "--set", f"job.checkpoint_dir={work / 'chk'}", "--set", f"source.kafka.reader={reader}"]
    run1 = _start(common)
    seen = _Keys(b, f"preds-{name}")
    try:
        _wait(lambda: seen.count() >= N // 2, run1, "first half on the predictions topic")
        t_half = time.time()
        _wait(lambda: any(p.stat().st_mtime > t_half for p in _checkpoints(work / "chk")), run1,
              "checkpoint after the first half")
    finally:
        _kill(run1)
    checkpoint = _checkpoints(work / "chk")[-1]
    produce(b, f"clicks-{name}", iter(batches[len(batches) // 2:]), "arrow", progress=False)
    # A fresh group reading from the earliest offset: only the checkpoint's offsets avoid a replay.
    args2 = [*_args(b, name, work / "run2", "arrow"), "--set", f"job.restore_from={checkpoint}",
             "--set", f"source.kafka.group_id=g-{name}-fresh", "--set", "source.kafka.starting_offsets=earliest",
             "--set", f"source.kafka.reader={reader}"]
    run2 = _start(args2)
    try:
        _wait(lambda: seen.count() >= N, run2, "every event on the predictions topic")
    finally:
        _kill(run2)
        seen.c.close()
    return seen.keys, read_topic(b, f"dead-{name}", expect=1), checkpoint


def test_restart_from_checkpoint_misses_no_event(restart_run):
    keys, _, checkpoint = restart_run
    assert sorted(keys) == list(range(N))  # at least once: replayed events may appear twice
    # The checkpoint was taken after the first half was published: restored from it, run 2 starts
    # after the first half (a start from the earliest offset would publish it twice).
    assert checkpoint.name.startswith("chk-") and {keys[i] for i in range(N // 2)} == {1}


def test_corrupt_arrow_message_is_dead_lettered_and_the_job_goes_on(restart_run):
    _, dead, _ = restart_run
    assert dict(dead[0].headers())["reason"] == b"corrupt_arrow"
    assert dict(dead[0].headers())["raw-encoding"] == b"base64"
