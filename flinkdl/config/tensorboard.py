"""``tensorboard:``: TensorFlow summaries of each worker under ``RUN_DIR/tensorboard/``."""

from __future__ import annotations

from pydantic import Field

from flinkdl.config.base import Strict


class TensorBoardConfig(Strict):
    """Worker subtask ``i`` writes loss, window AUC, learning rates and embedding row counts/norms to
    ``RUN_DIR/tensorboard/worker-<i>/`` every ``every_s`` seconds (docs/OBSERVABILITY.md)."""

    enabled: bool = False
    every_s: float = Field(10.0, gt=0)
    window_events: int = Field(20_000, ge=100, description="events of the loss and AUC window")
