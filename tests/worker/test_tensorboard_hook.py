"""The TensorBoard hook writes loss, window AUC, learning rates and embedding rows/norms."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from flinkdl.config.tensorboard import TensorBoardConfig
from flinkdl.worker.hooks.tensorboard import TensorBoardHook
from flinkdl.worker.process import run_step
from tests.publish.helpers import featurized, model_of, raw_batches, small_config


def _tags(logdir: Path) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for f in logdir.glob("events.out.tfevents.*"):
        for e in tf.compat.v1.train.summary_iterator(str(f)):
            for v in e.summary.value:
                out.setdefault(v.tag, []).append(e.step)
    return out


def test_summaries_are_written(tmp_path):
    cfg = small_config()
    cfg.model.dense_optimizer = cfg.model.optimizer.model_copy(update={"name": "adam", "learning_rate": 0.003})
    model = model_of(cfg)
    hook = TensorBoardHook.from_config(TensorBoardConfig(enabled=True, every_s=3600, window_events=1000),
                                       tmp_path, model, subtask=0)
    for raw in raw_batches(3):
        run_step(model, [hook], featurized(cfg, raw))
    hook.write(model.version)  # what every_s would trigger
    hook.close()
    tags = _tags(tmp_path / "tensorboard" / "worker-0")
    assert tags["loss"] == [3]  # the mean since the last write: none at close
    for tag in ("auc_window", "calibration", "learning_rate/tables", "learning_rate/dense",
                "emb/rows_touched", "emb/row_norm", "emb/row_norms", "lr_w/rows_touched"):
        assert tags.get(tag) == [3, 3], (tag, tags)
