"""Cumulative AUC of an unbounded stream in fixed memory, with a computed error bound.

Scores in ``[0, 1]`` fall into ``bins`` equal-width bins; each bin keeps its negative and
positive counts and the lowest and highest score it has seen. Pairs in different bins are
ranked exactly; a (positive, negative) pair inside one bin is credited 1/2, whose true credit is
in ``[0, 1]``. So the reported AUC is within

    ``error_bound = sum over bins with lo < hi of pos_b * neg_b / (2 * P * N)``

of the exact AUC (bins holding one distinct score are exact ties, they add nothing); a stream
whose scores crowd one bin reports a large bound rather than a wrong small one.
:class:`BinnedCounts` keeps such bins for several rows at once (the evaluator's slices share one
table); :class:`BinnedAUC` is one row as a metric. Both merge: counts add, score ranges widen.

>>> import numpy as np
>>> m = BinnedAUC(bins=1024)
>>> m.update(np.array([0, 1, 0, 1]), np.array([0.1, 0.8, 0.30, 0.30], dtype=np.float32))
>>> m.get(), m.error_bound
(0.875, 0.0)
"""

from __future__ import annotations

import numpy as np

from flinkdl.evaluation.base import BatchMetric
from flinkdl.evaluation.maths import auc_from_counts, bin_index, tie_bound


class BinnedCounts:
    """Per ``(row, bin)``: negative and positive counts, lowest and highest score seen."""

    def __init__(self, rows: int, bins: int) -> None:
        self.bins = int(bins)
        self.counts = np.zeros((rows, self.bins, 2), np.int64)  # [..., 0] negatives, [..., 1] positives
        self.lo = np.full((rows, self.bins), np.inf, np.float32)
        self.hi = np.full((rows, self.bins), -np.inf, np.float32)

    def add(self, row: np.ndarray | int, pos: np.ndarray, s: np.ndarray) -> None:
        """Count a validated batch; ``row`` gives each event's row (or one row for all)."""
        s, b = bin_index(s, self.bins)
        cell = row * self.bins + b
        # ufunc.at with an array of ones takes numpy's fast path (a scalar 1 takes the slow one)
        np.add.at(self.counts.reshape(-1), (cell << 1) | pos, np.ones(cell.size, np.int64))
        np.minimum.at(self.lo.reshape(-1), cell, s)
        np.maximum.at(self.hi.reshape(-1), cell, s)

    def auc(self, row: int = 0) -> tuple[float | None, float | None]:
        """``(AUC, error bound)`` of one row; ``(None, None)`` with one class."""
        neg, pos = self.counts[row, :, 0], self.counts[row, :, 1]
        return auc_from_counts(neg, pos), tie_bound(neg, pos, self.lo[row], self.hi[row])

    def merge(self, other: BinnedCounts) -> None:
        """Add ``other``'s counts (same shape) to these."""
        if other.counts.shape != self.counts.shape:
            raise ValueError(f"cannot merge bins of shape {other.counts.shape} into {self.counts.shape}")
        self.counts += other.counts
        np.minimum(self.lo, other.lo, out=self.lo)
        np.maximum(self.hi, other.hi, out=self.hi)

    @property
    def nbytes(self) -> int:
        return self.counts.nbytes + self.lo.nbytes + self.hi.nbytes


class BinnedAUC(BatchMetric):
    """Cumulative AUC in ``O(bins)`` memory; see the module docstring for the bound."""

    name = "auc_cumulative"

    def __init__(self, bins: int = 1 << 20) -> None:
        self.bins = int(bins)
        self._bins = BinnedCounts(1, self.bins)
        self._value: float | None = None
        self._bound: float | None = None
        self._fresh = True

    def update_checked(self, pos: np.ndarray, s: np.ndarray) -> None:
        if not s.size:
            return
        self._bins.add(0, pos, s)
        self._fresh = False

    def merge(self, other: BinnedAUC) -> None:
        """Count ``other``'s events too (same ``bins``)."""
        self._bins.merge(other._bins)
        self._fresh = False

    def get(self) -> float | None:
        if not self._fresh:
            self._value, self._bound = self._bins.auc()
            self._fresh = True
        return self._value

    @property
    def error_bound(self) -> float | None:
        """``|get() - exact AUC|`` is at most this (``None`` while AUC is undefined)."""
        self.get()
        return self._bound

    @property
    def nbytes(self) -> int:
        return self._bins.nbytes
