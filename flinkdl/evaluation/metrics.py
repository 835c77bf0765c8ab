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

from flinkdl.evaluation import pair_counts as pc
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
    and exactly in rational terms: the pair count is kept in integers). Scores are compared as
    float32: two float64 scores that round to the same float32 are a tie.

    Memory is O(distinct scores), not O(events): sorted arrays of distinct float32 scores (as
    order-preserving uint32 keys), each with two int64 arrays of the cumulative negative / positive
    counts up to each score, **20 bytes per distinct score** once merged into one (``n_distinct``
    merges them). Updates are packed to one uint64 per event (key << 1 | label) into a buffer.

    The buffer is sorted and counted into a new level at each ``get()`` (or when it holds
    ``max(buffer_events, n_distinct)`` events): its pairs, within it and against every level (by
    ``searchsorted`` over their cumulative counts, O(new events × log)), go to a running pair count,
    so ``get()`` never scans the whole state. A level merges with the one before it while that one
    holds at most twice its keys (a linear merge of sorted arrays): each level is over twice the
    next, at most log2 levels, together under twice the first level's size, and each score is merged
    O(log) times over the stream instead of at every report. Quantised scores keep this tiny; a
    continuous model's scores are mostly distinct until they saturate the float32 grid (8.4M values
    per binade [2^-k, 2^-k+1)), bounded by ~1.07e9 values in [0, 1] (measured sizes:
    docs/BENCHMARKS.md); :class:`~flinkdl.evaluation.binned.BinnedAUC` is the fixed-memory variant.
    Past ``2 P N >= 2**63`` pairs ``get()`` merges the levels and sums in float64 as
    :func:`~flinkdl.evaluation.maths.auc_from_counts` does.
    """

    name = "auc"

    def __init__(self, buffer_events: int = 1 << 16) -> None:
        self.buffer_events = int(buffer_events)
        self._levels: list[pc.Counts] = []  # (sorted keys, cumulative neg, cumulative pos), each > twice the next
        self._buf: list[np.ndarray] = []  # events not counted yet (packed)
        self._nbuf = 0
        self._n = [0, 0]  # negatives, positives in the levels
        self._tw: int | None = 0  # twice the wins of their pairs; None past int64 (see the class doc)
        self._cached: float | None = None
        self._fresh = True  # _cached is up to date

    def update_checked(self, pos: np.ndarray, s: np.ndarray) -> None:
        if not s.size:
            return
        packed = (_order_keys(s).astype(np.uint64) << _ONE) | pos.astype(np.uint64)
        self._buf.append(packed)
        self._nbuf += packed.size
        self._fresh = False
        if self._nbuf >= max(self.buffer_events, self._levels[0][0].size if self._levels else 0):
            self._absorb()

    def _absorb(self) -> None:
        """Count the buffer's pairs into the running total; push it as a level."""
        if not self._buf:
            return
        k = np.concatenate(self._buf) if len(self._buf) > 1 else self._buf[0]
        self._buf, self._nbuf = [], 0
        k.sort()
        run = pc.counts_of(k)
        self._n[0] += int(run[1].sum())
        self._n[1] += int(run[2].sum())
        if self._tw is not None and _fits(*self._n):
            self._tw += pc.internal_twice_wins(run[1], run[2]) + sum(
                pc.cross_twice_wins(run, level) for level in self._levels)
        else:
            self._tw = None
        parts = [run]
        while self._levels and self._levels[-1][0].size <= 2 * sum(p[0].size for p in parts):
            parts.append(pc.uncumulative(self._levels.pop()))
        self._levels.append(pc.combine(parts) if len(parts) > 1 else pc.cumulative(run))

    def _merge(self) -> None:
        """Everything in one level (its pairs are counted already)."""
        self._absorb()
        if len(self._levels) > 1:
            self._levels = [pc.combine([pc.uncumulative(level) for level in self._levels])]

    def get(self) -> float | None:
        if self._fresh:
            return self._cached
        self._absorb()
        n_neg, n_pos = self._n
        if not (n_neg and n_pos):
            self._cached = None
        elif self._tw is None:  # past int64: the float64 sums over the merged state
            self._merge()
            self._cached = auc_from_counts(*pc.uncumulative(self._levels[0])[1:])
        else:
            self._cached = self._tw / (2 * n_pos * n_neg)
        self._fresh = True
        return self._cached

    @property
    def n_pos(self) -> int:
        self._absorb()
        return self._n[1]

    @property
    def n_neg(self) -> int:
        self._absorb()
        return self._n[0]

    @property
    def n_distinct(self) -> int:
        """Distinct float32 scores held (merges the levels first)."""
        self._merge()
        return int(self._levels[0][0].size) if self._levels else 0

    @property
    def nbytes(self) -> int:
        """Bytes held by the levels and the uncounted buffer."""
        return sum(a.nbytes for level in self._levels for a in level) + 8 * self._nbuf

    def __setstate__(self, state: dict) -> None:
        """Unpickle, also a snapshot of the class before the levels (one array of counts per key)."""
        if "_neg" in state:
            counts = state.pop("_keys"), state.pop("_neg"), state.pop("_pos")
            self.__dict__.update(state, _levels=[pc.cumulative(counts)] if counts[0].size else [])
            self._n = [int(counts[1].sum()), int(counts[2].sum())]
            self._tw = pc.internal_twice_wins(counts[1], counts[2]) if _fits(*self._n) else None
        else:
            self.__dict__.update(state)


def _fits(n_neg: int, n_pos: int) -> bool:
    """Whether every pair count of ``n_neg`` × ``n_pos`` events fits in int64."""
    return 2 * n_pos * n_neg < 2**63


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
