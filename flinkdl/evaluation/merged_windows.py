"""Window AUCs merged from the binned buckets of parallel subtasks (see :mod:`flinkdl.evaluation.partial`).

A subtask cuts each window's events into *buckets*: an event-time window (``tumbling_time``), an
eighth of the window's length (``sliding_time``), or everything since its last partial (the count
windows). The aggregator's :class:`MergedWindow` adds buckets up:

- ``tumbling_time``: window ``k`` closes once every subtask has sent an event of a later window
  (the parallel form of "an event of a later window arrived"); events for a closed window are late.
- ``sliding_time``: the buckets of the latest ``SUBDIVISIONS`` eighths of event time.
- ``sliding_count``: the newest partials that hold at least ``size`` events.
- ``tumbling_count``: a block closes with the partial that brings it to ``size`` events or more.

So the count windows and the sliding time window are exact to one partial or one eighth, and every
window AUC is binned (``WINDOW_BINS`` bins), within the bound of :mod:`flinkdl.evaluation.binned`.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import numpy as np

from flinkdl.evaluation.binned import BinnedCounts
from flinkdl.evaluation.summary import WindowStats

if TYPE_CHECKING:
    from flinkdl.evaluation.partial import Cells

#: Bins of a merged window's AUC.
WINDOW_BINS = 1 << 14
#: A sliding time window is kept as this many buckets.
SUBDIVISIONS = 8


def bucket_of(kind: str, size_ms: float, ts: np.ndarray) -> np.ndarray:
    """The bucket of each event time (ms) for a time window of ``size_ms``."""
    width = size_ms if kind == "tumbling_time" else size_ms / SUBDIVISIONS
    return np.floor_divide(ts, width).astype(np.int64)


def _bins(parts: list[Cells]) -> BinnedCounts:
    from flinkdl.evaluation.partial import add_cells

    bins = BinnedCounts(1, WINDOW_BINS)
    for cells in parts:
        add_cells(bins, cells)
    return bins


class MergedWindow:
    """One configured window over the partials of ``parallelism`` subtasks."""

    def __init__(self, kind: str, size: int | None, parallelism: int) -> None:
        """``size``: events of a count window (a time window's buckets are cut by the subtasks)."""
        self.kind, self.size, self.parallelism = kind, size or 0, parallelism
        self._parts: deque[tuple[int, int, Cells]] = deque()  # (bucket, events, cells)
        self._front: dict[int, int] = {}  # tumbling_time: the latest window each subtask has reached
        self._closed_below: int | None = None  # tumbling_time: windows below this are closed
        self._stats = WindowStats(None, 0)  # the last closed window (tumbling kinds)
        self._fill = 0  # tumbling_count: events in the open block
        self.late = 0

    def merge(self, subtask: int, buckets: list[tuple[int, int, float, Cells]]) -> None:
        """Add one subtask's buckets: ``(bucket, events, latest event time, cells)``."""
        for key, n, _, cells in buckets:
            if self._closed_below is not None and key < self._closed_below:
                self.late += n
                continue
            self._parts.append((key, n, cells))
            self._fill += n
        if not buckets:
            return
        if self.kind == "tumbling_time":
            self._front[subtask] = max(self._front.get(subtask, buckets[-1][0]), max(b[0] for b in buckets))
            if len(self._front) == self.parallelism:
                self._close_time(min(self._front.values()))
        elif self.kind == "tumbling_count" and self._fill >= self.size:
            self._stats = self._window(list(self._parts))
            self._parts.clear()
            self._fill = 0
        elif self.kind == "sliding_count":
            while self._parts and self._fill - self._parts[0][1] >= self.size:
                self._fill -= self._parts.popleft()[1]
        elif self.kind == "sliding_time":
            latest = max(key for key, _, _ in self._parts)
            self._parts = deque(p for p in self._parts if p[0] > latest - SUBDIVISIONS)

    def _close_time(self, below: int) -> None:
        done = sorted({key for key, _, _ in self._parts if key < below})
        for key in done:
            self._stats = self._window([p for p in self._parts if p[0] == key])
        self._parts = deque(p for p in self._parts if p[0] >= below)
        self._closed_below = below

    @staticmethod
    def _window(parts: list[tuple[int, int, Cells]]) -> WindowStats:
        auc, _ = _bins([cells for _, _, cells in parts]).auc()
        return WindowStats(auc, sum(n for _, n, _ in parts))

    def get(self) -> WindowStats:
        if self.kind in ("sliding_count", "sliding_time"):
            return self._window(list(self._parts)) if self._parts else WindowStats(None, 0)
        return self._stats
