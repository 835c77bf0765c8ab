"""The metric contract: fed whole batches, asked for a value at any time (cf. River's ``metrics.base``).

A metric is updated with a batch of labels and scores at once (vectorised, never row by row)
and ``get()`` returns its current value over everything seen so far, or ``None`` while the
value is undefined (no events yet, or AUC on a single class): never a made-up placeholder.
Metrics that keep only counts or sums also ``merge`` another of their kind (partial metrics of
several subtasks add up to the metric of their union).
"""

from __future__ import annotations

import abc
from typing import ClassVar

import numpy as np


class Metric(abc.ABC):
    """A progressive (cumulative) metric over a stream of ``(label, score)`` batches."""

    name: ClassVar[str]

    @abc.abstractmethod
    def update(self, y_true: np.ndarray, y_score: np.ndarray) -> None:
        """Add one batch: ``y_true`` of 0/1 labels, ``y_score`` of probabilities, same length."""

    @abc.abstractmethod
    def get(self) -> float | None:
        """The value over every event seen so far; ``None`` while undefined."""

    def __repr__(self) -> str:
        v = self.get()
        return f"{type(self).__name__}({self.name}={'undefined' if v is None else f'{v:.6f}'})"


class BatchMetric(Metric):
    """A metric of ``(label, score)`` alone: ``update`` validates once, ``update_checked`` counts.

    Composites validate a batch once and feed their parts through ``update_checked``.
    """

    def update(self, y_true: np.ndarray, y_score: np.ndarray) -> None:
        self.update_checked(*as_batch(y_true, y_score))

    @abc.abstractmethod
    def update_checked(self, pos: np.ndarray, s: np.ndarray) -> None:
        """``update`` for a batch already validated by :func:`as_batch`."""


def as_batch(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate one batch; return ``(labels as bool, scores as float32)``, both 1-D.

    Raises ``ValueError`` for mismatched lengths, labels other than 0/1 or NaN scores.
    """
    y = np.asarray(y_true).reshape(-1)
    s = np.asarray(y_score, dtype=np.float32).reshape(-1)
    if y.shape != s.shape:
        raise ValueError(f"y_true has {y.size} values but y_score has {s.size}")
    if y.dtype == np.bool_:
        pos = y
    else:
        pos = y == 1
        if np.count_nonzero(pos) + np.count_nonzero(y == 0) != y.size:
            bad = y[(y != 0) & (y != 1)][:5]
            raise ValueError(f"labels must be 0 or 1, got e.g. {bad.tolist()}")
    if np.isnan(s).any():
        raise ValueError("y_score contains NaN")
    return pos, s
