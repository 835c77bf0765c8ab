"""Prometheus export as a step hook: step latency, events and model version of one worker."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from flinkdl.worker.hooks.base import Batch, Predictions, StepHook

if TYPE_CHECKING:
    from flinkdl.telemetry.exporter import WorkerMetrics


class PrometheusHook(StepHook):
    """Times each step (list it last: it then times the training alone) on ``metrics``' endpoint."""

    def __init__(self, metrics: WorkerMetrics) -> None:
        self.metrics = metrics
        self._t0 = 0.0

    def before_step(self, batch: Batch) -> None:
        self._t0 = time.perf_counter()

    def after_step(self, batch: Batch, predictions: Predictions) -> None:
        trained = batch.rows if predictions.trained is None else predictions.trained
        self.metrics.step(time.perf_counter() - self._t0, trained, predictions.model_version)

    def close(self) -> None:
        self.metrics.endpoint.stop()
