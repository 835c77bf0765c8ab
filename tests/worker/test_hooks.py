"""The worker loop's hook contract: call order, and the PS hook's marking of committing steps."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import tensorflow as tf

from flinkdl.worker.hooks import Batch, Predictions, StepHook
from flinkdl.worker.hooks.prometheus import PrometheusHook
from flinkdl.worker.hooks.ps import PsHook
from flinkdl.worker.process import run_step


class Recorder(StepHook):
    def __init__(self, name: str, calls: list[str]) -> None:
        self.name, self.calls = name, calls

    def before_step(self, batch: Batch) -> None:
        self.calls.append(f"{self.name}.before")

    def after_step(self, batch: Batch, predictions: Predictions) -> None:
        self.calls.append(f"{self.name}.after")

    def close(self) -> None:
        self.calls.append(f"{self.name}.close")


class FakeModel:
    def __init__(self, calls: list[str]) -> None:
        self.calls, self.version = calls, 0

    def predict_then_train(self, ids, dense, labels, labelled=None):
        self.calls.append("step")
        self.labelled = labelled
        self.version += 1
        return tf.fill([len(labels)], 0.5)


class FakeSync:
    """Commits at every second step, like ``PsSync`` with ``commit_every_pushes`` 2."""

    def __init__(self) -> None:
        self.batches, self.committed, self.seen = 0, None, []

    def before_step(self, ids: np.ndarray) -> None:
        self.seen.append(ids)

    def after_step(self) -> bool:
        self.batches += 1
        if self.batches % 2 == 0:
            self.committed = 100 + self.batches
        return True

    def close(self, report: str | None = None) -> None:
        self.closed_with = report


def _batch(rows: int = 3) -> Batch:
    return Batch(tf.range(rows, dtype=tf.int64), tf.zeros([rows]), tf.ones([rows, 2], tf.int64), tf.zeros([rows, 0]))


def test_hooks_nest_around_the_step():
    calls: list[str] = []
    pred = run_step(FakeModel(calls), [Recorder("ps", calls), Recorder("prom", calls)], _batch())
    assert calls == ["ps.before", "prom.before", "step", "prom.after", "ps.after"]
    assert pred.model_version == 1 and pred.ps_version is None


def test_ps_hook_marks_only_the_predictions_of_a_committing_step():
    sync, calls = FakeSync(), []
    hook = PsHook(sync, report="final.json")  # type: ignore[arg-type]
    model = FakeModel(calls)
    versions = [run_step(model, [hook], _batch()).ps_version for _ in range(4)]
    assert versions == [None, 102, None, 104]
    assert np.array_equal(sync.seen[0], np.ones((3, 2)))
    hook.close()
    assert sync.closed_with == "final.json"


def test_prometheus_hook_reports_rows_and_version_of_each_step():
    steps: list[tuple] = []
    stopped: list[bool] = []
    metrics = SimpleNamespace(step=lambda s, n, v: steps.append((s, n, v)),
                              endpoint=SimpleNamespace(stop=lambda: stopped.append(True)))
    hook = PrometheusHook(metrics)  # type: ignore[arg-type]
    run_step(FakeModel([]), [hook], _batch(5))
    assert steps[0][1:] == (5, 1) and steps[0][0] >= 0
    hook.close()
    assert stopped == [True]


def test_unlabelled_rows_are_scored_and_only_the_labelled_ones_trained_and_counted():
    steps: list[tuple] = []
    metrics = SimpleNamespace(step=lambda s, n, v: steps.append((s, n, v)), endpoint=SimpleNamespace(stop=lambda: None))
    model = FakeModel([])
    label = tf.constant([1.0, np.nan, 0.0, np.nan])
    batch = Batch(tf.range(4, dtype=tf.int64), label, tf.ones([4, 2], tf.int64), tf.zeros([4, 0]))
    pred = run_step(model, [PrometheusHook(metrics)], batch)  # type: ignore[arg-type]
    assert model.labelled.tolist() == [True, False, True, False] and pred.trained == 2
    assert pred.scores.shape == (4,) and steps[0][1] == 2  # every row scored; the worker counts 2 trained
    run_step(model, [], _batch(3))
    assert model.labelled is None  # every row labelled: the plain step
