"""The streaming evaluator of a job: every configured window, cumulative metrics, per-slice metrics.

Prequential: it is fed the prediction batches, whose scores were made before the model trained
on their events. ``update`` takes a whole batch (labels, scores, and when configured the event
times in ms and the slice values); ``get`` returns an :class:`~flinkdl.evaluation.summary.Evaluation`:

- ``total``: cumulative ``auc`` (bounded memory) with ``auc_error_bound`` (``|auc - exact| <=`` it),
  ``logloss``, ``mean_score``, ``ctr`` and ``calibration`` (``mean_score / ctr``),
- ``windows``: ``{name: WindowStats(auc, events)}`` exact per window,
- ``slices``: ``{value: QualityStats}`` as ``total``, per value of ``slice_field``.

Undefined values are ``None`` (one class only, no events yet), never a placeholder.

>>> import numpy as np
>>> from flinkdl.config.schema import EvaluationConfig
>>> cfg = EvaluationConfig(windows=[{"kind": "sliding_count", "size": 2}], cumulative_bins=1024)
>>> ev = StreamEvaluator(cfg)
>>> ev.update(np.array([0, 1, 1]), np.array([0.2, 0.6, 0.4], dtype=np.float32))
>>> snap = ev.get()
>>> snap.total.auc, snap.windows["sliding_count_2"].auc, round(snap.total.calibration, 4)
(1.0, None, 0.6)
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flinkdl.config.schema import EvaluationConfig
from flinkdl.evaluation.base import as_batch
from flinkdl.evaluation.binned import BinnedAUC, BinnedCounts
from flinkdl.evaluation.maths import log_losses
from flinkdl.evaluation.metrics import LogLoss, MeanScore, ObservedCTR
from flinkdl.evaluation.summary import Evaluation, QualityStats, WindowStats
from flinkdl.evaluation.windows import WindowAUC, make_window

OTHER_SLICE = "__other__"


class Quality:
    """Cumulative AUC (binned), log loss and calibration of one stream: four mergeable metrics."""

    def __init__(self, bins: int) -> None:
        self.auc = BinnedAUC(bins)
        self.logloss, self.mean_score, self.ctr = LogLoss(), MeanScore(), ObservedCTR()

    def update_checked(self, pos: np.ndarray, s: np.ndarray) -> None:
        for m in (self.auc, self.logloss, self.mean_score, self.ctr):
            m.update_checked(pos, s)

    def merge(self, other: Quality) -> None:
        self.auc.merge(other.auc)
        self.logloss.merge(other.logloss)
        self.mean_score.merge(other.mean_score)
        self.ctr.merge(other.ctr)

    def get(self) -> QualityStats:
        return QualityStats.from_sums(self.auc.get(), self.auc.error_bound, logloss_sum=self.logloss.total,
                                      score_sum=self.mean_score.total, positives=self.ctr.total,
                                      events=self.logloss.n_events)


class SliceTable:
    """:class:`Quality` of up to ``capacity`` slices in shared arrays: one vectorised update per batch."""

    def __init__(self, bins: int, capacity: int) -> None:
        self.bins = BinnedCounts(capacity, bins)
        self.events = np.zeros(capacity, np.int64)
        self.sums = np.zeros((3, capacity))  # positives, scores, log losses

    def update(self, slot: np.ndarray, pos: np.ndarray, s: np.ndarray) -> None:
        self.bins.add(slot, pos, s)
        cap = self.events.size
        self.events += np.bincount(slot, minlength=cap)
        s = np.clip(s, np.float32(0.0), np.float32(1.0))
        for k, w in enumerate((pos.astype(np.float64), s.astype(np.float64), log_losses(pos, s))):
            self.sums[k] += np.bincount(slot, weights=w, minlength=cap)

    def merge(self, other: SliceTable) -> None:
        """Add ``other``'s counts slot by slot (both tables must number their slices alike)."""
        self.bins.merge(other.bins)
        self.events += other.events
        self.sums += other.sums

    def get(self, k: int) -> QualityStats:
        auc, bound = self.bins.auc(k)
        return QualityStats.from_sums(auc, bound, logloss_sum=self.sums[2, k], score_sum=self.sums[1, k],
                                      positives=self.sums[0, k], events=int(self.events[k]))


class StreamEvaluator:
    """Windows + cumulative + per-slice metrics as configured by ``evaluation:``."""

    def __init__(self, cfg: EvaluationConfig) -> None:
        self.cfg = cfg
        self.total = Quality(cfg.cumulative_bins)
        self.windows: dict[str, WindowAUC] = {
            str(w.name): make_window(w.kind, w.size, None if w.size_s is None else w.size_s * 1000.0)
            for w in cfg.windows}  # (the config fills every name in)
        self.slices: dict[str, int] = {}  # slice value -> slot in the table (allocated on first use)
        self._table: SliceTable | None = None
        self.needs_ts = any(w.by_time for w in self.windows.values())

    def update(self, y_true: np.ndarray, y_score: np.ndarray, ts_ms: np.ndarray | None = None,
               slices: np.ndarray | None = None) -> None:
        """One prediction batch; ``ts_ms`` is required when a time window is configured."""
        pos, s = as_batch(y_true, y_score)
        if not s.size:
            return
        self.total.update_checked(pos, s)
        for w in self.windows.values():
            if ts_ms is not None or not w.by_time:  # no event times: time windows skip the batch
                w.update(pos, s, ts_ms)
        if slices is not None and self.cfg.slice_field:
            self._update_slices(pos, s, slices)

    def _update_slices(self, pos: np.ndarray, s: np.ndarray, values: pa.Array | np.ndarray) -> None:
        arr = values if isinstance(values, pa.Array) else pa.array(np.asarray(values).astype(str))
        enc = arr.dictionary_encode()  # Arrow's factorisation: far cheaper than np.unique on strings
        values = enc.dictionary.cast(pa.string())
        slot_of = np.full(len(values), -1, np.int64)  # dictionary entry -> slice slot
        if self.slices:
            known = pa.array(list(self.slices), pa.string())
            at = pc.index_in(values, value_set=known).fill_null(-1)
            at = at.to_numpy(zero_copy_only=False).astype(np.int64)
            slot_of = np.where(at >= 0, np.array(list(self.slices.values()), np.int64)[np.maximum(at, 0)], -1)
        new = np.flatnonzero(slot_of < 0)
        if new.size:  # the first max_slices values get a slot each, the rest share __other__
            real = len(self.slices) - (OTHER_SLICE in self.slices)
            room = max(0, self.cfg.max_slices - real)
            for j, v in zip(new[:room], values.take(pa.array(new[:room])).to_pylist(), strict=True):
                slot_of[j] = self.slices[v] = len(self.slices)
            if new.size > room:
                slot_of[new[room:]] = self.slices.setdefault(OTHER_SLICE, len(self.slices))
        if self._table is None:
            self._table = SliceTable(self.cfg.slice_bins, self.cfg.max_slices + 1)
        self._table.update(slot_of[enc.indices.to_numpy(zero_copy_only=False)], pos, s)

    def get(self) -> Evaluation:
        table = self._table
        return Evaluation(
            total=self.total.get(),
            windows={name: WindowStats(w.get(), w.n_events) for name, w in self.windows.items()},
            slices={v: table.get(k) for v, k in self.slices.items()} if table is not None else {})
