"""The streaming evaluator of a job: every configured window, cumulative metrics, per-slice metrics.

Prequential: it is fed the prediction batches, whose scores were made before the model trained
on their events. ``update`` takes a whole batch (labels, scores, and when configured the event
times in ms and the slice values); ``get`` returns a snapshot dict:

- ``auc`` (cumulative, bounded memory) and ``auc_error_bound`` (``|auc - exact| <=`` it),
- ``logloss``, ``mean_score``, ``ctr`` (calibration: ``mean_score / ctr``, ``calibration``),
- ``windows``: ``{name: {"auc": ..., "events": ...}}`` exact per window,
- ``slices``: ``{value: {"auc", "auc_error_bound", "logloss", "mean_score", "ctr", "events"}}``.

Undefined values are ``None`` (one class only, no events yet), never a placeholder.

>>> import numpy as np
>>> from flinkdl.config.schema import EvaluationConfig
>>> ev = StreamEvaluator(EvaluationConfig(windows=[{"kind": "sliding_count", "size": 2}], cumulative_bins=1024))
>>> ev.update(np.array([0, 1, 1]), np.array([0.2, 0.6, 0.4], dtype=np.float32))
>>> snap = ev.get()
>>> snap["auc"], snap["windows"]["sliding_count_2"]["auc"], round(snap["calibration"], 4)
(1.0, None, 0.6)
"""

from __future__ import annotations

import numpy as np

from flinkdl.config.schema import EvaluationConfig
from flinkdl.evaluation.base import as_batch
from flinkdl.evaluation.binned import BinnedAUC
from flinkdl.evaluation.metrics import LogLoss, MeanScore, ObservedCTR
from flinkdl.evaluation.windows import WindowAUC, make_window

OTHER_SLICE = "__other__"


class _Cumulative:
    """Cumulative AUC (binned), logloss and calibration of one stream or slice."""

    def __init__(self, bins: int) -> None:
        self.auc = BinnedAUC(bins)
        self.logloss, self.mean_score, self.ctr = LogLoss(), MeanScore(), ObservedCTR()
        self.events = 0

    def update(self, pos: np.ndarray, s: np.ndarray) -> None:
        for m in (self.auc, self.logloss, self.mean_score, self.ctr):
            m.update(pos, s)
        self.events += s.size

    def get(self) -> dict:
        mean, ctr = self.mean_score.get(), self.ctr.get()
        return {"auc": self.auc.get(), "auc_error_bound": self.auc.error_bound,
                "logloss": self.logloss.get(), "mean_score": mean, "ctr": ctr,
                "calibration": mean / ctr if mean is not None and ctr else None, "events": self.events}


class StreamEvaluator:
    """Windows + cumulative + per-slice metrics as configured by ``evaluation:``."""

    def __init__(self, cfg: EvaluationConfig) -> None:
        self.cfg = cfg
        self.total = _Cumulative(cfg.cumulative_bins)
        self.windows: dict[str, WindowAUC] = {
            w.name: make_window(w.kind, w.size, None if w.size_s is None else w.size_s * 1000.0)
            for w in cfg.windows}
        self.slices: dict[str, _Cumulative] = {}
        self.needs_ts = any(w.by_time for w in self.windows.values())

    def update(self, y_true: np.ndarray, y_score: np.ndarray, ts_ms: np.ndarray | None = None,
               slices: np.ndarray | None = None) -> None:
        """One prediction batch; ``ts_ms`` is required when a time window is configured."""
        pos, s = as_batch(y_true, y_score)
        if not s.size:
            return
        self.total.update(pos, s)
        for w in self.windows.values():
            w.update(pos, s, ts_ms)
        if slices is not None and self.cfg.slice_field:
            self._update_slices(pos, s, np.asarray(slices).astype(str))

    def _update_slices(self, pos: np.ndarray, s: np.ndarray, values: np.ndarray) -> None:
        uniq, inverse = np.unique(values, return_inverse=True)
        for i, v in enumerate(uniq.tolist()):
            if v not in self.slices and len(self.slices) >= self.cfg.max_slices:
                v = OTHER_SLICE
            m = self.slices.get(v)
            if m is None:
                m = self.slices[v] = _Cumulative(self.cfg.slice_bins)
            sel = inverse == i
            m.update(pos[sel], s[sel])

    def get(self) -> dict:
        out = self.total.get()
        out["windows"] = {name: {"auc": w.get(), "events": w.n_events} for name, w in self.windows.items()}
        out["slices"] = {v: m.get() for v, m in self.slices.items()}
        return out
