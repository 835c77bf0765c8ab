"""Progressive metrics of a click stream: exact cumulative AUC, log loss, mean score, observed CTR.

Each metric is fed whole prediction batches (the score was made *before* the model trained on
the event, so this is progressive / prequential validation) and answers over all events so far.

>>> import numpy as np
>>> auc, ll = ProgressiveAUC(), LogLoss()
>>> for y, s in [([0, 1, 1], [0.1, 0.4, 0.9]), ([0, 0], [0.2, 0.4])]:
...     y, s = np.array(y), np.array(s, dtype=np.float32)
...     auc.update(y, s)
...     ll.update(y, s)
>>> auc.get()  # 6 (pos, neg) pairs: 5 ranked right, 1 tied (0.4 vs 0.4) -> 5.5 / 6
0.9166666666666666
>>> round(ll.get(), 6)
0.372196
>>> auc_from_arrays(np.array([1, 1]), np.array([0.2, 0.9])) is None  # one class: undefined
True
"""

from __future__ import annotations

import numpy as np

from flinkdl.evaluation.base import BatchMetric
from flinkdl.evaluation.maths import LOGLOSS_EPS, auc_from_counts, log_losses

_SIGN = np.uint32(0x8000_0000)
_ONE = np.uint64(1)


def _order_keys(score: np.ndarray) -> np.ndarray:
    """Map float32 scores to uint32 keys with the same order (``-0.0`` folded onto ``+0.0``)."""
    u = (score + np.float32(0.0)).view(np.uint32)
    return np.where(u & _SIGN, ~u, u | _SIGN)


class ProgressiveAUC(BatchMetric):
    """Exact ROC AUC over every ``(label, score)`` seen so far; ties count one half.

    Equal to ``sklearn.metrics.roc_auc_score`` on the concatenated stream (to float rounding,
    and exactly in rational terms: the pair count is kept in int64). Scores are compared as
    float32: two float64 scores that round to the same float32 are a tie.

    Memory is O(distinct scores), not O(events): a sorted array of the distinct float32 scores
    (as order-preserving uint32 keys) and two int64 arrays of negative / positive counts per
    score, **20 bytes per distinct score**. Updates are packed to one uint64 per event (key << 1
    | label) into a buffer that is sorted, run-length counted and merged into the state when it
    holds ``max(buffer_events, n_distinct)`` events or on :meth:`get`: the O(distinct) merge is
    amortised over as many events, and the buffer adds at most 8 bytes per distinct score.
    Quantised scores keep this tiny; a continuous model's scores are mostly distinct until they
    saturate the float32 grid (8.4M values per binade [2^-k, 2^-k+1)), bounded by ~1.07e9 values
    in [0, 1] (measured sizes: docs/BENCHMARKS.md); :class:`~flinkdl.evaluation.binned.BinnedAUC`
    is the fixed-memory variant. ``get()`` merges the buffer and scans the state (O(distinct)),
    so call it at reporting cadence.
    """

    name = "auc"

    def __init__(self, buffer_events: int = 1 << 16) -> None:
        self.buffer_events = int(buffer_events)
        self._keys = np.empty(0, np.uint32)  # sorted distinct score keys
        self._neg = np.empty(0, np.int64)  # negatives per key
        self._pos = np.empty(0, np.int64)  # positives per key
        self._buf: list[np.ndarray] = []
        self._nbuf = 0
        self._cached: float | None = None
        self._fresh = True  # _cached is up to date

    def update_checked(self, pos: np.ndarray, s: np.ndarray) -> None:
        if not s.size:
            return
        packed = (_order_keys(s).astype(np.uint64) << _ONE) | pos.astype(np.uint64)
        self._buf.append(packed)
        self._nbuf += packed.size
        self._fresh = False
        if self._nbuf >= max(self.buffer_events, self._keys.size):
            self._merge()

    def _merge(self) -> None:
        if not self._buf:
            return
        k = np.concatenate(self._buf) if len(self._buf) > 1 else self._buf[0]
        self._buf, self._nbuf = [], 0
        k.sort()
        starts = np.flatnonzero(np.concatenate(([True], k[1:] != k[:-1])))
        runs = np.diff(np.append(starts, k.size))
        uk = k[starts]
        key = (uk >> _ONE).astype(np.uint32)
        first = np.concatenate(([True], key[1:] != key[:-1]))  # at most 2 runs (neg, pos) per key
        group = np.cumsum(first) - 1
        bkeys = key[first]
        lab = (uk & _ONE).astype(bool)
        bneg = np.zeros(bkeys.size, np.int64)
        bpos = np.zeros(bkeys.size, np.int64)
        bneg[group[~lab]] = runs[~lab]
        bpos[group[lab]] = runs[lab]
        if not self._keys.size:
            self._keys, self._neg, self._pos = bkeys, bneg, bpos
            return
        at = np.searchsorted(self._keys, bkeys)
        hit = at < self._keys.size
        hit[hit] = self._keys[at[hit]] == bkeys[hit]
        self._neg[at[hit]] += bneg[hit]
        self._pos[at[hit]] += bpos[hit]
        new = ~hit
        if new.any():  # sorted insertion of the new keys, one shared index computation
            ins = at[new] + np.arange(np.count_nonzero(new))
            old = np.ones(self._keys.size + ins.size, bool)
            old[ins] = False
            self._keys, self._neg, self._pos = (_insert(cur, add[new], ins, old) for cur, add in
                                                ((self._keys, bkeys), (self._neg, bneg), (self._pos, bpos)))

    def get(self) -> float | None:
        if self._fresh:
            return self._cached
        self._merge()
        self._cached, self._fresh = auc_from_counts(self._neg, self._pos), True
        return self._cached

    @property
    def n_pos(self) -> int:
        self._merge()
        return int(self._pos.sum())

    @property
    def n_neg(self) -> int:
        self._merge()
        return int(self._neg.sum())

    @property
    def n_distinct(self) -> int:
        """Distinct float32 scores held (merges the buffer first)."""
        self._merge()
        return int(self._keys.size)

    @property
    def nbytes(self) -> int:
        """Bytes held by the state and the unmerged buffer."""
        return self._keys.nbytes + self._neg.nbytes + self._pos.nbytes + 8 * self._nbuf


def _insert(cur: np.ndarray, add: np.ndarray, at: np.ndarray, old: np.ndarray) -> np.ndarray:
    """``cur`` with ``add`` placed at positions ``at`` of the result (``old`` marks the rest)."""
    out = np.empty(old.size, cur.dtype)
    out[at], out[old] = add, cur
    return out


class _RunningMean(BatchMetric):
    """Mean over events of a per-event quantity; subclasses give the batch total. Mergeable."""

    def __init__(self) -> None:
        self._sum = 0.0
        self._n = 0

    def _total(self, pos: np.ndarray, score: np.ndarray) -> float:
        raise NotImplementedError

    def update_checked(self, pos: np.ndarray, s: np.ndarray) -> None:
        self._sum += self._total(pos, s)
        self._n += s.size

    def merge(self, other: _RunningMean) -> None:
        """Count ``other``'s events too."""
        self._sum += other._sum
        self._n += other._n

    @property
    def n_events(self) -> int:
        return self._n

    @property
    def total(self) -> float:
        """The sum the mean divides by :attr:`n_events`."""
        return self._sum

    def get(self) -> float | None:
        return self._sum / self._n if self._n else None


class LogLoss(_RunningMean):
    """Mean binary cross-entropy, natural log, scores clipped to ``[eps, 1 - eps]`` (eps 1e-7)."""

    name = "logloss"

    def __init__(self, eps: float = LOGLOSS_EPS) -> None:
        super().__init__()
        self.eps = eps

    def _total(self, pos: np.ndarray, score: np.ndarray) -> float:
        return float(log_losses(pos, score, self.eps).sum())


class MeanScore(_RunningMean):
    """Mean predicted probability (compare with :class:`ObservedCTR` for calibration)."""

    name = "mean_score"

    def _total(self, pos: np.ndarray, score: np.ndarray) -> float:
        return float(score.sum(dtype=np.float64))


class ObservedCTR(_RunningMean):
    """Fraction of positive labels seen so far."""

    name = "ctr"

    def _total(self, pos: np.ndarray, score: np.ndarray) -> float:
        return float(np.count_nonzero(pos))


def auc_from_arrays(y_true: np.ndarray, y_score: np.ndarray) -> float | None:
    """Exact ROC AUC of whole arrays (e.g. a predictions file); ``None`` with a single class."""
    m = ProgressiveAUC(buffer_events=1)
    m.update(y_true, y_score)
    return m.get()
