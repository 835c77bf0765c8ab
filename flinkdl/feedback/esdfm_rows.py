"""ES-DFM's rows through the feedback job: the join's per-message code, the feature batch's ``weight`` column.

Under ``feedback.strategy: es_dfm`` every message of the join (docs/FEEDBACK.md, "ES-DFM") carries,
after its sort key, :data:`CODE_CHARS` digits: ``2 e`` for a row to serve or train (``e``: the
impression's elapsed time at its observation, ms) or ``2 e + 1`` for a *real negative*, the
impression whose window closed without a click: a label for the elapsed-time model only, not a
training row. The featurizer turns the codes into the weighted layout's ``weight`` column
(:func:`weight_column`: ``e``, or ``-(e + 1)`` for a real negative) and the worker's
:class:`~flinkdl.worker.hooks.esdfm.EsDfmHook` turns that into loss weights (:func:`split_weight_column`).

>>> codes = [encode_code(0, False), encode_code(1500, False), encode_code(1500, True)]
>>> codes[1], weight_column(codes).tolist()
(b'0000000000003000', [0.0, 1500.0, -1501.0])
>>> e, real = split_weight_column(weight_column(codes))
>>> e.tolist(), real.tolist()
([0.0, 1500.0, 1500.0], [False, False, True])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from flinkdl.exchange.schema import FeatureLayout
from flinkdl.features.parse import POSITION_COLUMN

if TYPE_CHECKING:
    from flinkdl.config.feedback import FeedbackConfig
    from flinkdl.config.schema import JobConfig

#: Digits of a message's code, after its sort key (``feedback_sql.KEY_CHARS``).
CODE_CHARS = 16


def needs_weights(fb: FeedbackConfig | None) -> bool:
    """Whether the feedback strategy trains with per-row weights (the weighted layout): ``es_dfm`` only."""
    return fb is not None and fb.strategy == "es_dfm"


def job_layout(cfg: JobConfig) -> FeatureLayout:
    """The feature batch layout of a job: :meth:`FeatureLayout.from_config`, weighted under ``es_dfm``."""
    layout = FeatureLayout.from_config(cfg.features)
    return dataclasses.replace(layout, weighted=True) if needs_weights(cfg.feedback) else layout


def code_sql(elapsed: str, real_negative: bool) -> str:
    """SQL: the :data:`CODE_CHARS`-digit code of a row whose elapsed time (ms, BIGINT) is ``elapsed``."""
    value = f"2 * GREATEST(COALESCE({elapsed}, 0), 0){' + 1' if real_negative else ''}"
    return f"LPAD(CAST({value} AS STRING), {CODE_CHARS}, '0')"


def encode_code(elapsed_ms: int, real_negative: bool) -> bytes:
    """The code :func:`code_sql` makes, in Python (for tests and tools)."""
    return str(2 * max(int(elapsed_ms), 0) + int(real_negative)).zfill(CODE_CHARS).encode()


def weight_column(codes: Sequence[bytes]) -> np.ndarray:
    """float32 per code: the elapsed time ``e`` (ms), or ``-(e + 1)`` for a real negative."""
    c = np.array([int(x) for x in codes], np.int64)
    e = (c // 2).astype(np.float64)
    return np.where(c % 2 == 1, -(e + 1.0), e).astype(np.float32)


def split_weight_column(col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``weight`` column → ``(elapsed ms float64, real-negative bool)`` per row."""
    w = np.asarray(col, np.float64)
    real = w < 0
    return np.where(real, -w - 1.0, w), real


class RowCodes:
    """The codes of the messages being featurized, by position: :meth:`set` them before a chunk is decoded
    (message ``i`` at position ``base + i``); called by the featurizer, it gives each kept row's
    ``weight`` column (:func:`weight_column`) from the raw batch's positions."""

    def __init__(self) -> None:
        self.base, self.column = 0, np.zeros(0, np.float32)

    def set(self, base: int, codes: Sequence[bytes]) -> None:
        self.base, self.column = base, weight_column(codes)

    def __call__(self, raw: pa.RecordBatch | pa.Table, keep: np.ndarray) -> np.ndarray:
        pos = raw.column(POSITION_COLUMN).to_numpy(zero_copy_only=False).astype(np.int64) - self.base
        return self.column[pos[keep]]
