"""TensorBoard summaries as a step hook: loss, window AUC, learning rates, embedding rows and norms.

Every ``tensorboard.every_s`` seconds (and at the end) the worker writes, at step = its model
version: ``loss`` (mean log loss of the labelled events since the last write, each scored
before the model learnt it), ``auc_window`` (exact AUC of the last ``window_events``),
``calibration``, ``learning_rate/<group>``, and per embedding table ``<table>/rows_touched`` (rows
any step has read) with ``<table>/row_norm`` (mean L2 norm of those rows; a histogram too).
Open with ``tensorboard --logdir RUN_DIR/tensorboard`` (docs/OBSERVABILITY.md).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from flinkdl.config.tensorboard import TensorBoardConfig
from flinkdl.evaluation.maths import log_losses
from flinkdl.models.base import ModelBase
from flinkdl.publish.gate import RecentWindow
from flinkdl.worker.hooks.base import Batch, Predictions, StepHook

#: Sub-directory of the run directory the summaries go to.
TENSORBOARD_DIR = "tensorboard"


class TensorBoardHook(StepHook):
    """Writes ``model``'s summaries to ``logdir`` every ``cfg.every_s`` seconds."""

    def __init__(self, cfg: TensorBoardConfig, logdir: str | Path, model: ModelBase) -> None:
        self.cfg, self.model = cfg, model
        self.writer = tf.summary.create_file_writer(str(logdir))
        self.window = RecentWindow(cfg.window_events)
        self.touched = np.zeros(model.layout.buckets, bool)
        self._loss_sum, self._loss_n = 0.0, 0
        self._next = time.monotonic() + cfg.every_s
        self.writes = 0

    @classmethod
    def from_config(cls, cfg: TensorBoardConfig, run_dir: str | Path, model: ModelBase, subtask: int
                    ) -> TensorBoardHook:
        return cls(cfg, Path(run_dir) / TENSORBOARD_DIR / f"worker-{subtask}", model)

    def before_step(self, batch: Batch) -> None:
        self.touched[np.asarray(batch.ids).reshape(-1)] = True

    def after_step(self, batch: Batch, predictions: Predictions) -> None:
        labels, scores = np.asarray(batch.label), np.asarray(predictions.scores)
        self.window.update(labels, scores)
        keep = ~np.isnan(labels) & np.isfinite(scores)
        if keep.any():
            self._loss_sum += float(log_losses(labels[keep] > 0.5, scores[keep]).sum())
            self._loss_n += int(keep.sum())
        if time.monotonic() >= self._next:
            self.write(predictions.model_version)

    def write(self, step: int) -> None:
        """Write one set of summaries at ``step`` now."""
        self._next = time.monotonic() + self.cfg.every_s
        m = self.window.metrics()
        rows = np.flatnonzero(self.touched)
        with self.writer.as_default(step=step):
            if self._loss_n:
                tf.summary.scalar("loss", self._loss_sum / self._loss_n)
            tf.summary.scalar("auc_window", math.nan if m.auc is None else m.auc)
            tf.summary.scalar("calibration", math.nan if m.calibration is None else m.calibration)
            lrs = {"tables": self.model.cfg.optimizer.learning_rate}
            if self.model.cfg.dense_optimizer is not None:
                lrs["dense"] = self.model.cfg.dense_optimizer.learning_rate
            for group, lr in lrs.items():
                tf.summary.scalar(f"learning_rate/{group}", lr)
            variables = self.model.variables()
            for name in sorted(self.model.sparse_names()):
                norms = tf.norm(tf.gather(variables[name], rows), axis=1)
                tf.summary.scalar(f"{name}/rows_touched", len(rows))
                tf.summary.scalar(f"{name}/row_norm", float(tf.reduce_mean(norms)) if len(rows) else 0.0)
                tf.summary.histogram(f"{name}/row_norms", norms)
        self.writer.flush()
        self._loss_sum, self._loss_n = 0.0, 0
        self.writes += 1

    def close(self) -> None:
        self.write(self.model.version)
        self.writer.close()
