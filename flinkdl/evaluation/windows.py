"""Exact AUC over windows of the stream: sliding and tumbling, by event count or by event time.

Every window keeps the raw ``(label, score)`` of the events it covers (bounded by the window
size) and computes the exact AUC (ties count one half, equal to scikit-learn's
``roc_auc_score``) when asked. A window holding one class only answers ``None``.

- :class:`SlidingCountAUC`: the last ``size`` events.
- :class:`SlidingTimeAUC`: events with event time in ``(latest - size, latest]``.
- :class:`TumblingCountAUC`: consecutive blocks of ``size`` events; ``get()`` is the last full one.
- :class:`TumblingTimeAUC`: windows ``[k*size, (k+1)*size)`` of event time; a window closes when an
  event of a later window arrives, ``get()`` is the last closed one; events for a closed window
  are late: counted in ``late`` and not evaluated.

>>> import numpy as np
>>> w = SlidingCountAUC(3)
>>> w.update(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1], dtype=np.float32))
>>> w.get()  # last 3 events: (0, .8), (1, .7), (0, .1) -> 1 of 2 pairs right
0.5
"""

from __future__ import annotations

import abc
from collections import deque

import numpy as np

from flinkdl.evaluation.base import Metric, as_batch
from flinkdl.evaluation.metrics import auc_from_arrays


def _timed_batch(y_true, y_score, ts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`as_batch` plus the event times (ms, float64) an event-time window needs."""
    pos, s = as_batch(y_true, y_score)
    if ts is None:
        raise ValueError("a time window needs event times (ts)")
    return pos, s, np.asarray(ts, np.float64).reshape(-1)

class WindowAUC(Metric):
    """Base of the window metrics: ``update(y_true, y_score, ts=None)``; ``ts`` in ms for time windows."""

    name = "auc_window"
    by_time = False

    @abc.abstractmethod
    def update(self, y_true: np.ndarray, y_score: np.ndarray, ts: np.ndarray | None = None) -> None:
        """Add one batch; ``ts`` (event times in ms) is required by the time windows."""

    @property
    def n_events(self) -> int:
        """Events in the reported window."""
        return 0


class SlidingCountAUC(WindowAUC):
    """Exact AUC of the last ``size`` events (a ring buffer of labels and float32 scores)."""

    def __init__(self, size: int) -> None:
        self.size = int(size)
        self._pos = np.zeros(self.size, bool)
        self._score = np.zeros(self.size, np.float32)
        self._head = self._count = 0
        self._value: float | None = None
        self._fresh = True

    def update(self, y_true: np.ndarray, y_score: np.ndarray, ts: np.ndarray | None = None) -> None:
        pos, s = as_batch(y_true, y_score)
        if not s.size:
            return
        pos, s = pos[-self.size:], s[-self.size:]
        n = s.size
        idx = (self._head + np.arange(n)) % self.size
        self._pos[idx], self._score[idx] = pos, s
        self._head = (self._head + n) % self.size
        self._count = min(self.size, self._count + n)
        self._fresh = False

    def get(self) -> float | None:
        if not self._fresh:
            n = self._count
            self._value = auc_from_arrays(self._pos[:n], self._score[:n]) if n else None
            self._fresh = True
        return self._value

    @property
    def n_events(self) -> int:
        return self._count


class SlidingTimeAUC(WindowAUC):
    """Exact AUC of the events with ``ts`` in ``(latest ts - size_ms, latest ts]``."""

    by_time = True

    def __init__(self, size_ms: float) -> None:
        self.size_ms = float(size_ms)
        self._batches: deque[tuple[np.ndarray, np.ndarray, np.ndarray]] = deque()
        self._latest = -np.inf
        self._value: float | None = None
        self._n = 0
        self._fresh = True

    def update(self, y_true: np.ndarray, y_score: np.ndarray, ts: np.ndarray | None = None) -> None:
        pos, s, ts = _timed_batch(y_true, y_score, ts)
        if not s.size:
            return
        self._latest = max(self._latest, float(ts.max()))
        self._batches.append((ts, pos, s))
        cutoff = self._latest - self.size_ms
        while self._batches and self._batches[0][0].max() <= cutoff:
            self._batches.popleft()
        self._fresh = False

    def get(self) -> float | None:
        if not self._fresh:
            self._value, self._n = None, 0
            if self._batches:
                ts = np.concatenate([b[0] for b in self._batches])
                keep = ts > self._latest - self.size_ms
                pos = np.concatenate([b[1] for b in self._batches])[keep]
                self._n = int(keep.sum())
                self._value = auc_from_arrays(pos, np.concatenate([b[2] for b in self._batches])[keep])
            self._fresh = True
        return self._value

    @property
    def n_events(self) -> int:
        self.get()
        return self._n


class TumblingCountAUC(WindowAUC):
    """Exact AUC of consecutive blocks of ``size`` events; ``get()`` answers for the last full block."""

    def __init__(self, size: int) -> None:
        self.size = int(size)
        self._pos: list[np.ndarray] = []
        self._score: list[np.ndarray] = []
        self._fill = 0
        self.closed = 0
        self._value: float | None = None

    def update(self, y_true: np.ndarray, y_score: np.ndarray, ts: np.ndarray | None = None) -> None:
        pos, s = as_batch(y_true, y_score)
        while s.size:
            take = min(self.size - self._fill, s.size)
            self._pos.append(pos[:take])
            self._score.append(s[:take])
            self._fill += take
            pos, s = pos[take:], s[take:]
            if self._fill == self.size:
                self._value = auc_from_arrays(np.concatenate(self._pos), np.concatenate(self._score))
                self._pos, self._score, self._fill = [], [], 0
                self.closed += 1

    def get(self) -> float | None:
        return self._value

    @property
    def n_events(self) -> int:
        return self.size if self.closed else 0


class TumblingTimeAUC(WindowAUC):
    """Exact AUC of event-time windows ``[k*size_ms, (k+1)*size_ms)``; ``get()`` is the last closed one."""

    by_time = True

    def __init__(self, size_ms: float) -> None:
        self.size_ms = float(size_ms)
        self._open: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        self._max_window: int | None = None
        self._value: float | None = None
        self._n = 0
        self.closed = 0
        self.late = 0
        self.last_window_end_ms: float | None = None

    def update(self, y_true: np.ndarray, y_score: np.ndarray, ts: np.ndarray | None = None) -> None:
        pos, s, ts = _timed_batch(y_true, y_score, ts)
        if not s.size:
            return
        w = np.floor_divide(ts, self.size_ms).astype(np.int64)
        if self._max_window is not None:
            late = w < self._max_window
            self.late += int(late.sum())
            w, pos, s = w[~late], pos[~late], s[~late]
        if w.size and w[0] == w[-1] and (w == w[0]).all():  # the usual case: one window per batch
            self._open.setdefault(int(w[0]), []).append((pos, s))
        else:
            for k in np.unique(w):
                sel = w == k
                self._open.setdefault(int(k), []).append((pos[sel], s[sel]))
        if not w.size:
            return
        latest = int(w.max()) if self._max_window is None else max(int(w.max()), self._max_window)
        self._max_window = latest
        for k in sorted(k for k in self._open if k < latest):
            parts = self._open.pop(k)
            p = np.concatenate([x[0] for x in parts])
            self._value = auc_from_arrays(p, np.concatenate([x[1] for x in parts]))
            self._n = p.size
            self.closed += 1
            self.last_window_end_ms = (k + 1) * self.size_ms

    def get(self) -> float | None:
        return self._value

    @property
    def n_events(self) -> int:
        return self._n


def make_window(kind: str, size: int | None = None, size_ms: float | None = None) -> WindowAUC:
    """A window metric from its config kind (see :class:`flinkdl.config.schema.WindowConfig`)."""
    if kind in ("sliding_count", "tumbling_count"):
        if size is None:
            raise ValueError(f"a {kind} window needs a size")
        return SlidingCountAUC(size) if kind == "sliding_count" else TumblingCountAUC(size)
    if kind in ("sliding_time", "tumbling_time"):
        if size_ms is None:
            raise ValueError(f"a {kind} window needs a size in time")
        return SlidingTimeAUC(size_ms) if kind == "sliding_time" else TumblingTimeAUC(size_ms)
    raise ValueError(f"unknown window kind {kind!r}")
