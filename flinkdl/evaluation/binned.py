"""Cumulative AUC of an unbounded stream in fixed memory, with a computed error bound.

Scores in ``[0, 1]`` fall into ``bins`` equal-width bins; each bin keeps its negative and
positive counts and the lowest and highest score it has seen. Pairs in different bins are
ranked exactly; a (positive, negative) pair inside one bin is credited 1/2, whose true credit is
in ``[0, 1]``. So the reported AUC is within

    ``error_bound = sum over bins with lo < hi of pos_b * neg_b / (2 * P * N)``

of the exact AUC (bins holding one distinct score are exact ties, they add nothing). With the
default 2**20 bins (width ~1e-6, 24 MiB) a click model's bound is ~1e-6; a stream whose scores
crowd one bin reports a large bound rather than a wrong small one.

>>> import numpy as np
>>> m = BinnedAUC(bins=1024)
>>> m.update(np.array([0, 1, 0, 1]), np.array([0.1, 0.8, 0.30, 0.30], dtype=np.float32))
>>> m.get(), m.error_bound
(0.875, 0.0)
"""

from __future__ import annotations

import numpy as np

from flinkdl.evaluation.base import Metric, as_batch


class BinnedAUC(Metric):
    """Cumulative AUC in ``O(bins)`` memory; see the module docstring for the bound."""

    name = "auc_cumulative"

    def __init__(self, bins: int = 1 << 20, buffer_events: int | None = None) -> None:
        self.bins = int(bins)
        self.buffer_events = int(buffer_events or max(1 << 16, self.bins // 4))
        self._counts = np.zeros((self.bins, 2), np.int64)  # [:, 0] negatives, [:, 1] positives
        self._lo = np.full(self.bins, np.inf, np.float32)
        self._hi = np.full(self.bins, -np.inf, np.float32)
        self._buf: list[tuple[np.ndarray, np.ndarray]] = []
        self._nbuf = 0
        self._value: float | None = None
        self._bound: float | None = None
        self._fresh = True

    def update(self, y_true: np.ndarray, y_score: np.ndarray) -> None:
        pos, s = as_batch(y_true, y_score)
        if not s.size:
            return
        s = np.clip(s, 0.0, 1.0)
        b = np.minimum((s * self.bins).astype(np.int64), self.bins - 1)
        self._buf.append(((b << 1) | pos, s))
        self._nbuf += s.size
        self._fresh = False
        if self._nbuf >= self.buffer_events:
            self._merge()

    def _merge(self) -> None:
        if not self._buf:
            return
        packed = np.concatenate([p for p, _ in self._buf])
        s = np.concatenate([x for _, x in self._buf])
        self._buf, self._nbuf = [], 0
        self._counts += np.bincount(packed, minlength=2 * self.bins).reshape(self.bins, 2)
        b = packed >> 1
        order = np.argsort(b, kind="stable")
        b, s = b[order], s[order]
        starts = np.flatnonzero(np.concatenate(([True], b[1:] != b[:-1])))
        touched = b[starts]
        self._lo[touched] = np.minimum(self._lo[touched], np.minimum.reduceat(s, starts))
        self._hi[touched] = np.maximum(self._hi[touched], np.maximum.reduceat(s, starts))

    def get(self) -> float | None:
        if self._fresh:
            return self._value
        self._merge()
        neg, pos = self._counts[:, 0], self._counts[:, 1]
        n_neg, n_pos = int(neg.sum()), int(pos.sum())
        self._value = self._bound = None
        if n_neg and n_pos:
            below = np.cumsum(neg) - neg
            if 2 * n_pos * n_neg < 2**63:
                twice = int(np.dot(pos, 2 * below + neg))
            else:
                twice = float(np.dot(pos.astype(np.float64), (2 * below + neg).astype(np.float64)))
            spread = self._lo < self._hi
            tied = float(np.dot(pos[spread].astype(np.float64), neg[spread].astype(np.float64)))
            self._value = twice / (2 * n_pos * n_neg)
            self._bound = tied / (2 * n_pos * n_neg)
        self._fresh = True
        return self._value

    @property
    def error_bound(self) -> float | None:
        """``|get() - exact AUC|`` is at most this (``None`` while AUC is undefined)."""
        self.get()
        return self._bound

    @property
    def nbytes(self) -> int:
        return self._counts.nbytes + self._lo.nbytes + self._hi.nbytes + 12 * self._nbuf
