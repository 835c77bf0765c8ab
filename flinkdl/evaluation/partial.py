"""Evaluation split across parallel subtasks: partial counts per subtask, merged by one aggregator.

Each subtask feeds its own prediction batches to a :class:`PartialEvaluator`; every report it
hands over a :class:`Partial`: the counts of what it saw since the last one (binned cumulative
AUC cells, log-loss / score / positive sums, and per window the binned cells of each bucket).
Its size is bounded by the bins, not by the events. :class:`MergedEvaluator` adds partials of any
number of subtasks up and answers an :class:`~flinkdl.evaluation.summary.Evaluation` as
:class:`~flinkdl.evaluation.evaluator.StreamEvaluator` does, with every AUC binned (within its
error bound) and the windows merged from buckets (:mod:`flinkdl.evaluation.merged_windows`).

>>> import numpy as np
>>> from flinkdl.config.schema import EvaluationConfig
>>> cfg = EvaluationConfig(windows=[], cumulative_bins=1024)
>>> a, b, merged = PartialEvaluator(cfg), PartialEvaluator(cfg), MergedEvaluator(cfg, parallelism=2)
>>> a.update(np.array([0, 1]), np.array([0.2, 0.6], np.float32))
>>> b.update(np.array([1, 0]), np.array([0.4, 0.5], np.float32))
>>> merged.merge(Partial.decode(a.take(0).encode())); merged.merge(b.take(1))
>>> merged.get().total.auc, merged.get().total.events  # 3 of 4 pairs ranked right
(0.75, 4)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from flinkdl.config.schema import EvaluationConfig
from flinkdl.evaluation.base import as_batch
from flinkdl.evaluation.binned import BinnedCounts
from flinkdl.evaluation.evaluator import OTHER_SLICE
from flinkdl.evaluation.maths import log_losses
from flinkdl.evaluation.merged_windows import WINDOW_BINS, MergedWindow, bucket_of
from flinkdl.evaluation.summary import Evaluation, QualityStats

#: A bucket's cells: (flat cell index, negatives, positives, lowest score, highest score).
Cells = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
#: Their types on the wire (a partial's counts fit in int32: it holds less than 2**31 events).
_WIRE = (np.int32, np.int32, np.int32, np.float32, np.float32)


def cells_of(bins: BinnedCounts) -> Cells:
    """The non-empty cells of one-row ``bins`` (the sparse form a partial carries)."""
    counts = bins.counts.reshape(-1, 2)
    at = np.flatnonzero(counts.any(axis=1))
    return at, counts[at, 0].copy(), counts[at, 1].copy(), bins.lo.reshape(-1)[at], bins.hi.reshape(-1)[at]


def add_cells(bins: BinnedCounts, cells: Cells) -> None:
    """Add sparse ``cells`` (of a one-row table of the same bins) into ``bins``."""
    at, neg, pos, lo, hi = cells  # (``at`` holds each cell once: plain fancy indexing adds right)
    counts = bins.counts.reshape(-1, 2)
    counts[at, 0] += neg
    counts[at, 1] += pos
    low, high = bins.lo.reshape(-1), bins.hi.reshape(-1)
    low[at] = np.minimum(low[at], lo)
    high[at] = np.maximum(high[at], hi)


class SliceCounts:
    """One slice's binned AUC counts and log-loss / score / positive sums."""

    def __init__(self, bins: int) -> None:
        self.bins = BinnedCounts(1, bins)
        self.sums = np.zeros(3)
        self.events = 0

    def add(self, pos: np.ndarray, s: np.ndarray) -> None:
        self.bins.add(0, pos, s)
        self.sums += (log_losses(pos, s).sum(), np.clip(s, 0, 1).sum(dtype=np.float64), np.count_nonzero(pos))
        self.events += s.size

    def get(self) -> QualityStats:
        auc, bound = self.bins.auc()
        return QualityStats.from_sums(auc, bound, logloss_sum=float(self.sums[0]), score_sum=float(self.sums[1]),
                                      positives=float(self.sums[2]), events=self.events)


@dataclass
class Partial:
    """What one subtask saw since its last partial: counts and sums only (and its run counters)."""

    subtask: int
    events: int = 0  # labelled events evaluated
    sums: tuple[float, float, float] = (0.0, 0.0, 0.0)  # log losses, scores, positives
    auc: Cells | None = None  # cumulative binned AUC cells
    windows: dict[str, list[tuple[int, int, float, Cells]]] = field(default_factory=dict)  # (bucket, n, max ts, cells)
    slices: dict[str, tuple[int, tuple[float, float, float], Cells]] = field(default_factory=dict)  # (n, sums, cells)
    counters: dict[str, object] = field(default_factory=dict)  # run counters (events_in, dead letters, ...)

    def encode(self) -> bytes:
        """Bytes for the wire and the exactly-once tail: a JSON header, then the raw arrays (no pickle)."""
        arrays: list[np.ndarray] = list(self.auc) if self.auc is not None else []
        index: dict[str, list[list[float]]] = {}
        for name, buckets in self.windows.items():
            index[name] = [[b, n, t] for b, n, t, _ in buckets]
            for *_, cells in buckets:
                arrays.extend(cells)
        for _, _, cells in self.slices.values():
            arrays.extend(cells)
        arrays = [np.ascontiguousarray(a, _WIRE[k % 5]) for k, a in enumerate(arrays)]
        meta = {"subtask": self.subtask, "events": self.events, "sums": self.sums, "auc": self.auc is not None,
                "windows": index, "slices": {v: [n, *sums] for v, (n, sums, _) in self.slices.items()},
                "counters": self.counters, "sizes": [a.size for a in arrays]}
        head = json.dumps(meta).encode()
        return b"".join([len(head).to_bytes(4, "little"), head, *(a.tobytes() for a in arrays)])

    @classmethod
    def decode(cls, data: bytes) -> Partial:
        n = int.from_bytes(data[:4], "little")
        meta = json.loads(data[4:4 + n])
        arrays: list[np.ndarray] = []
        at = 4 + n
        for k, size in enumerate(meta["sizes"]):
            dtype = np.dtype(_WIRE[k % 5])
            arrays.append(np.frombuffer(data, dtype, size, at))
            at += size * dtype.itemsize
        cells: list[Cells] = [(arrays[i], arrays[i + 1], arrays[i + 2], arrays[i + 3], arrays[i + 4])
                              for i in range(0, len(arrays), 5)]
        auc = cells.pop(0) if meta["auc"] else None
        windows = {name: [(int(b), int(n), float(t), cells.pop(0)) for b, n, t in buckets]
                   for name, buckets in meta["windows"].items()}
        slices = {v: (int(n), (float(a), float(b), float(c)), cells.pop(0))
                  for v, (n, a, b, c) in meta["slices"].items()}
        return cls(meta["subtask"], meta["events"], tuple(meta["sums"]), auc, windows, slices, meta["counters"])


class PartialEvaluator:
    """A subtask's side: counts its batches into bins until :meth:`take` hands them over."""

    def __init__(self, cfg: EvaluationConfig) -> None:
        self.cfg = cfg
        self.windows = [(str(w.name), w.kind, w.size_s * 1000.0 if w.size_s is not None else None)
                        for w in cfg.windows]
        self._reset()

    def _reset(self) -> None:
        self.auc = BinnedCounts(1, self.cfg.cumulative_bins)
        self.sums = np.zeros(3)
        self.events = 0
        self.buckets: dict[str, dict[int, tuple[int, float, BinnedCounts]]] = {name: {} for name, _, _ in self.windows}
        self.slices: dict[str, SliceCounts] = {}

    def update(self, y_true: np.ndarray, y_score: np.ndarray, ts_ms: np.ndarray | None = None,
               slices: pa.Array | np.ndarray | None = None) -> None:
        """One batch of labelled predictions (``ts_ms``: event times, needed by time windows;
        ``slices``: each event's value of ``slice_field``)."""
        pos, s = as_batch(y_true, y_score)
        if not s.size:
            return
        self.auc.add(0, pos, s)
        self.sums += (log_losses(pos, s).sum(), s.sum(dtype=np.float64), np.count_nonzero(pos))
        self.events += s.size
        ts = None if ts_ms is None else np.asarray(ts_ms, np.float64).reshape(-1)
        for name, kind, size_ms in self.windows:
            if kind.endswith("_time"):
                if ts is None or size_ms is None:  # no event times: time windows skip the batch
                    continue
                keys = bucket_of(kind, size_ms, ts)
                for k in np.unique(keys):
                    sel = keys == k
                    self._bucket(name, int(k), pos[sel], s[sel], float(ts[sel].max()))
            else:
                self._bucket(name, 0, pos, s, float(ts.max()) if ts is not None else 0.0)
        if slices is not None and self.cfg.slice_field:
            arr = slices if isinstance(slices, pa.Array) else pa.array(np.asarray(slices).astype(str))
            enc = arr.dictionary_encode()
            codes = enc.indices.to_numpy(zero_copy_only=False)
            for j, value in enumerate(enc.dictionary.cast(pa.string()).to_pylist()):
                sel = codes == j
                slot = self.slices.get(value)
                if slot is None:  # past max_slices values in one partial: the rest are pooled
                    full = len(self.slices) - (OTHER_SLICE in self.slices) >= self.cfg.max_slices
                    value = OTHER_SLICE if full else value
                    slot = self.slices.setdefault(value, SliceCounts(self.cfg.slice_bins))
                slot.add(pos[sel], s[sel])

    def _bucket(self, name: str, key: int, pos: np.ndarray, s: np.ndarray, max_ts: float) -> None:
        n, t, bins = self.buckets[name].get(key) or (0, -np.inf, BinnedCounts(1, WINDOW_BINS))
        bins.add(0, pos, s)
        self.buckets[name][key] = (n + s.size, max(t, max_ts), bins)

    def take(self, subtask: int, counters: dict[str, object] | None = None) -> Partial:
        """The counts since the last take (this evaluator starts again from zero)."""
        part = Partial(subtask, self.events, (float(self.sums[0]), float(self.sums[1]), float(self.sums[2])),
                       cells_of(self.auc) if self.events else None,
                       {name: [(k, n, t, cells_of(b)) for k, (n, t, b) in sorted(buckets.items())]
                        for name, buckets in self.buckets.items() if buckets},
                       {v: (c.events, (float(c.sums[0]), float(c.sums[1]), float(c.sums[2])), cells_of(c.bins))
                        for v, c in self.slices.items()},
                       dict(counters or {}))
        self._reset()
        return part


class MergedEvaluator:
    """The aggregator's side: the sum of every partial of every subtask (see module doc)."""

    def __init__(self, cfg: EvaluationConfig, parallelism: int) -> None:
        self.cfg = cfg
        self.auc = BinnedCounts(1, cfg.cumulative_bins)
        self.sums = np.zeros(3)
        self.events = 0
        self.windows = {str(w.name): MergedWindow(w.kind, w.size, parallelism) for w in cfg.windows}
        self.slices: dict[str, SliceCounts] = {}

    def merge(self, part: Partial) -> None:
        """Add one subtask's partial."""
        if part.auc is not None:
            add_cells(self.auc, part.auc)
        self.sums += part.sums
        self.events += part.events
        for name, buckets in part.windows.items():
            if name in self.windows:
                self.windows[name].merge(part.subtask, buckets)
        for value, (n, sums, cells) in part.slices.items():
            slot = self.slices.get(value)
            if slot is None:  # the first max_slices values get their own, the rest share __other__
                full = len(self.slices) - (OTHER_SLICE in self.slices) >= self.cfg.max_slices
                slot = self.slices.setdefault(OTHER_SLICE if full else value, SliceCounts(self.cfg.slice_bins))
            add_cells(slot.bins, cells)
            slot.sums += sums
            slot.events += n

    def get(self) -> Evaluation:
        auc, bound = self.auc.auc()
        total = QualityStats.from_sums(auc, bound, logloss_sum=float(self.sums[0]), score_sum=float(self.sums[1]),
                                       positives=float(self.sums[2]), events=self.events)
        return Evaluation(total=total, windows={name: w.get() for name, w in self.windows.items()},
                          slices={v: c.get() for v, c in self.slices.items()})
