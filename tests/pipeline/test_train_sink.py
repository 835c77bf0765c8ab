"""The trainer's operator at parallelism 1 (:mod:`flinkdl.pipeline.train_sink`): each prediction envelope
goes into the sink's tail at once and is published, evaluated and written while the worker trains the next
batch; a restore between a step and that deferred work loses nothing and writes nothing twice.

The generator, featurizer, sink (RunLog, prediction file, snapshots) and the exactly-once protocol are the
real ones; the TF worker answers each batch without TensorFlow, and the trainer's PS anchor is left out
(its protocol is tested with a PS in tests/pipeline/test_faults.py)."""

from __future__ import annotations

import copy
import json
import zlib
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pytest

from flinkdl.config.loader import load_config
from flinkdl.exchange.envelope import Envelope
from flinkdl.exchange.schema import PREDICTION_SCHEMA
from flinkdl.pipeline.bundle_end import run_pending
from flinkdl.pipeline.flow import with_ballast
from flinkdl.pipeline.freshness import TrainedWatermark
from flinkdl.pipeline.recovery import ExactlyOnceFunction
from flinkdl.pipeline.sink import EvaluateAndSink
from flinkdl.pipeline.train_sink import GenerateTrainAndSink, InnerSink, ReadTrainAndSink, SinkInside
from tests.pipeline.test_feedback_coalesce import _Ctx
from tests.pipeline.test_kafka_pull import _State
from tests.pipeline.test_kafka_train import _ListState

JOB = Path(__file__).resolve().parents[2] / "jobs" / "click_stream.yaml"
BATCHES, SIZE = 6, 50


class _Worker:
    """Answers a batch with event ids from its bytes (the same batch, the same ids); logs steps."""

    log: ClassVar[list] = []

    def __init__(self, cfg, subtask: int) -> None:
        self.subtask = subtask

    def start(self) -> None:
        pass

    def kill(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def process(self, payload, rows, on_restart=None, meanwhile=None):
        self.log.append("step")
        if meanwhile is not None:
            meanwhile()
        ids = pa.array(zlib.crc32(payload) * 1000 + np.arange(rows, dtype=np.int64))
        labels = pa.array((np.arange(rows) % 3 == 0).astype(np.float32))
        preds = pa.record_batch([ids, pa.array(np.linspace(0.1, 0.9, rows, dtype=np.float32)), labels,
                                 pa.array(np.zeros(rows, np.int64))], schema=PREDICTION_SCHEMA)
        return preds, None


class _Op(GenerateTrainAndSink):
    def reset(self, anchor: dict | None) -> dict:  # no PS: the trainer re-trains its whole tail
        return {"ps_version": 0}


class _Publisher:
    def __init__(self) -> None:
        self.seqs: list[int] = []

    def close(self) -> None:
        pass


def _open(run_dir: Path, states: dict, monkeypatch, *sets: str) -> _Op:
    cfg = load_config(JOB, [f"job.run_dir={run_dir}", f"sinks.predictions.path={run_dir}/preds.csv",
                            f"source.generator.events={BATCHES * SIZE}", f"source.generator.batch_size={SIZE}",
                            "job.exactly_once=true", "ps.enabled=true", "job.checkpoint_interval_s=5",
                            "model.name=lr", *sets])
    monkeypatch.setattr("flinkdl.worker.supervisor.WorkerSupervisor", _Worker)
    monkeypatch.setattr("flinkdl.pipeline.freshness.TrainedWatermark", lambda ps: TrainedWatermark(None))  # no PS
    ctx = SimpleNamespace(get_index_of_this_subtask=lambda: 0, get_attempt_number=lambda: 0,
                          get_state=lambda d: states.setdefault(d.name, _State()),
                          get_list_state=lambda d: states.setdefault(d.name, _ListState()))
    op = _Op(cfg.model_dump_json())
    op.open(ctx)
    return op


def _feed(op: _Op, indexes: range) -> None:
    for i in indexes:
        assert list(op.process_element(with_ballast(i), _Ctx())) == []


def _run(run_dir: Path, monkeypatch, sets: tuple[str, ...], crash_after: tuple[int, int] | None,
         published: list) -> tuple[list[str], dict]:
    """The stream once; ``crash_after`` (c, d): checkpoint after batch c, crash after batch d, restore, go on."""
    monkeypatch.setattr("flinkdl.pipeline.kafka_out.publisher", lambda cfg, subtask: _Publisher())
    monkeypatch.setattr("flinkdl.pipeline.kafka_out.publish", lambda to, env: published.append(env.seq))
    states: dict = {}
    op = _open(run_dir, states, monkeypatch, *sets)
    if crash_after is None:
        _feed(op, range(BATCHES))
    else:
        checkpoint, crash = crash_after
        _feed(op, range(checkpoint + 1))
        saved = copy.deepcopy({k: getattr(v, "items", getattr(v, "v", None)) for k, v in states.items()})
        _feed(op, range(checkpoint + 1, crash + 1))
        op.sink.progress._close_outputs()  # what it wrote reached the files; then the process dies
        states = {k: _ListState() if isinstance(v, list) else _State() for k, v in saved.items()}
        for k, v in saved.items():
            setattr(states[k], "items" if isinstance(v, list) else "v", v)
        op = _open(run_dir, states, monkeypatch, *sets)
        _feed(op, range(checkpoint + 1, BATCHES))  # Flink replays the input after the checkpoint
    op.close()
    final = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    lines = (run_dir / "preds.csv").read_text().splitlines()
    return [line.rsplit(",", 1)[0] for line in lines], final  # without model_age_ms (a clock's)


def test_the_sink_works_on_a_batch_while_the_worker_trains_the_next(tmp_path, monkeypatch) -> None:
    _Worker.log = []
    states: dict = {}
    op = _open(tmp_path, states, monkeypatch)
    op.sink.apply = lambda value, replay=False: (_Worker.log.append(("sink", Envelope.of(value).seq)), ([], None))[1]
    _feed(op, range(3))
    # batch i's sink work runs in step i + 1; nothing is left waiting after the step before a pause
    assert _Worker.log == ["step", "step", ("sink", 0), "step", ("sink", 1)]
    assert [Envelope.of(r).seq for r in states["sink_tail"].items] == [0, 1, 2]  # in the tail at once
    run_pending()  # the bundle ends (before a barrier, a savepoint, the end of input)
    assert _Worker.log[-1] == ("sink", 2) and op.deferred == []
    _feed(op, range(3, 4))
    list(op.on_timer(0, None))  # the report timer does the deferred work first
    assert _Worker.log[-2:] == ["step", ("sink", 3)] and op.deferred == []
    _feed(op, range(3, BATCHES))
    # the last batch: right after its own step, not a step later
    assert _Worker.log[-3:] == ["step", ("sink", BATCHES - 2), ("sink", BATCHES - 1)]


@pytest.mark.parametrize("snapshot_every_s", [1e-6, 3600])  # a snapshot at every batch / none after the first
@pytest.mark.parametrize("crash_after", [(2, 2), (2, 3), (1, 4)])
def test_a_restore_between_a_step_and_its_deferred_sink_work_loses_nothing_and_writes_nothing_twice(
        tmp_path, monkeypatch, snapshot_every_s, crash_after) -> None:
    sets = (f"job.snapshot_every_s={snapshot_every_s}", "sinks.kafka.topic=preds",
            "sinks.kafka.bootstrap_servers=127.0.0.1:9")
    clean_published: list = []
    clean, clean_final = _run(tmp_path / "clean", monkeypatch, sets, None, clean_published)
    published: list = []
    restored, final = _run(tmp_path / "crashed", monkeypatch, sets, crash_after, published)
    assert clean_published == list(range(BATCHES))
    assert len(clean) == len(set(clean)) == BATCHES * SIZE + 1  # a header
    assert restored == clean  # every prediction once, in order
    for key in ("events_in", "events_scored", "auc", "logloss"):
        assert final[key] == clean_final[key], key
    assert final["events_in"] == BATCHES * SIZE
    # the topic is at-least-once: every batch published; again only those published after the checkpoint
    checkpoint, crash = crash_after
    assert sorted(set(published)) == list(range(BATCHES))
    assert sorted(published) == sorted([*range(BATCHES), *range(checkpoint, crash)])


def test_the_inner_sink_keeps_its_state_apart_from_the_trainer():
    assert InnerSink.state_names != ExactlyOnceFunction.state_names == EvaluateAndSink.state_names
    assert set(InnerSink.state_names).isdisjoint(ExactlyOnceFunction.state_names)
    op = GenerateTrainAndSink("{}", max_events=5)
    assert isinstance(op.sink, InnerSink) and op.sink.max_events == 5
    # the fold wraps the trainer: SinkInside comes before the trainer's class in the MRO
    for cls in (GenerateTrainAndSink, ReadTrainAndSink):
        mro = cls.__mro__
        assert mro.index(SinkInside) < mro.index(cls.__mro__[2])
