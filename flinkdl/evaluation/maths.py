"""The formulas every metric shares: AUC from rank counts, its in-bin error bound, log loss, binning.

Each is written once here; the metrics only keep counts and sums and call these.

>>> import numpy as np
>>> neg, pos = np.array([1, 1, 0]), np.array([0, 1, 1])  # per distinct score, ascending
>>> auc_from_counts(neg, pos)  # 4 (pos, neg) pairs: 3 ranked right, 1 tied -> 3.5 / 4
0.875
>>> auc_from_counts(np.array([3]), np.array([0])) is None  # one class: undefined
True
>>> bin_index(np.array([-0.5, 0.0, 0.5, 1.0], np.float32), 4)
(array([0. , 0. , 0.5, 1. ], dtype=float32), array([0, 0, 2, 3]))
"""

from __future__ import annotations

import numpy as np

#: Scores are clipped to ``[LOGLOSS_EPS, 1 - LOGLOSS_EPS]`` before the log.
LOGLOSS_EPS = 1e-7


def auc_from_counts(neg: np.ndarray, pos: np.ndarray) -> float | None:
    """ROC AUC from negative / positive counts per score, scores ascending; ties count one half.

    ``None`` while one class is missing. Exact in rational terms while ``2 P N`` fits in int64.
    """
    n_neg, n_pos = int(neg.sum()), int(pos.sum())
    if not (n_neg and n_pos):
        return None
    upto = np.cumsum(neg)  # negatives with the same or a lower score
    if 2 * n_pos * n_neg < 2**63:  # every term and the sum fit in int64: exact
        # sum(pos * (2 below + neg)) with below = upto - neg, in one pass less and no temporary
        twice_wins: float = 2 * int(np.dot(pos, upto)) - int(np.dot(pos, neg))
    else:
        twice_wins = float(np.dot(pos.astype(np.float64), (2 * (upto - neg) + neg).astype(np.float64)))
    return twice_wins / (2 * n_pos * n_neg)


def tie_bound(neg: np.ndarray, pos: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float | None:
    """How far :func:`auc_from_counts` over bins can be from the exact AUC.

    A (positive, negative) pair inside one bin is credited 1/2 where its truth is in ``[0, 1]``;
    bins that saw one distinct score (``lo == hi``) are exact ties and add nothing.
    """
    n_neg, n_pos = int(neg.sum()), int(pos.sum())
    if not (n_neg and n_pos):
        return None
    spread = lo < hi
    return float(np.dot(pos[spread].astype(np.float64), neg[spread].astype(np.float64))) / (2 * n_pos * n_neg)


def log_losses(pos: np.ndarray, score: np.ndarray, eps: float = LOGLOSS_EPS) -> np.ndarray:
    """Per-event binary cross-entropy (natural log, float64), scores clipped to ``[eps, 1 - eps]``."""
    p = np.clip(score.astype(np.float64), eps, 1.0 - eps)
    return -np.log(np.where(pos, p, 1.0 - p))


def bin_index(score: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """``(scores clipped to [0, 1], their bin in 0..bins-1)`` for ``bins`` equal-width bins."""
    s = np.clip(score, np.float32(0.0), np.float32(1.0))
    return s, np.minimum((s * bins).astype(np.int64), bins - 1)
