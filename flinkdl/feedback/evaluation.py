"""Serving scores against settled labels: AUC, log loss and calibration, cumulative and per event-time window.

A serving score (made when the impression arrived) and the impression's settled label (known
when its click arrived or its window closed) reach the evaluator apart and in either order; it
pairs them by id. Windows are tumbling windows of the *impression's* event time.

>>> import numpy as np
>>> e = SettledEvaluator(window_ms=1000)
>>> e.served(np.array([1, 2, 3]), np.array([0.9, 0.2, 0.4]))
>>> for i, ts, y in [(1, 10, 1), (2, 20, 0), (3, 1500, 1)]:
...     e.settle(i, ts, y)
>>> s = e.summary()
>>> s["settled"], s["total"]["auc"], round(s["total"]["calibration"], 3), sorted(s["windows"])
(3, 1.0, 0.75, ['0', '1000'])
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np

from flinkdl.evaluation.binned import BinnedAUC
from flinkdl.evaluation.maths import log_losses
from flinkdl.evaluation.metrics import auc_from_arrays


def quality(y: np.ndarray, p: np.ndarray, auc: float | None) -> dict[str, Any]:
    """The report of ``len(y)`` settled events: AUC, log loss, mean score, observed rate, calibration."""
    n = len(y)
    if not n:
        return {"events": 0, "auc": None, "logloss": None, "mean_score": None, "observed_rate": None,
                "calibration": None}
    mean, rate = float(p.mean()), float(y.mean())
    return {"events": n, "auc": auc, "logloss": float(log_losses(y.astype(bool), p).mean()), "mean_score": mean,
            "observed_rate": rate, "calibration": mean / rate if rate else None}


#: An input step of :meth:`SettledEvaluator.apply` (what the operator keeps in its checkpointed tail).
Step = tuple[Any, ...]


class SettledEvaluator:
    """Pairs serving scores with settled labels by id; keeps the newest ``keep_windows`` windows exactly."""

    def __init__(self, window_ms: int, keep_windows: int = 48) -> None:
        self.window_ms, self.keep = int(window_ms), keep_windows
        self._scores: dict[int, float] = {}
        self._labels: dict[int, tuple[int, int]] = {}
        self._windows: dict[int, tuple[list[int], list[float]]] = {}
        self._auc = BinnedAUC()
        self._n = 0
        self._sums = np.zeros(3)  # labels, scores, log losses
        self.counts: dict[str, int] = {}
        self.served_n = 0

    def served(self, ids: np.ndarray, scores: np.ndarray) -> None:
        """Serving scores of impressions (any order relative to their settlement)."""
        self.served_n += len(ids)
        for i, s in zip(ids.tolist(), scores.tolist(), strict=True):
            if i in self._labels:
                ts, y = self._labels.pop(i)
                self._add(ts, y, s)
            else:
                self._scores[i] = s

    def settle(self, event_id: int, imp_ts: int, label: int) -> None:
        """The final label of impression ``event_id`` (event time ``imp_ts``)."""
        s = self._scores.pop(event_id, None)
        if s is None:
            self._labels[event_id] = (imp_ts, label)
        else:
            self._add(imp_ts, label, s)

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def apply(self, step: Step) -> None:
        """One input step: ``("served", ids, scores)`` or ``("events", [(kind, id, ts, label), ...])``."""
        if step[0] == "served":
            self.served(np.asarray(step[1]), np.asarray(step[2]))
            return
        for kinds, eid, ts, label in step[1]:  # "+"-joined: "settle" settles, the other names count
            for kind in kinds.split("+"):
                if kind == "settle":
                    self.settle(eid, ts, label)
                else:
                    self.count(kind)

    def to_bytes(self) -> bytes:
        """The whole state (pending pairs, windows, sums, counters), for a checkpointed snapshot."""
        return pickle.dumps(self.__dict__, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_bytes(cls, data: bytes) -> SettledEvaluator:
        e = cls.__new__(cls)
        e.__dict__.update(pickle.loads(data))
        return e

    def _add(self, ts: int, y: int, s: float) -> None:
        start = ts - ts % self.window_ms
        ys, ps = self._windows.setdefault(start, ([], []))
        ys.append(y)
        ps.append(s)
        if len(self._windows) > self.keep:
            del self._windows[min(self._windows)]
        pos, score = np.array([y], bool), np.array([s], np.float32)
        self._auc.update_checked(pos, score)
        self._sums += (y, s, float(log_losses(pos, score)[0]))
        self._n += 1

    def summary(self) -> dict[str, Any]:
        """Cumulative (binned AUC) and per-window (exact AUC) quality, pending counts, the join's counters."""
        total: dict[str, Any] = {"events": self._n, "auc": self._auc.get(), "logloss": None, "mean_score": None,
                                 "observed_rate": None, "calibration": None}
        if self._n:
            rate, mean = self._sums[0] / self._n, self._sums[1] / self._n
            total.update(logloss=self._sums[2] / self._n, mean_score=mean, observed_rate=rate,
                         calibration=mean / rate if rate else None)
        windows = {}
        for start, (ys, ps) in sorted(self._windows.items()):
            y, p = np.array(ys), np.array(ps)
            windows[str(start)] = quality(y, p, auc_from_arrays(y, p))
        return {"served": self.served_n, "settled": self._n, "scores_pending": len(self._scores),
                "labels_pending": len(self._labels), "total": total, "windows": windows,
                "join": dict(sorted(self.counts.items()))}
